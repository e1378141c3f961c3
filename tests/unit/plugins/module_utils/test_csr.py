# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""material/csr.py and the request options' offline validation (frontend/request.py build_policy): pure rules."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import RequestPolicy
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.request import build_policy
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import csr as csr_material


def make_csr(key, names, dns=()):
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(oid, v) for oid, v in names]))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize('text, pairs', [
    ('CN=www.example.com', (('CN', 'www.example.com'),)),
    ('cn = www.example.com ', (('CN', 'www.example.com'),)),
    ('CN=www.example.com, O=Example, C=DE', (('C', 'DE'), ('CN', 'www.example.com'), ('O', 'Example'))),
    ('O=Example;CN=a', (('CN', 'a'), ('O', 'Example'))),
    ('CN="a, b"', (('CN', 'a, b'),)),
    (r'CN=a\, b', (('CN', 'a, b'),)),
    ('S=Bavaria, CN=a', (('CN', 'a'), ('ST', 'Bavaria'))),
])
def test_subjects_are_read_as_unordered_attribute_pairs(text, pairs):
    assert csr_material.parse_subject(text) == pairs


@pytest.mark.parametrize('text', ['', '   ', 'www.example.com', 'CN=', 'XX=a', 'CN=a,,O=b', 'CN=a, =b', 'CN="a', 'C' * 2000])
def test_subjects_that_cannot_be_read_are_config_errors(text):
    with pytest.raises(errors.DeployError) as failure:
        csr_material.parse_subject(text)
    assert failure.value.code == errors.INVALID_CONFIG


def test_a_csrs_facts_and_digests():
    key = ec.generate_private_key(ec.SECP384R1())
    csr = make_csr(key, [(NameOID.ORGANIZATION_NAME, 'Example'), (NameOID.COMMON_NAME, 'www.example.com')],
                   ['WWW.example.com.', 'api.example.com'])
    facts = csr_material.csr_facts(csr)
    assert facts['subject'] == 'CN=www.example.com, O=Example'
    assert facts['dns_names'] == ['api.example.com', 'www.example.com']
    assert (facts['key_type'], facts['key_size'], facts['curve']) == ('EC', None, 'P-384')
    assert facts['signature_valid'] is True and len(facts['csr_sha256']) == 64
    # The same CSR read from PEM or DER has the same digest; its key has the digest every certificate over it has.
    assert csr_material.csr_facts(csr_material.load_csr(csr.public_bytes(Encoding.PEM)))['csr_sha256'] == facts['csr_sha256']
    assert csr_material.csr_facts(csr_material.load_csr(csr.public_bytes(Encoding.DER)))['csr_sha256'] == facts['csr_sha256']
    assert facts['public_key_sha256'] == csr_material.public_key_sha256(key.public_key())


@pytest.mark.parametrize('raw', [b'', b'not a csr', b'-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'])
def test_an_unreadable_csr_from_the_vault_is_a_service_error(raw):
    with pytest.raises(errors.DeployError) as failure:
        csr_material.load_csr(raw)
    assert failure.value.code == errors.SERVICE_ERROR


def test_policy_differences_name_each_field_that_differs(pki):
    key = pki.rsa()
    facts = csr_material.csr_facts(make_csr(key, [(NameOID.COMMON_NAME, 'www.example.com')], ['www.example.com']))
    same = RequestPolicy('CN=www.example.com', ['www.example.com'], 'RSA', 2048)
    assert csr_material.policy_differences(same, facts, 'the CSR') == []
    assert csr_material.policy_differences(RequestPolicy('cn=www.example.com', ['WWW.example.com.'], 'RSA', 2048), facts, 'x') == []
    out = csr_material.policy_differences(RequestPolicy('CN=other', [], 'RSA', 4096), facts, 'the CSR')
    assert [d.split(':')[0] for d in out] == ['subject', 'dns_names', 'key_size']
    ec_policy = RequestPolicy('CN=www.example.com', ['www.example.com'], 'EC', curve='P-256')
    assert [d.split(':')[0] for d in csr_material.policy_differences(ec_policy, facts, 'x')] == ['key_type']


def test_a_signed_certificate_is_ordered_leaf_first_and_its_key_compared_with_the_csr(pki, hierarchy):
    pem = pki.pem
    signed = csr_material.load_signed(pem(hierarchy['leaf']), pem(hierarchy['root'], hierarchy['inter']))
    assert [m.thumbprint(c) for c in signed.certificates] == [m.thumbprint(hierarchy[k]) for k in ('leaf', 'inter', 'root')]
    dropped = csr_material.load_signed(pem(hierarchy['leaf'], hierarchy['root'], hierarchy['inter']), None, 'drop')
    assert [m.thumbprint(c) for c in dropped.certificates] == [m.thumbprint(hierarchy[k]) for k in ('leaf', 'inter')]
    csr = make_csr(hierarchy['key'], [(NameOID.COMMON_NAME, 'www.example.com')])
    assert csr_material.same_public_key(hierarchy['leaf'], csr) is True
    assert csr_material.same_public_key(hierarchy['inter'], csr) is False


@pytest.mark.parametrize('certificate, code', [
    ('', errors.INVALID_MATERIAL),
    ('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', errors.INVALID_MATERIAL),
    # A key block where the certificate belongs (the label built here: no key, real or not, is committed as PEM).
    ('-----BEGIN %s-----\nAAAA\n-----END %s-----\n' % ('PRIVATE' + ' KEY', 'PRIVATE' + ' KEY'), errors.INVALID_MATERIAL),
])
def test_signed_material_that_cannot_be_read_is_refused(certificate, code):
    with pytest.raises(errors.DeployError) as failure:
        csr_material.load_signed(certificate)
    assert failure.value.code == code


OPTIONS = dict(subject='CN=www.example.com', dns_names=['www.example.com'], key_type='RSA', key_size=None, curve=None, hsm=False,
               exportable=True, reuse_key=False, validity_months=12, key_usage=None, extended_key_usage=None, content_type='pkcs12')


def test_policy_defaults():
    rsa_policy = build_policy(OPTIONS)
    assert (rsa_policy.key_type, rsa_policy.key_size, rsa_policy.curve, rsa_policy.exportable) == ('RSA', 2048, None, True)
    ec_policy = build_policy(dict(OPTIONS, key_type='EC'))
    assert (ec_policy.key_size, ec_policy.curve) == (None, 'P-256')
    assert build_policy(dict(OPTIONS, hsm=True, exportable=False)).hsm is True


@pytest.mark.parametrize('change, words', [
    (dict(key_size=1024), 'key_size must be one of'),
    (dict(curve='P-256'), 'curve applies to key_type: EC'),
    (dict(key_type='EC', key_size=2048), 'key_size applies to key_type: RSA'),
    (dict(hsm=True), 'set exportable: false'),
    (dict(validity_months=0), 'validity_months must be between'),
    (dict(validity_months=1201), 'validity_months must be between'),
    (dict(dns_names=['not a name']), 'is not a DNS name'),
    (dict(dns_names=['a.*.example.com']), 'is not a DNS name'),
    (dict(dns_names=['n%d.example.com' % i for i in range(101)]), 'at most 100'),
    (dict(extended_key_usage=['serverAuth']), 'is not an OID'),
    (dict(subject='www.example.com'), 'NAME=value'),
])
def test_policy_options_that_cannot_work_are_refused_offline(change, words):
    with pytest.raises(errors.DeployError) as failure:
        build_policy(dict(OPTIONS, **change))
    assert failure.value.code == errors.INVALID_CONFIG and words in failure.value.message
