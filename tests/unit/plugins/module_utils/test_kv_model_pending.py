# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""kv_model's key-in-vault flow, driven through the real azure-keyvault-certificates CertificateClient.

Each test checks what the SDK deserialises from the model against what the recorded service answers hold
(recordings/README.md): the create's operation and CSR, GET latest and List while pending, the stored policy, the
merge (leaf key check, chain kept as sent, tags), cancel and delete of the pending operation.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

import azure.core.exceptions as azure_core_exceptions
import azure.keyvault.certificates as kv_certificates
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils import kv_model
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.kv_model_client import model_client
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.real_shapes import recorded_body
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import load

NAME = 'www-request'
SUBJECT = 'CN=www.example.com, O=Example Ltd'


class Clock(object):
    def __init__(self):
        self.t = 1750000000.0

    def now(self):
        return self.t


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def spki(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_policy(**overrides):
    options = dict(issuer_name='Unknown', subject=SUBJECT, san_dns_names=['www.example.com', 'example.com'],
                   key_type=kv_certificates.KeyType.rsa, key_size=2048, exportable=True, reuse_key=False,
                   key_usage=[kv_certificates.KeyUsageType.digital_signature, kv_certificates.KeyUsageType.key_encipherment],
                   enhanced_key_usage=['1.3.6.1.5.5.7.3.1'], validity_in_months=6,
                   content_type=kv_certificates.CertificateContentType.pem)
    options.update(overrides)
    return kv_certificates.CertificatePolicy(**options)


@pytest.fixture
def vault():
    return kv_model.Vault(Clock())


@pytest.fixture
def ca(pki):
    root_key = pki.ec(ec.SECP384R1)
    root = pki.cert(root_key, 'Model Test Root', ca=True, days=3650)
    inter_key = pki.ec()
    inter = pki.cert(inter_key, 'Model Test Intermediate', issuer=root, issuer_key=root_key, ca=True, days=1800)
    return root, inter, inter_key


def request(client, vault, pki, policy=None, tags=None, name=NAME):
    vault.next_key = pki.rsa() if policy is None else None
    operation = client.begin_create_certificate(name, policy or rsa_policy(), tags=tags).result()
    assert isinstance(operation, kv_certificates.CertificateOperation)
    return operation


def test_create_answers_the_recorded_operation(vault, pki):
    client, transport = model_client(vault)
    operation = request(client, vault, pki, tags={'team': 'web'})
    raw = vault.get_pending(NAME)
    recorded = recorded_body('net_pending_merge.json', 'create')
    assert sorted(raw.body) == sorted(recorded)  # the same fields as the service's 202
    assert raw.body['status_details'] == recorded['status_details']
    assert ('POST', '/certificates/%s/create' % NAME, 202) in transport.log
    assert operation.status == 'inProgress' and operation.issuer_name == 'Unknown'
    assert operation.cancellation_requested is False
    assert operation.status_details == 'Pending certificate created. Please Perform Merge to complete the request.'
    assert operation.request_id == vault.certs[NAME].pending.request_id and len(operation.request_id) == 32
    created = [r for r in vault.events if r.kind == 'create']
    assert created and created[0].detail['tags'] == {'team': 'web'}


def test_created_location_header_names_the_request(vault, pki):
    vault.next_key = pki.rsa()
    answer = vault.create(NAME, {'policy': {'x509_props': {'subject': 'CN=a.example'}, 'issuer': {'name': 'Unknown'}}})
    assert answer.status == 202 and answer.headers['Retry-After'] == '10'
    assert answer.headers['Location'].endswith('/certificates/%s/pending?api-version=7.6&request_id=%s'
                                               % (NAME, answer.body['request_id']))


def test_csr_is_over_the_policy_and_the_vaults_key(vault, pki):
    client = model_client(vault)[0]
    operation = request(client, vault, pki)
    csr = x509.load_der_x509_csr(operation.csr)
    assert csr.is_signature_valid
    # Key Vault's subject string is in RFC 4514 order (recorded: the CLI's C=..., CN=... CSR starts with CN in DER)
    assert csr.subject.rfc4514_string() == SUBJECT.replace(', ', ',')
    assert [a.value for a in csr.subject] == ['Example Ltd', 'www.example.com']
    assert spki(csr.public_key()) == vault.certs[NAME].pending.public_key_der
    assert csr.public_key().key_size == 2048
    extensions = dict((e.oid.dotted_string, e) for e in csr.extensions)
    assert extensions['2.5.29.15'].critical and extensions['2.5.29.15'].value.digital_signature
    assert extensions['2.5.29.15'].value.key_encipherment and not extensions['2.5.29.15'].value.key_cert_sign
    assert list(extensions['2.5.29.37'].value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert extensions['2.5.29.17'].value.get_values_for_type(x509.DNSName) == ['www.example.com', 'example.com']
    assert extensions['2.5.29.19'].value.ca is False
    assert vault.certs[NAME].pending.csr_pem.startswith('-----BEGIN CERTIFICATE REQUEST-----')


def test_recorded_csrs_have_the_extensions_the_model_writes():
    """The model's CSR layout is the recorded one: keyUsage critical, then extendedKeyUsage, basicConstraints ca=false."""
    for fixture, key in (('net_pending_merge.json', 'create'), ('net_get_while_pending.json', 'create'),
                         ('cli_pending_certificate.json', 'create')):
        csr = x509.load_der_x509_csr(base64.b64decode(recorded_body(fixture, key)['csr']))
        assert [(e.oid.dotted_string, e.critical) for e in csr.extensions] == [
            ('2.5.29.15', True), ('2.5.29.37', False), ('2.5.29.19', False)]


def test_policy_while_pending_has_what_was_asked(vault, pki):
    client = model_client(vault)[0]
    request(client, vault, pki)
    policy = client.get_certificate_policy(NAME)
    assert policy.issuer_name == 'Unknown' and policy.subject == SUBJECT
    assert policy.san_dns_names == ['www.example.com', 'example.com']
    assert policy.key_type == 'RSA' and policy.key_size == 2048 and policy.exportable is True and policy.reuse_key is False
    assert policy.enhanced_key_usage == ['1.3.6.1.5.5.7.3.1']
    assert policy.key_usage == ['digitalSignature', 'keyEncipherment']
    assert policy.validity_in_months == 6 and policy.content_type == 'application/x-pem-file'
    assert policy.lifetime_actions[0].action == 'EmailContacts' and policy.lifetime_actions[0].lifetime_percentage == 80


def test_policy_defaults_and_key_usage_spelling_are_the_recorded_ones(vault, pki):
    vault.next_key = pki.rsa()
    sent = load('net_get_while_pending.json')['interactions']['create']['request']['body']
    assert vault.create(NAME, sent).status == 202
    recorded = recorded_body('net_get_while_pending.json', 'get_latest_pending')['policy']
    mine = vault.get_policy(NAME).body
    for part in ('key_props', 'secret_props', 'x509_props', 'lifetime_actions', 'issuer'):
        assert mine[part] == recorded[part], part
    assert sorted(mine) == sorted(recorded)


def test_latest_while_the_only_version_is_pending_is_the_recorded_disabled_version(vault, pki):
    client = model_client(vault)[0]
    request(client, vault, pki)
    raw = vault.get_latest(NAME).body
    assert sorted(raw) == sorted(recorded_body('net_get_while_pending.json', 'get_latest_pending'))
    assert raw['attributes']['exp'] == kv_model.add_months(raw['attributes']['created'], 6)
    assert raw['attributes']['nbf'] == raw['attributes']['created'] - 600
    cert = client.get_certificate(NAME)
    assert cert.properties.enabled is False and cert.cer is None and cert.properties.x509_thumbprint is None
    assert cert.policy.subject == SUBJECT and cert.properties.version == vault.certs[NAME].pending.placeholder.id
    version = client.get_certificate_version(NAME, cert.properties.version)
    assert version.properties.enabled is False and version.policy is None
    assert sorted(vault.get_version(NAME, cert.properties.version).body) == ['attributes', 'id']


def test_list_leaves_a_pending_only_name_out_unless_asked(vault, pki):
    client = model_client(vault)[0]
    request(client, vault, pki)
    assert list(client.list_properties_of_certificates()) == []
    listed = list(client.list_properties_of_certificates(include_pending=True))
    assert [p.name for p in listed] == [NAME] and listed[0].enabled is False and listed[0].x509_thumbprint is None
    assert vault.list_certificates({'includePending': 'true'}).body['value'][0]['subject'] == ''


def test_merge_stores_the_leaf_and_the_chain_as_sent_with_the_merge_tags(vault, pki, ca):
    root, inter, inter_key = ca
    client = model_client(vault)[0]
    operation = request(client, vault, pki, tags={'from': 'create'})
    placeholder = vault.certs[NAME].pending.placeholder.id
    leaf = kv_model.sign_csr(operation.csr, inter, inter_key, days=30)
    merged = client.merge_certificate(NAME, [der(leaf), der(inter), der(root)], tags={'from': 'merge'})
    assert merged.cer == der(leaf)
    assert merged.properties.x509_thumbprint == hashlib.sha1(der(leaf)).digest()  # nosec - a thumbprint
    assert merged.properties.tags == {'from': 'merge'} and merged.properties.enabled is True
    assert merged.properties.version != placeholder  # recorded (JS): the merged version's id is not the pending one's
    assert merged.policy.issuer_name == 'Unknown'
    assert merged.properties.not_before.timestamp() == int(leaf.not_valid_before_utc.timestamp())
    body = vault.get_latest(NAME).body
    assert sorted(body) == sorted(list(recorded_body('net_pending_merge.json', 'merge')) + ['tags'])  # recorded: no tags sent
    done = client.get_certificate_operation(NAME)
    assert done.status == 'completed' and done.target == '%s/certificates/%s' % (kv_model.VAULT_URL, NAME)
    assert done.status_details is None
    assert sorted(vault.get_pending(NAME).body) == sorted(recorded_body('net_pending_merge.json', 'get_pending_completed'))
    assert [v.version for v in client.list_properties_of_certificate_versions(NAME)] == [merged.properties.version]
    secret = vault.get_secret(NAME, merged.properties.version).body['value']
    assert [der(c) for c in x509.load_pem_x509_certificates(secret.encode('ascii'))] == [der(leaf), der(inter), der(root)]


def test_merge_without_tags_keeps_the_create_tags(vault, pki, ca):
    root, inter, inter_key = ca
    client = model_client(vault)[0]
    operation = request(client, vault, pki, tags={'from': 'create'})
    merged = client.merge_certificate(NAME, [der(kv_model.sign_csr(operation.csr, inter, inter_key))])
    assert merged.properties.tags == {'from': 'create'}


def test_merge_of_a_certificate_of_another_key_is_the_recorded_400(vault, pki, ca):
    root, inter, inter_key = ca
    client = model_client(vault)[0]
    request(client, vault, pki)
    other = pki.cert(pki.rsa(fresh=True), 'www.example.com', issuer=inter, issuer_key=inter_key)
    with pytest.raises(azure_core_exceptions.HttpResponseError) as raised:
        client.merge_certificate(NAME, [der(other), der(inter)])
    recorded = recorded_body('cli_pending_certificate.json', 'merge_key_mismatch')['error']
    assert raised.value.status_code == 400
    assert raised.value.error.code == recorded['code'] and raised.value.error.message == recorded['message']
    assert client.get_certificate_operation(NAME).status == 'inProgress'
    assert [v.placeholder for v in vault.certs[NAME].versions] == [True]


def test_merge_accepts_base64_of_pem_as_recorded(vault, pki, ca):
    root, inter, inter_key = ca
    client = model_client(vault)[0]
    operation = request(client, vault, pki)
    leaf = kv_model.sign_csr(operation.csr, inter, inter_key)
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    answer = vault.merge(NAME, {'x5c': [base64.b64encode(pem).decode('ascii')]})
    assert answer.status == 201 and answer.body['cer'] == base64.b64encode(der(leaf)).decode('ascii')


def test_cancel_then_delete_the_pending_operation(vault, pki):
    client = model_client(vault)[0]
    request(client, vault, pki)
    cancelled = client.cancel_certificate_operation(NAME)
    assert cancelled.cancellation_requested is True and cancelled.status == 'inProgress'  # recorded: the answer itself
    assert client.get_certificate_operation(NAME).status == 'cancelled'
    assert recorded_body('test_async_request_cancellation_and_deletion.json', 'get_cancelled')['status'] == 'cancelled'
    deleted = client.delete_certificate_operation(NAME)
    assert deleted.status == 'cancelled'
    with pytest.raises(azure_core_exceptions.ResourceNotFoundError) as raised:
        client.get_certificate_operation(NAME)
    assert raised.value.error.code == 'PendingCertificateNotFound'
    assert client.get_certificate(NAME).properties.enabled is False  # recorded: the disabled version stays


def test_create_while_in_progress_is_409_and_after_cancel_replaces(vault, pki):
    client = model_client(vault)[0]
    first = request(client, vault, pki)
    vault.next_key = pki.rsa(fresh=True)
    with pytest.raises(azure_core_exceptions.HttpResponseError) as raised:
        client.begin_create_certificate(NAME, rsa_policy()).result()
    recorded = recorded_body('docs_pending_conflicts.json', 'create_while_pending')['error']
    assert raised.value.status_code == 409 and raised.value.error.message == recorded['message']
    client.cancel_certificate_operation(NAME)
    client.get_certificate_operation(NAME)
    second = client.begin_create_certificate(NAME, rsa_policy(subject='CN=other.example.com')).result()
    assert second.csr != first.csr and client.get_certificate_operation(NAME).status == 'inProgress'


def test_import_while_in_progress_is_409(vault, pki):
    client = model_client(vault)[0]
    request(client, vault, pki)
    key = pki.rsa(fresh=True)
    leaf = pki.cert(key, 'www.example.com')
    pem = (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
           + leaf.public_bytes(serialization.Encoding.PEM)).decode('ascii')
    answer = vault.import_(NAME, {'value': pem, 'policy': {'secret_props': {'contentType': kv_model.PEM}}})
    assert answer.status == 409 and answer.body['error']['code'] == 'Forbidden'


def test_ec_hsm_policy_makes_an_ec_key_of_the_curve(vault):
    client = model_client(vault)[0]
    policy = rsa_policy(key_type=kv_certificates.KeyType.ec_hsm, key_size=None, key_curve_name='P-384', exportable=False)
    operation = client.begin_create_certificate(NAME, policy).result()
    key = x509.load_der_x509_csr(operation.csr).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == 'secp384r1'
    stored = client.get_certificate_policy(NAME)
    assert stored.key_type == 'EC-HSM' and stored.key_curve_name == 'P-384' and stored.exportable is False


def test_exportable_hsm_policy_is_refused(vault):
    client = model_client(vault)[0]
    with pytest.raises(azure_core_exceptions.HttpResponseError) as raised:
        client.begin_create_certificate(NAME, rsa_policy(key_type=kv_certificates.KeyType.rsa_hsm, exportable=True)).result()
    assert raised.value.status_code == 400 and 'cannot be exportable' in raised.value.error.message
    assert NAME not in vault.certs or vault.certs[NAME].versions == []


@pytest.mark.parametrize('reuse', [True, False])
def test_renewal_with_reuse_key(vault, pki, ca, reuse):
    root, inter, inter_key = ca
    client = model_client(vault)[0]
    operation = request(client, vault, pki)
    merged = client.merge_certificate(NAME, [der(kv_model.sign_csr(operation.csr, inter, inter_key))])
    renewal = client.begin_create_certificate(NAME, rsa_policy(reuse_key=reuse)).result()
    same = spki(x509.load_der_x509_csr(renewal.csr).public_key()) == spki(x509.load_der_x509_csr(operation.csr).public_key())
    assert same is reuse
    # a new version pending beside a completed one: which one is latest is a switch (not recorded)
    assert client.get_certificate(NAME).properties.enabled is False
    vault.latest_while_pending = 'completed'
    assert client.get_certificate(NAME).properties.version == merged.properties.version
    assert [p.name for p in client.list_properties_of_certificates()] == [NAME]


def test_unknown_issuer_only(vault):
    answer = vault.create(NAME, {'policy': {'x509_props': {'subject': 'CN=a'}, 'issuer': {'name': 'Self'}}})
    assert answer.status == 400 and NAME not in vault.certs


def test_recorded_fixture_bodies_are_valid_json_with_sources():
    for name in ('net_pending_merge.json', 'net_get_while_pending.json', 'cli_pending_certificate.json',
                 'test_async_request_cancellation_and_deletion.json', 'js_merge_self_signed.json',
                 'docs_pending_conflicts.json'):
        fixture = load(name)
        assert fixture['source'] and json.dumps(fixture)
