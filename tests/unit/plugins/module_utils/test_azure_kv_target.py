# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""KeyVaultTarget against fake SDK clients: request shapes and response mapping."""

from __future__ import annotations

import base64
import os
import types

import pytest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import config, sdk as azure_sdk
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.connection import combined_ca_bundle
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.target import KeyVaultSettings, KeyVaultTarget
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import ReplayTransport

# The SDK is a unit-test requirement (tests/unit/requirements.txt): a missing package fails collection, it never skips.
import azure.keyvault.certificates  # noqa: F401  pylint: disable=unused-import

VAULT = 'https://kv1.vault.azure.net'


class HttpError(Exception):
    def __init__(self, status, message='error'):
        super(HttpError, self).__init__(message)
        self.status_code = status
        self.message = message


def bundle(material, version='v1', tags=None, enabled=True, content_type='application/x-pkcs12'):
    der = m.leaf_der(material.leaf)
    props = types.SimpleNamespace(
        version=version, x509_thumbprint=bytes.fromhex(material.thumbprint), tags=tags, enabled=enabled, created_on=None)
    return types.SimpleNamespace(
        properties=props, cer=der, policy=types.SimpleNamespace(content_type=content_type),
        id='%s/certificates/www/%s' % (VAULT, version), secret_id='%s/secrets/www/%s' % (VAULT, version),
        key_id='%s/keys/www/%s' % (VAULT, version))


def secret(value=None, content_type='application/x-pkcs12', status=200, body=None):
    """A stored answer to GET /secrets/{name}/{version}: a secret bundle, or an error body with ``status``."""
    if body is None:
        body = {'value': value, 'contentType': content_type, 'id': '%s/secrets/www/v1' % VAULT,
                'kid': '%s/keys/www/v1' % VAULT, 'managed': True, 'attributes': {'enabled': True}}
    return {'status': status, 'body': body}


class FakeCertificateClient(object):
    def __init__(self):
        self.latest = None
        self.deleted = None
        self.imports = []
        self.closed = False
        self.secret = secret(status=404, body={'error': {'code': 'SecretNotFound', 'message': 'Secret not found: www'}})
        self.sent = []

    def send_request(self, request):
        """CertificateClient.send_request: a raw request through the client's pipeline; the answer as azure-core builds it."""
        self.sent.append(request)
        return ReplayTransport._response(request, self.secret)  # pylint: disable=protected-access

    def get_certificate(self, name):
        if self.latest is None:
            raise HttpError(404, 'A certificate with (name/id) %s was not found in this key vault.' % name)
        return self.latest

    def get_certificate_version(self, name, version):
        if self.latest is None or self.latest.properties.version != version:
            raise HttpError(404, 'A certificate with (name/id) %s was not found in this key vault.' % name)
        return self.latest

    def get_deleted_certificate(self, name):
        if self.deleted is None:
            raise HttpError(404)
        return self.deleted

    def import_certificate(self, name, data, **kwargs):
        self.imports.append((name, data, kwargs))
        if kwargs['policy'].content_type.value == 'application/x-pem-file':
            material = m.load_exported_secret(data, 'application/x-pem-file')
        else:
            material = m.load_pfx_material(data, kwargs['password'])
        self.latest = bundle(material, 'v%d' % (len(self.imports) + 1), kwargs['tags'], kwargs['enabled'])
        return self.latest

    def update_certificate_properties(self, name, version, **kwargs):
        assert version == self.latest.properties.version
        self.latest.properties.tags = kwargs['tags']
        self.latest.properties.enabled = kwargs['enabled']
        self.latest.policy = None  # the update response carries no policy
        return self.latest

    def close(self):
        self.closed = True


@pytest.fixture
def material(pki):
    h = pki.hierarchy()
    return m.Material(h['leaf'], h['key'], [h['inter'], h['root']])


def make_target(certs=None, stored_secret=None, **settings):
    settings = KeyVaultSettings(config.parse_vault_url(VAULT), 'www', 'login.microsoftonline.com', **settings)
    certs = certs or FakeCertificateClient()
    if stored_secret is not None:
        certs.secret = stored_secret
    return KeyVaultTarget(settings, clients=certs)


def test_missing_name_reads_as_none(material):
    assert make_target().read_latest() is None


