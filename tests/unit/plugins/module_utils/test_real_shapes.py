# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The real-service shapes of recordings/ and real_shapes.py, read by the real SDK (no network).

Certificate bundles WITH ``policy`` (PEM and PKCS#12 imports, ``preserveCertOrder`` present or not) go
through ``CertificateClient`` and its deserialiser (``KeyVaultCertificate._from_certificate_bundle``);
backing-secret bundles go through the path KeyVaultTarget reads them by (the certificate client's pipeline,
``send_request``), through ``KeyVaultTarget.export_version`` and, where azure-keyvault-secrets is installed,
through ``SecretClient.get_secret``.  Each test reads fields a wrong shape would break.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import types

import pytest

import azure.core.exceptions as azure_core_exceptions
import azure.core.rest as azure_core_rest
import azure.keyvault.certificates as kv_certificates
from azure.core.credentials import AccessToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import config, sdk as azure_sdk
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.target import KeyVaultSettings, KeyVaultTarget
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils import real_shapes as shapes
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import (
    RECORDINGS, ReplayTransport, interactions, load)

# Not a requirement of the collection (the target reads secrets through the certificate client); a test
# requirement (tests/unit/requirements.txt), so that the shapes are also read by the SDK made for them.
import azure.keyvault.secrets as kv_secrets

# The replay tests' fixtures (no socket may be opened; the certificate client's challenge cache cleared per test).
# pylint: disable=unused-import
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_azure_kv_replay import (  # noqa: F401,E402
    fresh_challenge_cache, no_network)
# pylint: enable=unused-import

try:
    from azure.keyvault.secrets._shared import http_challenge_cache as _secret_cache
    SECRET_CHALLENGE_CACHES = (_secret_cache,)
except ImportError:  # pragma: no cover
    SECRET_CHALLENGE_CACHES = ()

NET_VAULT = 'https://t8c2fe6801937008f.vault.azure.net'
OLD_VAULT = 'https://tb0f745ebb7bfae58.vault.azure.net'
VAULT = 'https://shapes.vault.azure.net'
NAME = 'shape-cert'
VERSION = '0123456789abcdef0123456789abcdef'


@pytest.fixture(autouse=True)
def fresh_secret_challenge_cache():
    """The secrets client's challenge cache; the certificate client's is cleared by the replay tests' fixture."""
    for cache in SECRET_CHALLENGE_CACHES:
        cache.clear()
    yield
    for cache in SECRET_CHALLENGE_CACHES:
        cache.clear()


class Token(object):
    def get_token(self, *scopes, **kwargs):
        return AccessToken('replay-token', int(time.time()) + 3600)


def transport(*items):
    return ReplayTransport(list(items), challenge=load('challenge_401.json'))


def cert_client(vault, replay, api_version='2025-07-01'):
    return kv_certificates.CertificateClient(vault, Token(), transport=replay, api_version=api_version)


def sha1_x5t(b64_der):
    return base64.urlsafe_b64encode(hashlib.sha1(base64.b64decode(b64_der)).digest()).rstrip(b'=').decode()  # nosec


def pem_blocks(text):
    """(label, DER) of each PEM block, in order."""
    blocks, label, lines = [], None, []
    for line in text.splitlines():
        if line.startswith('-----BEGIN '):
            label, lines = line[11:-5], []
        elif line.startswith('-----END '):
            blocks.append((label, base64.b64decode(''.join(lines))))
            label = None
        elif label is not None:
            lines.append(line)
    return blocks


# -- recorded certificate bundles with policy -----------------------------------------------

@pytest.mark.parametrize('key,preserve', [('import_preserve_true', True), ('import_preserve_false', False)])
def test_recorded_pem_import_answer_carries_policy_and_preserve_order(pki, key, preserve):
    """The .NET live test's PEM import at 2025-07-01 (recordings/net_import_pem_preserve_cert_order.json), answered to the
    Python SDK's import_certificate: the policy (content type, exportable, key, issuer, lifetime action, x509 props
    from the certificate) and the echoed preserveCertOrder come out as KeyVaultCertificate fields."""
    item, = interactions('net_import_pem_preserve_cert_order.json', key)
    name = item['request']['path'].split('/')[2]
    replay = transport(item)
    h = pki.hierarchy()
    policy = kv_certificates.CertificatePolicy(issuer_name='Self', subject='CN=contoso.com', exportable=True,
                                               content_type=kv_certificates.CertificateContentType.pem)
    cert = cert_client(NET_VAULT, replay).import_certificate(
        name, shapes.pem_value(h['key'], h['leaf'], [h['inter']]).encode(), policy=policy, preserve_order=preserve)

    sent = replay.requests[-1].body
    assert sent['preserveCertOrder'] is preserve and sent['policy']['secret_props']['contentType'] == shapes.PEM
    assert cert.properties.preserve_order is preserve
    assert cert.policy.content_type == shapes.PEM and cert.policy.exportable is True
    assert (cert.policy.key_type, cert.policy.key_size, cert.policy.reuse_key) == ('RSA', 2048, False)
    assert cert.policy.issuer_name == 'Self'
    # x509_props are the imported certificate's, not the request's subject.
    assert cert.policy.subject == 'CN=Azure SDK' and cert.policy.san_emails == ['azuresdk@microsoft.com']
    assert cert.policy.validity_in_months == 120 and cert.policy.key_usage == ['digitalSignature', 'keyEncipherment', 'nonRepudiation']
    (action,) = cert.policy.lifetime_actions
    assert (action.action, action.lifetime_percentage) == ('AutoRenew', 80)
    assert cert.name == name and cert.key_id.endswith('/keys/%s/%s' % (name, cert.properties.version))
    assert cert.secret_id.endswith('/secrets/%s/%s' % (name, cert.properties.version))
    # The stored cer is the recorded certificate (guards the fixture's transcription).
    assert sha1_x5t(base64.b64encode(cert.cer)) == item['response']['body']['x5t']
    replay.assert_done()


def test_answer_of_an_older_api_version_has_no_preserve_cert_order():
    """recordings/net_import_pem_7_6_preview_1.json: no preserveCertOrder field; the SDK reads None, not False."""
    item, = interactions('net_import_pem_7_6_preview_1.json', 'import')
    assert 'preserveCertOrder' not in item['response']['body']
    replay = transport(dict(item, request={'method': 'GET', 'path': '/certificates/170868539'}))
    cert = cert_client(OLD_VAULT, replay, api_version='7.6-preview.1').get_certificate('170868539')
    assert cert.properties.preserve_order is None
    assert cert.policy.content_type == shapes.PEM and cert.policy.exportable is True
    replay.assert_done()


def test_recorded_pfx_import_without_policy_gets_the_services_policy(pki):
    """recordings/test_import_certificate_password_encoded_no_policy.json: the policy Key Vault makes up for an import
    that sent none: issuer Unknown, PKCS#12, exportable, EmailContacts at 80 %, no preserveCertOrder."""
    item, = interactions('test_import_certificate_password_encoded_no_policy.json', 'import')
    name = item['request']['path'].split('/')[2]
    replay = transport(item)
    h = pki.hierarchy()
    cert = cert_client('https://sanitized.vault.azure.net', replay).import_certificate(
        name, pki.pfx(h['key'], h['leaf'], [h['inter']], b'1234'), password='1234')
    assert replay.requests[-1].body['pwd'] == '1234' and 'policy' not in replay.requests[-1].body
    assert cert.policy.issuer_name == 'Unknown'
    assert cert.policy.content_type == shapes.PKCS12 and cert.policy.exportable is True
    assert cert.policy.subject == 'O=Internet Widgits Pty Ltd, S=Some-State, C=AU'
    (action,) = cert.policy.lifetime_actions
    assert (action.action, action.lifetime_percentage) == ('EmailContacts', 80)
    assert cert.properties.preserve_order is None
    assert sha1_x5t(base64.b64encode(cert.cer)) == item['response']['body']['x5t']
    replay.assert_done()


# -- certificate bundles built by real_shapes ----------------------------------------------------

@pytest.mark.parametrize('template', sorted(shapes.CERTIFICATE_TEMPLATES))
@pytest.mark.parametrize('content_type,exportable,preserve', [
    (shapes.PEM, True, True), (shapes.PKCS12, False, None), (shapes.PEM, False, False)])
def test_built_certificate_bundle_reads_back_what_was_filled(pki, template, content_type, exportable, preserve):
    h = pki.hierarchy()
    body = shapes.certificate_bundle_with_policy(NAME, VERSION, VAULT, h['leaf'], content_type=content_type,
                                                 exportable=exportable, preserve_order=preserve, tags={'a': 'b'},
                                                 template=template)
    replay = transport(shapes.interaction('GET', '/certificates/%s/%s' % (NAME, VERSION), body))
    cert = cert_client(VAULT, replay).get_certificate_version(NAME, VERSION)
    assert cert.policy.content_type == content_type and cert.policy.exportable is exportable
    assert cert.properties.preserve_order is preserve
    assert cert.cer == h['leaf'].public_bytes(serialization.Encoding.DER)
    assert cert.properties.x509_thumbprint == h['leaf'].fingerprint(hashes.SHA1())  # nosec - a thumbprint
    assert cert.properties.tags == {'a': 'b'} and cert.properties.version == VERSION
    assert cert.properties.not_before.timestamp() == body['attributes']['nbf']
    assert cert.policy.subject == h['leaf'].subject.rfc4514_string()
    # Every other policy field is the recorded one.
    recorded = shapes.recorded_body(*shapes.CERTIFICATE_TEMPLATES[template])['policy']
    assert cert.policy.issuer_name == recorded['issuer']['name']
    assert cert.policy.key_size == recorded['key_props']['key_size']
    replay.assert_done()


# -- backing secrets ---------------------------------------------------------------------------

def read_secret_as_the_target_does(vault, name, version, replay, api_version='2025-07-01'):
    """GET /secrets/{name}/{version} through the certificate client's pipeline, as KeyVaultTarget._get_secret does."""
    response = cert_client(vault, replay, api_version).send_request(
        azure_core_rest.HttpRequest('GET', '/secrets/%s/%s' % (name, version), headers={'Accept': 'application/json'}))
    assert response.status_code == 200
    return response.json()


def test_recorded_backing_secret_of_a_non_exportable_certificate_is_the_certificate_alone():
    """recordings/net_backing_secret_non_exportable.json (verbatim): exportable false → the secret holds one
    CERTIFICATE block and no key; contentType, managed and kid link it to the certificate version."""
    get_cert, get_secret = interactions('net_backing_secret_non_exportable.json', 'get_certificate', 'get_secret')
    replay = transport(get_cert, get_secret)
    cert = cert_client(OLD_VAULT, replay, '7.6-preview.1').get_certificate('1828305212')
    assert cert.policy.exportable is False and cert.policy.content_type == shapes.PEM
    secret = read_secret_as_the_target_does(OLD_VAULT, cert.name, cert.properties.version, replay, '7.6-preview.1')
    assert (secret['contentType'], secret['managed']) == (shapes.PEM, True)
    assert secret['kid'] == cert.key_id and secret['id'] == cert.secret_id
    assert pem_blocks(secret['value']) == [('CERTIFICATE', cert.cer)]
    assert 'tags' not in secret and 'sid' not in secret and 'policy' not in secret
    replay.assert_done()


def chain_value(pki, content_type, order):
    h = pki.hierarchy()
    chain = [h[n] for n in order]
    if content_type == shapes.PEM:
        value = shapes.pem_value(h['key'], h['leaf'], chain)
    else:
        value = shapes.pkcs12_value(h['key'], h['leaf'], chain)
    return h, chain, value


@pytest.mark.parametrize('content_type', [shapes.PEM, shapes.PKCS12])
@pytest.mark.parametrize('order', [('inter', 'root'), ('root', 'inter'), ('inter',)])
def test_built_backing_secret_with_a_chain_keeps_the_given_order(pki, content_type, order):
    """A backing secret in the recorded shape (recordings/net_backing_secrets.json) holding key, leaf and a chain:
    read as KeyVaultTarget reads it, its value opens to the leaf and the chain in the order it was filled."""
    h, chain, value = chain_value(pki, content_type, order)
    body = shapes.secret_bundle_of_import(value, content_type, NAME, VERSION, VAULT, leaf=h['leaf'])
    replay = transport(shapes.interaction('GET', '/secrets/%s/%s' % (NAME, VERSION), body))
    secret = read_secret_as_the_target_does(VAULT, NAME, VERSION, replay)
    assert (secret['contentType'], secret['managed']) == (content_type, True)
    assert secret['kid'] == '%s/keys/%s/%s' % (VAULT, NAME, VERSION)
    wanted = [c.public_bytes(serialization.Encoding.DER) for c in [h['leaf']] + chain]
    if content_type == shapes.PEM:
        blocks = pem_blocks(secret['value'])
        assert blocks[0][0] == 'PRIVATE KEY'  # the key first, as the service serves it
        assert [block for label, block in blocks[1:]] == wanted
    else:
        key, leaf, extra = pkcs12.load_key_and_certificates(base64.b64decode(secret['value']), None)
        assert key is not None
        assert [c.public_bytes(serialization.Encoding.DER) for c in [leaf] + list(extra)] == wanted
    replay.assert_done()


@pytest.mark.parametrize('content_type', [shapes.PEM, shapes.PKCS12])
def test_built_backing_secret_parses_through_secret_client(pki, content_type):
    """SecretClient's deserialiser reads the shape: content type, managed, key_id, version, value."""
    h, chain, value = chain_value(pki, content_type, ('inter', 'root'))
    body = shapes.secret_bundle_of_import(value, content_type, NAME, VERSION, VAULT, leaf=h['leaf'])
    replay = transport(shapes.interaction('GET', '/secrets/%s/%s' % (NAME, VERSION), body))
    secret = kv_secrets.SecretClient(VAULT, Token(), transport=replay).get_secret(NAME, VERSION)
    assert secret.value == value
    assert secret.properties.content_type == content_type and secret.properties.managed is True
    assert secret.properties.key_id == '%s/keys/%s/%s' % (VAULT, NAME, VERSION)
    assert secret.properties.version == VERSION and secret.name == NAME
    assert secret.properties.not_before.timestamp() == body['attributes']['nbf']
    replay.assert_done()


# -- through KeyVaultTarget ------------------------------------------------------------------------

class _Module(object):
    def __init__(self, module, **replaced):
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self._module, name)


