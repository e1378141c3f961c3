# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""KeyVaultTarget over the REAL azure-keyvault-certificates and azure-core stack, replaying Key Vault responses.

The SDK clients are the real ones, built by the target's ``VaultConnection`` itself (credential resolution,
``verify_challenge_resource``, retry and timeout options); only the HTTP transport is replaced by
``replay_transport.ReplayTransport`` and the azure-identity credential by a stub that returns a fixed token.
So the SDK's challenge handling, deserialisation and error mapping run on the shapes the service really
returns (fixtures in ``recordings/``, each naming its source).  No socket is ever opened: the
``no_network`` fixture makes every connection attempt fail the test.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import socket
import time
import types

import pytest

# pylint: disable=wrong-import-position
import azure.core.exceptions as azure_core_exceptions
import azure.core.rest as azure_core_rest
import azure.keyvault.certificates as kv_certificates
from azure.core.credentials import AccessToken
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import config, faults, sdk as azure_sdk
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.target import KeyVaultSettings, KeyVaultTarget
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import (
    RecordedRequest, ReplayTransport, interactions, load)

try:
    from azure.core.credentials import AccessTokenInfo
except ImportError:  # azure-core < 1.31: no get_token_info protocol
    AccessTokenInfo = None

try:  # the SDK's process-wide challenge cache; cleared so every test starts unauthenticated
    from azure.keyvault.certificates._shared import http_challenge_cache as _CERT_CHALLENGES
    CHALLENGE_CACHES = (_CERT_CHALLENGES,)
except ImportError:  # pragma: no cover
    CHALLENGE_CACHES = ()

UTC = datetime.timezone.utc
VAULT = 'https://Sanitized.vault.azure.net'  # the (sanitised) vault host of the recordings
HOST = 'sanitized.vault.azure.net'
API_VERSION = '2025-07-01'  # the api-version the recordings were made with
TENANT = '00000000-0000-0000-0000-000000000000'  # from the recorded challenge
SCOPE = 'https://vault.azure.net/.default'
TOKEN = 'replay-access-token'
RECORDED_ID_BASE = 'https://vaultname.vault.azure.net'  # how the recorder sanitised ids inside bodies

IMPORT_FIXTURE = 'test_import_certificate_not_password_encoded_no_policy.json'
IMPORT_NAME = 'livekvtestimportNotPasswordEncodedCertificatea3e4211'
VERSIONS_FIXTURE = 'test_list_certificate_versions.json'
VERSIONS_NAME = 'livekvtestcertverfe57382c'
CRUD_FIXTURE = 'test_crud_operations.json'
CRUD_NAME = 'livekvtestcertc0263407'
CRUD_VERSION = 'fa453440d1434183851cdff5150f3417'
MISSING_NAME = 'cert-that-does-not-exist'
IMPORT_ACTION = 'Microsoft.KeyVault/vaults/certificates/import/action'


# -- no network --------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every way to open a connection fails the test; the attempts are also asserted at teardown."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError('a replay test tried to open a network connection: %r %r' % (args, kwargs))
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket.socket, 'connect_ex', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)
    monkeypatch.setattr(socket, 'getaddrinfo', refuse)
    yield attempts
    assert attempts == [], 'network connections were attempted: %r' % (attempts,)


@pytest.fixture(autouse=True)
def fresh_challenge_cache():
    for cache in CHALLENGE_CACHES:
        cache.clear()
    yield
    for cache in CHALLENGE_CACHES:
        cache.clear()


def test_the_network_is_closed_to_these_tests(no_network):
    with pytest.raises(AssertionError):
        socket.create_connection(('127.0.0.1', 9))
    with pytest.raises(AssertionError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', 9))
    del no_network[:]  # the two refusals above were the point of this test


# -- wiring: the real SDK, a replay transport and a token stub ---------------------

class TokenStub(object):
    """A credential with get_token only (azure-core's TokenCredential protocol); no azure-identity, no network."""

    def __init__(self):
        self.calls = []

    def get_token(self, *scopes, **kwargs):
        self.calls.append(('get_token', scopes, kwargs))
        return AccessToken(TOKEN, int(time.time()) + 3600)


class TokenInfoStub(TokenStub):
    """The same with get_token_info (azure-core's SupportsTokenInfo protocol), which the SDK prefers."""

    def get_token_info(self, *scopes, **kwargs):
        self.calls.append(('get_token_info', scopes, kwargs))
        return AccessTokenInfo(TOKEN, int(time.time()) + 3600)


class _Module(object):
    """A view of an SDK module with some names replaced."""

    def __init__(self, module, **replaced):
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self._module, name)


