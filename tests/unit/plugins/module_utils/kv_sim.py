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
import re
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
      ``store``        an import stores the leaf sent with its chain otherwise (``chain``: ``leaf_only``, ``reordered``
                       or ``drop_intermediate``, see ``kv_model.Stored.stored_as``) and answers truthfully, as a vault
                       (or an API version) that does not keep chains would: the stored-chain check must tell
      ``garbage``      the model answers 200, its body replaced by garbage (``what``: ``value`` not base64 nor PEM,
                       ``truncated`` value (its last 30 characters cut), an unknown ``content_type``, ``json`` that
                       is not an object); drawn for backing-secret reads
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

# The certificates a chain may hold besides the leaf, in the order a chain is built (leaf -> intermediate -> root):
# the intermediate that signed the leaf, its cross-signed twin (same subject and key, signed by another root), the
# root of each. A chain is a tuple of these names, in the order given (the options) or stored (a version).
CHAIN_NAMES = ('inter', 'cross', 'root', 'other_root')
ROOTS = ('root', 'other_root')
# The material record of a starting version: 'kept' (the record of what it holds, as this release writes it), 'none'
# (imported by an earlier release: no record), 'garbage' (a value no release wrote: counts as none).
RECORDS = ('kept', 'none', 'garbage')
GARBAGE_RECORD = 'v1;edited-by-hand'


def wanted_chain(chain, chain_root='keep'):
    """The chain a deploy of ``chain`` (names, in the order given) must store: ordered leaf -> intermediate -> root
    whatever the order given, without the roots when ``chain_root`` is drop (the rule the product documents)."""
    names = sorted(chain, key=CHAIN_NAMES.index)
    return tuple(n for n in names if chain_root == 'keep' or n not in ROOTS)


class Scenario(object):
    """One deploy: the vault's starting state, the deploy's options, the faults by (operation, occurrence).

    ``current_chain`` is what the starting version stores with its leaf (names of CHAIN_NAMES, in the stored order),
    ``current_record`` whether it carries the record of that (RECORDS). ``chain`` is the chain the deploy is given
    (in the order given: ``('root', 'inter')`` is root-first), ``chain_root``, ``verify_stored_chain`` and
    ``preserve_chain_order`` the options of the same names (None: unset, which keeps the order on the SDK's API).

    ``faults`` maps ``(op, n)`` to a Fault: the n-th request of that operation (1-based, retries counted) gets it;
    ``n == 0`` means every request of that operation. Operations: see ``OPS``. ``writers`` maps ``(op, n)`` the
    same way to another writer's action (a ``Writer``) just before or after that request.
    """

    DEFAULTS = dict(
        start='owned', current='A', current_enabled=True, current_exportable=True, current_content_type='pkcs12',
        current_tags=None, current_chain=('inter', 'root'), current_record='none', material='B', form='pem',
        chain=('inter', 'root'), chain_root='keep', verify_stored_chain=True, preserve_chain_order=None,
        rollback='auto', on_soft_deleted='fail', take_ownership=False,
        force=False, enabled=True, tags=None, check_mode=False, diff=False, content_type='pkcs12', exportable=True,
        timeout=5, recovery_delay=0, faults=None, writers=None,
    )

    def __init__(self, **values):
        unknown = set(values) - set(self.DEFAULTS)
        if unknown:
            raise TypeError('unknown scenario fields: %s' % ', '.join(sorted(unknown)))
        for key, default in self.DEFAULTS.items():
            setattr(self, key, values.get(key, default))
        self.chain = tuple(self.chain)
        self.current_chain = tuple(self.current_chain)
        self.current_tags = dict(self.current_tags or {})
        self.tags = dict(self.tags or {})
        self.faults = dict(self.faults or {})
        self.writers = dict(self.writers or {})

    def __repr__(self):
        def is_default(value, default):
            if default is None:  # None or empty (faults, writers, tags: dicts made empty)
                return value is None or value == {}
            return value == default
        shown = ['%s=%r' % (key, getattr(self, key)) for key, default in self.DEFAULTS.items()
                 if not is_default(getattr(self, key), default)]
        return 'Scenario(%s)' % ', '.join(shown)

    @property
    def wanted(self):
        """The chain this deploy must store (names), see ``wanted_chain``."""
        return wanted_chain(self.chain, self.chain_root)

    @property
    def order_kept(self):
        """Whether the import asks Key Vault to keep the chain's order (preserve_chain_order unset or true, on the SDK's
        default API version)."""
        return self.preserve_chain_order is not False


