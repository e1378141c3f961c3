# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every call to Key Vault ends within retry.call_time_bound(timeout), whatever Retry-After says, tokens included.

The real stack runs: VaultConnection builds a real ``CertificateClient`` and a real azure-identity
``ClientSecretCredential`` (custom authority, so no instance discovery); both reach a scripted transport through
the product's own wiring (``Sdk.core_transport.RequestsTransport`` is replaced by a factory returning it, and the
product wraps it in ``retry.BoundedTransport``). Time is virtual: the transport's ``sleep`` and every scripted
request advance one clock, which also stands behind ``retry.clock`` and azure-core's retry policy (its module's
``time`` is replaced). Nothing really sleeps and no socket is opened.
"""

from __future__ import annotations

import json
import types

import pytest

import azure.core.exceptions as azure_core_exceptions
import azure.core.pipeline.policies._retry as azure_retry
import azure.core.rest as azure_core_rest
import azure.identity as azure_identity
import azure.keyvault.certificates as kv_certificates
from azure.core.exceptions import ServiceResponseTimeoutError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import config, retry, sdk as azure_sdk
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.target import KeyVaultSettings, KeyVaultTarget
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import _RawResponse
# pylint: disable=unused-import
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_azure_kv_replay import (  # noqa: F401
    fresh_challenge_cache, no_network)
# pylint: enable=unused-import

TENANT = '11111111-2222-3333-4444-555555555555'
AUTHORITY = 'https://login.sim.test'
VAULT = 'https://kv1.vault.azure.net'
TIMEOUT = 5
ENV = {'AZURE_TENANT_ID': TENANT, 'AZURE_CLIENT_ID': 'app', 'AZURE_CLIENT_SECRET': 'not-a-real-secret'}


class VirtualClock(object):
    def __init__(self):
        self.now = 1000000.0

    def time(self):
        return self.now

    def monotonic(self):
        return self.now


class Scripted(HttpTransport):
    """Answers with ``handler(method, url, headers) -> (status, headers, body)``; records requests and sleeps."""

    def __init__(self, clock, handler):
        super(Scripted, self).__init__()
        self.clock = clock
        self.handler = handler
        self.requests = []
        self.slept = []

    def send(self, request, **kwargs):
        self.requests.append((request.method, request.url))
        answer = self.handler(request, self)
        if isinstance(answer, Exception):
            self.clock.now += TIMEOUT  # a read timeout costs the request's timeout
            raise answer
        status, headers, body = answer
        self.clock.now += 0.05
        payload = json.dumps(body).encode('utf-8') if body is not None else b''
        headers = dict(headers, **{'Content-Type': 'application/json', 'Content-Length': str(len(payload))})
        response = RestHttpClientTransportResponse(request=request, internal_response=_RawResponse(status, headers, payload))
        response.read()
        return response

    def sleep(self, duration):
        self.slept.append(duration)
        self.clock.now += duration

    def open(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass


def identity_answers(request):
    """MSAL's OpenID discovery and token endpoint at the custom authority; None for any other URL."""
    url = request.url
    if url.startswith(AUTHORITY) and 'openid-configuration' in url:
        base = '%s/%s' % (AUTHORITY, TENANT)
        return 200, {}, {'token_endpoint': base + '/oauth2/v2.0/token', 'authorization_endpoint': base + '/oauth2/v2.0/authorize',
                         'issuer': base + '/v2.0', 'device_authorization_endpoint': base + '/oauth2/v2.0/devicecode'}
    if url.startswith(AUTHORITY) and url.endswith('/token'):
        return 200, {}, {'access_token': 'sim-token', 'token_type': 'Bearer', 'expires_in': 3600}
    return None


CHALLENGE = (401, {'WWW-Authenticate': 'Bearer authorization="%s/%s", resource="https://vault.azure.net"' % (AUTHORITY, TENANT)},
             {'error': {'code': 'Unauthorized', 'message': 'AKV10000: Request is missing a Bearer token.'}})
THROTTLED = {'error': {'code': 'Throttled', 'message': 'Request was not processed because too many requests were received.'}}


@pytest.fixture
def clock(monkeypatch):
    virtual = VirtualClock()
    monkeypatch.setattr(retry, 'clock', virtual.time)
    monkeypatch.setattr(azure_retry, 'time', types.SimpleNamespace(time=virtual.time, sleep=None))
    return virtual


