# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Python helpers shared by the integration targets and the benchmarks.

testpki.py   keys and certificates made at test time (the targets' one PKI helper)
detached.py  loopback servers started detached, found again and stopped by PID and start time

Importable where tests/integration is on the import path: scripts/lib/python.sh (expose_test_helpers)
puts it there, through a .pth file, in the venvs of tests/integration/run.sh and benchmarks/run.sh;
ansible-test passes no PYTHONPATH to a target, but its helpers run with that venv's interpreter.
"""
