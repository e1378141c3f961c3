# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the emulators come from: tools on this machine and the artifact cache.

An emulator artifact is resolved in this order: an override variable, the cache, a build with
../shared/emulators/build.sh (read only; built in temporary directories), the registry.  Each
resolution prints one line saying which, and a cache lock keeps parallel runs from building twice.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .common import REPO_ROOT, EmulatorFailed, EmulatorUnavailable, cache_dir, run, write_text
from .net import child_environment


def find_tool(name, env_vars=(), home_var=None, purpose=''):
    """Path of a tool from an override variable, $HOME_VAR/bin, or PATH; else EmulatorUnavailable."""
    for var in env_vars:
        value = os.environ.get(var)
        if value:
            if os.path.isfile(value) and os.access(value, os.X_OK):
                return value
            raise EmulatorUnavailable('%s=%s is not an executable file' % (var, value))
    if home_var and os.environ.get(home_var):
        candidate = os.path.join(os.environ[home_var], 'bin', name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    hint = ' (set %s)' % ' or '.join(list(env_vars) + ([home_var] if home_var else [])) if env_vars or home_var else ''
    raise EmulatorUnavailable('%s not found on PATH%s: needed %s' % (name, hint, purpose))


_RESOLVED = {}


def shared_emulators_dir():
    """The project's shared emulator sources (../shared/emulators beside the checkout), or None.

    $CERTDEPLOY_SHARED_EMULATORS overrides the place (an empty value disables the build step).
    The folder is only read: build.sh builds in temporary directories and writes into the cache.
    """
    value = os.environ.get('CERTDEPLOY_SHARED_EMULATORS')
    path = Path(value) if value else REPO_ROOT.parent / 'shared' / 'emulators'
    if value == '' or not (path / 'build.sh').is_file():
        return None
    return path.resolve()


def show_path(path):
    """A path as a person reads it: relative to the checkout when it is beside or inside it."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    rel = os.path.relpath(str(path), str(REPO_ROOT))
    return str(path) if rel.startswith('../..') else rel


def report_resolved(label, path, how):
    """Record and print (once per process, to stderr) where an emulator artifact came from."""
    line = '%s: %s' % (label, how)
    if _RESOLVED.get(label) != line:
        _RESOLVED[label] = line
        print('[emulators] %s' % line, file=sys.stderr, flush=True)
    return Path(path)


def read_origin(artifact, default):
    try:
        return Path(str(artifact) + '.origin').read_text(encoding='utf-8').strip() or default
    except OSError:
        return default


def write_origin(artifact, how):
    write_text(str(artifact) + '.origin', how + '\n')
    return how


@contextmanager
def cache_lock():
    """One build or download at a time per cache directory (parallel runs wait for each other)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(str(directory / '.lock'), 'a+') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_from_shared(shared, part, outputs, tail_lines=25):
    """Run shared/build.sh OUT part into a fresh directory in the cache, then move outputs into place.

    Returns the build's duration.  A failing build raises EmulatorFailed with its last lines:
    the sources are there, so a failure is a real error, never a reason to skip.
    """
    directory = cache_dir()
    started = time.monotonic()
    print('[emulators] building %s from %s into %s (cold: about %s; later runs reuse the cache)'
          % (part, show_path(shared), show_path(directory), '1 min' if part == 'lowkey' else '1.5 min'), file=sys.stderr, flush=True)
    out = Path(tempfile.mkdtemp(prefix='.build-%s-' % part, dir=str(directory)))
    log_path = directory / ('build-%s.log' % part)
    try:
        env = child_environment({'GOTOOLCHAIN': 'local'})
        for name in ('JAVA_HOME', 'MAVEN_HOME', 'MAVEN_OPTS', 'GOPATH', 'GOCACHE', 'GOMODCACHE', 'GOPROXY', 'GOFLAGS',
                     'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'):
            if os.environ.get(name):
                env[name] = os.environ[name]
        result = run(['bash', str(shared / 'build.sh'), str(out), part], env=env, cwd=str(out), timeout=1800)
        write_text(log_path, result.stdout)
        if result.returncode != 0:
            tail = '\n'.join(result.stdout.rstrip().splitlines()[-tail_lines:])
            raise EmulatorFailed('%s/build.sh %s failed (exit %d; whole log: %s); its last lines:\n%s'
                                 % (show_path(shared), part, result.returncode, show_path(log_path), tail))
        for rel in outputs:
            built = out / rel
            if not built.exists():
                raise EmulatorFailed('%s/build.sh %s succeeded but wrote no %s (log: %s)' % (show_path(shared), part, rel, show_path(log_path)))
            final = directory / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(str(built), str(final))
    finally:
        shutil.rmtree(str(out), ignore_errors=True)
    return time.monotonic() - started
