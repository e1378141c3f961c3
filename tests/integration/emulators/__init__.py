# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start, describe and stop local Azure Key Vault emulators for integration tests.

Standard library only (Python 3.11+ at run time; the syntax stays 3.9-clean for
ansible-test's compile check).  Two back ends:

* ``lowkey`` (lowkey.py): nagyesta's lowkey-vault (a Java/Spring Boot jar) with its fake
  managed-identity token endpoint (App Service style, plain HTTP).
* ``akv`` (gopair.py): calvinchengx's azure-keyvault-emulator (Go) plus the entra-emulator it
  validates tokens against (client credentials, managed identity, JWKS).

Every process listens on 127.0.0.1 only, on free ports, runs in its own process
group (processes.py), and is stopped by ``stop()``, by the context managers, at interpreter
exit, when the Python process that started it dies (Linux parent-death signal), or, for
the CLI (cli.py), by a watchdog that follows an owner PID and a time limit (emulator.py).
prodnames.py (with namespace.py) serves the Go pair under Azure's production host names.

The package is importable where tests/integration is on the import path: scripts/lib/python.sh
(expose_test_helpers) puts it there for the venvs of tests/integration/run.sh, scripts/demo.sh
and benchmarks/run.sh; elsewhere set PYTHONPATH=tests/integration.

Library use::

    from emulators import lowkey_vault, EmulatorUnavailable
    with lowkey_vault() as kv:
        kv.vault_url, kv.ca_file, kv.identity_endpoint, kv.identity_header
        kv.env()          # variables for a client process (IDENTITY_ENDPOINT, ...)

Shell use::

    eval "$(python3 -m emulators start lowkey --state-dir "$DIR" --owner-pid $$)"
    ...
    python3 -m emulators stop --state-dir "$DIR"

Pinned versions live in versions.env beside this file.
"""

from __future__ import annotations

from .common import VERSIONS, EmulatorFailed, EmulatorUnavailable, HarnessError
from .emulator import Emulator, load_descriptor, stop_state_dir
from .gopair import GoKeyVault, GoPairLayout, ensure_go_binary, go_emulators, start_go_emulators
from .lowkey import LowkeyVault, ensure_lowkey_jar, lowkey_vault, start_lowkey_vault

__all__ = ['VERSIONS', 'Emulator', 'EmulatorFailed', 'EmulatorUnavailable', 'GoKeyVault', 'GoPairLayout', 'HarnessError', 'LowkeyVault',
           'ensure_go_binary', 'ensure_lowkey_jar', 'go_emulators', 'load_descriptor', 'lowkey_vault', 'start_go_emulators',
           'start_lowkey_vault', 'stop_state_dir']
