# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The request adapter (targets/azure_kv/requests.py) on the real service's recorded answers, replayed verbatim.

Each test replays interactions of a recording in ``recordings/`` (their sources: recordings/README.md) through the
real CertificateClient pipeline, and checks what the adapter makes of them -- the create's 202 with its CSR, GET
latest while the only version is pending (a disabled version without a certificate), the stored policy with the
service's filled-in defaults, the merge's 201, the completed operation after it, the service's own key-mismatch 400,
and the 404 of a deleted operation -- and what it sent.
"""

from __future__ import annotations

import base64

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import RequestPolicy
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.request import stored_policy_differences
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import csr as csr_material
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import requests as kv_requests
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import interactions, load
# The replay module's autouse fixtures (no socket may be opened; a fresh challenge cache per test) apply here too.
# pylint: disable=unused-import
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_azure_kv_replay import (  # noqa: F401
    Replay, fresh_challenge_cache, no_network, renamed)
# pylint: enable=unused-import

NAME = 'www-example-com'


def replay(fixture, recorded_name, *keys):
    return Replay([renamed(item, recorded_name, NAME) for item in interactions(fixture, *keys)])


def signed_from(x5c):
    ders = [base64.b64decode(value) for value in x5c]
    certs = [m.load_der_certificate(der) for der in ders]
    return csr_material.SignedCertificate(certs[0], certs[1:])


def test_create_merge_and_the_completed_operation_as_recorded():
    fixture = 'net_pending_merge.json'
    r = replay(fixture, '346865062', 'create', 'merge', 'get_pending_completed', 'get_latest_after_merge')
    target = r.target(NAME)
    policy = RequestPolicy('CN=Azure SDK', key_type='RSA', key_size=2048)
    tags = {'certdeploy-managed-by': 'certdeploy', 'certdeploy-certificate-id': NAME, 'certdeploy-source': 'request'}

    created = target.create_request(policy, tags)
    assert created.in_progress and created.issuer == 'Unknown'
    assert created.status_details == 'Pending certificate created. Please Perform Merge to complete the request.'
    facts = csr_material.csr_facts(csr_material.load_csr(created.csr))
    assert facts['subject'] == 'CN=Azure SDK' and (facts['key_type'], facts['key_size']) == ('RSA', 2048)
    assert csr_material.policy_differences(policy, facts, 'the CSR') == []
    sent = r.transport.authenticated()[0]
    assert sent.method == 'POST' and sent.body['policy']['issuer'] == {'name': 'Unknown'} and sent.body['tags'] == tags
    assert sent.body['policy']['key_props'] == {'exportable': True, 'kty': 'RSA', 'reuse_key': False, 'key_size': 2048}

    x5c = load(fixture)['interactions']['merge']['request']['body']['x5c']
    signed = signed_from(x5c)
    assert csr_material.same_public_key(signed.leaf, csr_material.load_csr(created.csr))  # the recording's own CA did it
    merged = target.merge(signed, tags)
    assert merged.thumbprint == m.thumbprint(signed.leaf) and merged.version == 'd6242d7a62e84003a2c369fec8554e41'
    body = r.transport.authenticated()[1].body
    assert body['x5c'] == x5c and body['tags'] == tags and body['attributes'] == {'enabled': True}

    after = target.read_pending()
    assert after.status == 'completed' and not after.in_progress  # a completed operation keeps its CSR: not a pending one
    assert target.read_latest(look_for_deleted=False).thumbprint == merged.thumbprint
    r.check()


def test_a_create_answered_500_is_not_resent_and_may_have_written():
    item = renamed(interactions('net_pending_merge.json', 'create')[0], '346865062', NAME)
    item['response'] = {'status': 500, 'body': {'error': {'code': 'InternalServerError', 'message': 'The server had an error.'}}}
    r = Replay([item])
    with pytest.raises(errors.DeployError) as failure:
        r.target(NAME).create_request(RequestPolicy('CN=Azure SDK', key_type='RSA', key_size=2048), {})
    assert failure.value.code == errors.SERVICE_ERROR and failure.value.details.get('may_have_written') is True
    assert [(q.method, q.path) for q in r.transport.authenticated()] == [('POST', '/certificates/%s/create' % NAME)]
    r.check()


def test_latest_while_the_only_version_is_pending_shows_no_certificate_and_the_stored_policy():
    r = replay('net_get_while_pending.json', '96831500', 'create', 'get_latest_pending', 'get_latest_pending')
    target = r.target(NAME)
    target.create_request(RequestPolicy('CN=Azure SDK', key_type='RSA', key_size=2048), {})
    latest = target.read_latest(look_for_deleted=False)
    assert latest.thumbprint is None and latest.leaf is None and latest.enabled is False and latest.version
    # The policy inside that answer, as the service filled it in and the SDK reads it: in the request options' names.
    stored = kv_requests.policy_dict(target._client().get_certificate(NAME).policy)
    assert stored['issuer'] == 'Unknown' and stored['key_type'] == 'RSA' and stored['hsm'] is False
    assert stored['key_size'] == 2048 and stored['validity_months'] == 12 and stored['content_type'] == 'pkcs12'
    # What the caller left unset (key usages, EKUs) is not compared, whatever defaults the service filled in.
    wanted = RequestPolicy(stored['subject'], stored['dns_names'], 'RSA', 2048, exportable=stored['exportable'],
                           reuse_key=stored['reuse_key'], validity_months=12)
    assert stored_policy_differences(wanted, stored) == []
    r.check()


def test_the_services_key_mismatch_and_a_deleted_operation_as_recorded(pki):
    r = replay('cli_pending_certificate.json', 'pending-cert', 'create', 'get_pending', 'merge_key_mismatch',
               'delete_pending', 'get_pending_after_delete')
    target = r.target(NAME)
    policy = RequestPolicy('CN=www.contoso.com', key_type='RSA', key_size=2048)
    created = target.create_request(policy, {})
    pending = target.read_pending()
    assert pending.in_progress and pending.csr == created.csr
    stranger = pki.cert(pki.rsa(), 'www.contoso.com')
    with pytest.raises(errors.DeployError) as failure:
        target.merge(csr_material.SignedCertificate(stranger, []), {})
    assert failure.value.code == errors.KEY_MISMATCH and 'does not match the public part' in failure.value.message
    assert not failure.value.details.get('may_have_written')
    target._client().delete_certificate_operation(NAME)
    assert target.read_pending() is None  # 404 PendingCertificateNotFound: nothing pending
    r.check()
