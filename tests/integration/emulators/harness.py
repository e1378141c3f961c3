# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start, describe and stop local Azure Key Vault emulators for integration tests.

Standard library only (Python 3.11+ at run time; the syntax stays 3.9-clean for
ansible-test's compile check).  Two back ends:

* ``lowkey``: nagyesta's lowkey-vault (a Java/Spring Boot jar) with its fake
  managed-identity token endpoint (App Service style, plain HTTP).
* ``akv``: calvinchengx's azure-keyvault-emulator (Go) plus the entra-emulator it
  validates tokens against (client credentials, managed identity, JWKS).

Every process listens on 127.0.0.1 only, on free ports, runs in its own process
group, and is stopped by ``stop()``, by the context managers, at interpreter exit,
when the Python process that started it dies (Linux parent-death signal), or, for
the CLI, by a watchdog that follows an owner PID and a time limit.

Library use::

    from harness import lowkey_vault, EmulatorUnavailable
    with lowkey_vault() as kv:
        kv.vault_url, kv.ca_file, kv.identity_endpoint, kv.identity_header
        kv.env()          # variables for a client process (IDENTITY_ENDPOINT, ...)

Shell use::

    eval "$(python3 harness.py start lowkey --state-dir "$DIR" --owner-pid $$)"
    ...
    python3 harness.py stop --state-dir "$DIR"

Pinned versions live in versions.env beside this file.  Exit status of the CLI:
0 success, 1 failure, 3 emulator unavailable here (missing tool or artifact).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from contextlib import contextmanager
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


def _version_tuple(text):
    return tuple(int(part) for part in re.findall(r'\d+', text)[:3])


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
def free_port():
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def no_proxy_value(existing=None):
    """NO_PROXY extended with the loopback names (kept comma separated, no duplicates)."""
    if existing is None:
        existing = os.environ.get('NO_PROXY') or os.environ.get('no_proxy') or ''
    names = [name.strip() for name in existing.split(',') if name.strip()]
    for name in LOOPBACK_NAMES:
        if name not in names:
            names.append(name)
    return ','.join(names)


def child_environment(extra=None):
    """A minimal environment for emulator processes: nothing inherited can reconfigure them.

    Spring Boot reads any environment variable as a property, entra-emulator reads generic names
    such as HOST, PORT and ISSUER, and the Go emulators honour proxy variables: pass only the basics.
    """
    env = {}
    for name in ('PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ'):
        if os.environ.get(name):
            env[name] = os.environ[name]
    env.setdefault('PATH', os.defpath)
    env['NO_PROXY'] = env['no_proxy'] = no_proxy_value('')
    if extra:
        env.update(extra)
    return env


def _tail(path, lines=30):
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return ''.join(handle.readlines()[-lines:])
    except OSError:
        return '(no log)'


def _http_opener(context=None):
    """urllib opener that never uses a proxy (the emulators are on loopback)."""
    handlers = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def _insecure_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def verifying_context(ca_file):
    """An SSL context trusting only ca_file, as HTTP clients (requests/urllib3) verify.

    Python 3.13's create_default_context() adds VERIFY_X509_STRICT, which rejects the emulators'
    self-signed leaf certificates (no authority key identifier); urllib3 does not set it, so
    it is cleared here to check what the Azure SDK will see.
    """
    context = ssl.create_default_context(cafile=str(ca_file))
    context.verify_flags &= ~getattr(ssl, 'VERIFY_X509_STRICT', 0)
    return context


def http_get(url, context=None, headers=None, timeout=5.0):
    """GET url without proxies; returns (status, headers, body bytes); HTTP errors are results."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _http_opener(context).open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def fetch_server_chain(host, port, server_name=None, timeout=5.0):
    """PEM text of the certificate chain a TLS server presents (leaf only before Python 3.13)."""
    context = _insecure_context()
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_name or host) as tls:
            chain = None
            if hasattr(tls, 'get_unverified_chain'):  # Python 3.13+
                chain = tls.get_unverified_chain()
            if chain:
                ders = [bytes(cert) for cert in chain]  # DER bytes
            else:
                ders = [tls.getpeercert(binary_form=True)]
    return ''.join(ssl.DER_cert_to_PEM_cert(der) for der in ders)


def _pem_certificates(text):
    return re.findall(r'-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----', text, re.S)


def _write_text(path, text, mode=0o644):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _run(argv, env=None, cwd=None, timeout=600):
    return subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout, check=False)


def _find_tool(name, env_vars=(), home_var=None, purpose=''):
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


# ---------------------------------------------------------------------------
# Where the emulators come from: override variable -> cache -> ../shared/emulators build -> registry
# ---------------------------------------------------------------------------
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


def _show(path):
    """A path as a person reads it: relative to the checkout when it is beside or inside it."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    rel = os.path.relpath(str(path), str(REPO_ROOT))
    return str(path) if rel.startswith('../..') else rel


def _resolved(label, path, how):
    """Record and print (once per process, to stderr) where an emulator artifact came from."""
    line = '%s: %s' % (label, how)
    if _RESOLVED.get(label) != line:
        _RESOLVED[label] = line
        print('[emulators] %s' % line, file=sys.stderr, flush=True)
    return Path(path)


def _origin(artifact, default):
    try:
        return Path(str(artifact) + '.origin').read_text(encoding='utf-8').strip() or default
    except OSError:
        return default


def _set_origin(artifact, how):
    _write_text(str(artifact) + '.origin', how + '\n')
    return how


@contextmanager
def _cache_lock():
    """One build or download at a time per cache directory (parallel runs wait for each other)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(str(directory / '.lock'), 'a+') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_from_shared(shared, part, outputs, tail_lines=25):
    """Run shared/build.sh OUT part into a fresh directory in the cache, then move outputs into place.

    Returns the build's duration.  A failing build raises EmulatorFailed with its last lines:
    the sources are there, so a failure is a real error, never a reason to skip.
    """
    directory = cache_dir()
    started = time.monotonic()
    print('[emulators] building %s from %s into %s (cold: about %s; later runs reuse the cache)'
          % (part, _show(shared), _show(directory), '1 min' if part == 'lowkey' else '1.5 min'), file=sys.stderr, flush=True)
    out = Path(tempfile.mkdtemp(prefix='.build-%s-' % part, dir=str(directory)))
    log_path = directory / ('build-%s.log' % part)
    try:
        env = child_environment({'GOTOOLCHAIN': 'local'})
        for name in ('JAVA_HOME', 'MAVEN_HOME', 'MAVEN_OPTS', 'GOPATH', 'GOCACHE', 'GOMODCACHE', 'GOPROXY', 'GOFLAGS',
                     'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'):
            if os.environ.get(name):
                env[name] = os.environ[name]
        result = _run(['bash', str(shared / 'build.sh'), str(out), part], env=env, cwd=str(out), timeout=1800)
        _write_text(log_path, result.stdout)
        if result.returncode != 0:
            tail = '\n'.join(result.stdout.rstrip().splitlines()[-tail_lines:])
            raise EmulatorFailed('%s/build.sh %s failed (exit %d; whole log: %s); its last lines:\n%s'
                                 % (_show(shared), part, result.returncode, _show(log_path), tail))
        for rel in outputs:
            built = out / rel
            if not built.exists():
                raise EmulatorFailed('%s/build.sh %s succeeded but wrote no %s (log: %s)' % (_show(shared), part, rel, _show(log_path)))
            final = directory / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(str(built), str(final))
    finally:
        shutil.rmtree(str(out), ignore_errors=True)
    return time.monotonic() - started


# ---------------------------------------------------------------------------
# Processes: own process group, parent-death signal, PID files that survive PID reuse
# ---------------------------------------------------------------------------
_LIBC_PRCTL = None
if sys.platform.startswith('linux'):
    try:
        _LIBC_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork
    except (OSError, AttributeError):
        _LIBC_PRCTL = None
_PR_SET_PDEATHSIG = 1


def _pdeathsig_preexec(parent_pid):
    """preexec_fn: SIGTERM the child when the thread that started it dies (Linux)."""
    def preexec():
        if _LIBC_PRCTL is not None:
            _LIBC_PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return preexec


def process_start_time(pid):
    """Start time of a process in clock ticks since boot (Linux), or None if it does not exist."""
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ('Z', 'X'):  # zombie: gone for our purposes
        return None
    return fields[19]


@dataclasses.dataclass
class ProcessRecord:
    """A started process: enough to find it again (even from another process) and to stop it."""

    name: str
    pid: int
    start_time: str | None
    log: str
    argv: list = dataclasses.field(default_factory=list)

    def alive(self):
        if not sys.platform.startswith('linux'):
            try:
                os.kill(self.pid, 0)
            except OSError:
                return False
            return True
        return self.start_time is not None and process_start_time(self.pid) == self.start_time

    def signal_group(self, signum):
        if not self.alive():
            return
        try:
            os.killpg(self.pid, signum)  # the process leads its own group (start_new_session)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(self.pid, signum)


_POPENS = {}  # pid -> Popen, to reap our own children
_POPENS_LOCK = threading.Lock()


def spawn(name, argv, log_path, env=None, cwd=None, die_with_parent=True):
    """Start argv in a new session (process group) with output to log_path."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    preexec = _pdeathsig_preexec(os.getpid()) if die_with_parent and _LIBC_PRCTL is not None else None
    with open(log_path, 'ab') as log:
        log.write(('\n=== %s: %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), ' '.join(shlex.quote(str(a)) for a in argv))).encode())
        log.flush()
        process = subprocess.Popen(  # pylint: disable=consider-using-with,subprocess-popen-preexec-fn
            [str(a) for a in argv], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, preexec_fn=preexec)
    with _POPENS_LOCK:
        _POPENS[process.pid] = process
    start = None
    for _dummy in range(50):
        start = process_start_time(process.pid)
        if start is not None or process.poll() is not None:
            break
        time.sleep(0.01)
    return ProcessRecord(name=name, pid=process.pid, start_time=start, log=str(log_path), argv=[str(a) for a in argv])


def _reap(pid):
    with _POPENS_LOCK:
        process = _POPENS.get(pid)
    if process is not None and process.poll() is not None:
        with _POPENS_LOCK:
            _POPENS.pop(pid, None)


def terminate(records, timeout=20.0):
    """SIGTERM each record's process group, wait, then SIGKILL what is left. Returns names killed hard."""
    records = [record for record in records if record is not None]
    for record in records:
        record.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in records:
            _reap(record.pid)
        if not any(record.alive() for record in records):
            return []
        time.sleep(0.1)
    hard = []
    for record in records:
        if record.alive():
            hard.append(record.name)
            record.signal_group(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(record.alive() for record in records):
        for record in records:
            _reap(record.pid)
        time.sleep(0.05)
    return hard


def wait_until(check, what, timeout, records=(), interval=0.25):
    """Poll check() until it returns a true value; fail early if one of records exits."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        for record in records:
            if not record.alive():
                raise EmulatorFailed('%s exited while waiting for %s; log %s:\n%s' % (record.name, what, record.log, _tail(record.log)))
        try:
            result = check()
        except (OSError, ssl.SSLError, ValueError) as error:  # connection refused, TLS not up yet...
            last_error = error
            result = None
        if result:
            return result
        time.sleep(interval)
    logs = ''.join('\n--- %s (%s):\n%s' % (r.name, r.log, _tail(r.log)) for r in records)
    raise EmulatorFailed('timed out after %.0fs waiting for %s (last error: %s)%s' % (timeout, what, last_error, logs))


# ---------------------------------------------------------------------------
# Running emulators
# ---------------------------------------------------------------------------
_LIVE = []
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all_at_exit():
    with _LIVE_LOCK:
        live = list(_LIVE)
    for emulator in live:
        try:
            emulator.stop()
        except Exception:  # pylint: disable=broad-except
            pass


class Emulator:
    """A running emulator (one or more processes) and how clients reach it."""

    kind = 'emulator'

    def __init__(self, state_dir, owns_state_dir=False):
        self.state_dir = Path(state_dir)
        self.owns_state_dir = owns_state_dir
        self.processes = []
        self.watchdog = None
        self.vault_url = None
        self.ca_file = None
        self.identity_endpoint = None
        self.identity_header = None
        self.api_version = None  # Key Vault REST api-version the client must pin (None: the SDK default works)
        self.versions = {}
        self._stopped = False
        with _LIVE_LOCK:
            _LIVE.append(self)

    # -- what a client needs -------------------------------------------------
    def info(self):
        """Everything a test may need, as plain data (also stored in harness.json)."""
        return {'kind': self.kind, 'vault_url': self.vault_url, 'ca_file': str(self.ca_file) if self.ca_file else None,
                'api_version': self.api_version, 'verify_challenge_resource': False,
                'identity_endpoint': self.identity_endpoint, 'identity_header': self.identity_header,
                'state_dir': str(self.state_dir), 'versions': self.versions}

    def env(self, proxy_trap=False):
        """Environment variables for a client process.

        IDENTITY_ENDPOINT/IDENTITY_HEADER (App Service managed identity: ManagedIdentityCredential
        and DefaultAzureCredential pick them up and never ask 169.254.169.254), NO_PROXY with the
        loopback names, and KV_EMU_* for the rest.  AZURE_CLIENT_ID/AZURE_AUTHORITY_HOST... are
        deliberately NOT set: EnvironmentCredential/DefaultAzureCredential would then run MSAL
        instance discovery against login.microsoftonline.com unless the code passes
        disable_instance_discovery=True.
        proxy_trap=True also points HTTP(S)_PROXY at a closed loopback port, so that any request
        for a non-loopback host fails at once instead of leaving the machine (do not install
        packages in a shell with those set).
        """
        no_proxy = no_proxy_value()
        env = {
            'KV_EMU_KIND': self.kind,
            'KV_EMU_VAULT_URL': self.vault_url,
            'KV_EMU_CA_FILE': str(self.ca_file),
            'KV_EMU_STATE_DIR': str(self.state_dir),
            'KV_EMU_VERIFY_CHALLENGE_RESOURCE': 'false',
            'NO_PROXY': no_proxy,
            'no_proxy': no_proxy,
        }
        if self.api_version:
            env['KV_EMU_API_VERSION'] = self.api_version
        if self.identity_endpoint:
            env['IDENTITY_ENDPOINT'] = self.identity_endpoint
            env['IDENTITY_HEADER'] = self.identity_header
        if proxy_trap:
            for name in ('HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'):
                env[name] = PROXY_TRAP
        return env

    def export_lines(self, proxy_trap=False):
        return ['export %s=%s' % (name, shlex.quote(value)) for name, value in sorted(self.env(proxy_trap).items()) if value is not None]

    # -- lifecycle -----------------------------------------------------------
    def descriptor(self):
        return {'info': self.info(), 'env': self.env(), 'env_proxy_trap': self.env(proxy_trap=True),
                'processes': [dataclasses.asdict(p) for p in self.processes],
                'watchdog': dataclasses.asdict(self.watchdog) if self.watchdog else None}

    def save(self):
        _write_text(self.state_dir / DESCRIPTOR, json.dumps(self.descriptor(), indent=2, sort_keys=True) + '\n')

    def alive(self):
        return bool(self.processes) and all(p.alive() for p in self.processes)

    def stop(self):
        """Stop every process (idempotent). Removes the state directory if the harness created it."""
        if self._stopped:
            return
        self._stopped = True
        terminate([self.watchdog] if self.watchdog else [], timeout=5)
        hard = terminate(list(reversed(self.processes)))
        with _LIVE_LOCK:
            if self in _LIVE:
                _LIVE.remove(self)
        descriptor = self.state_dir / DESCRIPTOR
        if descriptor.exists():
            descriptor.unlink()
        if self.owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if hard:
            raise EmulatorFailed('had to SIGKILL: %s' % ', '.join(hard))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, ' '.join('%s=%s' % kv for kv in self.info().items() if kv[0] != 'versions'))


def _prepare_state_dir(state_dir):
    if state_dir is None:
        return Path(tempfile.mkdtemp(prefix='kv-emulator-')), True
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = state_dir / DESCRIPTOR
    if existing.exists():
        try:
            data = json.loads(existing.read_text(encoding='utf-8'))
            records = [ProcessRecord(**p) for p in data.get('processes', [])]
        except (ValueError, TypeError):
            records = []
        if any(record.alive() for record in records):
            raise EmulatorFailed('an emulator from %s is still running; run `harness.py stop --state-dir %s` first' % (existing, state_dir))
        existing.unlink()
    return state_dir, False


# ---------------------------------------------------------------------------
# lowkey-vault
# ---------------------------------------------------------------------------
class LowkeyVault(Emulator):
    """lowkey-vault: vault at https://localhost:<port>, MI token endpoint at http://127.0.0.1:<token_port>."""

    kind = 'lowkey'

    def __init__(self, state_dir, owns_state_dir=False):
        super().__init__(state_dir, owns_state_dir)
        self.port = None
        self.token_port = None
        self.vault_urls = {}
        self.jar = None
        self.java = None

    def info(self):
        data = super().info()
        data.update({'port': self.port, 'token_port': self.token_port, 'vault_urls': self.vault_urls,
                     'management_url': 'https://%s:%s/management/vault' % (LOOPBACK, self.port)})
        return data

    def env(self, proxy_trap=False):
        env = super().env(proxy_trap)
        env['KV_EMU_TOKEN_PORT'] = str(self.token_port)
        return env


def java_major_version(java):
    result = _run([java, '-version'], timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stdout)
    if result.returncode != 0 or not match:
        raise EmulatorUnavailable('%s -version failed: %s' % (java, result.stdout.strip()[-500:]))
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major


def lowkey_jar_version(path):
    """Implementation-Version of a lowkey-vault-app jar (from its manifest), or None if it is not one."""
    try:
        with zipfile.ZipFile(str(path)) as archive:
            manifest = archive.read('META-INF/MANIFEST.MF').decode('utf-8', 'replace')
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    fields = dict(line.split(': ', 1) for line in manifest.splitlines() if ': ' in line)
    if fields.get('Implementation-Title', '').strip() != 'Lowkey Vault - App':
        return None
    return fields.get('Implementation-Version', '').strip() or None


def _lowkey_download(target):
    """The ordinary install: `mvn dependency:copy` of the pinned coordinate into target's directory."""
    group, artifact, version = VERSIONS['LOWKEY_VAULT_GROUP_ID'], VERSIONS['LOWKEY_VAULT_ARTIFACT_ID'], VERSIONS['LOWKEY_VAULT_VERSION']
    mvn = _find_tool('mvn', ('MVN',), 'MAVEN_HOME', 'to download %s:%s:%s from Maven Central' % (group, artifact, version))
    coordinates = '%s:%s:%s:jar' % (group, artifact, version)
    with tempfile.TemporaryDirectory(dir=str(target.parent)) as tmp:
        # -U: Maven caches a 'not found' in ~/.m2 and would not ask again for a day.
        result = _run([mvn, '-B', '-q', '-U', '-Dstyle.color=never', 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy',
                       '-Dartifact=' + coordinates, '-DoutputDirectory=' + tmp, '-Dmdep.useBaseVersion=true'], cwd=tmp, timeout=900)
        downloaded = Path(tmp) / target.name
        if result.returncode != 0 or not downloaded.exists():
            output = re.sub(r'\x1b\[[0-9;]*m', '', result.stdout)
            errors = [line for line in output.splitlines() if 'ERROR' in line][:1]
            raise EmulatorUnavailable(
                'Maven could not download %s (exit %d): %s\nSet LOWKEY_VAULT_JAR=/path/to/%s to use a jar obtained another way.'
                % (coordinates, result.returncode, ' '.join(errors).strip() or output.strip()[-600:], target.name))
        os.replace(downloaded, target)


def ensure_lowkey_jar(refresh=False):
    """Path of the lowkey-vault-app jar, resolved in this order (the first that applies wins):

    1. $LOWKEY_VAULT_JAR;
    2. the cache (.cache/emulators/), if its manifest names the pinned version;
    3. a build with ../shared/emulators/build.sh, when that folder exists (into the cache);
    4. the ordinary registry install (Maven Central), for machines that can reach the artifact.
    Prints one line saying which (to stderr).  A failed build is EmulatorFailed, not a skip.
    """
    artifact, version = VERSIONS['LOWKEY_VAULT_ARTIFACT_ID'], VERSIONS['LOWKEY_VAULT_VERSION']
    label = 'lowkey-vault %s' % version
    override = os.environ.get('LOWKEY_VAULT_JAR')
    if override:
        found = lowkey_jar_version(override)
        if found is None:
            raise EmulatorUnavailable('LOWKEY_VAULT_JAR=%s is not a lowkey-vault-app jar' % override)
        if found != version:
            raise EmulatorUnavailable('LOWKEY_VAULT_JAR=%s is lowkey-vault %s; %s is pinned (versions.env)' % (override, found, version))
        return _resolved(label, Path(override).resolve(), 'LOWKEY_VAULT_JAR=%s' % override)
    target = cache_dir() / ('%s-%s.jar' % (artifact, version))
    with _cache_lock():
        if not refresh and lowkey_jar_version(target) == version:
            return _resolved(label, target, '%s (cached)' % _origin(target, 'an earlier install'))
        shared = shared_emulators_dir()
        if shared is not None:
            java = _find_tool('java', ('LOWKEY_VAULT_JAVA',), 'JAVA_HOME', 'to build lowkey-vault from %s' % _show(shared))
            need = int(VERSIONS['LOWKEY_VAULT_MIN_JAVA'])
            if java_major_version(java) < need:
                raise EmulatorUnavailable('building lowkey-vault %s needs Java %d+ (set JAVA_HOME)' % (version, need))
            _find_tool('mvn', ('MVN',), 'MAVEN_HOME', 'to build lowkey-vault from %s' % _show(shared))
            seconds = _build_from_shared(shared, 'lowkey', [target.name])
            if lowkey_jar_version(target) != version:
                raise EmulatorFailed('%s/build.sh lowkey did not produce a lowkey-vault %s jar at %s' % (_show(shared), version, target))
            return _resolved(label, target, _set_origin(target, 'built from %s' % _show(shared)) + ' in %.0f s' % seconds)
        target.parent.mkdir(parents=True, exist_ok=True)
        _lowkey_download(target)
        return _resolved(label, target, _set_origin(target, 'downloaded from Maven Central'))


def _boot_jar_layout(jar):
    """(PropertiesLauncher class, [compile jars for LoopbackConnectors]) of a Spring Boot fat jar."""
    with zipfile.ZipFile(jar) as archive:
        names = archive.namelist()
    if 'org/springframework/boot/loader/launch/PropertiesLauncher.class' in names:
        launcher = 'org.springframework.boot.loader.launch.PropertiesLauncher'  # Spring Boot 3.2+
    elif 'org/springframework/boot/loader/PropertiesLauncher.class' in names:
        launcher = 'org.springframework.boot.loader.PropertiesLauncher'
    else:
        raise EmulatorFailed('%s is not a Spring Boot executable jar (no PropertiesLauncher)' % jar)
    wanted = re.compile(r'^BOOT-INF/lib/(spring-boot-\d[^/]*|tomcat-embed-core-[^/]*|spring-(?:core|jcl|context|beans|web)-[^/]*)\.jar$')
    libs = [name for name in names if wanted.match(name)]
    if len([n for n in libs if '/spring-boot-' in n or '/tomcat-embed-core-' in n]) < 2:
        raise EmulatorFailed('%s: spring-boot or tomcat-embed-core jar not found inside' % jar)
    return launcher, libs


def ensure_loopback_classes(jar, java):
    """Compile LoopbackConnectors.java against the jar's Spring Boot/Tomcat (cached); returns the class dir."""
    source = HERE / 'LoopbackConnectors.java'
    stat = os.stat(jar)
    key = hashlib.sha256(source.read_bytes() + ('%s:%d' % (os.path.basename(jar), stat.st_size)).encode()).hexdigest()[:16]
    out = cache_dir() / 'lowkey-loopback' / key
    if (out / 'certdeploy' / 'harness' / 'LoopbackConnectors.class').exists():
        return out
    javac = os.path.join(os.path.dirname(os.path.realpath(java)), 'javac')
    if not os.access(javac, os.X_OK):
        javac = _find_tool('javac', ('JAVAC',), 'JAVA_HOME', 'to compile LoopbackConnectors.java (a JDK, not only a JRE)')
    _launcher, libs = _boot_jar_layout(jar)
    with tempfile.TemporaryDirectory() as tmp:
        classpath = []
        with zipfile.ZipFile(jar) as archive:
            for name in libs:
                path = os.path.join(tmp, os.path.basename(name))
                with archive.open(name) as src, open(path, 'wb') as dst:
                    shutil.copyfileobj(src, dst)
                classpath.append(path)
        build = Path(tmp) / 'classes'
        result = _run([javac, '--release', '17', '-nowarn', '-d', str(build), '-cp', os.pathsep.join(classpath), str(source)], timeout=300)
        if result.returncode != 0:
            raise EmulatorFailed('javac LoopbackConnectors.java failed:\n%s' % result.stdout[-2000:])
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=str(out.parent)))
        shutil.copytree(str(build), str(staging), dirs_exist_ok=True)
        try:
            os.replace(staging, out)
        except OSError:  # another process won the race
            shutil.rmtree(staging, ignore_errors=True)
    return out


DEFAULT_JAVA_OPTS = ('-Xms64m', '-Xmx768m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xss512k',
                     '-Djava.security.egd=file:/dev/./urandom', '-Djava.awt.headless=true')


def http_post_json(url, payload, context=None, timeout=10.0):
    """POST JSON without proxies; returns (status, parsed JSON or raw text)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method='POST',
                                     headers={'Content-Type': 'application/json', 'Accept': 'application/json'})
    try:
        with _http_opener(context).open(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body.decode('utf-8'))
    except ValueError:
        return status, body.decode('utf-8', 'replace')


def start_lowkey_vault(state_dir=None, vault_names=None, recovery_level='Recoverable+Purgeable', recoverable_days=90,
                       java_opts=None, extra_args=(), startup_timeout=180.0, die_with_parent=True, auth=True, ip_vault=False):
    """Start lowkey-vault on 127.0.0.1; returns a running LowkeyVault (call stop(), or use lowkey_vault()).

    The built-in default vaults are switched off (--LOWKEY_VAULT_NAMES=-: they are created
    'Recoverable', i.e. purge-protected, and localhost/127.0.0.1 would be two different vaults).
    Instead one vault is created through the management API: https://localhost:<port> with the
    alias https://127.0.0.1:<port>, recovery_level 'Recoverable+Purgeable' (a real vault's
    default: soft delete, purge allowed) or 'Recoverable' (purge protection), and
    recoverable_days (7-90).
    vault_names: extra vaults https://<name>.localhost:<port> (the client must resolve
    *.localhost to 127.0.0.1, which glibc does not do by default).
    ip_vault=True makes https://127.0.0.1:<port> a second, separate vault instead of an alias
    of the first (lowkey-vault tells vaults apart by the Host header, and its certificate covers
    127.0.0.1), for tests that need two vaults without a *.localhost resolver.
    java_opts: JVM options replacing DEFAULT_JAVA_OPTS ($LOWKEY_VAULT_JAVA_OPTS also works).
    auth=False passes --LOWKEY_ENABLE_AUTH=false (no token needed at all; with auth on, any
    bearer token is accepted anyway).
    """
    java = _find_tool('java', ('LOWKEY_VAULT_JAVA',), 'JAVA_HOME', 'to run lowkey-vault')
    need = int(VERSIONS['LOWKEY_VAULT_MIN_JAVA'])
    major = java_major_version(java)
    if major < need:
        raise EmulatorUnavailable('lowkey-vault %s needs Java %d+, %s is Java %d (set LOWKEY_VAULT_JAVA or JAVA_HOME)'
                                  % (VERSIONS['LOWKEY_VAULT_VERSION'], need, java, major))
    jar = ensure_lowkey_jar()
    launcher, _libs = _boot_jar_layout(jar)
    classes = ensure_loopback_classes(jar, java)
    if java_opts is None:
        java_opts = shlex.split(os.environ['LOWKEY_VAULT_JAVA_OPTS']) if os.environ.get('LOWKEY_VAULT_JAVA_OPTS') else list(DEFAULT_JAVA_OPTS)

    state_dir, owns = _prepare_state_dir(state_dir)
    emulator = LowkeyVault(state_dir, owns)
    emulator.jar, emulator.java = str(jar), java
    emulator.api_version = '7.6'  # 3.4.33 serves certificates on 7.3-7.6 only; SDK defaults (2025-07-01+) get 400
    emulator.versions = {'lowkey-vault': VERSIONS['LOWKEY_VAULT_VERSION'], 'java': str(major)}
    try:
        for attempt in range(3):
            port, token_port = free_port(), free_port()
            if port == token_port:
                continue
            argv = [java] + list(java_opts) + [
                '-Dcertdeploy.bind.address=' + LOOPBACK, '-Dloader.path=' + str(classes), '-cp', str(jar), launcher,
                '--spring.main.sources=certdeploy.harness.LoopbackConnectors',
                '--server.address=' + LOOPBACK, '--server.port=%d' % port, '--app.token.port=%d' % token_port,
                '--spring.main.banner-mode=off', '--LOWKEY_ENABLE_AUTH=%s' % ('true' if auth else 'false'),
                '--LOWKEY_VAULT_NAMES=-',
            ]
            argv.extend(extra_args)
            record = spawn('lowkey-vault', argv, state_dir / 'lowkey-vault.log', env=child_environment(), cwd=str(state_dir),
                           die_with_parent=die_with_parent)
            emulator.processes = [record]
            emulator.save()
            try:
                wait_until(lambda p=port: http_get('https://%s:%d/ping' % (LOOPBACK, p), _insecure_context())[0] == 200,
                           'lowkey-vault https://127.0.0.1:%d/ping' % port, startup_timeout, [record])
                break
            except EmulatorFailed:
                if attempt < 2 and 'already in use' in _tail(record.log, 200):
                    terminate([record])
                    continue
                raise
        emulator.port, emulator.token_port = port, token_port
        emulator.vault_url = 'https://localhost:%d' % port
        emulator.vault_urls = {'localhost': emulator.vault_url}
        if ip_vault:
            emulator.vault_urls[LOOPBACK] = 'https://%s:%d' % (LOOPBACK, port)
            vaults = [(emulator.vault_url, []), (emulator.vault_urls[LOOPBACK], [])]
        else:
            vaults = [(emulator.vault_url, ['https://%s:%d' % (LOOPBACK, port)])]
        for name in vault_names or ():
            emulator.vault_urls[name] = 'https://%s.localhost:%d' % (name, port)
            vaults.append((emulator.vault_urls[name], []))
        for base_uri, aliases in vaults:
            status, body = http_post_json('https://%s:%d/management/vault' % (LOOPBACK, port),
                                          {'baseUri': base_uri, 'aliases': aliases, 'recoveryLevel': recovery_level,
                                           'recoverableDays': recoverable_days}, _insecure_context())
            if status != 200:
                raise EmulatorFailed('lowkey-vault: creating vault %s failed: HTTP %s %s' % (base_uri, status, body))
        emulator.ca_file = state_dir / 'ca.pem'
        _write_text(emulator.ca_file, fetch_server_chain(LOOPBACK, port, 'localhost'))
        status = http_get('https://localhost:%d/ping' % port, verifying_context(emulator.ca_file))[0]
        if status != 200:
            raise EmulatorFailed('lowkey-vault /ping through the extracted CA file answered %s' % status)
        emulator.identity_endpoint = 'http://%s:%d/metadata/identity/oauth2/token' % (LOOPBACK, token_port)
        emulator.identity_header = secrets.token_hex(16)  # lowkey-vault does not check it; the SDK requires one
        status, _headers, body = http_get(emulator.identity_endpoint + '?resource=' + VAULT_RESOURCE + '&api-version=2019-08-01',
                                          headers={'X-IDENTITY-HEADER': emulator.identity_header, 'Accept': 'application/json'})
        if status != 200 or b'access_token' not in body:
            raise EmulatorFailed('lowkey-vault token endpoint answered %s: %r' % (status, body[:300]))
        emulator.save()
        return emulator
    except BaseException:
        emulator.stop()
        raise


@contextmanager
def lowkey_vault(**kwargs):
    """Context manager around start_lowkey_vault(); stops the JVM on exit."""
    emulator = start_lowkey_vault(**kwargs)
    try:
        yield emulator
    finally:
        emulator.stop()


# ---------------------------------------------------------------------------
# azure-keyvault-emulator + entra-emulator (Go)
# ---------------------------------------------------------------------------
class GoKeyVault(Emulator):
    """azure-keyvault-emulator validating tokens from entra-emulator, both on 127.0.0.1."""

    kind = 'akv'

    def __init__(self, state_dir, owns_state_dir=False):
        super().__init__(state_dir, owns_state_dir)
        self.port = None
        self.entra_port = None
        self.authority_host = None
        self.tenant_id = ENTRA_TENANT_ID
        self.client_id = ENTRA_CLIENT_ID
        self.client_secret = ENTRA_CLIENT_SECRET
        self.issuer = None
        self.token_endpoint = None
        self.control_url = None

    def info(self):
        data = super().info()
        data.update({'port': self.port, 'entra_port': self.entra_port, 'authority_host': self.authority_host,
                     'tenant_id': self.tenant_id, 'client_id': self.client_id, 'client_secret': self.client_secret,
                     'issuer': self.issuer, 'token_endpoint': self.token_endpoint, 'control_url': self.control_url})
        return data

    def env(self, proxy_trap=False):
        env = super().env(proxy_trap)
        env.update({'KV_EMU_AUTHORITY_HOST': self.authority_host, 'KV_EMU_TENANT_ID': self.tenant_id,
                    'KV_EMU_CLIENT_ID': self.client_id, 'KV_EMU_CLIENT_SECRET': self.client_secret,
                    'KV_EMU_TOKEN_ENDPOINT': self.token_endpoint, 'KV_EMU_ISSUER': self.issuer,
                    'KV_EMU_CONTROL_URL': self.control_url})
        return env


_GO_BINARIES = {
    'azure-keyvault-emulator': ('AKV_EMULATOR_BIN', 'AKV_EMULATOR_MODULE', 'AKV_EMULATOR_PACKAGE', 'AKV_EMULATOR_VERSION'),
    'entra-emulator': ('ENTRA_EMULATOR_BIN', 'ENTRA_EMULATOR_MODULE', 'ENTRA_EMULATOR_PACKAGE', 'ENTRA_EMULATOR_VERSION'),
}


def go_binary_module_version(go, binary):
    """(main module path, version) recorded in a Go binary, via `go version -m`."""
    result = _run([go, 'version', '-m', str(binary)], timeout=60)
    match = re.search(r'^\s*mod\s+(\S+)\s+(\S+)', result.stdout, re.M)
    return (match.group(1), match.group(2)) if match else (None, None)


def _go_install(name, go, gobin):
    """The ordinary install: `go install package@version` (GOTOOLCHAIN=local) into gobin."""
    env_var, _module_key, package_key, version_key = _GO_BINARIES[name]
    package, version = VERSIONS[package_key], VERSIONS[version_key]
    env = dict(os.environ, GOBIN=str(gobin), GOTOOLCHAIN='local')
    gobin.mkdir(parents=True, exist_ok=True)
    result = _run([go, 'install', '%s@%s' % (package, version)], env=env, timeout=1200)
    if result.returncode != 0 or not (gobin / name).exists():
        output = result.stdout.strip()
        if re.search(r'not available|404 Not Found|403 Forbidden|410 Gone|unknown revision|no matching versions', output):
            why = 'the Go module proxy does not serve it'
        elif 'requires go >=' in output or 'toolchain' in output:
            why = 'the local Go toolchain is too old (GOTOOLCHAIN=local)'
        else:
            why = 'go install failed'
        raise EmulatorUnavailable('cannot install %s@%s: %s:\n%s\nSet %s=/path/to/%s to use a binary obtained another way.'
                                  % (package, version, why, output[-1500:], env_var, name))


def ensure_go_binary(name):
    """Path of a pinned Go emulator binary, resolved as ensure_lowkey_jar() resolves the jar:

    $AKV_EMULATOR_BIN / $ENTRA_EMULATOR_BIN, then the cache (.cache/emulators/bin/, checked with
    `go version -m` against the pinned module version), then a build of both binaries with
    ../shared/emulators/build.sh go (when that folder exists), then `go install module@version`.
    """
    env_var, module_key, _package_key, version_key = _GO_BINARIES[name]
    module, version = VERSIONS[module_key], VERSIONS[version_key]
    label = '%s %s' % (name, version)
    override = os.environ.get(env_var)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise EmulatorUnavailable('%s=%s is not an executable file' % (env_var, override))
        return _resolved(label, Path(override).resolve(), '%s=%s' % (env_var, override))
    go = _find_tool('go', ('GO',), 'GOROOT', 'to check or build %s %s' % (name, version))
    gobin = cache_dir() / 'bin'
    binary = gobin / name
    with _cache_lock():
        if binary.exists() and go_binary_module_version(go, binary) == (module, version):
            return _resolved(label, binary, '%s (cached)' % _origin(binary, 'an earlier install'))
        have = _run([go, 'env', 'GOVERSION'], timeout=60).stdout.strip()
        need = VERSIONS['GO_EMULATORS_MIN_GO']
        if _version_tuple(have) < _version_tuple(need):
            raise EmulatorUnavailable('%s@%s needs go >= %s; this is %s and GOTOOLCHAIN=local forbids downloading a toolchain'
                                      % (module, version, need, have))
        shared = shared_emulators_dir()
        if shared is not None:
            seconds = _build_from_shared(shared, 'go', ['bin/' + other for other in sorted(_GO_BINARIES)])
            for other in sorted(_GO_BINARIES):
                _set_origin(gobin / other, 'built from %s' % _show(shared))
            if go_binary_module_version(go, binary) != (module, version):
                raise EmulatorFailed('%s/build.sh go did not produce %s %s at %s' % (_show(shared), module, version, binary))
            return _resolved(label, binary, 'built from %s in %.0f s' % (_show(shared), seconds))
        _go_install(name, go, gobin)
        return _resolved(label, binary, _set_origin(binary, 'installed with go install from the Go module proxy'))


@dataclasses.dataclass
class GoPairLayout:
    """Where, and under which names and certificates, start_go_emulators() serves the Go pair.

    Without a layout the pair listens on free ports of 127.0.0.1 as https://localhost:<port>
    with the emulators' own self-signed certificates.  With one (see prodnames.py, which builds
    it for the production host names inside a private mount + network namespace):

    * entra-emulator listens on ``entra_address`` (host, port) with ``PUBLIC_ORIGIN=public_origin``
      (issuer ``<public_origin>/<tenant>/v2.0``) and ``TLS_CERT``/``TLS_KEY`` = ``entra_tls``;
    * azure-keyvault-emulator listens on ``vault_address`` with ``vault_tls`` copied to
      ``<data-dir>/tls/cert.pem`` and ``key.pem`` (where it loads its certificate from);
    * clients are told ``vault_url``; ``ca_file`` (the CA that issued both certificates) is what
      the vault's JWKS fetch trusts (SSL_CERT_FILE) and becomes the emulator's ``ca_file``.

    The caller makes the names resolve to the addresses (a private /etc/hosts): the harness
    reaches both through those names, verifying TLS with ca_file, before it returns.
    """

    entra_address: tuple
    vault_address: tuple
    public_origin: str
    vault_url: str
    entra_tls: tuple
    vault_tls: tuple
    ca_file: str


def start_go_emulators(state_dir=None, startup_timeout=60.0, die_with_parent=True, default_vault='emulator',
                       soft_delete_retention_days=90, purge_protection=False, layout=None):
    """Start entra-emulator then azure-keyvault-emulator on 127.0.0.1; returns a running GoKeyVault.

    The vault validates RS256 tokens against entra's JWKS (issuer, audience
    https://vault.azure.net, expiry); its JWKS fetch verifies entra's TLS certificate
    through SSL_CERT_FILE (no -entra-tls-insecure).  ``layout`` (a GoPairLayout) serves
    the pair on given addresses, names and certificates instead.
    """
    entra_bin = ensure_go_binary('entra-emulator')
    akv_bin = ensure_go_binary('azure-keyvault-emulator')
    state_dir, owns = _prepare_state_dir(state_dir)
    emulator = GoKeyVault(state_dir, owns)
    emulator.versions = {'azure-keyvault-emulator': VERSIONS['AKV_EMULATOR_VERSION'], 'entra-emulator': VERSIONS['ENTRA_EMULATOR_VERSION']}
    try:
        entra_dir, akv_dir = state_dir / 'entra', state_dir / 'akv'
        entra_dir.mkdir(parents=True, exist_ok=True)
        akv_dir.mkdir(parents=True, exist_ok=True)
        mi_secret = secrets.token_hex(16)
        entra_host, entra_port = tuple(layout.entra_address) if layout else (LOOPBACK, free_port())
        entra_env = child_environment({
            'HOST': entra_host, 'PORT': str(entra_port), 'ORIGIN_MODE': 'compat', 'TENANT_ID': ENTRA_TENANT_ID,
            'DB_PATH': str(entra_dir / 'entra-emulator.db'), 'TLS_CERT_DIR': str(entra_dir / 'tls'),
            'CONFIG_FILE': str(entra_dir / 'entra-emulator.config.json'),  # absent on purpose: no stray config
            'MANAGED_IDENTITY_SECRET': mi_secret, 'SEED_ON_START': 'true', 'LOG_LEVEL': 'info'})
        if layout:  # PUBLIC_ORIGIN collapses every surface (login, portal, graph) onto one origin, as compat does
            entra_env.update({'PUBLIC_ORIGIN': layout.public_origin, 'TLS_CERT': str(layout.entra_tls[0]), 'TLS_KEY': str(layout.entra_tls[1])})
        entra = spawn('entra-emulator', [entra_bin], state_dir / 'entra-emulator.log', env=entra_env, cwd=str(entra_dir),
                      die_with_parent=die_with_parent)
        emulator.processes = [entra]
        emulator.save()
        wait_until(lambda: http_get('https://%s:%d/health' % (entra_host, entra_port), _insecure_context())[0] == 200,
                   'entra-emulator /health', startup_timeout, [entra])
        if layout:
            entra_ca = Path(layout.ca_file)
        else:
            entra_ca = entra_dir / 'tls' / 'cert.pem'
            served = fetch_server_chain(LOOPBACK, entra_port, 'localhost')
            if not entra_ca.exists() or _pem_certificates(served)[0] not in entra_ca.read_text(encoding='ascii'):
                _write_text(entra_dir / 'served-cert.pem', served)
                entra_ca = entra_dir / 'served-cert.pem'
        emulator.entra_port = entra_port
        emulator.authority_host = layout.public_origin.rstrip('/') if layout else 'https://localhost:%d' % entra_port
        emulator.issuer = '%s/%s/v2.0' % (emulator.authority_host, ENTRA_TENANT_ID)
        emulator.token_endpoint = '%s/%s/oauth2/v2.0/token' % (emulator.authority_host, ENTRA_TENANT_ID)
        emulator.identity_endpoint = '%s/msi/token' % emulator.authority_host
        emulator.identity_header = mi_secret

        akv_host, port = tuple(layout.vault_address) if layout else (LOOPBACK, free_port())
        if layout:  # the vault loads <data-dir>/tls/cert.pem + key.pem (leaf first, then any chain) when both parse
            _write_text(akv_dir / 'data' / 'tls' / 'cert.pem', Path(layout.vault_tls[0]).read_text(encoding='ascii'))
            _write_text(akv_dir / 'data' / 'tls' / 'key.pem', Path(layout.vault_tls[1]).read_text(encoding='ascii'), mode=0o600)
        argv = [akv_bin, '-addr', '%s:%d' % (akv_host, port), '-data-dir', str(akv_dir / 'data'), '-entra-issuer', emulator.issuer,
                '-default-vault', default_vault, '-soft-delete-retention-days', str(soft_delete_retention_days)]
        if purge_protection:
            argv.append('-purge-protection')
        akv = spawn('azure-keyvault-emulator', argv, state_dir / 'azure-keyvault-emulator.log',
                    env=child_environment({'SSL_CERT_FILE': str(entra_ca)}), cwd=str(akv_dir), die_with_parent=die_with_parent)
        emulator.processes = [entra, akv]
        emulator.save()

        def challenged():
            status, headers, _body = http_get('https://%s:%d/secrets?api-version=7.5' % (akv_host, port), _insecure_context())
            return status == 401 and 'authorization=' in ''.join(v for k, v in headers.items() if k.lower() == 'www-authenticate')
        wait_until(challenged, 'azure-keyvault-emulator 401 challenge', startup_timeout, [entra, akv])
        emulator.port = port
        emulator.ca_file = state_dir / 'ca.pem'
        if layout:
            emulator.vault_url = layout.vault_url.rstrip('/')
            emulator.control_url = emulator.vault_url + '/_emulator'
            _write_text(emulator.ca_file, entra_ca.read_text(encoding='ascii'))
        else:
            emulator.vault_url = 'https://localhost:%d' % port
            emulator.control_url = 'https://localhost:%d/_emulator' % port
            akv_served = fetch_server_chain(LOOPBACK, port, 'localhost')
            _write_text(emulator.ca_file, ''.join(_pem_certificates(akv_served)[:1]) + '\n' + entra_ca.read_text(encoding='ascii'))
        context = verifying_context(emulator.ca_file)
        for url in (emulator.authority_host + '/health', emulator.vault_url + '/secrets?api-version=7.5'):
            if http_get(url, context)[0] not in (200, 401):
                raise EmulatorFailed('%s through the CA bundle did not answer 200/401' % url)
        emulator.save()
        return emulator
    except BaseException:
        emulator.stop()
        raise


@contextmanager
def go_emulators(**kwargs):
    """Context manager around start_go_emulators()."""
    emulator = start_go_emulators(**kwargs)
    try:
        yield emulator
    finally:
        emulator.stop()


STARTERS = {'lowkey': start_lowkey_vault, 'akv': start_go_emulators}


# ---------------------------------------------------------------------------
# CLI: start / stop / env / install / check, and the watchdog
# ---------------------------------------------------------------------------
def load_descriptor(state_dir):
    path = Path(state_dir) / DESCRIPTOR
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding='utf-8'))


def stop_state_dir(state_dir, timeout=20.0):
    """Stop whatever harness.json in state_dir describes (watchdog first). Returns False if nothing was there."""
    data = load_descriptor(state_dir)
    if data is None:
        return False
    if data.get('watchdog'):
        watchdog = ProcessRecord(**data['watchdog'])
        if watchdog.pid != os.getpid():
            terminate([watchdog], timeout=5)
    records = [ProcessRecord(**p) for p in data.get('processes', [])]
    hard = terminate(list(reversed(records)), timeout=timeout)
    path = Path(state_dir) / DESCRIPTOR
    if path.exists():
        path.unlink()
    if hard:
        raise EmulatorFailed('had to SIGKILL: %s' % ', '.join(hard))
    return True


def _start_watchdog(emulator, owner_pid, ttl):
    argv = [sys.executable, str(Path(__file__).resolve()), '_watchdog', '--state-dir', str(emulator.state_dir), '--ttl', str(ttl)]
    if owner_pid:
        start = process_start_time(owner_pid)
        if start is None:
            raise EmulatorFailed('--owner-pid %d: no such process' % owner_pid)
        argv += ['--owner-pid', str(owner_pid), '--owner-start', start]
    emulator.watchdog = spawn('watchdog', argv, emulator.state_dir / 'watchdog.log', env=dict(os.environ), die_with_parent=False)
    emulator.save()


def _watchdog(state_dir, owner_pid, owner_start, ttl):
    """Stop the emulator in state_dir when the owner process is gone or ttl seconds have passed.

    The process records are remembered at start: if harness.json disappears (the state
    directory was deleted) while they still run, they are stopped too.
    """
    deadline = time.monotonic() + ttl if ttl > 0 else None
    owner = ProcessRecord('owner', owner_pid, owner_start, '') if owner_pid else None
    data = load_descriptor(state_dir) or {}
    records = [ProcessRecord(**p) for p in data.get('processes', [])]
    reason = None
    while reason is None:
        time.sleep(1.0)
        data = load_descriptor(state_dir)
        if data is None:
            if any(record.alive() for record in records):
                print('%s watchdog: %s vanished, stopping' % (time.strftime('%H:%M:%S'), DESCRIPTOR), flush=True)
                terminate(list(reversed(records)))
            return 0  # stopped by `harness.py stop` (or the state directory was removed)
        records = [ProcessRecord(**p) for p in data.get('processes', [])]
        if not any(record.alive() for record in records):
            reason = 'emulator processes exited'
        elif owner is not None and not owner.alive():
            reason = 'owner process %d exited' % owner_pid
        elif deadline is not None and time.monotonic() > deadline:
            reason = 'time limit of %ds reached' % ttl
    print('%s watchdog: %s, stopping' % (time.strftime('%H:%M:%S'), reason), flush=True)
    try:
        stop_state_dir(state_dir)
    except HarnessError as error:
        print('watchdog: %s' % error, flush=True)
    return 0


def _cmd_start(args):
    kwargs = {'state_dir': args.state_dir, 'die_with_parent': False}
    if args.kind == 'lowkey' and args.vault_name:
        kwargs['vault_names'] = args.vault_name
    if args.kind == 'lowkey' and args.ip_vault:
        kwargs['ip_vault'] = True
    emulator = STARTERS[args.kind](**kwargs)
    with _LIVE_LOCK:  # from here on the CLI hands the processes over (watchdog / `stop`)
        _LIVE.remove(emulator)
    try:
        if args.owner_pid or args.ttl:
            _start_watchdog(emulator, args.owner_pid, args.ttl)
    except BaseException:
        emulator.stop()
        raise
    print('\n'.join(emulator.export_lines(proxy_trap=args.proxy_trap)))
    return 0


def _cmd_stop(args):
    if not stop_state_dir(args.state_dir):
        print('nothing running in %s' % args.state_dir, file=sys.stderr)
    return 0


def _cmd_env(args):
    data = load_descriptor(args.state_dir)
    if data is None:
        raise EmulatorFailed('no emulator described in %s' % args.state_dir)
    if args.json:
        print(json.dumps(data['info'], indent=2, sort_keys=True))
    else:
        env = data['env_proxy_trap'] if args.proxy_trap else data['env']
        print('\n'.join('export %s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items()) if v is not None))
    return 0


def _cmd_install(args):
    """Resolve (and if needed build or download) the pinned artifacts; each prints where it came from."""
    status = 0
    kinds = ['lowkey', 'akv'] if args.kind == 'all' else [args.kind]
    for kind in kinds:
        try:
            if kind == 'lowkey':
                ensure_lowkey_jar(refresh=args.refresh)
            else:
                ensure_go_binary('entra-emulator')
                ensure_go_binary('azure-keyvault-emulator')
        except EmulatorUnavailable as error:
            print('[emulators] %s: UNAVAILABLE: %s' % (kind, error), file=sys.stderr)
            status = EXIT_UNAVAILABLE
    return status


def _cmd_check(_args):
    """Print which prerequisites are present (no downloads)."""
    rows = []
    for tool, env_vars, home in (('java', ('LOWKEY_VAULT_JAVA',), 'JAVA_HOME'), ('javac', ('JAVAC',), 'JAVA_HOME'),
                                 ('mvn', ('MVN',), 'MAVEN_HOME'), ('go', ('GO',), 'GOROOT')):
        try:
            rows.append('%-6s %s' % (tool, _find_tool(tool, env_vars, home)))
        except EmulatorUnavailable as error:
            rows.append('%-6s MISSING: %s' % (tool, error))
    jar = os.environ.get('LOWKEY_VAULT_JAR') or cache_dir() / ('%s-%s.jar' % (VERSIONS['LOWKEY_VAULT_ARTIFACT_ID'], VERSIONS['LOWKEY_VAULT_VERSION']))
    rows.append('lowkey jar  %s%s' % (jar, '' if os.path.exists(jar) else ' (absent)'))
    shared = shared_emulators_dir()
    rows.append('sources     %s' % (shared if shared else '(no ../shared/emulators: registry installs only)'))
    for name, (env_var, _m, _p, _v) in sorted(_GO_BINARIES.items()):
        path = os.environ.get(env_var) or cache_dir() / 'bin' / name
        rows.append('%s  %s%s' % (name, path, '' if os.path.exists(path) else ' (absent)'))
    print('\n'.join(rows))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(description='Local Azure Key Vault emulators for integration tests.')
    sub = parser.add_subparsers(dest='command')
    sub.required = True

    start = sub.add_parser('start', help='start an emulator and print `export VAR=...` lines')
    start.add_argument('kind', choices=sorted(STARTERS))
    start.add_argument('--state-dir', required=True, help='directory for logs, CA file and harness.json')
    start.add_argument('--owner-pid', type=int, default=0, help='stop the emulator when this process exits (e.g. $$)')
    start.add_argument('--ttl', type=int, default=7200, help='stop the emulator after this many seconds (0: never; default 7200)')
    start.add_argument('--vault-name', action='append', help='lowkey: extra vault <name>.localhost (repeatable)')
    start.add_argument('--ip-vault', action='store_true', help='lowkey: https://127.0.0.1:<port> is a second vault, not an alias')
    start.add_argument('--proxy-trap', action='store_true', help='also export HTTP(S)_PROXY=%s (non-loopback requests fail)' % PROXY_TRAP)
    start.set_defaults(func=_cmd_start)

    stop = sub.add_parser('stop', help='stop the emulator recorded in --state-dir')
    stop.add_argument('--state-dir', required=True)
    stop.set_defaults(func=_cmd_stop)

    env = sub.add_parser('env', help='print the export lines (or --json info) of a running emulator again')
    env.add_argument('--state-dir', required=True)
    env.add_argument('--json', action='store_true')
    env.add_argument('--proxy-trap', action='store_true')
    env.set_defaults(func=_cmd_env)

    install = sub.add_parser('install', help='download/install the pinned emulator artifacts only')
    install.add_argument('kind', choices=['lowkey', 'akv', 'all'], nargs='?', default='all')
    install.add_argument('--refresh', action='store_true', help='lowkey: download the jar again')
    install.set_defaults(func=_cmd_install)

    check = sub.add_parser('check', help='show which tools and artifacts are present')
    check.set_defaults(func=_cmd_check)

    watchdog = sub.add_parser('_watchdog')
    watchdog.add_argument('--state-dir', required=True)
    watchdog.add_argument('--owner-pid', type=int, default=0)
    watchdog.add_argument('--owner-start', default=None)
    watchdog.add_argument('--ttl', type=int, default=0)
    watchdog.set_defaults(func=lambda a: _watchdog(a.state_dir, a.owner_pid, a.owner_start, a.ttl))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmulatorUnavailable as error:
        print('harness: unavailable: %s' % error, file=sys.stderr)
        return EXIT_UNAVAILABLE
    except HarnessError as error:
        print('harness: error: %s' % error, file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