class Replay(object):
    """What one test replays through: transport, credential, and what KeyVaultTarget constructed."""

    def __init__(self, items, credential=None):
        self.transport = ReplayTransport(items, challenge=load('challenge_401.json'))
        self.credential = credential or TokenStub()
        self.built = []

    def _client(self, cls):
        def build(vault_url, credential, **options):
            self.built.append((cls.__name__, vault_url, dict(options)))
            return cls(vault_url, credential, transport=self.transport, **options)
        return build

    def _default_credential(self, **options):
        self.built.append(('DefaultAzureCredential', None, dict(options)))
        return self.credential

    def sdk(self):
        return azure_sdk.Sdk(
            identity=types.SimpleNamespace(DefaultAzureCredential=self._default_credential),
            certificates=_Module(kv_certificates, CertificateClient=self._client(kv_certificates.CertificateClient)),
            core_exceptions=azure_core_exceptions, core_rest=azure_core_rest)

    def target(self, name, vault=VAULT, **settings):
        settings.setdefault('api_version', API_VERSION)
        address = config.parse_vault_url(vault)
        kv = KeyVaultSettings(address, name, config.CLOUDS[address.cloud]['authority_host'], **settings)
        return KeyVaultTarget(kv, env={}, sdk_loader=self.sdk)

    def check(self, host=HOST):
        """Every stored response was asked for; every request went to the vault host with the recorded api-version."""
        self.transport.assert_done()
        for request in self.transport.requests:
            assert request.host == host and request.query.get('api-version') == API_VERSION, request


def renamed(item, old, new):
    """``item`` replayed for another certificate name (the fixture records it for ``old``)."""
    item = copy.deepcopy(item)
    item['request']['path'] = item['request']['path'].replace('/%s' % old, '/%s' % new)
    return item


def sha1_hex(b64_der):
    return hashlib.sha1(base64.b64decode(b64_der)).hexdigest().upper()  # nosec - a certificate thumbprint


def x5t_hex(x5t):
    return base64.urlsafe_b64decode(x5t + '=' * (-len(x5t) % 4)).hex().upper()


@pytest.fixture
def material(pki):
    h = pki.hierarchy()
    return m.Material(h['leaf'], h['key'], [h['inter'], h['root']])


# -- 1. the challenge, then the authenticated request --------------------------------------

STUBS = [TokenStub] + ([TokenInfoStub] if AccessTokenInfo is not None else [])


@pytest.mark.parametrize('stub', STUBS, ids=[s.__name__ for s in STUBS])
def test_challenge_then_authenticated_request(stub, material):
    """Recorded 401 challenge (test_40x_handling Entries[0]) → token for the challenge's tenant/resource → the import."""
    replay = Replay(interactions(IMPORT_FIXTURE, 'import'), credential=stub())
    target = replay.target(IMPORT_NAME, verify_challenge_resource=True)
    target.import_material(material, {'certdeploy-managed-by': 'certdeploy'}, True)

    first, second = replay.transport.requests
    # The SDK's challenge policy probes with neither token nor body, then sends the real request with both.
    assert (first.method, first.path, first.authorization, first.raw_body) == ('POST', '/certificates/%s/import' % IMPORT_NAME, None, b'')
    assert (second.method, second.path, second.authorization) == ('POST', first.path, 'Bearer ' + TOKEN)
    assert second.body['value'] and second.body['pwd']
    # One token, for the resource and tenant the recorded challenge named.
    (kind, scopes, kwargs), = replay.credential.calls
    assert scopes == (SCOPE,)
    if kind == 'get_token_info':
        assert kwargs['options']['tenant_id'] == TENANT
    else:
        assert kind == 'get_token' and kwargs['tenant_id'] == TENANT
    # The clients were built by KeyVaultTarget with verification of the challenge resource on.
    clients = dict((name, options) for name, dummy, options in replay.built if name.endswith('Client'))
    assert clients['CertificateClient']['verify_challenge_resource'] is True
    assert clients['CertificateClient']['api_version'] == API_VERSION
    replay.check()


