# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m emulators ...``: the harness's command line (cli.py)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