def test_404_naming_no_certificate_on_read_is_vault_not_found_not_a_free_name():
    """A wrong URL (a proxy, a private endpoint that is not a vault) answers 404 too: that is no "does not exist yet"."""
    certs = FakeCertificateClient()

    def nowhere(name):
        raise HttpError(404, 'The requested resource does not exist on this server.')
    certs.get_certificate = nowhere
    with pytest.raises(errors.DeployError) as info:
        make_target(certs).read_latest()
    assert info.value.code == errors.VAULT_NOT_FOUND and 'vault_url' in info.value.message


def test_soft_deleted_name_is_detected_on_read():
    certs = FakeCertificateClient()
    certs.deleted = types.SimpleNamespace(deleted_on='2026-11-01', scheduled_purge_date='2027-01-30')
    with pytest.raises(errors.DeployError) as info:
        make_target(certs).read_latest()
    assert info.value.code == errors.SOFT_DELETED and 'on_soft_deleted: recover' in info.value.message


def test_read_maps_ids_and_facts(material):
    certs = FakeCertificateClient()
    certs.latest = bundle(material, 'abc', {'k': 'v'})
    state = make_target(certs).read_latest()
    assert state.version == 'abc' and state.thumbprint == material.thumbprint
    assert state.ids['versionless_secret_id'] == VAULT + '/secrets/www'
    assert state.ids['versionless_id'] == VAULT + '/certificates/www'
    assert state.facts['x5t'] == m.x5t(material.leaf)
    assert state.content_type == 'pkcs12' and state.leaf == material.leaf


@pytest.mark.parametrize('kind', ['san_value', 'x400_address', 'duplicate_extension', 'subject', 'issuer'])
def test_stored_certificate_with_an_unreadable_part_reads_without_its_facts(pki, kind):
    """A certificate someone else stored may have a malformed extension or name: the read still maps it (the
    thumbprint from Key Vault's x5t), instead of raising DuplicateExtension or UnsupportedGeneralNameType."""
    key = pki.rsa()
    odd = m.Material(pki.malformed_cert(kind, key), key, [])
    certs = FakeCertificateClient()
    certs.latest = bundle(odd, 'odd')
    state = make_target(certs).read_latest()
    assert state.version == 'odd' and state.thumbprint == odd.thumbprint and state.facts['x5t'] == m.x5t(odd.leaf)


def test_other_read_errors_are_classified():
    certs = FakeCertificateClient()

    def forbidden(name):
        raise HttpError(403, "Action: 'Microsoft.KeyVault/vaults/certificates/read'")
    certs.get_certificate = forbidden
    with pytest.raises(errors.DeployError) as info:
        make_target(certs).read_latest()
    assert info.value.code == errors.FORBIDDEN


def test_import_sends_explicit_policy_and_password_protected_pfx(material):
    certs = FakeCertificateClient()
    target = make_target(certs, exportable=False, preserve_chain_order=False)
    state = target.import_material(material, {'certdeploy-managed-by': 'certdeploy'}, True)
    name, data, kwargs = certs.imports[0]
    policy = kwargs['policy']
    assert name == 'www' and kwargs['password'] and kwargs['enabled'] is True
    assert policy.issuer_name == 'Unknown'
    assert policy.content_type.value == 'application/x-pkcs12'
    assert policy.exportable is False and policy.key_type.value == 'RSA' and policy.key_size == 2048
    assert [a.action.value for a in policy.lifetime_actions] == ['EmailContacts']
    assert 'preserve_order' not in kwargs  # off: not sent at all (an API version before 7.6 does not know it)
    assert b'PRIVATE KEY' not in data
    assert state.thumbprint == material.thumbprint and state.tags == {'certdeploy-managed-by': 'certdeploy'}


def test_update_properties_keeps_the_version_and_facts(material):
    certs = FakeCertificateClient()
    certs.latest = bundle(material, 'v7', {'a': 'b'})
    target = make_target(certs)
    state = target.update_properties(target.read_latest(), {'a': 'c'}, False)
    assert (state.version, state.tags, state.enabled) == ('v7', {'a': 'c'}, False)
    assert state.thumbprint == material.thumbprint and state.content_type == 'pkcs12'
    assert state.ids['versionless_secret_id'] == VAULT + '/secrets/www'