def test_challenge_naming_another_resource_sends_no_token():
    """The recorded challenge (resource https://vault.azure.net) answered by a host outside that domain:
    the SDK refuses it before asking for a token, and the target reports auth_failed."""
    replay = Replay([])
    target = replay.target(CRUD_NAME, vault='https://sanitized.vault.azure.cn', verify_challenge_resource=True)
    with pytest.raises(errors.DeployError) as info:
        target.read_latest()
    assert info.value.code == errors.AUTH_FAILED and 'verify_challenge_resource' in info.value.message
    assert replay.credential.calls == []
    (only,) = replay.transport.requests
    assert only.authorization is None and only.host == 'sanitized.vault.azure.cn'
    replay.transport.assert_done()


# -- 2. 404 CertificateNotFound → absent ------------------------------------------------------

def test_missing_certificate_reads_as_absent():
    """get 404 (test_40x_handling Entries[1]), then deletedcertificates 404 (test_crud_operations Entries[9])."""
    get_missing, = interactions('test_40x_handling.json', 'get_not_found')
    deleted_missing, = interactions(CRUD_FIXTURE, 'get_deleted_not_found')
    replay = Replay([get_missing, renamed(deleted_missing, CRUD_NAME, MISSING_NAME)])
    assert replay.target(MISSING_NAME).read_latest() is None
    assert [(r.method, r.path, bool(r.authorization)) for r in replay.transport.requests] == [
        ('GET', '/certificates/%s' % MISSING_NAME, False),
        ('GET', '/certificates/%s' % MISSING_NAME, True),
        ('GET', '/deletedcertificates/%s' % MISSING_NAME, True),
    ]
    replay.check()


# -- 3. an import response → mapped fields -------------------------------------------------

def test_import_request_and_response_mapping(material):
    """test_import_certificate_not_password_encoded_no_policy Entries[1]: the 200 of an import."""
    stored, = interactions(IMPORT_FIXTURE, 'import')
    recorded = stored['response']['body']
    replay = Replay([stored])
    tags = {'certdeploy-managed-by': 'certdeploy', 'certdeploy-certificate-id': 'www'}
    state = replay.target(IMPORT_NAME).import_material(material, tags, True)

    base = '%s/%%s/%s' % (RECORDED_ID_BASE, IMPORT_NAME)
    assert state.version == 'e178a3fa2c8e4e1089afd91aae3024a6'
    assert state.ids == {
        'id': recorded['id'], 'versionless_id': base % 'certificates',
        'secret_id': recorded['sid'], 'versionless_secret_id': base % 'secrets',
        'key_id': recorded['kid'],
    }
    # x5t (base64url SHA-1) → uppercase hex, and it is the SHA-1 of the returned DER certificate.
    assert state.thumbprint == x5t_hex(recorded['x5t']) == sha1_hex(recorded['cer'])
    assert state.facts['thumbprint'] == state.thumbprint and state.facts['x5t'] == recorded['x5t']
    assert state.facts['subject'] == 'O=Internet Widgits Pty Ltd,ST=Some-State,C=AU'
    assert state.leaf is not None and state.enabled is True
    assert state.content_type == 'pkcs12'  # from policy.secret_props.contentType
    assert state.created_on == datetime.datetime.fromtimestamp(recorded['attributes']['created'], UTC)
    assert state.tags == {}  # the recorded import carried no tags: what Key Vault answers wins over what was sent

    # What the real SDK serialised from the target's call.
    sent = replay.transport.authenticated()[0]
    assert b'PRIVATE KEY' not in sent.raw_body
    key, leaf, dummy = pkcs12.load_key_and_certificates(base64.b64decode(sent.body['value']), sent.body['pwd'].encode())
    assert leaf == material.leaf and m.public_key_matches(leaf, key)
    policy = sent.body['policy']
    assert policy['issuer'] == {'name': 'Unknown'}
    assert policy['secret_props'] == {'contentType': 'application/x-pkcs12'}
    assert policy['key_props'] == {'exportable': True, 'kty': 'RSA', 'key_size': 2048, 'reuse_key': False}
    assert policy['lifetime_actions'] == [{'trigger': {'lifetime_percentage': 80}, 'action': {'action_type': 'EmailContacts'}}]
    assert sent.body['attributes'] == {'enabled': True} and sent.body['tags'] == tags
    replay.check()


