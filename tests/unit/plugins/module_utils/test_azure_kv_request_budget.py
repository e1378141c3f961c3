# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The request budget of one deploy, counted on the real SDK stack: the exact sequence of requests per scenario.

``DeployEngine`` drives a ``KeyVaultTarget`` whose real ``CertificateClient`` (challenge policy, retries,
error mapping) talks to ``replay_transport.ReplayTransport``, which answers the token-less challenge probe
with the recorded 401 and every other request from the queue below, checking method and path.  Bodies are
the recorded certificate bundle of test_crud_operations (see recordings/) with the certificate-specific
fields (cer, x5t, ids, tags) filled from certificates generated at test time; the backing-secret answer
carries Key Vault's SecretBundle fields (value, contentType, id, kid, managed, attributes).

Budgets (a process pays one challenge round trip and one token):

=========================  =============================================================  ========
scenario                   requests                                                         count
=========================  =============================================================  ========
no-op                      challenge, GET certificate                                        2
first import               challenge, GET certificate (404), POST import, GET certificate,   5
                           GET secret (the stored chain, checked)
rotation                   challenge, GET certificate, GET secret (snapshot), POST import,   6
                           GET certificate, GET secret (the stored chain, checked)
tags-only update           challenge, GET certificate, PATCH version                         3
imported by an earlier     challenge, GET certificate, GET secret (its stored chain),        4
release (no record), same  PATCH version (writes the record); once, later runs are no-ops
soft-deleted, fail         challenge, GET certificate (404), POST import (409)               3
soft-deleted, recover      ... + POST recover, GET (recovery poll), GET certificate          6
check mode, free name      challenge, GET certificate (404), GET deleted certificate (404)   3
=========================  =============================================================  ========
"""

from __future__ import annotations

import base64
import copy

import pytest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import model, tags
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import record as records
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.deploy import DeployEngine
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import DeployRequest
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_azure_kv_replay import (
    CRUD_FIXTURE, CRUD_NAME, RECORDED_ID_BASE, TOKEN, Replay, interactions, renamed)
# The replay module's autouse fixtures (no socket may be opened; a fresh challenge cache per test) apply here too.
# pylint: disable=unused-import
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_azure_kv_replay import (  # noqa: F401
    fresh_challenge_cache, no_network)
# pylint: enable=unused-import

NAME = CRUD_NAME
CERT = '/certificates/%s' % NAME
MANAGED = tags.desired_tags({}, 'www')  # a version imported by an earlier release: no record of its chain


CHALLENGE = ('GET', CERT, False)  # the SDK's first, token-less request of the process


def ours(material, base=None):
    """The tags this release's import of ``material`` writes (the recorded bundle's policy: PKCS#12, exportable)."""
    return dict(MANAGED if base is None else base, **{tags.MATERIAL: records.Record.of_material(material, 'pkcs12', True).value()})


@pytest.fixture
def old(pki):
    h = pki.hierarchy()
    return m.Material(h['leaf'], h['key'], [h['inter']])


@pytest.fixture
def new(pki):
    h = pki.hierarchy(leaf_key=pki.rsa(fresh=True))
    return m.Material(h['leaf'], h['key'], [h['inter']])


def _b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b'=').decode()


def bundle(material, version, tag_values, status=200, method='GET', path=CERT):
    """The recorded certificate bundle (test_crud_operations 'get') carrying ``material`` as ``version``."""
    item = copy.deepcopy(interactions(CRUD_FIXTURE, 'get')[0])
    body = item['response']['body']
    body.update({
        'id': '%s/certificates/%s/%s' % (RECORDED_ID_BASE, NAME, version),
        'kid': '%s/keys/%s/%s' % (RECORDED_ID_BASE, NAME, version),
        'sid': '%s/secrets/%s/%s' % (RECORDED_ID_BASE, NAME, version),
        'x5t': _b64url(bytes.fromhex(material.thumbprint)),
        'cer': base64.b64encode(m.leaf_der(material.leaf)).decode(),
        'tags': dict(tag_values),
    })
    item['request'] = {'method': method, 'path': path}
    item['response']['status'] = status
    return item