def test_pem_import_and_ec_policy(pki):
    key = pki.ec(ec.SECP384R1)
    material = m.Material(pki.cert(key), key, [])
    certs = FakeCertificateClient()
    make_target(certs, content_type='pem', preserve_chain_order=True).import_material(material, {}, True)
    data, kwargs = certs.imports[0][1:]
    assert kwargs['policy'].content_type.value == 'application/x-pem-file' and kwargs['password'] is None
    assert kwargs['policy'].key_type.value == 'EC' and kwargs['policy'].key_curve_name.value == 'P-384'
    assert kwargs['preserve_order'] is True
    assert b'BEGIN PRIVATE KEY' in data and b'BEGIN RSA PRIVATE KEY' not in data


def test_rollback_material_from_backing_secret(material):
    # Key Vault exports PFX secrets without a password; emulate with an unencrypted one.
    pfx = base64.b64encode(pkcs12.serialize_key_and_certificates(b'x', material.key, material.leaf, material.chain,
                                                                 serialization.NoEncryption())).decode()
    certs = FakeCertificateClient()
    certs.latest = bundle(material)
    target = make_target(certs, secret(pfx))
    restored = target.export_version(target.read_latest())
    assert restored.thumbprint == material.thumbprint and m.public_key_matches(restored.material.leaf, material.key)
    assert (restored.payload, restored.content_type, restored.version) == (pfx, 'pkcs12', 'v1')


def test_exported_pkcs12_is_re_imported_byte_for_byte_without_password(material):
    raw = pkcs12.serialize_key_and_certificates(b'x', material.key, material.leaf, material.chain, serialization.NoEncryption())
    certs = FakeCertificateClient()
    certs.latest = bundle(material)
    target = make_target(certs, secret(base64.b64encode(raw).decode()), content_type='pem')
    exported = target.export_version(target.read_latest())
    state = target.import_exported(exported, {'t': '1'}, False)
    name, data, kwargs = certs.imports[0]
    # The exact exported bytes, their own format (not the configured pem), and no password field.
    assert data == raw and kwargs['password'] is None
    assert kwargs['policy'].content_type.value == 'application/x-pkcs12'
    assert state.thumbprint == material.thumbprint and (state.tags, state.enabled) == ({'t': '1'}, False)


def test_exported_pem_is_re_imported_unchanged(pki, material):
    text = (pki.pem(material.leaf) + pki.key_pem(material.key)).decode()
    certs = FakeCertificateClient()
    certs.latest = bundle(material, content_type='application/x-pem-file')
    target = make_target(certs, secret(text, 'application/x-pem-file'))
    exported = target.export_version(target.read_latest())
    assert exported.content_type == 'pem'
    target.import_exported(exported, {}, True)
    data, kwargs = certs.imports[0][1:]
    assert data == text.encode() and kwargs['password'] is None
    assert kwargs['policy'].content_type.value == 'application/x-pem-file'


def test_exported_version_in_another_format_is_rebuilt(pki, material):
    text = (pki.pem(material.leaf) + pki.key_pem(material.key)).decode()
    certs = FakeCertificateClient()
    certs.latest = bundle(material, content_type='application/x-pem-file')
    target = make_target(certs, secret(text, 'application/x-pem-file'))
    target.import_exported(target.export_version(target.read_latest()), {}, True, content_type='pkcs12')
    data, kwargs = certs.imports[0][1:]
    assert kwargs['policy'].content_type.value == 'application/x-pkcs12' and kwargs['password']
    assert b'PRIVATE KEY' not in data


def test_secret_of_unknown_content_type_is_not_rollback_material(material):
    certs = FakeCertificateClient()
    certs.latest = bundle(material)
    target = make_target(certs, secret('{"json": true}', 'application/json'))
    with pytest.raises(errors.DeployError) as info:
        target.export_version(target.read_latest())
    assert info.value.code == errors.INVALID_MATERIAL and 'application/json' in info.value.message


def test_read_version_missing_is_a_config_error(material):
    certs = FakeCertificateClient()
    certs.latest = bundle(material, 'v1')
    target = make_target(certs)
    assert target.read_version('v1').version == 'v1' and target.read_version().version == 'v1'
    for version in ('v9', None):
        if version is None:
            certs.latest = None
        with pytest.raises(errors.DeployError) as info:
            target.read_version(version)
        assert info.value.code == errors.INVALID_CONFIG and 'does not exist' in info.value.message


