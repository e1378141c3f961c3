# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Detached loopback servers for the integration tests: start one, find it again, stop it (Linux /proc).

Shared (``from testlib import detached``) by the targets' setup_loopback_tls/files/loopback_tls.py,
azure_kv_workload_identity/files/oidc_issuer.py and azure_kv_request_budget/files/budget_proxy.py.
A server started here runs in its own session with its output in a log, and stops on SIGTERM, after a
time limit, or as soon as the ansible-playbook process that started it exits.  A server is known by
its PID *and* its start time, so a recycled PID is never signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import traceback


def _stat_fields(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid):
    """Start time of a live process in clock ticks since boot, or None (gone, or a zombie)."""
    fields = _stat_fields(pid)
    return fields[19] if fields and fields[0] not in ('Z', 'X') else None


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return handle.read().replace(b'\0', b' ').decode('utf-8', 'replace')
    except OSError:
        return ''


def playbook_owner():
    """(pid, start time) of the outermost ansible-playbook process above this one, or (None, None)."""
    owner = None
    pid = os.getppid()
    while pid > 1:
        if 'ansible-playbook' in _cmdline(pid):
            owner = pid
        fields = _stat_fields(pid)
        if not fields:
            break
        pid = int(fields[1])
    return (owner, start_time(owner)) if owner else (None, None)


def listen_loopback():
    """A listening TCP socket on 127.0.0.1 and a free port: (socket, port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', 0))
    sock.listen(32)
    return sock, sock.getsockname()[1]


def serve_until_done(server, ttl, owner, owner_start):
    """Serve until SIGTERM, ``ttl`` seconds, or the owner process's exit; then close the server."""
    deadline = time.monotonic() + ttl

    def watch():
        while time.monotonic() < deadline:
            if owner is not None and start_time(owner) != owner_start:
                break
            time.sleep(0.5)
        server.shutdown()
    threading.Thread(target=watch, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *args: threading.Thread(target=server.shutdown, daemon=True).start())
    server.serve_forever(poll_interval=0.2)
    server.server_close()


def detach(run, pid_file, log_path):
    """Run ``run()`` in a detached process (new session, no terminal, output to log_path); return its PID.

    The caller keeps no child: the intermediate process exits at once and the server is re-parented.
    """
    if os.path.exists(pid_file):
        os.remove(pid_file)
    log = open(log_path, 'ab')  # pylint: disable=consider-using-with
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork():
            os._exit(0)  # pylint: disable=protected-access
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        code = 0
        try:
            with open(pid_file, 'w', encoding='ascii') as handle:
                handle.write(str(os.getpid()))
            run()
        except BaseException:  # pylint: disable=broad-except
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)  # pylint: disable=protected-access
    os.waitpid(pid, 0)
    log.close()
    for dummy in range(100):
        if os.path.exists(pid_file) and os.path.getsize(pid_file):
            break
        time.sleep(0.05)
    with open(pid_file, encoding='ascii') as handle:
        return int(handle.read())


def alive(state):
    """Whether the server a state dict describes ({'pid', 'start_time'}) still runs."""
    return bool(state) and start_time(state['pid']) is not None and start_time(state['pid']) == state['start_time']


def stop(state):
    """SIGTERM the server of ``state`` (SIGKILL after 5 s); True if it was running."""
    if not alive(state):
        return False
    os.kill(state['pid'], signal.SIGTERM)
    for dummy in range(100):
        if not alive(state):
            break
        time.sleep(0.05)
    else:
        os.kill(state['pid'], signal.SIGKILL)
    return True