# -- materials ---------------------------------------------------------------------------------------------------

class Entry(object):
    """One certificate with its key and its hierarchy, in every form a scenario or the model needs, and its secret
    strings (I5). ``certs`` maps CHAIN_NAMES to this leaf's chain certificates; a chain is given by their names."""

    DEFAULT_CHAIN = ('inter', 'root')

    def __init__(self, name, key, leaf, certs):
        self.name = name
        self.key = key
        self.leaf = leaf
        self.certs = dict(certs)
        self.material = cert_material.Material(leaf, key, self.chain(self.DEFAULT_CHAIN))
        self.thumbprint = self.material.thumbprint
        self.cert_pem = leaf.public_bytes(serialization.Encoding.PEM).decode('ascii')
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode('ascii')
        self.key_pem_encrypted = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode())).decode('ascii')
        self.stored = kv_model.Stored(key, leaf, self.chain(self.DEFAULT_CHAIN))
        self._pfx = {}
        self._windows = {}
        self.secrets = self._secret_strings(key)

    def chain(self, names):
        return [self.certs[n] for n in names]

    def chain_pem(self, names):
        """The chain option's text for ``names`` (in that order); None for no chain."""
        return ''.join(c.public_bytes(serialization.Encoding.PEM).decode('ascii') for c in self.chain(names)) or None

    def pfx_b64(self, names):
        """A password-protected PFX of the leaf, its key and the chain ``names`` in that order (made once per chain)."""
        if names not in self._pfx:
            self._pfx[names] = kv_model.b64(cert_material.pkcs12.serialize_key_and_certificates(
                b'sim', self.key, self.leaf, self.chain(names) or None,
                serialization.BestAvailableEncryption(PFX_PASSWORD.encode())))
        return self._pfx[names]

    def stored_with(self, names):
        """What a version holds when it stores this leaf with the chain ``names`` (in that order)."""
        return self.stored.with_chain(self.chain(names))

    def ders(self, names):
        """The DER certificates of the leaf and the chain ``names``, leaf first."""
        return self.stored_with(names).ders

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
        return out | self.value_windows(self.stored)

    def value_windows(self, stored):
        """Windows of the backing secret's PKCS#12 (the PEM one holds key_pem) of ``stored``, one of this entry's."""
        key = stored.chain_ders
        if key not in self._windows:
            value = stored.value(kv_model.PKCS12, True)
            self._windows[key] = set(value[i:i + 40] for i in range(len(value) // 2, len(value) - 200, 400))
        return self._windows[key]

    def variant_secrets(self):
        """The windows of the backing secrets of every chain this entry was stored with so far."""
        out = set()
        for stored in [self.stored] + list(getattr(self.stored, '_variants', {}).values()):
            out |= self.value_windows(stored)
        return out


class Materials(object):
    """The certificates of every scenario, made once: ours (A, A2 with A's key, B, C) and another writer's (F, G).

    Each leaf has a hierarchy of its own: a root, an intermediate that signs the leaf, and the intermediate's
    cross-signed twin (same subject and key) under another root, so every chain of CHAIN_NAMES validates."""

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
        self.names = {}  # DER -> 'A.inter' etc., for traces
        for name, key, subject in (('A', ka, 'www.example.com'), ('A2', ka, 'www.example.com'), ('B', kb, 'www.example.com'),
                                   ('C', kc, 'www.example.com'), ('F', kf, 'foreign.example.net'),
                                   ('G', kg, 'other.example.net')):
            root_key, other_root_key, inter_key = pki.ec(ec.SECP384R1), pki.ec(), pki.ec()
            root = pki.cert(root_key, 'Test Root CA', ca=True, days=3650)
            other_root = pki.cert(other_root_key, 'Other Root CA', ca=True, days=3650)
            inter = pki.cert(inter_key, 'Test Intermediate CA', issuer=root, issuer_key=root_key, ca=True, days=1800)
            cross = pki.cert(inter_key, 'Test Intermediate CA', issuer=other_root, issuer_key=other_root_key, ca=True,
                             days=1800)
            leaf = pki.cert(key, subject, issuer=inter, issuer_key=inter_key)
            chain = {'inter': inter, 'cross': cross, 'root': root, 'other_root': other_root}
            entry = self.entries[name] = Entry(name, key, leaf, chain)
            self.names[entry.stored.der] = '%s.leaf' % name
            for part, cert in entry.certs.items():
                self.names[cert.public_bytes(serialization.Encoding.DER)] = '%s.%s' % (name, part)
        self.by_thumbprint = dict((e.thumbprint, e) for e in self.entries.values())

    def __getitem__(self, name):
        return self.entries[name]

    def shown(self, ders):
        """Stored certificates (DER, leaf first) by name, for traces and messages: ``[A.leaf, A.inter, A.root]``."""
        return '[%s]' % ', '.join(self.names.get(der, '?') for der in ders)

    def secrets(self):
        out = {TRANSPORT_PASSWORD, CLIENT_SECRET, PASSPHRASE, PFX_PASSWORD}
        for name in self.OURS:
            out |= self.entries[name].secrets | self.entries[name].variant_secrets()
        for payload in _PKCS12_MEMO.values():
            text = kv_model.b64(payload)
            out.update(text[i:i + 40] for i in range(len(text) // 2, len(text) - 200, 400))
        return out


# memoised product serialisations: (args) -> bytes / Material
_PKCS12_MEMO = {}
_PARSE_MEMO = {}
_LOADED_PKCS12 = {}


class _Pkcs12Module(object):
    """``cryptography``'s pkcs12 module as the product's material code sees it in a simulation: ``load_pkcs12`` of the
    same bytes and password is parsed once (it checks an RSA key in full, ~20 ms), a failure never remembered;
    everything else is the module's own."""

    def __init__(self, module):
        self._module = module

    def load_pkcs12(self, data, password, *args, **kwargs):
        key = (bytes(data), password, args, tuple(sorted(kwargs.items())))
        if key not in _LOADED_PKCS12:
            _LOADED_PKCS12[key] = self._module.load_pkcs12(data, password, *args, **kwargs)
        return _LOADED_PKCS12[key]

    def __getattr__(self, name):
        return getattr(self._module, name)


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
    """check_private_key once per key (the RSA check signs once), told by its private bytes (a key is parsed
    again for every form and chain it comes with); a failure is never remembered."""
    def check_key(key):
        try:
            known = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        except Exception:  # not a key this can serialise: check it every time
            return original(key)
        if known not in _CHECKED_KEYS:
            original(key)
            _CHECKED_KEYS[known] = True
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
        vault.store_next = fault.chain if fault.kind == 'store' and op == 'import' else None
        answer = vault.handle(request.method, request.url, dict(request.headers), body)
        vault.corrupt_next = vault.store_next = None
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
        truthful = answer.status == 200  # for a secret read: the value and content type are the vault's own
        if fault.kind == 'garble' and answer.status == 200 and isinstance(answer.body, dict):
            garbled = sim.garble(answer.body, fault.field)
            truthful = truthful and all(garbled.get(k) == answer.body.get(k) for k in ('value', 'contentType'))
            answer = kv_model.Answer(answer.status, garbled, answer.headers)
        if fault.kind == 'garbage' and answer.status == 200:
            answer = kv_model.Answer(answer.status, sim.garbage(answer.body, fault.what), answer.headers)
            truthful = False
        if op == 'secret':
            vault.note_secret_read(name, request.url.split('?')[0].rstrip('/').rsplit('/', 1)[-1], answer.status, truthful)
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
        cert = self.vault.certs.get(NAME)
        self.start_tags = dict((v.id, dict(v.tags)) for v in (cert.versions if cert is not None else []))

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
            vault.add_version(NAME, self.materials['F'].stored_with(s.current_chain), dict(s.current_tags),
                              enabled=s.current_enabled, content_type=ctype, exportable=s.current_exportable, author='setup')
        else:
            if s.start == 'several':
                vault.add_version(NAME, self.materials['G'].stored, {'team': 'web'}, author='setup')
                older = 'C' if s.current != 'C' else 'B'
                vault.add_version(NAME, self.materials[older].stored, self.managed_tags(), author='setup')
            stored = self.materials[s.current].stored_with(s.current_chain)
            tags = self.managed_tags(s.current_tags)
            if s.current_record == 'kept':
                tags[kv_model.MATERIAL] = kv_model.material_record(stored.ders, ctype, s.current_exportable)
            elif s.current_record == 'garbage':
                tags[kv_model.MATERIAL] = GARBAGE_RECORD
            vault.add_version(NAME, stored, tags, enabled=s.current_enabled, content_type=ctype,
                              exportable=s.current_exportable, author='setup')
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

    @staticmethod
    def garbage(body, what):
        """An answer body that is no usable secret bundle (see Fault ``garbage``)."""
        if what == 'json' or not isinstance(body, dict):
            return ['not', 'a', 'secret', 'bundle']
        body = dict(body)
        if what == 'value':
            body['value'] = '%% not base64, not PEM: garbage %%'
        elif what == 'truncated':
            body['value'] = (body.get('value') or '')[:-30]
        elif what == 'content_type':
            body['contentType'] = 'application/octet-stream'
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
            take_ownership=s.take_ownership, rollback=s.rollback, on_soft_deleted=s.on_soft_deleted, force=s.force,
            chain_root=s.chain_root, verify_stored_chain=s.verify_stored_chain, preserve_chain_order=s.preserve_chain_order)
        if s.form == 'pfx':
            params.update(pfx=entry.pfx_b64(s.chain), pfx_password=PFX_PASSWORD)
        else:
            params.update(certificate=entry.cert_pem, chain=entry.chain_pem(s.chain),
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
            stack.enter_context(mock.patch.object(cert_material, 'pkcs12', _Pkcs12Module(cert_material.pkcs12)))
            stack.enter_context(mock.patch.object(cert_material, 'check_private_key',
                                                  _memo_key_check(cert_material.check_private_key)))
            for parser in ('load_exported_secret', 'load_pfx_material', 'load_pem_material', 'stored_certificates'):
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
        cert = self.vault.certs.get(NAME)
        lines += ['versions:'] + ['  %s %s %s %s%s %s tags=%r' % (
            v.id[:8], v.author, self.materials.shown(v.stored.ders), kv_model.CONTENT_TYPE_NAMES[v.content_type],
            '' if v.exportable else ' non-exportable', 'enabled' if v.enabled else 'disabled', v.tags)
            for v in (cert.versions if cert is not None else [])]
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


class Wanted(object):
    """What a scenario's deploy must leave in the vault: the leaf with the wanted chain (``ders``, leaf first), the
    content type (MIME), the exportable flag, and the record of those (the certdeploy-material value)."""

    def __init__(self, scenario, entry):
        self.names = scenario.wanted
        self.ders = entry.ders(self.names)
        self.content_type = kv_model.PEM if scenario.content_type == 'pem' else kv_model.PKCS12
        self.exportable = bool(scenario.exportable)
        self.record = kv_model.material_record(self.ders, self.content_type, self.exportable)


def chain_verdict(held, sent, order_kept):
    """What a stored-chain check must conclude of ``held`` (DER, leaf first, as a version stores it) against ``sent``:
    'equal'; 'leaf_only' (the leaf alone although a chain was sent); 'reordered' (the same certificates, the leaf
    first, in another order, where the import did not ask to keep it); else 'differs'."""
    held, sent = tuple(held), tuple(sent)
    if held == sent:
        return 'equal'
    if len(sent) > 1 and held == sent[:1]:
        return 'leaf_only'
    if not order_kept and sorted(held) == sorted(sent) and held[:1] == sent[:1]:
        return 'reordered'
    return 'differs'


_RECORD_FORMAT = re.compile(r'^v1;(pkcs12|pem);(exportable|non-exportable);[0-9a-f]{64}$')


def is_record(value):
    """Whether a certdeploy-material value is a record at all (what the product writes), right or wrong."""
    return isinstance(value, str) and bool(_RECORD_FORMAT.match(value))


def check_chains(sim, result, wanted):
    """I7: the reported outcome equals the vault's state for chains. The violations of one finished simulation.

    - I7.stored-chain-failed-but-deployed: after a 'failed' stored-chain check the run never reports created/rotated;
    - I7.verdict: the stored-chain verdict in ``verification`` is what the model holds for the version it checked
      (passed: the chain sent, in order; leaf_only: the leaf alone; reordered: another order where keeping it was not
      asked; failed: anything else, or another content type; skipped: no read of its secret was answered truthfully;
      disabled: exactly when verify_stored_chain is false);
    - I7.order-not-asked: every import asks Key Vault to keep the order exactly when the options say so;
    - I7.state: after a run that did not fail with outcome created, rotated, updated or unchanged (a real run), the
      version it names holds the wanted leaf and is latest (unless another writer imported after the run's last read);
      unless the stored-chain check said leaf_only, reordered or skipped with a warning naming the version, or was
      disabled, or the outcome is unchanged/updated of a version without a record whose chain could not be read (a
      warning naming it), its stored chain is the wanted chain in order; its content type and exportable flag are the
      wanted ones, always; and its certdeploy-material tag is the record of what it holds -- of what was sent when the
      check warned or was disabled, none at all when the chain could not be read (or writing the record was forbidden);
    - I7.unchanged: ``unchanged`` (check mode too) is never reported while the version's record differs from the
      wanted one or, without a record, while its stored chain, read truthfully, differs from wanted (another order
      included) or equals it (then the record is written, unless writing it was forbidden);
    - I7.record-missing-reimport: a version without a record that holds the wanted leaf, content type and exportable
      flag, and the wanted chain in order or a chain no read of its secret showed truthfully, is never re-imported (nor
      predicted to be) unless force is set, another writer acted first, or an update of its properties was forbidden;
    - I7.differences: a run that imports over a version with a record of the same leaf says in ``differences``
      exactly which of chain, content_type and exportable the model shows different.
    """
    s = sim.scenario
    vault = sim.vault
    shown = sim.materials.shown
    out = []
    events = vault.events[sim.start_seq:]
    ours = [e for e in events if e.actor == 'us']
    foreign = [e for e in events if e.actor == 'foreign' and e.write]
    imports = [e for e in ours if e.kind == 'import']
    plain = [e for e in imports if not e.detail.get('rollback_of')]
    secret_reads = [e for e in ours if e.kind == 'read_secret']
    forbidden_patch = any(r.op == 'patch' and r.status == 403 for r in sim.transport.requests)
    outcome = result.get('outcome')
    failed = bool(result.get('failed'))
    verdict = (result.get('verification') or {}).get('stored_chain')
    warnings = [str(w) for w in result.get('warnings') or []]

    def warned(version_id, *words):
        return any(version_id in w and all(word in w for word in words) for w in warnings)

    def legacy(version):  # a version from before the run without a record (an earlier release's)
        return version.id in sim.start_tags and not is_record(sim.start_tags[version.id].get(kv_model.MATERIAL))

    def read_truthfully(version, after=0):
        return any(e.version == version.id and e.detail.get('truthful') for e in secret_reads if e.seq > after)

    def retagged_by_another_writer(version):
        return any(e.kind == 'update' and e.version == version.id for e in foreign)

    # I7.stored-chain-failed-but-deployed
    if verdict == 'failed' and outcome in ('created', 'rotated'):
        out.append(Violation('I7.stored-chain-failed-but-deployed', 'the stored-chain check failed, yet the outcome is %s' % outcome))

    # I7.order-not-asked
    for event in imports:
        if bool(event.detail.get('preserve_order')) != s.order_kept:
            out.append(Violation('I7.order-not-asked', 'import %r %s Key Vault to keep the chain\'s order, but preserve_chain_order '
                                 'is %r' % (event, 'asked' if event.detail.get('preserve_order') else 'did not ask', s.preserve_chain_order)))

    # I7.verdict
    checked = _version(vault, plain[-1].version) if plain else None
    if verdict == 'disabled' and s.verify_stored_chain:
        out.append(Violation('I7.verdict', 'the stored-chain check reports disabled although verify_stored_chain is true'))
    if not s.verify_stored_chain and verdict not in (None, 'disabled', 'not_run'):
        out.append(Violation('I7.verdict', 'the stored-chain check reports %s although verify_stored_chain is false' % verdict))
    if checked is not None and verdict in ('passed', 'leaf_only', 'reordered', 'failed', 'skipped'):
        held = chain_verdict(checked.stored.ders, wanted.ders, s.order_kept)
        same_type = checked.content_type == wanted.content_type
        expected = {'passed': held == 'equal' and same_type, 'leaf_only': held == 'leaf_only' and same_type,
                    'reordered': held == 'reordered' and same_type, 'failed': held == 'differs' or not same_type,
                    'skipped': not read_truthfully(checked, after=plain[0].seq)}[verdict]
        if not expected:
            out.append(Violation('I7.verdict', 'the stored-chain check of version %s says %s, but it holds %s as %s (sent %s as %s%s)'
                                 % (checked.id, verdict, shown(checked.stored.ders), checked.content_type, shown(wanted.ders),
                                    wanted.content_type, '; a read of its secret was answered truthfully' if verdict == 'skipped' else '')))

    cert = result.get('certificate') or {}
    version = _version(vault, cert.get('version'))

    # I7.state
    deployed = not s.check_mode and not failed and outcome in ('created', 'rotated', 'updated', 'unchanged') and version is not None
    if deployed and version.stored.der != wanted.ders[0]:
        out.append(Violation('I7.state', 'outcome %s names version %s, which holds %s, not the wanted leaf'
                             % (outcome, version.id, shown(version.stored.ders))))
    elif deployed:
        last_read = max([e.seq for e in ours if e.kind == 'read_latest' and e.detail.get('status') == 200] or [0])
        live = vault.live(NAME)
        if live is not None and live.latest() is not version and not any(e.kind == 'import' for e in foreign if e.seq > last_read):
            out.append(Violation('I7.state', 'outcome %s names version %s, but version %s is latest' % (outcome, version.id, live.latest().id)))
        held = chain_verdict(version.stored.ders, wanted.ders, s.order_kept)
        imported = outcome in ('created', 'rotated')
        # What the version's chain must be, and which record it must carry: of what it holds ('own'), of what was
        # sent ('sent'), or none ('none').
        if imported and verdict == 'disabled':
            rule, tag_rule = 'any chain (the check is disabled)', 'sent'
        elif imported and verdict in ('leaf_only', 'reordered', 'skipped') and warned(version.id):
            rule, tag_rule = 'any chain (the check said %s with a warning)' % verdict, 'sent'
        elif not imported and legacy(version) and not read_truthfully(version):
            rule, tag_rule = 'any chain (it has no record and its chain could not be read)', 'none'
            if not warned(version.id):
                out.append(Violation('I7.state', 'outcome %s of version %s, which has no record and whose stored chain could not be '
                                     'read, without a warning naming it' % (outcome, version.id)))
        else:
            rule, tag_rule = 'the wanted chain in order', 'own'
            if held != 'equal':
                out.append(Violation('I7.state', 'outcome %s (stored-chain check %s): version %s holds %s, not the wanted %s'
                                     % (outcome, verdict, version.id, shown(version.stored.ders), shown(wanted.ders))))
        if not imported and legacy(version) and forbidden_patch and warned(version.id):
            # writing the record was forbidden: it was not written, and a warning says so (unchanged; or updated where
            # a recovery wrote to the vault first)
            tag_rule = 'none'
        if (version.content_type, bool(version.exportable)) != (wanted.content_type, wanted.exportable):
            out.append(Violation('I7.state', 'outcome %s: version %s is stored as %s, %s; wanted %s, %s' % (
                outcome, version.id, version.content_type, 'exportable' if version.exportable else 'non-exportable',
                wanted.content_type, 'exportable' if wanted.exportable else 'non-exportable')))
        tag = version.tags.get(kv_model.MATERIAL)
        expected_tag = {'own': kv_model.material_record(version.stored.ders, version.content_type, version.exportable),
                        'sent': wanted.record, 'none': None}[tag_rule]
        if not retagged_by_another_writer(version) and (is_record(tag) if expected_tag is None else tag != expected_tag):
            out.append(Violation('I7.state', 'outcome %s (%s): version %s carries the record %r; %s' % (
                outcome, rule, version.id, tag, 'none may be written for a chain that was not read' if expected_tag is None
                else 'the record of what it %s is %r' % ('holds' if tag_rule == 'own' else 'was sent', expected_tag))))

    # I7.unchanged
    if outcome == 'unchanged' and not failed and version is not None:
        tag = version.tags.get(kv_model.MATERIAL)
        if retagged_by_another_writer(version):
            pass
        elif is_record(tag):
            if tag != wanted.record:
                out.append(Violation('I7.unchanged', 'unchanged, but version %s carries the record %r; the wanted one is %r'
                                     % (version.id, tag, wanted.record)))
        elif read_truthfully(version):
            held = chain_verdict(version.stored.ders, wanted.ders, s.order_kept)
            if held != 'equal' or version.content_type != wanted.content_type:
                out.append(Violation('I7.unchanged', 'unchanged, but version %s (no record) holds %s as %s, read truthfully; wanted %s as %s'
                                     % (version.id, shown(version.stored.ders), version.content_type, shown(wanted.ders),
                                        wanted.content_type)))
            elif not forbidden_patch:
                out.append(Violation('I7.unchanged', 'unchanged, but version %s has no record and its stored chain was read and '
                                     'equals the wanted one: the record %s written' % (version.id, 'would be' if s.check_mode else 'was not')))
        elif not warned(version.id):
            out.append(Violation('I7.unchanged', 'unchanged, but version %s has no record and its chain could not be read, and no '
                                 'warning names it' % version.id))

    # I7.record-missing-reimport
    start_cert = vault.certs.get(NAME)
    start = start_cert.versions[len(sim.start_tags) - 1] if start_cert is not None and sim.start_tags else None
    if start is not None and s.start in ('owned', 'several', 'deleted_owned') and not s.force and legacy(start) \
            and start.stored.der == wanted.ders[0] \
            and (start.content_type, bool(start.exportable)) == (wanted.content_type, wanted.exportable):
        first = plain[0].seq if plain else None
        same = start.stored.ders == wanted.ders
        unread = not read_truthfully(start)
        if (same or unread) and (plain or (s.check_mode and outcome in ('created', 'rotated'))) and not forbidden_patch \
                and not any(first is None or e.seq < first for e in foreign):
            out.append(Violation('I7.record-missing-reimport', 'version %s has no record and holds %s as %s (%s), yet it was %s'
                                 % (start.id, shown(start.stored.ders), start.content_type,
                                    'what is wanted' if same else 'its secret was never read truthfully',
                                    're-imported (%r)' % plain[0] if plain else 'predicted to be re-imported (%s)' % outcome)))

    # I7.differences
    if start is not None and outcome in ('created', 'rotated') and not s.force and not legacy(start) and not forbidden_patch \
            and start.stored.der == wanted.ders[0] and not any(e.seq < (plain[0].seq if plain else 1 << 60) for e in foreign):
        expected = [name for name, differs in (
            ('chain', start.stored.ders != wanted.ders), ('content_type', start.content_type != wanted.content_type),
            ('exportable', bool(start.exportable) != wanted.exportable)) if differs]
        if result.get('differences') != expected:
            out.append(Violation('I7.differences', 'imported over version %s (%s as %s, %s) with differences %r; the vault shows %r'
                                 % (start.id, shown(start.stored.ders), start.content_type,
                                    'exportable' if start.exportable else 'non-exportable', result.get('differences'), expected)))
    return out


def check(sim, run):
    """Every violation of I1-I7 in this finished simulation."""
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

    # I3: a rollback only over a version of ours that holds another certificate than the one sent, or the one sent with
    # another chain (certificates missing, added or swapped, or another order where the import asked to keep it; the
    # leaf kept alone is a warning, never a rollback) or in another content type
    wanted = Wanted(s, material)
    for rollback in rollbacks:
        over = _version(vault, rollback.detail.get('rollback_of'))
        if over is not None and over.author == 'us' and over.thumbprint == material.thumbprint:
            verdict = chain_verdict(over.stored.ders, wanted.ders, s.order_kept)
            if not s.verify_stored_chain or (verdict != 'differs' and over.content_type == wanted.content_type):
                out.append(Violation('I3.rollback-needless', 'rolled back over version %s, which holds the certificate that was '
                                     'sent (%s) with the chain %s (wanted %s: %s) as %s: the decision was not made on what '
                                     'the vault holds' % (over.id, over.thumbprint, sim.materials.shown(over.stored.ders),
                                                          sim.materials.shown(wanted.ders), verdict, over.content_type)))

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

    # I7: the reported outcome equals the vault's state for chains
    if result:
        out.extend(check_chains(sim, result, wanted))

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
    # One search per secret over all the texts at once (no secret holds a NUL), then which texts show them.
    everything = '\0'.join(text for where, text in texts)
    visible = [secret for secret in secrets if secret in everything]
    for where, text in texts:
        for secret in visible:
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