def backing_secret(material, version):
    """GET /secrets/{name}/{version}: the version's PKCS#12 as Key Vault exports it (no password)."""
    raw = pkcs12.serialize_key_and_certificates(None, material.key, material.leaf, material.chain, serialization.NoEncryption())
    pfx = base64.b64encode(raw).decode()
    return {'request': {'method': 'GET', 'path': '/secrets/%s/%s' % (NAME, version)},
            'response': {'status': 200, 'headers': {'Content-Type': 'application/json; charset=utf-8'}, 'body': {
                'value': pfx, 'contentType': 'application/x-pkcs12',
                'id': '%s/secrets/%s/%s' % (RECORDED_ID_BASE, NAME, version),
                'kid': '%s/keys/%s/%s' % (RECORDED_ID_BASE, NAME, version), 'managed': True,
                'attributes': {'enabled': True, 'created': 1774657881, 'updated': 1774657881}}}}


def missing():
    item, = interactions('test_40x_handling.json', 'get_not_found')
    return renamed(item, 'cert-that-does-not-exist', NAME)


def deleted_not_found():
    return interactions(CRUD_FIXTURE, 'get_deleted_not_found')[0]


def soft_deleted_409():
    item, = interactions('conflict_409_soft_deleted.json', 'import_soft_deleted')
    return renamed(item, 'livekvtestcertverfe57382c', NAME)


def deleted(material, tag_values):
    """GET /deletedcertificates/{name}: the certificate bundle plus Key Vault's deletion fields, with ``tag_values``."""
    item = bundle(material, 'v1', tag_values, path='/deletedcertificates/%s' % NAME)
    item['response']['body'].update({'recoveryId': '%s/deletedcertificates/%s' % (RECORDED_ID_BASE, NAME),
                                     'deletedDate': 1774657900, 'scheduledPurgeDate': 1782433900})
    return item


def deploy(replay, material, **options):
    options.setdefault('certificate_id', 'www')
    target = replay.target(NAME, verify_challenge_resource=True)
    try:
        return DeployEngine(target, sleep=lambda s: None).run(DeployRequest(material, **options))
    finally:
        target.close()


def sequence(replay):
    return [(r.method, r.path, bool(r.authorization)) for r in replay.transport.requests]


def assert_budget(replay, expected):
    """The exact requests, one challenge (the first, token-less) and one token for the whole run."""
    assert sequence(replay) == expected, sequence(replay)
    assert [bool(r.authorization) for r in replay.transport.requests].count(False) == 1
    assert len(replay.credential.calls) == 1
    assert all(r.authorization == 'Bearer ' + TOKEN for r in replay.transport.authenticated())
    replay.check()  # every stored answer was asked for, every request carried the recorded api-version


def test_no_op_is_one_challenge_and_one_read(old):
    replay = Replay([bundle(old, 'v1', ours(old))])
    result = deploy(replay, old)
    assert (result.changed, result.outcome) == (False, model.UNCHANGED)
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True)])


def test_a_version_without_a_record_is_compared_once_on_its_stored_chain_and_only_the_record_is_written(old):
    replay = Replay([bundle(old, 'v1', MANAGED), backing_secret(old, 'v1'),
                     bundle(old, 'v1', ours(old), method='PATCH', path=CERT + '/v1')])
    result = deploy(replay, old)
    assert (result.changed, result.outcome, result.differences) == (True, model.UPDATED, ['record'])
    assert any('carried no record' in w for w in result.warnings)
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('GET', '/secrets/%s/v1' % NAME, True), ('PATCH', CERT + '/v1', True)])
    patched = replay.transport.requests[-1]
    assert patched.body['tags'] == ours(old)


def test_a_version_without_a_record_whose_stored_chain_differs_is_imported(old, pki):
    wanted = m.Material(old.leaf, old.key, old.chain + [pki.cert(pki.ec(), 'Extra CA', ca=True)])
    replay = Replay([bundle(old, 'v1', MANAGED), backing_secret(old, 'v1'), backing_secret(old, 'v1'),
                     bundle(old, 'v2', ours(wanted), method='POST', path=CERT + '/import'), bundle(old, 'v2', ours(wanted)),
                     backing_secret(wanted, 'v2')])
    result = deploy(replay, wanted)
    assert (result.outcome, result.differences) == (model.ROTATED, ['chain'])
    assert result.verification == {'read_back': 'passed', 'stored_chain': 'passed'}


