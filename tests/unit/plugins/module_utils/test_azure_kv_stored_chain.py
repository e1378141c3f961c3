# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Chain fidelity on real-service shapes: the engine and ``KeyVaultTarget`` over the real SDK pipeline.

Neither emulator keeps the chain of an imported certificate, so what Key Vault does with it is replayed here
in the shapes the service answers with (see real_shapes.py and recordings/README.md for each shape's public
source): certificate bundles with their ``policy`` and ``preserveCertOrder``, and backing secrets holding a
chain (built on the recorded secret shape, their values made at test time, since no public recording shows
the secret of an imported chain).  What is proven here: the import's body (the ordered chain, the SDK's
``preserveCertOrder`` exactly where the API version has it), the decision from the record and from the
policy, the one-time comparison of a version without a record, and the verdicts of the stored-chain check.
"""

from __future__ import annotations

import base64

import pytest

from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import model, tags
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import record as records
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.deploy import DeployEngine
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import DeployRequest
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils import real_shapes as shapes
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_azure_kv_replay import (
    VAULT, Replay, interactions, renamed)
# The replay module's autouse fixtures (no socket may be opened; a fresh challenge cache per test) apply here too.
# pylint: disable=unused-import
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_azure_kv_replay import (  # noqa: F401
    fresh_challenge_cache, no_network)
# pylint: enable=unused-import

NAME = 'chain-cert'
CERT = '/certificates/%s' % NAME
MANAGED = tags.desired_tags({}, 'www')
CONTENT = {'pkcs12': shapes.PKCS12, 'pem': shapes.PEM}


@pytest.fixture
def h(pki):
    return pki.hierarchy()


def material(h, *chain):
    return m.Material(h['leaf'], h['key'], [h[name] for name in chain])


def ours(mat, content_type='pkcs12', exportable=True, base=None):
    return dict(MANAGED if base is None else base, **{tags.MATERIAL: records.Record.of_material(mat, content_type, exportable).value()})


def cert(version, mat, content_type='pkcs12', exportable=True, tag_values=None, preserve=True, method='GET', path=CERT,
         enabled=True):
    body = shapes.certificate_bundle_with_policy(NAME, version, VAULT, mat.leaf, content_type=CONTENT[content_type],
                                                 exportable=exportable, preserve_order=preserve, enabled=enabled,
                                                 tags=ours(mat, content_type, exportable) if tag_values is None else tag_values)
    return shapes.interaction(method, path, body)


def imported(version, mat, content_type='pkcs12', **kwargs):
    return cert(version, mat, content_type, method='POST', path=CERT + '/import', **kwargs)


def secret(version, mat, stored_chain=None, content_type='pkcs12'):
    """The backing secret of ``version`` holding ``mat``'s leaf and key, and ``stored_chain`` (default: mat's chain)."""
    chain = mat.chain if stored_chain is None else stored_chain
    value = (shapes.pkcs12_value(mat.key, mat.leaf, chain) if content_type == 'pkcs12'
             else shapes.pem_value(mat.key, mat.leaf, chain))
    body = shapes.secret_bundle_of_import(value, CONTENT[content_type], NAME, version, VAULT, leaf=mat.leaf)
    return shapes.interaction('GET', '/secrets/%s/%s' % (NAME, version), body)


def missing():
    item, = interactions('test_40x_handling.json', 'get_not_found')
    return renamed(item, 'cert-that-does-not-exist', NAME)


def deploy(replay, mat, api_version='2025-07-01', preserve=True, **options):
    options.setdefault('certificate_id', 'www')
    target = replay.target(NAME, api_version=api_version, preserve_chain_order=preserve,
                           content_type=options.get('content_type', 'pkcs12'))
    try:
        return DeployEngine(target, sleep=lambda s: None).run(DeployRequest(mat, **options))
    finally:
        target.close()


def import_body(replay):
    request, = [r for r in replay.transport.requests if r.method == 'POST' and r.path.endswith('/import')]
    return request.body


def sent_certificates(body):
    """The certificates of an import body, in the order sent (PFX decrypted with the body's own password)."""
    if body['policy']['secret_props']['contentType'] == shapes.PEM:  # the SDK sends the PEM text base64-encoded
        return m.stored_certificates(base64.b64decode(body['value']), shapes.PEM)
    bundle = pkcs12.load_pkcs12(base64.b64decode(body['value']), body['pwd'].encode())
    return [bundle.cert.certificate] + [c.certificate for c in bundle.additional_certs]


# -- what is sent ------------------------------------------------------------------------------

@pytest.mark.parametrize('content_type', ['pkcs12', 'pem'])
def test_a_root_first_chain_is_sent_leaf_to_root_with_preserve_cert_order_and_verified(pki, h, content_type):
    given = m.load_pem_material(pki.pem(h['leaf']), pki.key_pem(h['key']), chain=pki.pem(h['root'], h['inter']))
    wanted = material(h, 'inter', 'root')
    replay = Replay([missing(), imported('v1', wanted, content_type), cert('v1', wanted, content_type),
                     secret('v1', wanted, content_type=content_type)])
    result = deploy(replay, given, content_type=content_type)
    assert (result.outcome, result.differences) == (model.CREATED, ['absent'])
    assert result.verification == {'read_back': 'passed', 'stored_chain': 'passed'}
    body = import_body(replay)
    assert body['preserveCertOrder'] is True
    assert [m.leaf_der(c) for c in sent_certificates(body)] == [m.leaf_der(c) for c in (h['leaf'], h['inter'], h['root'])]
    assert body['tags'][tags.MATERIAL] == records.Record.of_material(wanted, content_type, True).value()
    replay.check()


def test_an_api_version_before_7_6_sends_no_preserve_cert_order_and_accepts_a_reordered_chain_with_a_warning(h):
    wanted = material(h, 'inter', 'root')
    replay = Replay([missing(), imported('v1', wanted, preserve=None), cert('v1', wanted, preserve=None),
                     secret('v1', wanted, stored_chain=[h['root'], h['inter']])])
    result = deploy(replay, wanted, api_version='7.5', preserve=False)
    assert 'preserveCertOrder' not in import_body(replay)
    assert result.outcome == model.CREATED
    assert result.verification == {'read_back': 'passed', 'stored_chain': 'reordered'}
    assert any('stored in another order' in w for w in result.warnings)
    replay.transport.assert_done()


# -- what is verified ----------------------------------------------------------------------------

def test_a_vault_that_keeps_the_leaf_alone_gets_a_warning_naming_it_not_a_rollback(h):
    wanted = material(h, 'inter')
    replay = Replay([missing(), imported('v1', wanted), cert('v1', wanted), secret('v1', wanted, stored_chain=[])])
    result = deploy(replay, wanted)
    assert (result.outcome, result.rollback['attempted']) == (model.CREATED, False)
    assert result.verification['stored_chain'] == 'leaf_only'
    assert any('stored version v1 with the leaf alone' in w and VAULT.lower() in w.lower() for w in result.warnings)
    replay.check()


@pytest.mark.parametrize('stored', [['root', 'inter'], ['inter'], ['inter', 'root', 'extra']], ids=['reordered', 'dropped', 'added'])
def test_a_chain_stored_otherwise_than_sent_follows_the_rollback_contract(pki, h, stored):
    h = dict(h, extra=pki.cert(pki.ec(), 'Extra CA', ca=True))
    wanted = material(h, 'inter', 'root')
    replay = Replay([missing(), imported('v1', wanted), cert('v1', wanted), secret('v1', wanted, stored_chain=[h[n] for n in stored])])
    with pytest.raises(errors.DeployError) as info:
        deploy(replay, wanted)
    result = info.value.details['result']
    # A first import has nothing to roll back to: the faulty version stays, reported, with the manual step.
    assert (info.value.code, result['outcome']) == (errors.ROLLBACK_FAILED, model.ROLLBACK_FAILED)
    assert result['verification'] == {'read_back': 'passed', 'stored_chain': 'failed'}
    assert 'Reading the stored chain of version v1 back' in info.value.message
    replay.check()


def test_a_forbidden_secret_read_skips_the_check_with_a_warning(h):
    wanted = material(h, 'inter')
    denied = shapes.interaction('GET', '/secrets/%s/v1' % NAME, {'error': {
        'code': 'Forbidden', 'message': "Caller is not authorized to perform action on resource.\r\nAction: "
        "'Microsoft.KeyVault/vaults/secrets/getSecret/action'", 'innererror': {'code': 'ForbiddenByRbac'}}}, status=403)
    replay = Replay([missing(), imported('v1', wanted), cert('v1', wanted), denied])
    result = deploy(replay, wanted)
    assert result.outcome == model.CREATED and result.verification['stored_chain'] == 'skipped'
    assert any('was not checked' in w and 'forbidden' in w for w in result.warnings)
    replay.check()


# -- what is decided -----------------------------------------------------------------------------

def test_the_record_decides_a_chain_change_with_one_read(h):
    before, wanted = material(h), material(h, 'inter')
    replay = Replay([cert('v1', before), secret('v1', before), imported('v2', wanted), cert('v2', wanted), secret('v2', wanted)])
    result = deploy(replay, wanted)
    assert (result.outcome, result.differences) == (model.ROTATED, ['chain'])
    assert result.diff['before']['chain'] == [] and result.diff['after']['chain'] == [h['inter'].subject.rfc4514_string()]
    replay.check()


@pytest.mark.parametrize('recorded,policy,wanted,differences', [
    (('pkcs12', True), ('pkcs12', True), ('pkcs12', False), ['exportable']),
    (('pkcs12', True), ('pkcs12', True), ('pem', True), ['content_type']),
    (None, ('pkcs12', False), ('pkcs12', True), ['exportable']),  # no record: the policy of the same read decides
    (None, ('pem', True), ('pkcs12', True), ['content_type']),
])
def test_content_type_and_exportable_changes_import_without_reading_the_chain(h, recorded, policy, wanted, differences):
    mat = material(h, 'inter')
    tag_values = ours(mat, *recorded) if recorded else MANAGED
    replay = Replay([cert('v1', mat, policy[0], policy[1], tag_values=tag_values)])
    result = deploy(replay, mat, check_mode=True, content_type=wanted[0], exportable=wanted[1])
    assert (result.outcome, result.differences) == (model.ROTATED, differences)
    assert (result.diff['after']['content_type'], result.diff['after']['exportable']) == wanted
    replay.check()


def test_a_policy_changed_after_the_import_is_reported_not_imported(h):
    mat = material(h, 'inter')
    replay = Replay([cert('v1', mat, 'pkcs12', False, tag_values=ours(mat, 'pkcs12', True))])
    result = deploy(replay, mat)
    assert (result.outcome, result.changed) == (model.UNCHANGED, False)
    assert any('policy was changed after the import' in w for w in result.warnings)
    replay.check()


@pytest.mark.parametrize('content_type', ['pkcs12', 'pem'])
def test_a_version_without_a_record_and_the_same_stored_chain_gets_only_the_record(h, content_type):
    mat = material(h, 'inter', 'root')
    patched = cert('v1', mat, content_type, method='PATCH', path=CERT + '/v1')
    replay = Replay([cert('v1', mat, content_type, tag_values=MANAGED), secret('v1', mat, content_type=content_type), patched])
    result = deploy(replay, mat, content_type=content_type)
    assert (result.outcome, result.differences) == (model.UPDATED, ['record'])
    assert replay.transport.requests[-1].body['tags'] == ours(mat, content_type)
    assert result.diff['before']['chain'] == result.diff['after']['chain']
    replay.check()


def test_a_version_without_a_record_whose_stored_chain_is_the_leaf_alone_is_imported_with_its_chain(h):
    wanted = material(h, 'inter')
    replay = Replay([cert('v1', wanted, tag_values=MANAGED), secret('v1', wanted, stored_chain=[]), secret('v1', wanted, stored_chain=[]),
                     imported('v2', wanted), cert('v2', wanted), secret('v2', wanted)])
    result = deploy(replay, wanted)
    assert (result.outcome, result.differences) == (model.ROTATED, ['chain'])
    assert result.diff['before']['chain'] == []
    assert any('differs from the wanted one' in w for w in result.warnings)
    replay.check()


def test_a_secret_answer_with_another_leaf_is_a_failed_read_not_a_stored_chain(pki, h):
    """Found by the simulation: a garbled secret answer (another certificate's secret) was taken for what the version
    stores, and a correct version was rolled back. It contradicts the certificate read: retried, then skipped."""
    wanted = material(h, 'inter')
    stranger_key = pki.rsa(fresh=True)
    stranger = m.Material(pki.cert(stranger_key, 'stranger.example.com'), stranger_key, [])
    replay = Replay([missing(), imported('v1', wanted), cert('v1', wanted)] + [secret('v1', stranger)] * 3)
    result = deploy(replay, wanted)
    assert (result.outcome, result.rollback['attempted']) == (model.CREATED, False)
    assert result.verification['stored_chain'] == 'skipped'
    assert any('contradicts the certificate' in w for w in result.warnings)
    replay.check()


def test_a_disabled_version_is_not_asked_for_its_secret(h):
    """Key Vault serves no secret of a disabled version: no request, a warning that says why, no permission advice."""
    wanted = material(h, 'inter')
    replay = Replay([missing(), imported('v1', wanted, enabled=False), cert('v1', wanted, enabled=False)])
    result = deploy(replay, wanted, enabled=False)
    assert result.outcome == model.CREATED and result.verification['stored_chain'] == 'skipped'
    warning, = [w for w in result.warnings if 'was not checked' in w]
    assert 'is disabled' in warning and 'getSecret' not in warning
    assert not any(r.path.startswith('/secrets/') for r in replay.transport.requests)
    replay.check()