def target_over(replay, vault=VAULT, name=NAME):
    def client(vault_url, credential, **options):
        return kv_certificates.CertificateClient(vault_url, credential, transport=replay, **options)

    def sdk():
        return azure_sdk.Sdk(
            identity=types.SimpleNamespace(DefaultAzureCredential=lambda **options: Token()),
            certificates=_Module(kv_certificates, CertificateClient=client),
            core_exceptions=azure_core_exceptions, core_rest=azure_core_rest)
    address = config.parse_vault_url(vault)
    settings = KeyVaultSettings(address, name, config.CLOUDS[address.cloud]['authority_host'], api_version='2025-07-01')
    return KeyVaultTarget(settings, env={}, sdk_loader=sdk)


@pytest.mark.parametrize('content_type', [shapes.PEM, shapes.PKCS12])
def test_target_exports_the_chain_of_a_real_shaped_backing_secret(pki, content_type):
    """KeyVaultTarget.read_latest + export_version over a certificate bundle and its backing secret in the
    recorded shapes: the exported material has the leaf, the key and the chain in the order the vault served."""
    h, chain, value = chain_value(pki, content_type, ('inter', 'root'))
    cert_body = shapes.certificate_bundle_with_policy(NAME, VERSION, VAULT, h['leaf'], content_type=content_type,
                                                      preserve_order=True)
    secret_body = shapes.secret_bundle_of_import(value, content_type, NAME, VERSION, VAULT, leaf=h['leaf'])
    replay = transport(shapes.interaction('GET', '/certificates/%s' % NAME, cert_body),
                       shapes.interaction('GET', '/secrets/%s/%s' % (NAME, VERSION), secret_body))
    target = target_over(replay)
    state = target.read_latest()
    exported = target.export_version(state)
    assert exported.version == VERSION and exported.payload == value
    material = exported.material
    assert material.thumbprint == state.thumbprint
    assert [c.subject for c in material.chain] == [c.subject for c in chain]
    assert material.key.public_key().public_numbers() == h['key'].public_key().public_numbers()
    replay.assert_done()


# A PEM key header of any kind (PKCS#8, RSA, EC, encrypted), with or without JSON's escaped line break after it.
KEY_MARKER = re.compile(r'-{5}BEGIN [A-Z ]*PRIVATE KEY-{5}')


def test_no_fixture_holds_a_private_key():
    """No value in recordings/ holds a private key (the recorded values that did were replaced by FILL)."""
    for name in sorted(os.listdir(RECORDINGS)):
        if name.endswith('.json'):
            with open(os.path.join(RECORDINGS, name)) as handle:
                text = handle.read()
            assert not KEY_MARKER.search(text), name