# -- 4. two imports with identical x5t → two versions ------------------------------------------

def test_two_imports_with_the_same_thumbprint_are_two_versions(material):
    """test_list_certificate_versions Entries[1] and [2]: the same PKCS#12 imported twice."""
    replay = Replay(interactions(VERSIONS_FIXTURE, 'import_1', 'import_2'))
    target = replay.target(VERSIONS_NAME)
    first = target.import_material(material, {}, True)
    second = target.import_material(material, {}, True)
    assert (first.version, second.version) == ('0254c1b8167c4080b38dff9265bf603a', '0a301c67d7b0458da4d829394113d006')
    assert first.thumbprint == second.thumbprint == x5t_hex('7Hd8wjMNV61gvzAY4LfCGxWwi_I')
    assert first.ids['id'] != second.ids['id'] and first.ids['secret_id'] != second.ids['secret_id']
    assert first.ids['versionless_secret_id'] == second.ids['versionless_secret_id']
    # The challenge was answered once; the second import reused the token.
    assert [bool(r.authorization) for r in replay.transport.requests] == [False, True, True]
    assert len(replay.credential.calls) == 1
    replay.check()


# -- 5. soft-deleted: the deleted-certificate read, and the 409 on import -----------------------

def test_soft_deleted_name_is_reported_from_the_deleted_certificate():
    """get 404 (test_40x_handling Entries[1], replayed for this name), then the deletedcertificates 200
    (test_crud_operations Entries[10]: recoveryId, deletedDate, scheduledPurgeDate)."""
    get_missing, = interactions('test_40x_handling.json', 'get_not_found')
    deleted, = interactions(CRUD_FIXTURE, 'get_deleted')
    replay = Replay([renamed(get_missing, MISSING_NAME, CRUD_NAME), deleted])
    with pytest.raises(errors.DeployError) as info:
        replay.target(CRUD_NAME).read_latest()
    assert info.value.code == errors.SOFT_DELETED and 'on_soft_deleted: recover' in info.value.message
    body = deleted['response']['body']
    # The SDK turned the unix times into datetimes; the message carries both.
    assert str(datetime.datetime.fromtimestamp(body['deletedDate'], UTC)) in info.value.message
    assert str(datetime.datetime.fromtimestamp(body['scheduledPurgeDate'], UTC)) in info.value.message
    replay.check()


def test_import_into_a_soft_deleted_name_is_soft_deleted(material):
    """The documented 409 ObjectIsDeletedButRecoverable body (conflict_409_soft_deleted.json, not a recording)."""
    replay = Replay(interactions('conflict_409_soft_deleted.json', 'import_soft_deleted'))
    with pytest.raises(errors.DeployError) as info:
        replay.target(VERSIONS_NAME).import_material(material, {}, True)
    assert info.value.code == errors.SOFT_DELETED
    assert 'deleted but recoverable state' in info.value.message
    replay.check()


# -- 6. a properties update (PATCH response) -------------------------------------------------

def test_properties_update_maps_the_patch_response():
    """test_crud_operations Entries[4] (get) then Entries[7] (PATCH with tags)."""
    replay = Replay(interactions(CRUD_FIXTURE, 'get', 'update'))
    target = replay.target(CRUD_NAME)
    state = target.read_latest()
    recorded = interactions(CRUD_FIXTURE, 'get')[0]['response']['body']
    assert state.version == CRUD_VERSION and state.tags == {}
    assert state.thumbprint == x5t_hex(recorded['x5t']) == sha1_hex(recorded['cer'])

    updated = target.update_properties(state, {'tag1': 'updated_value1'}, True)
    patch = replay.transport.requests[-1]
    assert (patch.method, patch.path) == ('PATCH', '/certificates/%s/%s' % (CRUD_NAME, CRUD_VERSION))
    assert patch.body == {'attributes': {'enabled': True}, 'tags': {'tag1': 'updated_value1'}}
    assert (updated.version, updated.tags, updated.enabled) == (CRUD_VERSION, {'tag1': 'updated_value1'}, True)
    assert updated.thumbprint == state.thumbprint and updated.content_type == 'pkcs12'
    assert updated.ids['versionless_secret_id'] == '%s/secrets/%s' % (RECORDED_ID_BASE, CRUD_NAME)
    replay.check()


