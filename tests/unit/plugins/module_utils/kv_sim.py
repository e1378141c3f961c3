# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The simulation harness: one deploy, as a scenario, through the real stack against ``kv_model.Vault``.

What is real: ``frontend.deploy.deploy_one`` (so the module's result dict is what is checked), ``DeployEngine``,
``KeyVaultTarget`` and its ``VaultConnection``, the azure-keyvault-certificates ``CertificateClient`` with the
whole azure-core pipeline (challenge policy, retry policy, error mapping), and azure-identity's
``ClientSecretCredential`` with MSAL (OpenID discovery and the token POST) -- all built by the product itself
from its options. What is simulated: the network (``SimTransport``, an azure-core ``HttpTransport`` that answers
from the model and applies the scenario's faults) and time (``VirtualClock``).

The virtual clock, exactly:

- ``SimTransport.sleep`` advances it: azure-core's retry policy (Retry-After and back-off), the SDK's recovery
  poller and azure-identity's pipeline all sleep through the transport;
- the engine's own ``sleep=`` is the clock's ``sleep`` (``deploy_one`` builds its engine through
  ``frontend.deploy.DeployEngine``, replaced by a subclass that forces it);
- azure-core's retry policy reads ``time.time()`` for its absolute timeout: the ``time`` name inside
  ``azure.core.pipeline.policies._retry`` is replaced by a stand-in whose ``time()``/``monotonic()`` read the clock;
- the product's own retry clock, ``targets.azure_kv.retry.clock`` (its call budgets), is the clock's ``now``;
- a fault ``timeout`` advances the clock by the request's read timeout (or its connection timeout for a connect
  timeout) before the transport raises azure-core's timeout error;
- the SDK's recovery poller waits in a thread joined with a real-time timeout, which no virtual clock can reach:
  ``KeyVaultOperationPoller.wait``/``done`` are replaced by the same loop run in the caller's thread, stopping when
  the wait's timeout has passed on the virtual clock;
- ``time.sleep`` itself fails the scenario (and is recorded, in case a broad ``except`` swallows the failure).

Nothing sleeps for real; MSAL's and azure-core's token-expiry checks keep the real clock (tokens live an hour).
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import time
import traceback
import types
import warnings
from contextlib import ExitStack, contextmanager
from unittest import mock

import azure.core.exceptions as azure_core_exceptions
import azure.core.rest as azure_core_rest
import azure.identity as azure_identity
import azure.keyvault.certificates as kv_certificates
from azure.core.configuration import ConnectionConfiguration
from azure.core.paging import ItemPaged
from azure.core.pipeline.policies import _retry as azure_retry
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse
from azure.keyvault.certificates._shared import _polling as kv_polling
from cryptography.hazmat.primitives import serialization

from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import deploy as engine_deploy, tags as tag_rules
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy as frontend_deploy
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import DEPLOY
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as cert_material
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import sdk as azure_sdk
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.target import KeyVaultTarget
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils import kv_model
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import _RawResponse
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_azure_kv_replay import _Module

from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import retry as kv_retry

try:
    from azure.keyvault.certificates._shared import http_challenge_cache
except ImportError:  # pragma: no cover
    http_challenge_cache = None

NAME = 'www-sim'
CLIENT_ID = '99999999-8888-7777-6666-555555555555'
CLIENT_SECRET = 'sim-client-secret-Qx7v2K9w'  # the identity's secret: must appear nowhere
TRANSPORT_PASSWORD = 'sim-transport-password-Lm3Zr8'  # new_transport_password() in the simulation
PASSPHRASE = 'sim-key-passphrase-Tn4Wq1'
PFX_PASSWORD = 'sim-pfx-password-Hs6Jd0'
START = 1750000000.0
MAX_REQUESTS = 300  # one deploy never needs this many; more means a loop

OPS = ('get', 'import', 'secret', 'patch', 'token', 'challenge', 'get_deleted', 'recover', 'versions', 'get_version',
       'openid')


# -- time ------------------------------------------------------------------------------------------------------

class VirtualClock(object):
    def __init__(self, start=START):
        self._now = float(start)
        self.slept = []  # (why, seconds)

    def now(self):
        return self._now

    def advance(self, seconds, why):
        seconds = max(0.0, float(seconds))
        self.slept.append((why, seconds))
        self._now += seconds

    def sleep(self, seconds):
        self.advance(seconds, 'sleep')


class _TimeOf(object):
    """Stands in for the ``time`` module inside azure-core's retry policy: its clock is the virtual one."""

    def __init__(self, clock):
        self._clock = clock

    def time(self):
        return self._clock.now()

    monotonic = time

    def __getattr__(self, name):
        return getattr(time, name)


# -- faults ------------------------------------------------------------------------------------------------------

class HttpDate(object):
    """A Retry-After given as an HTTP date ``seconds`` from now (azure-core parses it against the real clock)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def header(self):
        return email.utils.formatdate(time.time() + self.seconds, usegmt=True)

    def __repr__(self):
        return 'HttpDate(%d)' % self.seconds

    def __eq__(self, other):
        return isinstance(other, HttpDate) and other.seconds == self.seconds

    def __hash__(self):
        return hash(('HttpDate', self.seconds))


def retry_after_header(value):
    if value is None:
        return None
    if isinstance(value, HttpDate):
        return value.header()
    return str(value)


def retry_after_wish(value):
    """The seconds a Retry-After value asks for, or None (absent or not a number)."""
    if isinstance(value, HttpDate):
        return value.seconds
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


class Fault(object):
    """What happens to one request.

    kind:
      ``throttle``     429 (Throttled) with ``retry_after`` (None: no header; an int; 'garbage'; HttpDate)
      ``error``        ``status`` 5xx (or 403: a permission revoked meanwhile) before the model sees the request
                       (nothing committed), maybe with a Retry-After
      ``timeout``      no answer before commit: the clock advances by the read (``phase='read'``) or connection
                       (``phase='connect'``) timeout, then azure-core's timeout error
      ``commit``       the model commits, then the client sees ``status`` 500/503/504, or ``outcome`` 'cut'
                       (ServiceResponseError, connection reset) or 'timeout' (read timeout)
      ``garble``       the model commits and answers, with ``field`` of the answer replaced (x5t, id, cer, value)
      ``corrupt``      an import stores another certificate than the one sent (as a re-encoding proxy might) and
                       answers truthfully: the one case where a rollback is called for
    """

    def __init__(self, kind, **params):
        self.kind = kind
        self.params = params

    def __getattr__(self, name):
        try:
            return self.__dict__['params'][name]
        except KeyError:
            raise AttributeError(name)

    def __repr__(self):
        return 'Fault(%r%s)' % (self.kind, ''.join(', %s=%r' % kv for kv in sorted(self.params.items())))

    def __eq__(self, other):
        return isinstance(other, Fault) and (self.kind, self.params) == (other.kind, other.params)

    def __hash__(self):
        return hash((self.kind, tuple(sorted(self.params.items()))))


PASS = Fault('pass')


class Writer(object):
    """Another writer's action at one request: ``action`` import (``style`` untagged or managed: a foreign
    certificate without our tag, or tagged by another run of this collection), update (``style`` disown: our tag
    removed, disable, retag: a tag added) or delete (soft delete), ``when`` before or after the request."""

    def __init__(self, action, when='before', style=''):
        self.action = action
        self.when = when
        self.style = style

    def __repr__(self):
        return 'Writer(%r, when=%r%s)' % (self.action, self.when, ', style=%r' % self.style if self.style else '')

    def __eq__(self, other):
        return isinstance(other, Writer) and (self.action, self.when, self.style) == (other.action, other.when, other.style)

    def __hash__(self):
        return hash((self.action, self.when, self.style))


# -- scenario ------------------------------------------------------------------------------------------------------

STARTS = ('absent', 'owned', 'foreign', 'several', 'deleted_owned', 'deleted_foreign')


class Scenario(object):
    """One deploy: the vault's starting state, the deploy's options, the faults by (operation, occurrence).

    ``faults`` maps ``(op, n)`` to a Fault: the n-th request of that operation (1-based, retries counted) gets it;
    ``n == 0`` means every request of that operation. Operations: see ``OPS``. ``writers`` maps ``(op, n)`` the
    same way to another writer's action (a ``Writer``) just before or after that request.
    """

    DEFAULTS = dict(
        start='owned', current='A', current_enabled=True, current_exportable=True, current_content_type='pkcs12',
        current_tags=None, material='B', form='pem', rollback='auto', on_soft_deleted='fail', take_ownership=False,
        force=False, enabled=True, tags=None, check_mode=False, diff=False, content_type='pkcs12', exportable=True,
        timeout=5, recovery_delay=0, faults=None, writers=None,
    )

    def __init__(self, **values):
        unknown = set(values) - set(self.DEFAULTS)
        if unknown:
            raise TypeError('unknown scenario fields: %s' % ', '.join(sorted(unknown)))
        for key, default in self.DEFAULTS.items():
            setattr(self, key, values.get(key, default))
        self.current_tags = dict(self.current_tags or {})
        self.tags = dict(self.tags or {})
        self.faults = dict(self.faults or {})
        self.writers = dict(self.writers or {})

    def __repr__(self):
        shown = ['%s=%r' % (key, getattr(self, key)) for key, default in self.DEFAULTS.items()
                 if getattr(self, key) != (default if default is not None else getattr(self, key).__class__())]
        return 'Scenario(%s)' % ', '.join(shown)


# -- materials ---------------------------------------------------------------------------------------------------

class Entry(object):
    """One certificate with its key, in every form a scenario or the model needs, and its secret strings (I5)."""

    def __init__(self, name, key, leaf, chain):
        self.name = name
        self.material = cert_material.Material(leaf, key, chain)
        self.thumbprint = self.material.thumbprint
        self.cert_pem = leaf.public_bytes(serialization.Encoding.PEM).decode('ascii')
        self.chain_pem = ''.join(c.public_bytes(serialization.Encoding.PEM).decode('ascii') for c in chain)
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode('ascii')
        self.key_pem_encrypted = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode())).decode('ascii')
        self.pfx_b64 = kv_model.b64(cert_material.pkcs12.serialize_key_and_certificates(
            b'sim', key, leaf, chain, serialization.BestAvailableEncryption(PFX_PASSWORD.encode())))
        self.stored = kv_model.Stored(key, leaf, list(chain))
        self.secrets = self._secret_strings(key)

    def _secret_strings(self, key):
        """Pieces of the key that must never be shown: 40-character windows inside the PEM lines of each encoding
        (so they match the PEM text, its repr and the bare base64 alike), and of the exported secret values."""
        texts = [self.key_pem]
        for fmt in (serialization.PrivateFormat.TraditionalOpenSSL,):
            texts.append(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode('ascii'))
        out = set()
        for text in texts:
            lines = [line for line in text.splitlines() if line and not line.startswith('-----')]
            for line in lines[1:-1]:  # the first line of an RSA/EC key is the same for every key of its kind
                if len(line) >= 50:
                    out.add(line[10:50])
        value = self.stored.value(kv_model.PKCS12, True)  # the backing secret's PKCS#12 (the PEM one holds key_pem)
        out.update(value[i:i + 40] for i in range(len(value) // 2, len(value) - 200, 400))
        return out


class Materials(object):
    """The certificates of every scenario, made once: ours (A, A2 with A's key, B, C) and another writer's (F, G)."""

    OURS = ('A', 'A2', 'B', 'C')
    FOREIGN = ('F', 'G')

    def __init__(self, pki):
        from cryptography.hazmat.primitives.asymmetric import ec
        ka = pki.rsa(fresh=True)
        kb = pki.rsa(fresh=True)
        kc = pki.ec(ec.SECP256R1)
        kf = pki.ec(ec.SECP256R1)
        kg = pki.ec(ec.SECP384R1)
        self.entries = {}
        for name, key, subject in (('A', ka, 'www.example.com'), ('A2', ka, 'www.example.com'), ('B', kb, 'www.example.com'),
                                   ('C', kc, 'www.example.com'), ('F', kf, 'foreign.example.net'),
                                   ('G', kg, 'other.example.net')):
            h = pki.hierarchy(leaf_key=key, subject=subject)
            self.entries[name] = Entry(name, key, h['leaf'], [h['inter'], h['root']])
        self.by_thumbprint = dict((e.thumbprint, e) for e in self.entries.values())

    def __getitem__(self, name):
        return self.entries[name]

    def secrets(self):
        out = {TRANSPORT_PASSWORD, CLIENT_SECRET, PASSPHRASE, PFX_PASSWORD}
        for name in self.OURS:
            out |= self.entries[name].secrets
        for payload in _PKCS12_MEMO.values():
            text = kv_model.b64(payload)
            out.update(text[i:i + 40] for i in range(len(text) // 2, len(text) - 200, 400))
        return out


# memoised product serialisations: (args) -> bytes / Material
_PKCS12_MEMO = {}
_PARSE_MEMO = {}


def _memo_build_pkcs12(original):
    def build(material, password, friendly_name=None):
        key = (material.thumbprint, material.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
            tuple(c.fingerprint(cert_material.hashes.SHA256()) for c in material.chain), password, friendly_name)
        if key not in _PKCS12_MEMO:
            _PKCS12_MEMO[key] = original(material, password, friendly_name)
        return _PKCS12_MEMO[key]
    return build


_CHECKED_KEYS = {}


def _memo_key_check(original):
    """check_private_key once per key object (OpenSSL's full RSA check costs ~0.1 s); a failure is never remembered."""
    def check_key(key):
        if id(key) not in _CHECKED_KEYS:
            original(key)
            _CHECKED_KEYS[id(key)] = key  # kept alive, so the id stays its own
    return check_key


def _memo(name, original):
    def parse(*args, **kwargs):
        key = (name, args, tuple(sorted(kwargs.items())))
        try:
            hit = _PARSE_MEMO.get(key)
        except TypeError:  # unhashable arguments: parse
            return original(*args, **kwargs)
        if hit is None:
            hit = _PARSE_MEMO[key] = original(*args, **kwargs)
        return hit
    return parse


# -- the transport -------------------------------------------------------------------------------------------------

class Request(object):
    """One request as the transport saw it, with what was done to it and what was answered."""

    def __init__(self, index, op, method, url, fault, call, at):
        self.index = index
        self.op = op
        self.method = method
        self.url = url
        self.fault = fault
        self.call = call
        self.at = at
        self.status = None
        self.retry_after = None  # the Retry-After value sent with the answer (scenario form)
        self.raised = None
        self.writer = None

    def __repr__(self):
        path = self.url.split('?')[0].split('.test', 1)[-1]
        answer = self.raised or self.status
        return '#%d %s %s %s -> %s%s%s' % (self.index, self.op, self.method, path, answer,
                                           '' if self.fault is PASS else ' [%r]' % (self.fault,),
                                           '' if self.writer is None else ' [%r]' % (self.writer,))


def classify(request):
    url = request.url.split('?')[0]
    if kv_model.AUTHORITY_HOST in url:
        return 'openid' if request.method == 'GET' else 'token'
    if not (request.headers.get('Authorization') or request.headers.get('authorization')):
        return 'challenge'
    parts = [p for p in url.split('.test', 1)[-1].split('/') if p]
    if parts[0] == 'secrets':
        return 'secret'
    if parts[0] == 'deletedcertificates':
        return 'recover' if request.method == 'POST' else 'get_deleted'
    if len(parts) == 2:
        return 'get'
    if parts[2] == 'import':
        return 'import'
    if parts[2] == 'versions':
        return 'versions'
    return 'patch' if request.method == 'PATCH' else 'get_version'


class SimTransport(HttpTransport):
    """The network of the simulation: every request goes to ``sim.vault`` through the scenario's faults."""

    def __init__(self, sim):
        super(SimTransport, self).__init__()
        self.sim = sim
        self.requests = []
        self.counts = {}
        timeout = sim.scenario.timeout
        self.connection_config = ConnectionConfiguration(connection_timeout=timeout, read_timeout=timeout)

    def open(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    def sleep(self, duration):
        self.sim.clock.advance(duration, 'transport.sleep')

    def _fault(self, op):
        n = self.counts[op] = self.counts.get(op, 0) + 1
        scenario = self.sim.scenario
        fault = scenario.faults.get((op, n)) or scenario.faults.get((op, 0)) or PASS
        return fault, scenario.writers.get((op, n)) or scenario.writers.get((op, 0))

    def send(self, request, **kwargs):
        sim = self.sim
        if len(self.requests) >= MAX_REQUESTS:
            raise AssertionError('more than %d requests in one deploy: a loop' % MAX_REQUESTS)
        op = classify(request)
        fault, writer = self._fault(op)
        seen = Request(len(self.requests) + 1, op, request.method, request.url, fault, sim.active_call, sim.clock.now())
        seen.writer = writer
        self.requests.append(seen)
        call = sim.active_call
        if call is not None:
            call.requests += 1
        else:
            sim.loose_requests += 1
        vault = sim.vault
        name = NAME
        if writer is not None and writer.when == 'before':
            sim.foreign(writer.action, writer.style)
        if fault.kind == 'throttle':
            return self._answer(request, seen, kv_model.error(
                429, 'Throttled', 'Request was not processed because too many requests were received. Reason: '
                'VaultRequestTypeLimitReached.', headers=self._retry_after(seen, fault.retry_after)))
        if fault.kind == 'error':
            return self._answer(request, seen, kv_model.error(
                fault.status, {403: 'Forbidden', 500: 'InternalServerError', 502: 'BadGateway', 503: 'ServiceUnavailable',
                               504: 'GatewayTimeout'}[fault.status],
                'Caller is not authorized to perform action on resource. Action: '
                '\'Microsoft.KeyVault/vaults/certificates/read\'' if fault.status == 403 else 'The service is unavailable.',
                headers=self._retry_after(seen, fault.params.get('retry_after'))))
        if fault.kind == 'timeout':
            return self._timeout(seen, fault.phase, kwargs)
        body = request.content
        if isinstance(body, str):
            body = body.encode('utf-8')
        if body is None:
            body = getattr(request, 'data', None) or b''
        vault.corrupt_next = self.sim.materials['G'].stored if fault.kind == 'corrupt' and op == 'import' else None
        answer = vault.handle(request.method, request.url, dict(request.headers), body)
        if fault.kind == 'commit':
            outcome = fault.outcome
            if outcome == 'cut':
                seen.raised = 'ServiceResponseError'
                raise azure_core_exceptions.ServiceResponseError(
                    "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))")
            if outcome == 'timeout':
                return self._timeout(seen, 'read', kwargs)
            return self._answer(request, seen, kv_model.error(outcome, 'ServiceUnavailable', 'The service is unavailable.'))
        if op in ('get', 'versions') and answer.status in (200, 404) and name in request.url:
            vault.note_read('read_latest' if op == 'get' else 'read_versions', name, answer)
        if fault.kind == 'garble' and answer.status == 200 and isinstance(answer.body, dict):
            answer = kv_model.Answer(answer.status, sim.garble(answer.body, fault.field), answer.headers)
        if writer is not None and writer.when == 'after':
            sim.foreign(writer.action, writer.style)
        return self._answer(request, seen, answer)

    def _retry_after(self, seen, value):
        seen.retry_after = value
        header = retry_after_header(value)
        return {'Retry-After': header} if header is not None else {}

    def _timeout(self, seen, phase, kwargs):
        config = self.connection_config
        if phase == 'connect':
            wait = kwargs.get('connection_timeout') or config.timeout
            self.sim.clock.advance(wait, 'connect timeout')
            seen.raised = 'ServiceRequestTimeoutError'
            raise azure_core_exceptions.ServiceRequestTimeoutError(
                "HTTPSConnectionPool(host='%s', port=443): Max retries exceeded (Caused by ConnectTimeoutError("
                "'Connection to %s timed out. (connect timeout=%s)'))" % (kv_model.VAULT_HOST, kv_model.VAULT_HOST, wait))
        wait = kwargs.get('read_timeout') or config.read_timeout
        self.sim.clock.advance(wait, 'read timeout')
        seen.raised = 'ServiceResponseTimeoutError'
        raise azure_core_exceptions.ServiceResponseTimeoutError(
            "HTTPSConnectionPool(host='%s', port=443): Read timed out. (read timeout=%s)" % (kv_model.VAULT_HOST, wait))

    @staticmethod
    def _answer(request, seen, answer):
        seen.status = answer.status
        headers, data = answer.payload()
        raw = _RawResponse(answer.status, headers, data)
        raw.reason = answer.reason
        response = RestHttpClientTransportResponse(request=request, internal_response=raw)
        response.read()
        return response


# -- one deploy ----------------------------------------------------------------------------------------------------

class Call(object):
    """One SDK call (a public CertificateClient method, a poller's wait, one page of a listing): virtual start/end."""

    def __init__(self, name, start):
        self.name = name
        self.start = start
        self.end = None
        self.requests = 0
        self.error = None

    @property
    def duration(self):
        return self.end - self.start

    def __repr__(self):
        return 'Call(%s, %.1fs, %d requests%s)' % (self.name, self.duration, self.requests,
                                                   ', raised %s' % type(self.error).__name__ if self.error else '')


class _CountingClient(object):
    """The real CertificateClient, its public calls timed on the virtual clock."""

    def __init__(self, client, sim):
        self._client = client
        self._sim = sim

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name.startswith('_') or name == 'close' or not callable(attr):
            return attr
        return functools.partial(self._sim.sdk_call, name, attr)

    def close(self):
        self._client.close()


class _TimedPages(object):
    def __init__(self, paged, sim, name):
        self._paged = paged
        self._sim = sim
        self._name = name

    def __iter__(self):
        iterator = iter(self._paged)
        while True:
            try:
                item = self._sim.sdk_call(self._name + '.next', next, iterator)
            except StopIteration:
                return
            yield item

    def __getattr__(self, name):
        return getattr(self._paged, name)


class Simulation(object):
    """One scenario: the model in its starting state, the transport, the clock; ``run()`` deploys once."""

    def __init__(self, scenario, materials):
        self.scenario = scenario
        self.materials = materials
        self.clock = VirtualClock()
        self.vault = kv_model.Vault(self.clock, scenario.recovery_delay)
        self.transport = SimTransport(self)
        self.calls = []
        self.transport_options = []
        self.active_call = None
        self.loose_requests = 0
        self.engines = []
        self.records = []
        self.warnings = []
        self.real_sleeps = []
        self.foreign_count = 0
        self.elapsed = None
        self.run_error = None
        self._set_up()
        self.start_seq = len(self.vault.events)

    # -- the starting state --------------------------------------------------------------------------------------

    def managed_tags(self, user_tags=None):
        return tag_rules.desired_tags(dict(user_tags or {}), NAME)

    def _set_up(self):
        s = self.scenario
        vault = self.vault
        ctype = kv_model.PEM if s.current_content_type == 'pem' else kv_model.PKCS12
        if s.start == 'absent':
            return
        if s.start in ('foreign', 'deleted_foreign'):
            vault.add_version(NAME, self.materials['F'].stored, dict(s.current_tags), enabled=s.current_enabled,
                              content_type=ctype, exportable=s.current_exportable, author='setup')
        else:
            if s.start == 'several':
                vault.add_version(NAME, self.materials['G'].stored, {'team': 'web'}, author='setup')
                older = 'C' if s.current != 'C' else 'B'
                vault.add_version(NAME, self.materials[older].stored, self.managed_tags(), author='setup')
            vault.add_version(NAME, self.materials[s.current].stored, self.managed_tags(s.current_tags),
                              enabled=s.current_enabled, content_type=ctype, exportable=s.current_exportable, author='setup')
        if s.start.startswith('deleted_'):
            vault.delete(NAME, author='setup')

    # -- the other writer ------------------------------------------------------------------------------------------

    def foreign(self, action, style):
        vault = self.vault
        self.foreign_count += 1
        if action == 'import':
            if vault.deleted(NAME) is not None or (NAME in vault.certs and vault.certs[NAME].versions and vault.live(NAME) is None):
                return  # Key Vault would refuse it (409)
            entry = self.materials['F' if self.foreign_count % 2 else 'G']
            tags = {} if style == 'untagged' else {tag_rules.MANAGED_BY: tag_rules.MANAGED_BY_VALUE,
                                                   tag_rules.CERTIFICATE_ID: 'someone-else'}
            vault.add_version(NAME, entry.stored, tags, author='foreign')
        elif action == 'update':
            cert = vault.live(NAME)
            if cert is None:
                return
            latest = cert.latest()
            if style == 'disown':
                vault.update_version(NAME, latest, tags={'owner': 'someone-else'})
            elif style == 'disable':
                vault.update_version(NAME, latest, enabled=False)
            else:
                vault.update_version(NAME, latest, tags=dict(latest.tags, touched='yes'))
        elif action == 'delete':
            vault.delete(NAME)

    def garble(self, body, field):
        body = json.loads(json.dumps(body))
        other = self.materials['G']
        if field == 'x5t' and 'x5t' in body:
            body['x5t'] = kv_model.b64url(other.stored.thumb)
        elif field == 'cer' and 'cer' in body:
            body['cer'] = kv_model.b64(other.stored.der)
        elif field == 'id' and 'id' in body:
            body['id'] = body['id'].rsplit('/', 1)[0] + '/0000000000000000000000000000dead'
        elif field == 'value' and 'value' in body and isinstance(body['value'], str):
            body['value'] = other.stored.value(body.get('contentType') or kv_model.PKCS12, True)
        elif field == 'value' and isinstance(body.get('value'), list) and body['value']:
            body['value'][0]['x5t'] = kv_model.b64url(other.stored.thumb)
        return body

    # -- the SDK, as the product builds it -------------------------------------------------------------------------

    def sdk(self):
        """The SDK as ``sdk.load`` returns it, but for the transport: the product builds azure-core's
        ``RequestsTransport`` (and wraps it in its bounded transport) and gets the simulation's. The vault client's
        public calls are counted and timed (``sdk_call``)."""
        return azure_sdk.Sdk(
            identity=_Module(azure_identity, ClientSecretCredential=self._credential),
            certificates=_Module(kv_certificates, CertificateClient=self._client),
            core_exceptions=azure_core_exceptions, core_rest=azure_core_rest,
            core_transport=types.SimpleNamespace(RequestsTransport=self._requests_transport))

    def _requests_transport(self, **options):
        self.transport_options.append(dict(options))
        self.transport.connection_config = ConnectionConfiguration(**dict(
            (k, v) for k, v in options.items() if k in ('connection_timeout', 'read_timeout')))
        return self.transport

    def _credential(self, *args, **options):
        assert options.get('disable_instance_discovery') is True, 'a custom authority must skip instance discovery'
        assert 'transport' in options, 'the credential must run on the product\'s bounded transport'
        return azure_identity.ClientSecretCredential(*args, **options)

    def _client(self, vault_url, credential, **options):
        assert 'transport' in options, 'the vault client must run on the product\'s bounded transport'
        return _CountingClient(kv_certificates.CertificateClient(vault_url, credential, **options), self)

    def sdk_call(self, name, func, *args, **kwargs):
        if self.active_call is not None:  # a call inside a call (none expected): part of the outer one
            return func(*args, **kwargs)
        call = self.active_call = Call(name, self.clock.now())
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            call.end = self.clock.now()
            self.active_call = None
            self.calls.append(call)
        if name.startswith('begin_') and hasattr(result, 'wait'):
            result.wait = functools.partial(self.sdk_call, 'poller.wait', result.wait)
        if isinstance(result, ItemPaged):
            return _TimedPages(result, self, name)
        return result

    def connect(self, settings):
        return KeyVaultTarget(settings, env=self.env, sdk_loader=self.sdk)

    @property
    def env(self):
        return {'AZURE_CLIENT_SECRET': CLIENT_SECRET}

    def params(self):
        s = self.scenario
        entry = self.materials[s.material]
        params = dict((name, spec.get('default')) for name, spec in DEPLOY.options.items())
        params.update(
            vault_url=kv_model.VAULT_URL, certificate_name=NAME, cloud='custom', authority_host=kv_model.AUTHORITY,
            credential_mode='client_secret', client_id=CLIENT_ID, tenant_id=kv_model.TENANT, timeout=s.timeout,
            content_type=s.content_type, exportable=s.exportable, enabled=s.enabled, tags=dict(s.tags),
            take_ownership=s.take_ownership, rollback=s.rollback, on_soft_deleted=s.on_soft_deleted, force=s.force)
        if s.form == 'pfx':
            params.update(pfx=entry.pfx_b64, pfx_password=PFX_PASSWORD)
        else:
            params.update(certificate=entry.cert_pem, chain=entry.chain_pem,
                          private_key=entry.key_pem_encrypted if s.form == 'pem_passphrase' else entry.key_pem,
                          private_key_passphrase=PASSPHRASE if s.form == 'pem_passphrase' else None)
        return params

    # -- patches -----------------------------------------------------------------------------------------------------

    @contextmanager
    def patched(self):
        sim = self

        class SimEngine(engine_deploy.DeployEngine):
            def __init__(self, target, *args, **kwargs):
                kwargs['sleep'] = sim.clock.sleep
                super(SimEngine, self).__init__(target, *args, **kwargs)
                sim.engines.append(self)

        def real_sleep(seconds):
            sim.real_sleeps.append((seconds, ''.join(traceback.format_stack(limit=8))))
            raise AssertionError('time.sleep(%r) in a simulation: every wait must go through the virtual clock' % (seconds,))

        def virtual_wait(poller, timeout=None):
            method = poller._polling_method
            start = sim.clock.now()
            while not method.finished():
                method._update_status()
                if method.finished():
                    break
                interval = method._polling_interval
                if timeout is not None and sim.clock.now() + interval - start > timeout:
                    sim.clock.advance(max(0.0, timeout - (sim.clock.now() - start)), 'poller wait timeout')
                    return
                method._pipeline_response.context.transport.sleep(interval)

        def virtual_done(poller):
            return poller._polling_method.finished()

        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(azure_retry, 'time', _TimeOf(self.clock)))
            stack.enter_context(mock.patch.object(kv_retry, 'clock', self.clock.now))
            stack.enter_context(mock.patch.object(frontend_deploy, 'DeployEngine', SimEngine))
            stack.enter_context(mock.patch.object(cert_material, 'new_transport_password', lambda: TRANSPORT_PASSWORD))
            stack.enter_context(mock.patch.object(cert_material, 'build_pkcs12', _memo_build_pkcs12(cert_material.build_pkcs12)))
            stack.enter_context(mock.patch.object(cert_material, 'check_private_key',
                                                  _memo_key_check(cert_material.check_private_key)))
            for parser in ('load_exported_secret', 'load_pfx_material', 'load_pem_material'):
                stack.enter_context(mock.patch.object(cert_material, parser, _memo(parser, getattr(cert_material, parser))))
            stack.enter_context(mock.patch.object(time, 'sleep', real_sleep))
            stack.enter_context(mock.patch.object(kv_polling.KeyVaultOperationPoller, 'wait', virtual_wait))
            stack.enter_context(mock.patch.object(kv_polling.KeyVaultOperationPoller, 'done', virtual_done))
            stack.enter_context(self._captured_logs())
            caught = stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter('always')
            if http_challenge_cache is not None:
                http_challenge_cache.clear()
            try:
                yield
            finally:
                self.warnings.extend('%s: %s' % (w.category.__name__, w.message) for w in caught)
                if http_challenge_cache is not None:
                    http_challenge_cache.clear()

    @contextmanager
    def _captured_logs(self):
        """Every record of every logger, at every level, to ``self.records`` (and to no other handler meanwhile):
        each logger is enabled for DEBUG whatever its level, and its records go to the list instead of handlers."""
        records = self.records
        disabled = logging.root.manager.disable

        def call_handlers(logger, record):
            records.append(record)

        try:
            logging.disable(logging.NOTSET)
            with mock.patch.object(logging.Logger, 'isEnabledFor', lambda logger, level: True), \
                    mock.patch.object(logging.Logger, 'callHandlers', call_handlers):
                yield
        finally:
            logging.disable(disabled)

    # -- run -----------------------------------------------------------------------------------------------------------

    def run(self):
        """Deploy once through ``deploy_one``; returns its CertificateRun (or None when it raised, see ``run_error``)."""
        s = self.scenario
        with self.patched():
            start = self.clock.now()
            try:
                return frontend_deploy.deploy_one(self.params(), self.env, self.connect, check_mode=s.check_mode, diff=s.diff)
            except Exception as exc:  # not a DeployError: deploy_one turns those into results
                self.run_error = (exc, traceback.format_exc())
                return None
            finally:
                self.elapsed = self.clock.now() - start

    def trace(self):
        lines = ['requests:'] + ['  %r' % r for r in self.transport.requests]
        lines += ['calls:'] + ['  %r' % c for c in self.calls if c.requests]
        lines += ['events:'] + ['  %r' % e for e in self.vault.events]
        lines += ['virtual seconds: %.1f (sleeps: %s)' % (self.elapsed or 0, ', '.join('%s %.1f' % s for s in self.clock.slept))]
        return '\n'.join(lines)


# -- the invariants ------------------------------------------------------------------------------------------------

class Violation(object):
    """A broken invariant: ``kind`` is 'I<n>.<what>' (``code`` the invariant), ``text`` the evidence."""

    def __init__(self, kind, text):
        self.kind = kind
        self.code = kind.split('.')[0]
        self.text = text

    def __repr__(self):
        return '%s: %s' % (self.kind, self.text)


def call_time_bound(timeout):
    """The most virtual seconds one SDK call may take, as the adapter states it."""
    return kv_retry.call_time_bound(timeout)


def engine_sleep_bound(engine):
    """The most the engine's own sleeps may add up to, as the engine states it."""
    return engine.sleep_bound()


class _DateWish(float):
    """A wish given as an HTTP date (azure-core reads it against the real clock: a second may be lost)."""


def _over_budget_wish(sim, call, whole):
    """The Retry-After wish of the last answer ``call`` got, when it was a 429 asking for more than ``whole``."""
    answers = [r for r in sim.transport.requests if r.call is call]
    if not answers or answers[-1].status != 429:
        return None
    wish = retry_after_wish(answers[-1].retry_after)
    if wish is None or wish <= whole:
        return None
    return _DateWish(wish) if isinstance(answers[-1].retry_after, HttpDate) else wish


def _version(vault, vid):
    cert = vault.certs.get(NAME)
    return cert.version(vid) if cert is not None and vid else None


def check(sim, run):
    """Every violation of I1-I6 in this finished simulation."""
    s = sim.scenario
    vault = sim.vault
    out = []
    events = vault.events[sim.start_seq:]
    ours = [e for e in events if e.actor == 'us']
    writes = [e for e in ours if e.write]
    imports = [e for e in writes if e.kind == 'import']
    rollbacks = [e for e in imports if e.detail.get('rollback_of')]
    plain = [e for e in imports if not e.detail.get('rollback_of')]
    material = sim.materials[s.material]

    if sim.run_error is not None:
        out.append(Violation('I3.exception', 'deploy_one raised %s instead of returning a result:\n%s' % (
            type(sim.run_error[0]).__name__, sim.run_error[1])))
        result = {}
    else:
        result = run.result

    # I1: no rollback over a version another writer created after the snapshot (the last read before our first
    # import) and before our last read ahead of the rollback import (a version created after that read is a race
    # no reader can close)
    first_import = plain[0].seq if plain else None
    snapshot_reads = [e for e in ours if e.kind == 'read_latest' and first_import is not None and e.seq < first_import
                      and e.detail.get('status') in (200, 404)]
    snapshot_seq = snapshot_reads[-1].seq if snapshot_reads else sim.start_seq
    for rollback in rollbacks:
        reads = [e for e in ours if e.kind in ('read_latest', 'read_versions') and e.seq < rollback.seq
                 and e.detail.get('status') == 200]
        seen_until = reads[-1].seq if reads else rollback.seq
        buried = [e for e in events if e.actor == 'foreign' and e.kind == 'import' and snapshot_seq < e.seq < seen_until]
        if buried:
            out.append(Violation('I1.rollback-over-foreign', 'the rollback import %r re-imported an older version over %s, which another writer '
                                 'created before our last read' % (rollback, buried)))

    # I3: a rollback only over a version of ours that holds another certificate than the one sent
    for rollback in rollbacks:
        over = _version(vault, rollback.detail.get('rollback_of'))
        if over is not None and over.author == 'us' and over.thumbprint == material.thumbprint:
            out.append(Violation('I3.rollback-needless', 'rolled back over version %s, which holds the certificate that was '
                                 'sent (%s): the decision was not made on what the vault holds' % (over.id, over.thumbprint)))

    # I2: at most one new version and one rollback version
    if len(plain) > 1:
        out.append(Violation('I2.two-imports', 'one deploy imported %d versions: %s' % (len(plain), plain)))
    if len(rollbacks) > 1:
        out.append(Violation('I2.two-rollbacks', 'one deploy imported %d rollback versions: %s' % (len(rollbacks), rollbacks)))

    # I6: no change to an object this collection does not own
    if s.check_mode and writes:
        out.append(Violation('I6.check-mode-write', 'check mode wrote: %s' % writes))
    if not s.take_ownership:
        for write in writes:
            if write.kind == 'recover':
                if not kv_model.is_managed(write.detail.get('tags')):
                    out.append(Violation('I6.recover-not-owned', 'recovered a deleted certificate that does not carry the managed tag: %r' % write))
                continue
            reads = [e for e in ours if e.kind == 'read_latest' and e.seq < write.seq and e.detail.get('status') == 200]
            if reads:
                read = reads[-1]
                seen = [e for e in vault.events[:read.seq] if e.version == read.version and e.kind in ('import', 'update')]
                tags = seen[-1].detail.get('tags') if seen else None
                if not kv_model.is_managed(tags):
                    out.append(Violation('I6.write-not-owned', '%r wrote although the last read showed a version without the managed tag '
                                         '(%r, tags %r)' % (write, read, tags)))

    # I3: the result agrees with the model
    if result:
        changed = result.get('changed')
        outcome = result.get('outcome')
        if writes and not changed:
            out.append(Violation('I3.changed-false-after-write', 'changed is %r although the vault was written: %s' % (changed, writes)))
        # (A failure may say changed when it cannot tell whether a write committed; a success must not.)
        if changed and not writes and not s.check_mode and not result.get('failed'):
            out.append(Violation('I3.changed-without-write', 'changed is true although nothing was written'))
        if outcome == 'unchanged' and writes:
            out.append(Violation('I3.unchanged-after-write', 'outcome unchanged although the vault was written: %s' % writes))
        cert = result.get('certificate') or {}
        if outcome in ('created', 'rotated', 'updated', 'unchanged', 'rolled_back') and not s.check_mode:
            version = _version(vault, cert.get('version'))
            if version is None:
                out.append(Violation('I3.version-not-in-vault', 'outcome %s reports version %r, which the vault does not hold'
                                     % (outcome, cert.get('version'))))
            elif version.thumbprint != cert.get('thumbprint'):
                out.append(Violation('I3.thumbprint-not-stored', 'outcome %s reports thumbprint %s for version %s, which holds %s'
                                     % (outcome, cert.get('thumbprint'), version.id, version.thumbprint)))
            elif outcome in ('created', 'rotated') and version.id not in [e.version for e in plain]:
                out.append(Violation('I3.not-our-import', 'outcome %s names version %s, which this deploy did not import' % (outcome, version.id)))
            elif outcome in ('created', 'rotated', 'updated', 'unchanged') and version.thumbprint != material.thumbprint:
                out.append(Violation('I3.not-the-deployed-certificate', 'outcome %s names version %s holding %s, not the deployed %s'
                                     % (outcome, version.id, version.thumbprint, material.thumbprint)))
        rollback = result.get('rollback') or {}
        if rollback.get('succeeded') and outcome != 'rolled_back':
            out.append(Violation('I3.rollback-outcome', 'rollback succeeded but outcome is %r' % outcome))
        if outcome == 'rolled_back':
            restored = _version(vault, rollback.get('version'))
            previous = result.get('previous') or {}
            if restored is None or restored.id not in [e.version for e in rollbacks]:
                out.append(Violation('I3.rollback-not-ours', 'rolled back to version %r, which is no rollback import of this deploy'
                                     % rollback.get('version')))
            elif restored.thumbprint != previous.get('thumbprint'):
                out.append(Violation('I3.rollback-wrong-certificate', 'rolled back to %s, which holds %s, not the previous %s'
                                     % (restored.id, restored.thumbprint, previous.get('thumbprint'))))
            else:
                imported_at = [r.seq for r in rollbacks if r.version == restored.id][0]
                confirmed = [e for e in ours if e.kind == 'read_latest' and e.seq > imported_at and e.version == restored.id]
                if not confirmed:
                    out.append(Violation('I3.rollback-unconfirmed', '"rolled back" was reported without a read showing version %s latest again'
                                         % restored.id))
        previous = result.get('previous')
        if previous and not s.check_mode:
            version = _version(vault, previous.get('version'))
            if version is None or version.thumbprint != previous.get('thumbprint'):
                out.append(Violation('I3.previous-mismatch', 'previous %r does not match the vault (%r)' % (previous, version)))

    # I4: virtual time within the documented budget
    per_call = call_time_bound(s.timeout)
    counted = [c for c in sim.calls if c.requests]
    for call in counted:
        if call.duration > per_call + 1e-6:
            out.append(Violation('I4.call-over-budget', '%r took %.1f virtual seconds; the bound for timeout %d is %.1f'
                                 % (call, call.duration, s.timeout, per_call)))
    sleeps = sum(engine_sleep_bound(engine) for engine in sim.engines)
    budget = (len(counted) + sim.loose_requests) * per_call + sleeps
    if sim.elapsed is not None and sim.elapsed > budget + 1e-6:
        out.append(Violation('I4.deploy-over-budget', 'the deploy took %.1f virtual seconds; %d calls x %.1f + %.1f engine sleeps = %.1f'
                             % (sim.elapsed, len(counted), per_call, sleeps, budget)))
    if sim.real_sleeps:
        out.append(Violation('I4.real-sleep', 'time.sleep was called: %s' % sim.real_sleeps[0][1]))
    # A run whose last failed call ended on a Retry-After longer than a call's whole budget names the wish in its
    # message (its code may be an earlier failure's: an import that timed out, then this read; the regression tests
    # hold the plain cases to ``throttled``).
    failed = [c for c in counted if c.error is not None]
    if result.get('failed') and failed and failed[-1] is counted[-1]:
        whole = kv_retry.TOTAL_TIMEOUT_FACTOR * s.timeout
        wish = _over_budget_wish(sim, failed[-1], whole)
        if wish is not None:
            said = [str(int(wish))] + ([str(int(wish) - 1)] if isinstance(wish, _DateWish) else [])
            named = any(w in (result.get('msg') or '') for w in said)
            if not named:
                out.append(Violation('I4.throttle-not-reported', 'the server asked to retry after %s s (more than the '
                                     '%.1f s budget of a call); the run failed %s: %s'
                                     % (int(wish), whole, result.get('error_code'), result.get('msg'))))

    # I5: no key byte, no password anywhere
    secrets = sim.materials.secrets()
    texts = [('result', json.dumps(result, default=str, sort_keys=True))]
    texts += [('warning', w) for w in sim.warnings]
    for record in sim.records:
        try:
            text = record.getMessage()
        except Exception:
            text = '%s %r' % (record.msg, record.args)
        if record.exc_info:
            text += ''.join(traceback.format_exception(*record.exc_info))
        texts.append(('log %s' % record.name, text))
    if sim.run_error is not None:
        texts.append(('exception', sim.run_error[1]))
    for where, text in texts:
        for secret in secrets:
            if secret in text:
                out.append(Violation('I5.secret-shown', 'a secret (%s...) appears in %s: %s' % (secret[:6], where, text[:300])))
                break
    return out


def simulate(scenario, materials, ignore=()):
    """Run ``scenario``; returns (simulation, run, violations), leaving out violations whose kind starts with one of
    ``ignore`` (an exploration aid: to look for other breaks while a known one is open)."""
    sim = Simulation(scenario, materials)
    run = sim.run()
    return sim, run, [v for v in check(sim, run) if not v.kind.startswith(tuple(ignore))]
