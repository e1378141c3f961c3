# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Emulator processes: each in its own process group, stopped by group, found again by PID file.

A process record keeps the PID and the kernel's start time, so a reused PID is never taken for
the emulator; children started with die_with_parent get SIGTERM when their starter dies (Linux
parent-death signal).  wait_until() polls a readiness check and fails early when a process exits.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import shlex
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import EmulatorFailed, log_tail


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
                raise EmulatorFailed('%s exited while waiting for %s; log %s:\n%s' % (record.name, what, record.log, log_tail(record.log)))
        try:
            result = check()
        except (OSError, ssl.SSLError, ValueError) as error:  # connection refused, TLS not up yet...
            last_error = error
            result = None
        if result:
            return result
        time.sleep(interval)
    logs = ''.join('\n--- %s (%s):\n%s' % (r.name, r.log, log_tail(r.log)) for r in records)
    raise EmulatorFailed('timed out after %.0fs waiting for %s (last error: %s)%s' % (timeout, what, last_error, logs))
