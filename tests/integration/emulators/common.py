# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every part of the emulator harness shares: paths, pinned versions, errors, small helpers.

Pinned versions live in versions.env beside this file (KEY=VALUE lines, also read by shell);
downloaded or built artifacts in the cache directory (.cache/emulators, or
$CERTDEPLOY_EMULATOR_CACHE).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent.parent
VERSIONS_FILE = HERE / 'versions.env'
LOOPBACK = '127.0.0.1'
LOOPBACK_NAMES = ('localhost', '127.0.0.1', '::1', '.localhost')
DESCRIPTOR = 'harness.json'
VAULT_RESOURCE = 'https://vault.azure.net'
PROXY_TRAP = 'http://127.0.0.1:9'  # discard port: nothing listens, connections are refused at once

# entra-emulator's deterministic seed (v0.4.x): tenant and the confidential "Sample Daemon" app.
ENTRA_TENANT_ID = '6f89cf12-978b-4d23-ac18-9ef0c127cf87'
ENTRA_CLIENT_ID = '00d88624-f0d7-46f6-a641-6232c2608928'
ENTRA_CLIENT_SECRET = 'daemon-app-secret'  # public dev value seeded by entra-emulator

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3


class HarnessError(Exception):
    """Base class of the harness's own errors (the CLI prints them without a traceback)."""


class EmulatorUnavailable(HarnessError):
    """A prerequisite (java, javac, mvn, go, an artifact) is missing here: tests should skip."""


class EmulatorFailed(HarnessError):
    """An emulator was available but did not start or stop as expected."""


# ---------------------------------------------------------------------------
# Versions and cache
# ---------------------------------------------------------------------------
def load_versions(path=VERSIONS_FILE):
    """Parse versions.env (KEY=VALUE lines, # comments) into a dict."""
    values = {}
    with open(path, encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            match = re.match(r'^([A-Z][A-Z0-9_]*)=(\S*)$', line)
            if not match:
                raise HarnessError('%s:%d: expected KEY=VALUE, got %r' % (path, number, line))
            values[match.group(1)] = match.group(2)
    return values


VERSIONS = load_versions()


def cache_dir():
    """Where downloaded artifacts live (git-ignored): $CERTDEPLOY_EMULATOR_CACHE or .cache/emulators."""
    return Path(os.environ.get('CERTDEPLOY_EMULATOR_CACHE') or REPO_ROOT / '.cache' / 'emulators')


def version_tuple(text):
    return tuple(int(part) for part in re.findall(r'\d+', text)[:3])


def log_tail(path, lines=30):
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return ''.join(handle.readlines()[-lines:])
    except OSError:
        return '(no log)'


def write_text(path, text, mode=0o644):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def run(argv, env=None, cwd=None, timeout=600):
    return subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout, check=False)