def target_over(transport):
    def load():
        return azure_sdk.Sdk(identity=azure_identity, certificates=kv_certificates, core_exceptions=azure_core_exceptions,
                             core_rest=azure_core_rest,
                             core_transport=types.SimpleNamespace(RequestsTransport=lambda **options: transport))
    settings = KeyVaultSettings(config.parse_vault_url(VAULT), 'www', AUTHORITY, credential_mode='client_secret', timeout=TIMEOUT)
    return KeyVaultTarget(settings, env=dict(ENV), sdk_loader=load)


def vault(answer):
    """A handler: identity endpoints answered, the token-less probe challenged, every vault request by ``answer``."""
    def handle(request, transport):
        known = identity_answers(request)
        if known is not None:
            return known
        if 'Authorization' not in request.headers:
            return CHALLENGE
        return answer(request, transport)
    return handle


def test_the_bound_is_derived_from_timeout():
    assert retry.call_time_bound(5) == (retry.TOTAL_TIMEOUT_FACTOR + 2) * 5


@pytest.mark.parametrize('wish', ['86400', '3600', 'Fri, 31 Dec 2100 23:59:59 GMT'])
def test_a_day_long_retry_after_on_a_read_fails_throttled_at_once(clock, wish):
    transport = Scripted(clock, vault(lambda request, t: (429, {'Retry-After': wish}, THROTTLED)))
    start = clock.now
    with pytest.raises(errors.DeployError) as failure:
        target_over(transport).read_latest()
    assert failure.value.code == errors.THROTTLED
    assert 'a retry was asked to wait' in failure.value.message
    if wish.isdigit():
        assert wish in failure.value.message
    assert clock.now - start <= retry.call_time_bound(TIMEOUT)
    assert all(slept <= retry.TOTAL_TIMEOUT_FACTOR * TIMEOUT for slept in transport.slept)


def test_a_short_retry_after_is_honoured_and_the_read_succeeds_after_it(clock):
    answers = iter([(429, {'Retry-After': '2'}, THROTTLED)])

    def answer(request, t):
        return next(answers, (404, {}, {'error': {'code': 'CertificateNotFound', 'message': 'Certificate not found: www'}}))
    transport = Scripted(clock, vault(answer))
    assert target_over(transport).read_latest(look_for_deleted=False) is None
    assert 2 in transport.slept


@pytest.mark.parametrize('garbage', ['soon', '-5', 'nan', '1e999x'])
def test_garbage_in_retry_after_is_plain_backoff_not_a_crash(clock, garbage):
    answers = iter([(503, {'Retry-After': garbage}, {'error': {'code': 'ServiceUnavailable', 'message': 'busy'}})])

    def answer(request, t):
        return next(answers, (404, {}, {'error': {'code': 'CertificateNotFound', 'message': 'Certificate not found: www'}}))
    assert target_over(Scripted(clock, vault(answer))).read_latest(look_for_deleted=False) is None


def test_a_token_endpoint_asking_for_a_day_fails_within_the_bound(clock):
    def handle(request, transport):
        if request.url.startswith(AUTHORITY) and request.url.endswith('/token'):
            return 429, {'Retry-After': '86400'}, {'error': 'temporarily_unavailable', 'error_description': 'slow down'}
        known = identity_answers(request)
        if known is not None:
            return known
        if 'Authorization' not in request.headers:
            return CHALLENGE
        raise AssertionError('no vault request may be sent without a token')
    transport = Scripted(clock, handle)
    start = clock.now
    with pytest.raises(errors.DeployError) as failure:
        target_over(transport).read_latest()
    assert failure.value.code == errors.THROTTLED, failure.value.message
    assert '86400' in failure.value.message
    assert clock.now - start <= retry.call_time_bound(TIMEOUT)


def test_timeouts_on_every_request_end_within_the_bound(clock):
    transport = Scripted(clock, vault(lambda request, t: ServiceResponseTimeoutError('read timed out')))
    start = clock.now
    with pytest.raises(errors.DeployError) as failure:
        target_over(transport).read_latest()
    assert failure.value.code == errors.TIMEOUT
    assert clock.now - start <= retry.call_time_bound(TIMEOUT)


def test_a_throttled_answer_carries_the_servers_wish_for_the_engine():
    from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import faults

    class Answer(Exception):
        status_code = 429
        response = types.SimpleNamespace(status_code=429, headers={'Retry-After': '7'})
    assert faults.classify(Answer('throttled'), 'import').details['retry_after'] == 7.0
    Answer.response = types.SimpleNamespace(status_code=429, headers={'Retry-After': 'later'})
    assert 'retry_after' not in faults.classify(Answer('throttled'), 'import').details
