# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A running emulator, its state directory (harness.json) and the watchdog that stops it.

Emulator is what the back ends (lowkey.LowkeyVault, gopair.GoKeyVault) extend: how clients reach
it (info(), env()), harness.json in the state directory (so another process can describe or stop
it), stop().  Emulators a process started are stopped at its exit unless handed over (forget())
to the CLI's watchdog, which follows an owner PID and a time limit.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from .common import DESCRIPTOR, PROXY_TRAP, EmulatorFailed, HarnessError, write_text
from .net import no_proxy_value
from .processes import ProcessRecord, process_start_time, spawn, terminate


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
        write_text(self.state_dir / DESCRIPTOR, json.dumps(self.descriptor(), indent=2, sort_keys=True) + '\n')

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


def prepare_state_dir(state_dir):
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
            raise EmulatorFailed('an emulator from %s is still running; run `python -m emulators stop --state-dir %s` first' % (existing, state_dir))
        existing.unlink()
    return state_dir, False


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


def forget(emulator):
    """Stop tracking a running emulator: it is no longer stopped at this process's exit (the CLI hands it over)."""
    with _LIVE_LOCK:
        if emulator in _LIVE:
            _LIVE.remove(emulator)


def start_watchdog(emulator, owner_pid, ttl):
    """Start ``python -m emulators _watchdog`` for emulator (see watch()), recorded in its harness.json.

    The watchdog runs with this interpreter, environment and working directory, so it finds the
    package as this process did (the venv's .pth file, PYTHONPATH, or the working directory).
    """
    argv = [sys.executable, '-m', 'emulators', '_watchdog', '--state-dir', str(emulator.state_dir), '--ttl', str(ttl)]
    if owner_pid:
        start = process_start_time(owner_pid)
        if start is None:
            raise EmulatorFailed('--owner-pid %d: no such process' % owner_pid)
        argv += ['--owner-pid', str(owner_pid), '--owner-start', start]
    emulator.watchdog = spawn('watchdog', argv, emulator.state_dir / 'watchdog.log', env=dict(os.environ), die_with_parent=False)
    emulator.save()


def watch(state_dir, owner_pid, owner_start, ttl):
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
            return 0  # stopped by `python -m emulators stop` (or the state directory was removed)
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
