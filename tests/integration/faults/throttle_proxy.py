# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start, stop and read the throttling test proxy: mitmdump in reverse mode with throttle_addon.py.

    throttle_proxy.py start STATE_DIR VAULT_URL [VAULT_URL ...] --rate N [--capacity C]
                      [--identity-endpoint URL] [--owner-pid PID] [--ttl SECONDS]
        -> JSON: vault_url (the proxy's URL for the first vault), vault_urls ({proxy URL: upstream vault URL}),
           identity_endpoint (with --identity-endpoint: the proxied one, never throttled), ca_file, log, pid
    throttle_proxy.py stop STATE_DIR
    throttle_proxy.py summary LOG [--rate N [--capacity C]]
        -> JSON: {upstream vault URL: {requests, admitted, throttled, first, last[, minimum_seconds]}, ...,
                  "token": {requests}}

One loopback listener per VAULT_URL (https, served with the proxy's own CA, ``ca_file``: give it to the
client as its CA), each forwarding to that vault and throttled with a bucket of its own: at most ``--rate``
requests a second, bursts of ``--capacity`` (default: the rate), the rest answered 429 with Retry-After
(throttle_addon.py says how). Keep the capacity at least the rate: Retry-After is whole seconds, so a client that
waits as told finds at most ``capacity`` requests' room after its one-second wait; a smaller bucket makes every
such wait cost more than it buys (measured: a 100-certificate rotation at 20 a second took 90 s with a bucket of
5, against 25 s with 20, its least time being 24 s). The vault's certificate is not verified (loopback only;
``ssl_insecure``), as the fault proxy of tests/integration/run.sh does. ``log`` gets one JSON line per request
(throttle_addon.py).
``summary`` counts a log per vault: ``requests`` (every request, the 429-answered and the unauthenticated
challenge included), ``throttled`` (answered 429 here), ``admitted``, and the arrival times of the first and
last request (``first``, ``last``; seconds since the epoch); given the proxy's ``--rate`` (and ``--capacity``),
also ``minimum_seconds``: the least time in which the bucket admits that many requests (the first ``capacity``
at once, then ``rate`` a second; throttle_bucket.minimum_seconds), the yardstick for a throttled run's wall time.

The proxy stops on ``stop``, when the process ``--owner-pid`` exits (default: the ansible-playbook process this
runs under, if any), or after ``--ttl`` seconds (default 3600). mitmdump is the one tests/integration/run.sh
installs (CERTDEPLOY_MITMDUMP, or ``.cache/venv/mitmproxy`` found by walking up from here or the working
directory). ``testlib`` (detached servers) is imported from tests/integration, beside this directory.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/integration: testlib, when no .pth file puts it there

from testlib import detached  # noqa: E402  pylint: disable=wrong-import-position


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


def _listening(port):
    try:
        socket.create_connection(('127.0.0.1', port), 1).close()
        return True
    except OSError:
        return False


