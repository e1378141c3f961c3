#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A loopback HTTPS server for the integration tests: downloads for the url source, and an endpoint to probe.

  loopback_tls.py start --state FILE (--cert PEM --key PEM | --plain) [--root DIR] [--header 'Name: value']
                        [--switch-after SECONDS | --switch-after-handshakes N] [--next-cert PEM --next-key PEM]
                        [--redirect PATH=[CODE:]LOCATION ...] [--record FILE] [--ttl SECONDS]
  loopback_tls.py stop --state FILE

``start`` binds 127.0.0.1:<free port>, detaches a server process and prints JSON
{"port", "pid"} (also written to the state file). The server

* serves the files under --root over HTTPS (GET only); with --header, a request without that
  exact header gets 401;
* with --redirect, answers a GET of PATH (the query string ignored) with CODE (default 302) and
  ``Location: LOCATION``, before the --header check; repeatable;
* with --record, appends one JSON line per request to FILE: method, path (query string included),
  every header;
* with --plain, speaks plain HTTP without TLS (no --cert/--key): where a redirect to http:// would land;
* presents --cert (leaf first, then the chain) with --key, and re-reads both files when they
  change, so a test rotates the served certificate by replacing the files; with --switch-after
  it presents --next-cert/--next-key from that many seconds after start, with
  --switch-after-handshakes from that many connections on (a deterministic "edge picks it up later");
* stops on ``stop``, after --ttl seconds (default 600), or as soon as the ansible-playbook
  process that started it exits (found by walking up the process tree; Linux /proc).

``stop`` checks the process start time recorded in the state file, so a recycled PID is never signalled.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import ssl
import sys
import threading
import time

from testlib import detached


class Certificates(object):
    """The SSL context to present now: reloaded when the files change, switched after a delay or some connections."""

    def __init__(self, args):
        self.args = args
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.loaded = None
        self.context = None
        self.connections = 0

    def current(self, connection=False):
        if connection:
            self.connections += 1
        switched = ((self.args.switch_after is not None and time.monotonic() - self.started >= self.args.switch_after) or
                    (self.args.switch_after_handshakes is not None and self.connections > self.args.switch_after_handshakes))
        cert, key = (self.args.next_cert, self.args.next_key) if switched else (self.args.cert, self.args.key)
        stamp = (cert, key, os.stat(cert).st_mtime_ns, os.stat(key).st_mtime_ns)
        with self.lock:
            if stamp != self.loaded:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cert, key)
                self.context, self.loaded = context, stamp
            return self.context


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock, handler, certificates):
        self.certificates = certificates
        super().__init__(sock.getsockname(), handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock

    def get_request(self):
        conn, addr = self.socket.accept()
        conn.settimeout(10)
        if self.certificates is None:  # --plain
            return conn, addr
        # The handshake happens in the handler thread, on the first read.
        return self.certificates.current(connection=True).wrap_socket(conn, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass  # a probe closes right after the handshake: nothing to report


def parse_redirects(specs):
    """--redirect PATH=[CODE:]LOCATION -> {PATH: (CODE, LOCATION)}."""
    redirects = {}
    for spec in specs or ():
        path, dummy, target = spec.partition('=')
        code, colon, location = target.partition(':')
        if colon and code.isdigit():
            redirects[path] = (int(code), location)
        else:
            redirects[path] = (302, target)
    return redirects


def make_handler(args):
    header = None
    if args.header:
        name, dummy, value = args.header.partition(':')
        header = (name.strip(), value.strip())
    redirects = parse_redirects(args.redirect)
    record_lock = threading.Lock()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=args.root, **kw)

        def send_head(self):
            if args.record:
                line = json.dumps({'method': self.command, 'path': self.path, 'headers': dict(self.headers.items())})
                with record_lock, open(args.record, 'a', encoding='utf-8') as handle:
                    handle.write(line + '\n')
            redirect = redirects.get(self.path.split('?', 1)[0])
            if redirect is not None:
                self.send_response(redirect[0])
                self.send_header('Location', redirect[1])
                self.send_header('Content-Length', '0')
                self.end_headers()
                return None
            if header and self.headers.get(header[0]) != header[1]:
                self.send_error(401, 'missing or wrong %s header' % header[0])
                return None
            return super().send_head()

        def log_message(self, format, *a):  # pylint: disable=redefined-builtin
            sys.stderr.write('%s %s\n' % (time.strftime('%H:%M:%S'), format % a))

    return Handler


def cmd_start(args):
    switching = args.switch_after is not None or args.switch_after_handshakes is not None
    for path in () if args.plain else (args.cert, args.key) + ((args.next_cert, args.next_key) if switching else ()):
        if not path or not os.path.isfile(path):
            sys.exit('loopback_tls: %r is not a file' % path)
    if not args.plain:
        Certificates(args).current()  # fail here, not in the detached process, when the files do not load
    owner, owner_start = detached.playbook_owner()
    sock, port = detached.listen_loopback()

    def run():
        certificates = None if args.plain else Certificates(args)
        detached.serve_until_done(Server(sock, make_handler(args), certificates), args.ttl, owner, owner_start)
    server_pid = detached.detach(run, args.state + '.pid', args.state + '.log')
    sock.close()
    state = {'port': port, 'pid': server_pid, 'start_time': detached.start_time(server_pid), 'owner': owner}
    with open(args.state, 'w', encoding='ascii') as handle:
        json.dump(state, handle)
    print(json.dumps(state))


def cmd_stop(args):
    try:
        with open(args.state, encoding='ascii') as handle:
            state = json.load(handle)
    except OSError:
        print(json.dumps({'stopped': False, 'reason': 'no state file'}))
        return
    print(json.dumps({'stopped': detached.stop(state), 'pid': state['pid']}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='command', required=True)
    start = sub.add_parser('start')
    start.add_argument('--state', required=True)
    start.add_argument('--cert')
    start.add_argument('--key')
    start.add_argument('--root', default=os.getcwd())
    start.add_argument('--header')
    start.add_argument('--switch-after', type=float)
    start.add_argument('--switch-after-handshakes', type=int)
    start.add_argument('--next-cert')
    start.add_argument('--next-key')
    start.add_argument('--redirect', action='append')
    start.add_argument('--record')
    start.add_argument('--plain', action='store_true')
    start.add_argument('--ttl', type=int, default=600)
    start.set_defaults(func=cmd_start)
    stop = sub.add_parser('stop')
    stop.add_argument('--state', required=True)
    stop.set_defaults(func=cmd_stop)
    args = parser.parse_args()
    args.func(args)


if __name__ == '__main__':
    main()
