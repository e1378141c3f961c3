# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Replay stored Key Vault responses through the real azure-core pipeline, with no network.

``ReplayTransport`` is an ``azure.core.pipeline.transport.HttpTransport``: the real
``CertificateClient`` / ``SecretClient`` stack (challenge authentication, retries, error mapping,
deserialisation) runs unchanged and hands its requests to it.  It answers

- any request without an ``Authorization`` header with the stored 401 challenge, as Key Vault does
  (the SDK's challenge policy sends the first request of each client without a token, and without
  its body, to learn the tenant and resource);
- every other request with the next stored interaction, after checking that the method and path are
  the ones the interaction expects.

Every request is recorded (method, URL, headers, decoded JSON body, transport options) so tests can
assert what the SDK actually sent.  Fixtures are JSON files under ``recordings/``; each names, in its
``source`` field, the public recording or document its shapes came from.
"""

from __future__ import annotations

import json
import os

try:  # Python 3
    from urllib.parse import parse_qs, urlsplit
except ImportError:  # pragma: no cover
    from urlparse import parse_qs, urlsplit  # type: ignore

from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse  # what azure-core's own tests build on

RECORDINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'recordings')

_REASONS = {200: 'OK', 201: 'Created', 204: 'No Content', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
            409: 'Conflict'}


def load(name):
    """The parsed fixture ``recordings/<name>``; its ``source`` field is mandatory."""
    with open(os.path.join(RECORDINGS, name), 'rb') as handle:
        fixture = json.loads(handle.read().decode('utf-8'))
    if not fixture.get('source'):
        raise AssertionError('fixture %s names no source' % name)
    return fixture


def interactions(name, *keys):
    """The interactions stored under ``keys`` (in that order) in fixture ``name``."""
    fixture = load(name)
    return [fixture['interactions'][key] for key in keys]


class _RawResponse(object):
    """The http.client-like object RestHttpClientTransportResponse wraps."""

    def __init__(self, status, headers, body):
        self.status = status
        self.reason = _REASONS.get(status, 'Status %d' % status)
        self._headers = list(headers.items())
        self._body = body

    def getheaders(self):
        return self._headers

    def read(self):
        return self._body

    def close(self):
        pass


class RecordedRequest(object):
    """One request as the SDK handed it to the transport."""

    def __init__(self, request, options):
        self.method = request.method
        self.url = request.url
        parts = urlsplit(request.url)
        self.host = parts.hostname
        self.path = parts.path.rstrip('/') or '/'
        self.query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
        self.headers = dict(request.headers)
        self.options = options
        raw = request.content
        if isinstance(raw, str):
            raw = raw.encode('utf-8')
        self.raw_body = raw or b''
        self.body = json.loads(self.raw_body.decode('utf-8')) if self.raw_body else None

    @property
    def authorization(self):
        return self.headers.get('Authorization')

    def __repr__(self):
        return 'RecordedRequest(%s %s, auth=%s)' % (self.method, self.path, 'yes' if self.authorization else 'no')


class ReplayTransport(HttpTransport):
    """Answers from stored responses; records every request; never opens a connection."""

    def __init__(self, queue=None, challenge=None):
        super(ReplayTransport, self).__init__()
        self.queue = list(queue or [])
        self.challenge = challenge
        self.requests = []
        self.slept = []
        self.opened = 0
        self.closed = 0

    def add(self, *items):
        self.queue.extend(items)

    def send(self, request, **kwargs):
        recorded = RecordedRequest(request, kwargs)
        self.requests.append(recorded)
        if recorded.authorization is None and self.challenge is not None:
            response = self.challenge['response']
        else:
            if not self.queue:
                raise AssertionError('unexpected request %s %s: no stored response left' % (recorded.method, recorded.url))
            item = self.queue.pop(0)
            expected = item['request']
            if (recorded.method, recorded.path) != (expected['method'], expected['path'].rstrip('/')):
                raise AssertionError('request %s %s does not match the stored interaction %s %s'
                                     % (recorded.method, recorded.path, expected['method'], expected['path']))
            response = item['response']
        return self._response(request, response)

    @staticmethod
    def _response(request, stored):
        headers = dict(stored.get('headers') or {})
        body = stored.get('body')
        payload = b'' if body is None else json.dumps(body).encode('utf-8')
        if body is not None:
            headers.setdefault('Content-Type', 'application/json; charset=utf-8')
        headers['Content-Length'] = str(len(payload))
        response = RestHttpClientTransportResponse(request=request, internal_response=_RawResponse(stored['status'], headers, payload))
        response.read()
        return response

    def assert_done(self):
        if self.queue:
            raise AssertionError('stored responses were never requested: %s'
                                 % ', '.join('%s %s' % (i['request']['method'], i['request']['path']) for i in self.queue))

    def authenticated(self):
        return [r for r in self.requests if r.authorization]

    def open(self):
        self.opened += 1

    def close(self):
        self.closed += 1

    def sleep(self, duration):
        self.slept.append(duration)

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *args):
        self.close()