def _origin(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        sys.exit('not an http(s) URL: %r' % url)
    return parts


def start(args):
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    log = os.path.join(state_dir, 'requests.jsonl')
    with open(log, 'w', encoding='utf-8'):
        pass
    if args.owner_pid is None:
        args.owner_pid = detached.playbook_owner()[0] or 0
    argv = [find_mitmdump(), '--quiet', '--listen-host', '127.0.0.1']
    vault_urls, ports = {}, []
    for url in args.vault_url:
        vault = _origin(url)
        port = free_port()
        ports.append(port)
        argv += ['--mode', 'reverse:%s://%s@%d' % (vault.scheme, vault.netloc, port)]
        vault_urls['https://localhost:%d' % port] = '%s://%s' % (vault.scheme, vault.netloc)
    token_ports, identity = [], None
    if args.identity_endpoint:
        identity = _origin(args.identity_endpoint)
        port = free_port()
        ports.append(port)
        token_ports.append(str(identity.port or (443 if identity.scheme == 'https' else 80)))
        argv += ['--mode', 'reverse:%s://%s@%d' % (identity.scheme, identity.netloc, port)]
        identity = '%s://127.0.0.1:%d%s' % (identity.scheme, port, identity.path)
    argv += ['--set', 'confdir=%s' % state_dir, '--set', 'connection_strategy=lazy',
             # proxy -> vault only, on loopback; client -> proxy is verified against the proxy's CA (ca_file).
             '--set', 'ssl_insecure=true',
             '-s', os.path.join(HERE, 'throttle_addon.py'), '--set', 'throttle_log=%s' % log,
             '--set', 'throttle_rate=%s' % args.rate, '--set', 'throttle_capacity=%s' % (args.capacity or ''),
             '--set', 'throttle_token_ports=%s' % ','.join(token_ports),
             '--set', 'throttle_owner_pid=%d' % args.owner_pid, '--set', 'throttle_ttl=%d' % args.ttl]
    pid = detached.detach(lambda: os.execv(argv[0], argv), os.path.join(state_dir, 'pid'), os.path.join(state_dir, 'mitmdump.log'))
    state = {'pid': pid, 'start_time': detached.start_time(pid)}
    ca_file = os.path.join(state_dir, 'mitmproxy-ca-cert.pem')
    ready = False
    for dummy in range(150):
        ready = os.path.exists(ca_file) and all(_listening(port) for port in ports)
        if ready or not detached.alive(state):
            break
        time.sleep(0.2)
    if not ready:
        detached.stop(state)
        with open(os.path.join(state_dir, 'mitmdump.log'), encoding='utf-8', errors='replace') as handle:
            sys.exit('the throttling proxy did not start:\n' + handle.read()[-3000:])
    with open(os.path.join(state_dir, 'state.json'), 'w', encoding='utf-8') as handle:
        json.dump(state, handle)
    out = {'vault_url': next(iter(vault_urls)), 'vault_urls': vault_urls, 'ca_file': ca_file, 'log': log, 'pid': pid,
           'rate': args.rate, 'capacity': args.capacity or args.rate}
    if identity:
        out['identity_endpoint'] = identity
    print(json.dumps(out))


def stop(args):
    try:
        with open(os.path.join(args.state_dir, 'state.json'), encoding='utf-8') as handle:
            state = json.load(handle)
    except OSError:
        state = None
    print(json.dumps({'stopped': detached.stop(state) if state else False}))


def summary(args):
    out = {'token': {'requests': 0}}
    with open(args.log, encoding='utf-8') as handle:
        for line in handle:
            entry = json.loads(line)
            if entry['kind'] == 'token':
                out['token']['requests'] += 1
                continue
            row = out.setdefault(entry['vault'], {'requests': 0, 'admitted': 0, 'throttled': 0, 'first': entry['t'], 'last': entry['t']})
            row['requests'] += 1
            row['admitted' if entry['admitted'] else 'throttled'] += 1
            row['first'], row['last'] = min(row['first'], entry['t']), max(row['last'], entry['t'])
    if args.rate:
        sys.path.insert(0, HERE)
        import throttle_bucket  # pylint: disable=import-outside-toplevel
        for vault, row in out.items():
            if vault != 'token':
                row['minimum_seconds'] = throttle_bucket.minimum_seconds(row['admitted'], args.rate, args.capacity)
    print(json.dumps(out, sort_keys=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    one = commands.add_parser('start')
    one.add_argument('state_dir')
    one.add_argument('vault_url', nargs='+')
    one.add_argument('--rate', type=float, required=True, help='requests a second admitted per vault')
    one.add_argument('--capacity', type=float, help='burst admitted at once per vault (default: the rate)')
    one.add_argument('--identity-endpoint', help='also proxy this token endpoint, never throttled')
    one.add_argument('--owner-pid', type=int, help='stop when this process exits (default: the ansible-playbook above, if any)')
    one.add_argument('--ttl', type=int, default=3600, help='stop after this many seconds')
    one.set_defaults(run=start)
    one = commands.add_parser('stop')
    one.add_argument('state_dir')
    one.set_defaults(run=stop)
    one = commands.add_parser('summary')
    one.add_argument('log')
    one.add_argument('--rate', type=float, help='the proxy\'s rate: adds minimum_seconds')
    one.add_argument('--capacity', type=float, help='the proxy\'s capacity (default: the rate)')
    one.set_defaults(run=summary)
    args = parser.parse_args(argv)
    if args.command == 'start' and not args.rate > 0:
        parser.error('--rate must be positive')
    args.run(args)


if __name__ == '__main__':
    main()