# -- 7. 403 of both permission models ------------------------------------------------------

def test_rbac_forbidden_import_quotes_the_action(material):
    """RBAC 403 (ForbiddenByRbac) on import; body from issue threads, action adapted (forbidden_403.json)."""
    replay = Replay(interactions('forbidden_403.json', 'rbac_import'))
    with pytest.raises(errors.DeployError) as info:
        replay.target(VERSIONS_NAME).import_material(material, {}, True)
    error = info.value
    assert error.code == errors.FORBIDDEN and error.details['action'] == IMPORT_ACTION
    # Quoted from Key Vault's own message, not the adapter's per-operation fallback.
    assert "the identity lacks the RBAC action '%s'" % IMPORT_ACTION in error.message
    assert 'or the matching access-policy permission' not in error.message
    replay.check()


def test_rbac_forbidden_secret_read_quotes_the_action():
    """The verbatim RBAC 403 of a secret read (piyushsachdeva/Terraform_AKS#2) through the certificate client's
    pipeline: read latest (test_crud_operations Entries[4]), then export the version's secret with the same token."""
    get, = interactions(CRUD_FIXTURE, 'get')
    forbidden, = interactions('forbidden_403.json', 'rbac_get_secret')
    replay = Replay([get, forbidden])
    target = replay.target(CRUD_NAME)
    with pytest.raises(errors.DeployError) as info:
        target.export_version(target.read_latest())
    action = 'Microsoft.KeyVault/vaults/secrets/getSecret/action'
    assert info.value.code == errors.FORBIDDEN and info.value.details['action'] == action
    assert "the identity lacks the RBAC action '%s'" % action in info.value.message
    assert [(r.path.split('/')[1], bool(r.authorization)) for r in replay.transport.requests] == [
        ('certificates', False), ('certificates', True), ('secrets', True)]  # one challenge for both
    assert len(replay.credential.calls) == 1
    replay.check()


@pytest.mark.parametrize('entry', ['access_policy_import', 'access_policy_import_access_denied'])
def test_access_policy_forbidden_import_names_the_permission(entry, material):
    """Access-policy 403 (inner code ForbiddenByPolicy as in the issue thread, and AccessDenied) on import."""
    replay = Replay(interactions('forbidden_403.json', entry))
    with pytest.raises(errors.DeployError) as info:
        replay.target(VERSIONS_NAME).import_material(material, {}, True)
    error = info.value
    assert error.code == errors.FORBIDDEN
    # Named from Key Vault's own sentence (before the quoted message), not the adapter's per-operation fallback.
    named = error.message.split('Key Vault said:')[0]
    assert "does not have certificates import permission on key vault 'examplefsvault001;location=westeurope'" in named
    assert 'or the matching access-policy permission' not in error.message
    assert error.details['action'] == faults.ACTIONS['import']  # the RBAC equivalent, named for the operator
    assert 'lacks the RBAC action' not in error.message
    replay.check()


class RefusingTransport(ReplayTransport):
    """Every request fails as a refused TCP connection does (urllib3's text, wrapped by azure-core)."""

    def send(self, request, **kwargs):
        self.requests.append(RecordedRequest(request, kwargs))
        raise azure_core_exceptions.ServiceRequestError(
            "HTTPSConnection(host='%s', port=443): Failed to establish a new connection: [Errno 111] Connection refused" % HOST)


def test_refused_connection_is_tried_twice_then_unreachable(no_network):
    """A failing call honours ``timeout``: a connection that cannot be made is not retried for long (counted, not timed)."""
    replay = Replay([])
    replay.transport = RefusingTransport()
    with pytest.raises(errors.DeployError) as info:
        replay.target(VERSIONS_NAME, timeout=5).read_latest()
    assert info.value.code == errors.UNREACHABLE, info.value.message
    assert info.value.message.count('connection refused') == 1
    assert len(replay.transport.requests) == 2  # the first try and one retry, no back-off sleep in between
    assert sum(replay.transport.slept) == 0
    built = dict((name, options) for name, _url, options in replay.built)
    assert built['CertificateClient']['retry_connect'] == 1 and built['CertificateClient']['timeout'] == 20
    assert built['DefaultAzureCredential']['retry_connect'] == 1
