# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start or stop the counting proxy of this target: mitmdump in reverse mode, two loopback listeners.

    budget_proxy.py start STATE_DIR VAULT_URL IDENTITY_ENDPOINT   → JSON: vault_url, identity_endpoint, ca_file, log
    budget_proxy.py stop STATE_DIR

The module talks to ``vault_url`` (https, served with the proxy's own CA: ``ca_file``) and gets its token
from ``identity_endpoint`` (plain http, as lowkey-vault's); both are forwarded to lowkey-vault and every
request is written to ``log`` by count_addon.py.  mitmdump is the one run.sh installed into the mitmproxy
virtual environment next to the integration one (found by walking up from this file to ``.cache/venv``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.parse

from testlib import detached

HERE = os.path.dirname(os.path.abspath(__file__))


def find_mitmdump():
    if os.environ.get('CERTDEPLOY_MITMDUMP'):
        return os.environ['CERTDEPLOY_MITMDUMP']
    for start in (HERE, os.getcwd()):
        path = os.path.abspath(start)
        while path != os.path.dirname(path):
            candidate = os.path.join(path, '.cache', 'venv', 'mitmproxy', 'bin', 'mitmdump')
            if os.access(candidate, os.X_OK):
                return candidate
            path = os.path.dirname(path)
    sys.exit('mitmdump not found: run through scripts/test.sh integration, which installs it (or set CERTDEPLOY_MITMDUMP)')


def free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def start(state_dir, vault_url, identity_endpoint):
    os.makedirs(state_dir, exist_ok=True)
    vault = urllib.parse.urlsplit(vault_url)
    identity = urllib.parse.urlsplit(identity_endpoint)
    vault_port, token_port = free_port(), free_port()
    log = os.path.join(state_dir, 'requests.jsonl')
    with open(log, 'w', encoding='utf-8'):
        pass
    owner, dummy = detached.playbook_owner()
    argv = [find_mitmdump(), '--quiet', '--listen-host', '127.0.0.1',
            '--mode', 'reverse:%s://%s@%d' % (vault.scheme, vault.netloc, vault_port),
            '--mode', 'reverse:%s://%s@%d' % (identity.scheme, identity.netloc, token_port),
            '--set', 'confdir=%s' % state_dir, '--set', 'connection_strategy=lazy',
            # proxy → lowkey-vault only, on loopback; module → proxy is verified against the proxy's CA (ca_path).
            '--set', 'ssl_insecure=true',
            '-s', os.path.join(HERE, 'count_addon.py'), '--set', 'budget_log=%s' % log,
            '--set', 'budget_token_port=%d' % identity.port, '--set', 'budget_owner_pid=%d' % (owner or 0)]
    pid = detached.detach(lambda: os.execv(argv[0], argv), os.path.join(state_dir, 'pid'), os.path.join(state_dir, 'mitmdump.log'))
    state = {'pid': pid, 'start_time': detached.start_time(pid)}
    ca_file = os.path.join(state_dir, 'mitmproxy-ca-cert.pem')
    for dummy in range(150):
        ready = os.path.exists(ca_file) and all(_listening(port) for port in (vault_port, token_port))
        if ready or not detached.alive(state):
            break
        time.sleep(0.2)
    if not ready:
        detached.stop(state)
        with open(os.path.join(state_dir, 'mitmdump.log'), encoding='utf-8', errors='replace') as handle:
            sys.exit('the counting proxy did not start:\n' + handle.read()[-3000:])
    with open(os.path.join(state_dir, 'state.json'), 'w', encoding='utf-8') as handle:
        json.dump(state, handle)
    print(json.dumps({
        'vault_url': 'https://localhost:%d' % vault_port,
        'identity_endpoint': '%s://127.0.0.1:%d%s' % (identity.scheme, token_port, identity.path),
        'ca_file': ca_file, 'log': log, 'pid': pid}))


def _listening(port):
    try:
        socket.create_connection(('127.0.0.1', port), 1).close()
        return True
    except OSError:
        return False


def stop(state_dir):
    try:
        with open(os.path.join(state_dir, 'state.json'), encoding='utf-8') as handle:
            state = json.load(handle)
    except OSError:
        state = None
    print(json.dumps({'stopped': detached.stop(state) if state else False}))


if __name__ == '__main__':
    if sys.argv[1:2] == ['start'] and len(sys.argv) == 5:
        start(*sys.argv[2:])
    elif sys.argv[1:2] == ['stop'] and len(sys.argv) == 3:
        stop(sys.argv[2])
    else:
        sys.exit(__doc__)
