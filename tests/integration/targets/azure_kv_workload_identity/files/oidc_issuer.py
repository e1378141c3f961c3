#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A loopback OIDC issuer for the workload identity test: the "Kubernetes service account issuer".

  oidc_issuer.py start --dir DIR --subject SUBJECT [--audience AUD] [--ttl SECONDS]
  oidc_issuer.py status --dir DIR
  oidc_issuer.py stop --dir DIR

``start`` generates an RSA 2048 signing key in memory (it is never written anywhere), binds
http://127.0.0.1:<free port> (the issuer URL), mints these assertions into files under DIR
(mode 0600), detaches a server process and prints JSON {"issuer", "subject", "audience",
"kid", "port", "pid", "assertions": {name: path}}:

  good            aud = --audience (default api://AzureADTokenExchange), valid now
  wrong_audience  aud = api://certdeploy-wrong-audience, valid now
  expired         the right audience, expired ten minutes ago
  forged          the right audience and kid, valid now, signed by another key

The server answers GET /.well-known/openid-configuration and GET /openid/v1/jwks (the public
key only), counts the requests per path in DIR/requests.json, and stops on ``stop``, after
--ttl seconds (default 600), or as soon as the ansible-playbook process that started it exits.
entra-emulator fetches an issuer's metadata with Go's default HTTP client (system CAs only),
so the issuer is plain HTTP on loopback.

``status`` prints {"alive", "requests"}; ``stop`` prints {"stopped", "pid", "requests"} and
checks the process start time recorded by ``start``, so a recycled PID is never signalled.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import json
import os
import sys
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from testlib import detached

EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange'
WRONG_AUDIENCE = 'api://certdeploy-wrong-audience'
DISCOVERY_PATH = '/.well-known/openid-configuration'
JWKS_PATH = '/openid/v1/jwks'
STATE = 'issuer.json'
REQUESTS = 'requests.json'


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _int_bytes(value):
    return value.to_bytes((value.bit_length() + 7) // 8, 'big')


def public_jwk(key):
    """The RSA public key as a JWK whose kid is its RFC 7638 thumbprint."""
    numbers = key.public_key().public_numbers()
    jwk = {'e': b64url(_int_bytes(numbers.e)), 'kty': 'RSA', 'n': b64url(_int_bytes(numbers.n))}
    canonical = json.dumps(jwk, sort_keys=True, separators=(',', ':')).encode('ascii')
    return dict(jwk, kid=b64url(hashlib.sha256(canonical).digest()), use='sig', alg='RS256')


def mint(key, kid, claims):
    """A compact RS256 JWS over ``claims``."""
    header = {'alg': 'RS256', 'typ': 'JWT', 'kid': kid}
    signing_input = '%s.%s' % (b64url(json.dumps(header, separators=(',', ':')).encode('ascii')),
                               b64url(json.dumps(claims, separators=(',', ':')).encode('ascii')))
    signature = key.sign(signing_input.encode('ascii'), padding.PKCS1v15(), hashes.SHA256())
    return '%s.%s' % (signing_input, b64url(signature))


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w', encoding='ascii') as handle:
        handle.write(text)


def _write_json(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='ascii') as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def _read_json(path, default=None):
    try:
        with open(path, encoding='ascii') as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def mint_assertions(directory, issuer, subject, audience, ttl):
    """Write the four assertions; returns ({name: path}, kid).  Both keys live only in this process's memory."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = public_jwk(key)
    now = int(time.time())

    def claims(aud, issued, expires, name):
        return {'iss': issuer, 'sub': subject, 'aud': [aud], 'iat': issued, 'nbf': issued, 'exp': expires,
                'jti': '%s-%d' % (name, now)}

    tokens = {
        'good': mint(key, jwk['kid'], claims(audience, now - 5, now + ttl, 'good')),
        'wrong_audience': mint(key, jwk['kid'], claims(WRONG_AUDIENCE, now - 5, now + ttl, 'wrong-audience')),
        'expired': mint(key, jwk['kid'], claims(audience, now - 1200, now - 600, 'expired')),
        'forged': mint(other, jwk['kid'], claims(audience, now - 5, now + ttl, 'forged')),
    }
    paths = {}
    for name, token in tokens.items():
        paths[name] = os.path.join(directory, '%s.jwt' % name)
        _write_private(paths[name], token)
    public = {k: jwk[k] for k in ('kty', 'use', 'alg', 'kid', 'n', 'e')}
    return paths, public


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock, handler):
        super().__init__(sock.getsockname(), handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock


def make_handler(directory, issuer, jwk):
    documents = {
        DISCOVERY_PATH: {
            'issuer': issuer,
            'jwks_uri': issuer + JWKS_PATH,
            'response_types_supported': ['id_token'],
            'subject_types_supported': ['public'],
            'id_token_signing_alg_values_supported': ['RS256'],
        },
        JWKS_PATH: {'keys': [jwk]},
    }
    counts = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # pylint: disable=invalid-name
            path = self.path.split('?', 1)[0]
            with lock:
                counts[path] = counts.get(path, 0) + 1
                _write_json(os.path.join(directory, REQUESTS), counts)
            document = documents.get(path)
            body = json.dumps(document if document is not None else {'error': 'not_found'}).encode('ascii')
            self.send_response(200 if document is not None else 404)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *a):  # pylint: disable=redefined-builtin
            sys.stderr.write('%s %s\n' % (time.strftime('%H:%M:%S'), format % a))

    return Handler


def cmd_start(args):
    directory = os.path.abspath(args.dir)
    if not os.path.isdir(directory):
        sys.exit('oidc_issuer: %r is not a directory' % directory)
    owner, owner_start = detached.playbook_owner()
    sock, port = detached.listen_loopback()
    issuer = 'http://127.0.0.1:%d' % port
    assertions, jwk = mint_assertions(directory, issuer, args.subject, args.audience, args.ttl)
    handler = make_handler(directory, issuer, jwk)
    _write_json(os.path.join(directory, REQUESTS), {})

    def run():
        detached.serve_until_done(Server(sock, handler), args.ttl, owner, owner_start)
    server_pid = detached.detach(run, os.path.join(directory, 'issuer.pid'), os.path.join(directory, 'issuer.log'))
    sock.close()
    state = {'issuer': issuer, 'subject': args.subject, 'audience': args.audience, 'kid': jwk['kid'], 'port': port,
             'pid': server_pid, 'start_time': detached.start_time(server_pid), 'owner': owner, 'assertions': assertions}
    _write_json(os.path.join(directory, STATE), state)
    print(json.dumps(state))


def cmd_status(args):
    directory = os.path.abspath(args.dir)
    state = _read_json(os.path.join(directory, STATE))
    print(json.dumps({'alive': detached.alive(state), 'requests': _read_json(os.path.join(directory, REQUESTS), {})}))


def cmd_stop(args):
    directory = os.path.abspath(args.dir)
    state = _read_json(os.path.join(directory, STATE))
    if not state:
        print(json.dumps({'stopped': False, 'reason': 'no state file'}))
        return
    stopped = detached.stop(state)
    print(json.dumps({'stopped': stopped, 'pid': state['pid'], 'requests': _read_json(os.path.join(directory, REQUESTS), {})}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='command', required=True)
    start = sub.add_parser('start')
    start.add_argument('--dir', required=True)
    start.add_argument('--subject', required=True)
    start.add_argument('--audience', default=EXCHANGE_AUDIENCE)
    start.add_argument('--ttl', type=int, default=600)
    start.set_defaults(func=cmd_start)
    for name, func in (('status', cmd_status), ('stop', cmd_stop)):
        command = sub.add_parser(name)
        command.add_argument('--dir', required=True)
        command.set_defaults(func=func)
    args = parser.parse_args()
    args.func(args)


if __name__ == '__main__':
    main()