def test_rollback_material_must_match_the_version(material, pki):
    other = pki.hierarchy(leaf_key=pki.rsa(fresh=True))
    certs = FakeCertificateClient()
    certs.latest = bundle(material)
    pem = (pki.pem(other['leaf']) + pki.key_pem(other['key'])).decode()
    target = make_target(certs, secret(pem, 'application/x-pem-file'))
    with pytest.raises(errors.DeployError) as info:
        target.export_version(target.read_latest())
    assert 'not the certificate' in info.value.message


def test_forbidden_secret_read_is_classified(material):
    certs = FakeCertificateClient()
    certs.latest = bundle(material)
    target = make_target(certs, secret(status=403, body={'error': {'code': 'Forbidden', 'message': 'denied'}}))
    with pytest.raises(errors.DeployError) as info:
        target.export_version(target.read_latest())
    assert info.value.code == errors.FORBIDDEN and 'getSecret' in info.value.message


def test_close_closes_clients():
    certs = FakeCertificateClient()
    target = make_target(certs)
    target.connection.client()
    target.close()
    assert certs.closed


def test_missing_sdk_is_a_missing_dependency(monkeypatch):
    monkeypatch.setattr(azure_sdk, '_CACHE', {})

    def broken(module):
        raise errors.DeployError(errors.MISSING_DEPENDENCY, 'x', package=azure_sdk.PACKAGES[module])
    monkeypatch.setattr(azure_sdk, '_import', broken)
    settings = KeyVaultSettings(config.parse_vault_url(VAULT), 'www', 'login.microsoftonline.com')
    with pytest.raises(errors.DeployError) as info:
        KeyVaultTarget(settings).read_latest()
    assert info.value.code == errors.MISSING_DEPENDENCY and info.value.details['package'] == 'azure-identity'


def test_real_clients_are_built_with_transport_options(monkeypatch, tmp_path, pki):
    for name in ('AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET'):
        monkeypatch.delenv(name, raising=False)
    ca = tmp_path / 'ca.pem'
    ca.write_bytes(pki.pem(pki.cert(pki.ec(), 'Emulator CA', ca=True)))
    settings = KeyVaultSettings(config.parse_vault_url('https://127.0.0.1:8443', 'custom'), 'www', 'https://127.0.0.1:9443',
                                credential_mode='client_secret', api_version='7.5', ca_path=str(ca), timeout=7)
    target = KeyVaultTarget(settings, env={'AZURE_TENANT_ID': 't', 'AZURE_CLIENT_ID': 'c', 'AZURE_CLIENT_SECRET': 's'})
    certs = target.connection.client()
    assert isinstance(certs, azure.keyvault.certificates.CertificateClient)  # the only client: no SecretClient
    assert certs.api_version == '7.5' and certs.vault_url == 'https://127.0.0.1:8443'
    retry = certs._client._config.retry_policy
    assert (retry.total_retries, retry.timeout, retry.backoff_max) == (4, 28, 30)
    bundle_path = target.connection._ca_file
    assert open(bundle_path, 'rb').read().endswith(ca.read_bytes() + b'\n')
    target.close()
    assert not os.path.exists(bundle_path)


def test_ca_path_must_hold_certificates(tmp_path):
    bad = tmp_path / 'ca.pem'
    bad.write_text('nothing here')
    with pytest.raises(errors.DeployError) as info:
        combined_ca_bundle(str(bad))
    assert info.value.code == errors.INVALID_CONFIG
    with pytest.raises(errors.DeployError):
        combined_ca_bundle(str(tmp_path / 'missing.pem'))


def test_an_endless_ca_path_is_refused_not_read_to_the_end():
    """/dev/zero never ends: the read stops one byte past the PEM cap and the parse refuses it."""
    with pytest.raises(errors.DeployError) as info:
        combined_ca_bundle('/dev/zero')
    assert info.value.code == errors.INVALID_CONFIG


def test_invalid_tenant_is_auth_failed_not_a_traceback(monkeypatch):
    for name in ('AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET'):
        monkeypatch.delenv(name, raising=False)
    settings = KeyVaultSettings(config.parse_vault_url(VAULT), 'www', 'login.microsoftonline.com',
                                credential_mode='client_secret', tenant_id='contoso tenant', client_id='c')
    with pytest.raises(errors.DeployError) as info:
        KeyVaultTarget(settings, env={'AZURE_CLIENT_SECRET': 's'}).connection.client()
    assert info.value.code == errors.AUTH_FAILED and 'tenant' in info.value.message.lower()