def test_first_import_is_five_requests_without_a_deleted_name_read(old):
    replay = Replay([missing(), bundle(old, 'v1', ours(old), method='POST', path=CERT + '/import'), bundle(old, 'v1', ours(old)),
                     backing_secret(old, 'v1')])
    result = deploy(replay, old)
    assert (result.changed, result.outcome) == (True, model.CREATED)
    assert result.verification == {'read_back': 'passed', 'stored_chain': 'passed'}
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('POST', CERT + '/import', True), ('GET', CERT, True),
                           ('GET', '/secrets/%s/v1' % NAME, True)])
    assert not any(path.startswith('/deletedcertificates') for dummy, path, dummy2 in sequence(replay))


def test_first_import_without_the_stored_chain_check_is_four_requests(old):
    replay = Replay([missing(), bundle(old, 'v1', ours(old), method='POST', path=CERT + '/import'), bundle(old, 'v1', ours(old))])
    result = deploy(replay, old, verify_stored_chain=False)
    assert result.verification == {'read_back': 'passed', 'stored_chain': 'disabled'}
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('POST', CERT + '/import', True), ('GET', CERT, True)])


def test_rotation_reads_the_secret_on_the_certificate_clients_token(old, new):
    replay = Replay([bundle(old, 'v1', ours(old)), backing_secret(old, 'v1'),
                     bundle(new, 'v2', ours(new), method='POST', path=CERT + '/import'), bundle(new, 'v2', ours(new)),
                     backing_secret(new, 'v2')])
    result = deploy(replay, new)
    assert (result.changed, result.outcome) == (True, model.ROTATED)
    assert result.previous['version'] == 'v1' and result.certificate['version'] == 'v2'
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('GET', '/secrets/%s/v1' % NAME, True),
                           ('POST', CERT + '/import', True), ('GET', CERT, True), ('GET', '/secrets/%s/v2' % NAME, True)])
    secret_read = replay.transport.requests[2]
    assert secret_read.headers.get('Accept') == 'application/json' and secret_read.raw_body == b''


def test_tags_only_update_is_one_patch(old):
    replay = Replay([bundle(old, 'v1', ours(old)),
                     bundle(old, 'v1', ours(old, dict(MANAGED, env='prod')), method='PATCH', path=CERT + '/v1')])
    result = deploy(replay, old, user_tags={'env': 'prod'})
    assert (result.changed, result.outcome) == (True, model.UPDATED)
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('PATCH', CERT + '/v1', True)])


def test_soft_deleted_name_fails_on_the_409_of_the_import(old):
    replay = Replay([missing(), soft_deleted_409()])
    with pytest.raises(errors.DeployError) as info:
        deploy(replay, old)
    assert info.value.code == errors.SOFT_DELETED and 'on_soft_deleted: recover' in info.value.message
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('POST', CERT + '/import', True)])


def test_soft_deleted_name_is_recovered_after_the_409_and_compared_again(old):
    recovered = bundle(old, 'v1', ours(old), method='POST', path='/deletedcertificates/%s/recover' % NAME)
    replay = Replay([missing(), soft_deleted_409(), deleted(old, ours(old)), recovered, bundle(old, 'v1', ours(old)),
                     bundle(old, 'v1', ours(old))])
    result = deploy(replay, old, on_soft_deleted='recover')
    assert (result.changed, result.outcome) == (True, model.UPDATED)  # recovered: the wanted version, no new one
    assert any('recovered' in w for w in result.warnings)
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('POST', CERT + '/import', True),
                           ('GET', '/deletedcertificates/%s' % NAME, True),  # its tags: only an owned one is recovered
                           ('POST', '/deletedcertificates/%s/recover' % NAME, True),
                           ('GET', CERT, True),   # the SDK's recovery poller: readable again
                           ('GET', CERT, True)])  # the engine starts over: read latest


def test_check_mode_still_tells_a_free_name_by_the_deleted_certificate_read(old):
    replay = Replay([missing(), deleted_not_found()])
    result = deploy(replay, old, check_mode=True)
    assert (result.changed, result.outcome) == (True, model.CREATED)
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('GET', '/deletedcertificates/%s' % NAME, True)])


def test_check_mode_predicts_a_soft_deleted_name(old):
    deleted = interactions(CRUD_FIXTURE, 'get_deleted')[0]
    replay = Replay([missing(), deleted])
    with pytest.raises(errors.DeployError) as info:
        deploy(replay, old, check_mode=True)
    assert info.value.code == errors.SOFT_DELETED
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('GET', '/deletedcertificates/%s' % NAME, True)])


def test_a_409_that_does_not_say_why_is_told_by_the_deleted_certificate(old):
    """A server that answers 409 without Key Vault's ObjectIsDeletedButRecoverable: one more read, on this failure only."""
    bare = soft_deleted_409()
    bare['response']['body'] = {'error': {'code': 'Conflict', 'message': 'Conflict'}}
    replay = Replay([missing(), bare, interactions(CRUD_FIXTURE, 'get_deleted')[0]])
    with pytest.raises(errors.DeployError) as info:
        deploy(replay, old)
    assert info.value.code == errors.SOFT_DELETED
    assert sequence(replay)[-1] == ('GET', '/deletedcertificates/%s' % NAME, True)
    replay.check()


def test_a_409_for_a_name_that_is_not_deleted_stays_a_conflict(old):
    bare = soft_deleted_409()
    bare['response']['body'] = {'error': {'code': 'Conflict', 'message': 'There is a pending operation.'}}
    replay = Replay([missing(), bare, deleted_not_found()])
    with pytest.raises(errors.DeployError) as info:
        deploy(replay, old)
    assert info.value.code == errors.CONFLICT and 'pending operation' in info.value.message
    replay.check()


def test_recovery_waits_until_the_certificate_is_readable_again(old):
    """Key Vault recovers asynchronously: a 404 while the poller polls, then the certificate; only then the engine reads."""
    recovered = bundle(old, 'v1', ours(old), method='POST', path='/deletedcertificates/%s/recover' % NAME)
    replay = Replay([missing(), soft_deleted_409(), deleted(old, ours(old)), recovered, missing(), bundle(old, 'v1', ours(old)),
                     bundle(old, 'v1', ours(old))])
    result = deploy(replay, old, on_soft_deleted='recover')
    assert (result.changed, result.outcome) == (True, model.UPDATED)
    assert sequence(replay)[4:] == [('POST', '/deletedcertificates/%s/recover' % NAME, True),
                                    ('GET', CERT, True), ('GET', CERT, True), ('GET', CERT, True)]
    assert len(replay.transport.slept) == 1  # one polling interval, asked of the transport (no real sleep here)
    replay.check()


def test_a_soft_deleted_certificate_without_the_managed_tag_is_not_recovered(old):
    replay = Replay([missing(), soft_deleted_409(), deleted(old, {'owner': 'another-team'})])
    with pytest.raises(errors.DeployError) as info:
        deploy(replay, old, on_soft_deleted='recover')
    assert info.value.code == errors.NOT_OWNED and 'not recovered' in info.value.message
    assert 'result' not in info.value.details  # changed: false, nothing was written
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('POST', CERT + '/import', True),
                           ('GET', '/deletedcertificates/%s' % NAME, True)])


def test_an_import_answered_503_after_it_committed_is_not_resent_by_the_sdk(old, new):
    """azure-core resends a POST answered 500/503/504; the import is sent with its retries off, and the engine reads
    latest: the new version is there, so nothing is sent again (one import, one new version)."""
    failed = bundle(new, 'v2', MANAGED, status=503, method='POST', path=CERT + '/import')
    failed['response']['body'] = {'error': {'code': 'ServiceUnavailable', 'message': 'The service is unavailable.'}}
    failed['response'].setdefault('headers', {})['Retry-After'] = '1'
    replay = Replay([bundle(old, 'v1', ours(old)), backing_secret(old, 'v1'), failed, bundle(new, 'v2', ours(new)),
                     bundle(new, 'v2', ours(new)), backing_secret(new, 'v2')])
    result = deploy(replay, new)
    assert result.outcome == model.ROTATED and any('was not sent again' in w for w in result.warnings)
    assert_budget(replay, [CHALLENGE, ('GET', CERT, True), ('GET', '/secrets/%s/v1' % NAME, True),
                           ('POST', CERT + '/import', True), ('GET', CERT, True), ('GET', CERT, True),
                           ('GET', '/secrets/%s/v2' % NAME, True)])
    replay.check()
