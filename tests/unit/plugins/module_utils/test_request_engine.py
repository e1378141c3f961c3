# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The request and merge engines (engine/request.py) against an in-memory target: every decision, and what is written."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import model
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import tags as provenance
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import CertificateRequest, MergeRequest, PendingRequest, RequestPolicy
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.request import MergeEngine, RequestEngine
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import csr as csr_material
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_request_target import FakeRequestTarget
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import CommitThenFail

UTC = datetime.timezone.utc
OURS = {provenance.MANAGED_BY: provenance.MANAGED_BY_VALUE, provenance.CERTIFICATE_ID: 'www',
        provenance.SOURCE: provenance.SOURCE_REQUEST}


def policy(**overrides):
    values = dict(subject='CN=www.example.com', dns_names=['www.example.com'], key_type='EC', curve='P-256')
    values.update(overrides)
    return RequestPolicy(**values)


def ask(pol=None, **overrides):
    values = dict(policy=pol or policy(), certificate_id='www')
    values.update(overrides)
    return CertificateRequest(**values)


@pytest.fixture
def ca(pki):
    key = pki.ec()
    return {'key': key, 'cert': pki.cert(key, 'Request Test CA', ca=True, days=3650)}


def sign(ca, csr, days=90, not_before=None, subject=None):
    """What a CA does with the CSR: a certificate over its public key, its SANs kept."""
    now = datetime.datetime.now(UTC)
    start = not_before or now - datetime.timedelta(minutes=5)
    builder = (x509.CertificateBuilder().subject_name(subject or csr.subject).issuer_name(ca['cert'].subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days)))
    try:
        builder = builder.add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(ca['key'], hashes.SHA256())


def issue(target, ca, pol=None, days=90, tags=None):
    """A name with one issued version from a request: pending, signed, merged."""
    pol = pol or policy()
    csr = target.seed_pending(pol)
    signed = csr_material.SignedCertificate(sign(ca, csr, days=days), [ca['cert']])
    target.merge(signed, OURS if tags is None else tags)
    target.calls[:] = []
    return signed


# -- request: pending requests ----------------------------------------------------------------------------

def test_first_request_makes_one_key_with_the_request_tags_and_reads_it_back():
    target = FakeRequestTarget()
    result = RequestEngine(target).run(ask())
    assert (result.outcome, result.reason, result.changed, result.needs_merge) == ('requested', 'first_request', True, True)
    creates = [c for c in target.calls if c[0] == 'create']
    assert len(creates) == 1 and creates[0][1] == dict(OURS)
    assert target.calls[-2:] == [('read_pending',), ('read_policy',)]  # read back, then the stored policy
    csr = x509.load_pem_x509_csr(result.request['csr'].encode())
    assert csr_material.csr_facts(csr)['csr_sha256'] == result.request['csr_sha256']
    assert result.request['csr_sha256'] == csr_material.csr_facts(csr_material.load_csr(target.pending['csr']))['csr_sha256']
    assert result.policy['exportable'] is True and result.policy['issuer'] == 'Unknown'


def test_a_rerun_returns_the_same_pending_request_and_writes_nothing():
    target = FakeRequestTarget()
    first = RequestEngine(target).run(ask())
    target.calls[:] = []
    again = RequestEngine(target).run(ask())
    assert (again.outcome, again.changed, again.needs_merge) == ('pending', False, True)
    assert again.request['csr_sha256'] == first.request['csr_sha256']
    assert target.writes == []


@pytest.mark.parametrize('change, field', [
    (dict(curve='P-384'), 'curve'),
    (dict(key_type='RSA', key_size=2048, curve=None), 'key_type'),
    (dict(subject='CN=other.example.com'), 'subject'),
    (dict(dns_names=['www.example.com', 'example.com']), 'dns_names'),
    (dict(exportable=False), 'exportable'),
    (dict(validity_months=6), 'validity_months'),
    (dict(content_type='pem'), 'content_type'),
    (dict(extended_key_usage=['1.3.6.1.5.5.7.3.1']), None),  # Unset in the stored policy: not compared
])
def test_a_pending_request_of_another_policy_fails_policy_mismatch_and_writes_nothing(change, field):
    target = FakeRequestTarget()
    target.seed_pending(policy(), tags=OURS)
    if field is None:
        result = RequestEngine(target).run(ask(policy(**change)))
        assert result.outcome == 'pending'
        return
    with pytest.raises(errors.DeployError) as failure:
        RequestEngine(target).run(ask(policy(**change)))
    assert failure.value.code == errors.POLICY_MISMATCH
    assert field + ':' in failure.value.message and 'replace: true' in failure.value.message
    assert target.writes == []
    assert failure.value.details['result']['differences']


def test_replace_discards_the_pending_request_and_makes_a_new_key():
    target = FakeRequestTarget()
    first = RequestEngine(target).run(ask())
    target.calls[:] = []
    with pytest.raises(errors.DeployError) as refused:  # pending-only: who made it cannot be read
        RequestEngine(target).run(ask(policy(curve='P-384'), replace=True))
    assert refused.value.code == errors.NOT_OWNED and target.writes == []
    result = RequestEngine(target).run(ask(policy(curve='P-384'), replace=True, take_ownership=True))
    assert (result.outcome, result.reason) == ('requested', 'replaced')
    assert [c[0] for c in target.writes] == ['discard', 'create']
    assert result.request['csr_sha256'] != first.request['csr_sha256']
    assert csr_material.csr_facts(csr_material.load_csr(target.pending['csr']))['curve'] == 'P-384'


@pytest.mark.parametrize('shown_tags, replace_needs_takeover, reuse_refused', [
    (None, True, False),       # the name reads as absent (the Go emulator): its maker cannot be read
    ({}, True, False),         # a pending version without tags: the same
    (OURS, False, False),      # a pending version with our tags: ours
    ({'owner': 'x'}, True, True),  # a pending version with someone else's tags: not ours
])
def test_who_made_a_name_that_is_only_pending(shown_tags, replace_needs_takeover, reuse_refused):
    target = FakeRequestTarget(pending_version_tags=shown_tags)
    target.seed_pending(policy(), tags=OURS)
    if reuse_refused:
        with pytest.raises(errors.DeployError) as refused:
            RequestEngine(target).run(ask())
        assert refused.value.code == errors.NOT_OWNED
    else:
        reused = RequestEngine(target).run(ask())
        assert reused.outcome == 'pending'
        assert any('who made it cannot be read' in w for w in reused.warnings) == replace_needs_takeover
    if replace_needs_takeover:
        with pytest.raises(errors.DeployError) as refused:
            RequestEngine(target).run(ask(policy(curve='P-384'), replace=True))
        assert refused.value.code == errors.NOT_OWNED and target.writes == []
    else:
        assert RequestEngine(target).run(ask(policy(curve='P-384'), replace=True)).reason == 'replaced'


def test_a_cancelled_request_is_replaced_and_one_still_cancelling_is_deleted_first():
    target = FakeRequestTarget()
    target.seed_pending(policy())
    target.pending['cancelled'] = True  # reads cancelled: the next request replaces it
    result = RequestEngine(target).run(ask())
    assert (result.outcome, result.reason) == ('requested', 'first_request')
    assert [c[0] for c in target.writes] == ['create']
    target.calls[:] = []
    # The service answers a cancel with the operation still in progress and cancellation_requested: a request then is
    # refused (409) until the operation is gone.
    target.fail('read_pending', PendingRequest(csr=target.pending['csr'], status='inProgress', cancellation_requested=True))
    result = RequestEngine(target).run(ask())
    assert result.outcome == 'requested' and [c[0] for c in target.writes] == ['discard', 'create']


def test_a_vault_that_serves_no_policy_for_a_pending_name_is_compared_by_the_csr_with_a_warning():
    target = FakeRequestTarget(serves_policy_when_pending_only=False)
    RequestEngine(target).run(ask())
    again = RequestEngine(target).run(ask(policy(exportable=False)))  # only the stored policy would show it
    assert again.outcome == 'pending' and again.policy is None
    assert any('serves no stored policy' in w for w in again.warnings)


# -- request: issued versions -------------------------------------------------------------------------------

def test_an_issued_version_that_matches_and_is_not_due_is_unchanged(ca):
    target = FakeRequestTarget()
    issue(target, ca, days=90)
    result = RequestEngine(target).run(ask(renew_days_before=30))
    assert (result.outcome, result.changed, result.needs_merge, result.request['csr']) == ('unchanged', False, False, None)
    assert result.certificate['days_remaining'] in (89, 90)
    assert target.writes == []


@pytest.mark.parametrize('overrides, reason', [
    (dict(renew_days_before=95), 'renewal_due'),
    (dict(renew=True), 'renewal_forced'),
    (dict(policy=policy(dns_names=['www.example.com', 'api.example.com'])), 'policy_changed'),
    (dict(policy=policy(reuse_key=True)), 'policy_changed'),
])
def test_a_new_version_is_requested_when_due_forced_or_the_policy_changed(ca, overrides, reason):
    target = FakeRequestTarget()
    issued = issue(target, ca, days=90)
    result = RequestEngine(target).run(ask(**overrides))
    assert (result.outcome, result.reason, result.needs_merge) == ('requested', reason, True)
    assert [c[0] for c in target.writes] == ['create']
    new_key = csr_material.csr_facts(csr_material.load_csr(target.pending['csr']))['public_key_sha256']
    assert new_key != csr_material.public_key_sha256(issued.leaf.public_key())  # a renewal makes a new key
    assert result.certificate['thumbprint'] == issued.thumbprint  # the current version keeps serving until the merge


def test_a_ca_that_rewrites_the_subject_does_not_make_every_run_a_new_request(ca):
    # Many CAs keep the CN alone: the issued version is compared with what was requested (the stored policy), and its key.
    target = FakeRequestTarget()
    wanted = policy(subject='CN=www.example.com, O=Example')
    csr = target.seed_pending(wanted)
    cn_only = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, 'www.example.com')])
    target.merge(csr_material.SignedCertificate(sign(ca, csr, subject=cn_only), []), OURS)
    result = RequestEngine(target).run(ask(wanted))
    assert (result.outcome, result.differences) == ('unchanged', [])
    changed = RequestEngine(target).run(ask(policy(subject='CN=www.example.com, O=Other')))
    assert changed.reason == 'policy_changed' and changed.differences[0].startswith('subject:')


def test_without_a_stored_policy_an_issued_version_must_carry_the_policys_names(ca):
    target = FakeRequestTarget()
    issue(target, ca)
    target.policy = None
    assert RequestEngine(target).run(ask()).outcome == 'unchanged'
    result = RequestEngine(target).run(ask(policy(dns_names=['www.example.com', 'api.example.com'])))
    assert result.reason == 'policy_changed' and 'lacks api.example.com' in result.differences[0]


def test_a_certificate_without_the_csrs_names_is_merged_with_a_warning(ca):
    target = FakeRequestTarget()
    csr = target.seed_pending(policy(dns_names=['www.example.com', 'api.example.com']), tags=OURS)
    builder_cert = sign(ca, csr)
    narrow = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca['cert'].subject).public_key(csr.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(builder_cert.not_valid_before_utc)
              .not_valid_after(builder_cert.not_valid_after_utc)
              .add_extension(x509.SubjectAlternativeName([x509.DNSName('www.example.com')]), critical=False)
              .sign(ca['key'], hashes.SHA256()))
    result = MergeEngine(target).run(merge_request(csr_material.SignedCertificate(narrow, [])))
    assert result.outcome == 'merged' and any('api.example.com' in w for w in result.warnings)


def test_a_certificate_not_made_by_certdeploy_is_refused_unless_taken_over(ca):
    target = FakeRequestTarget()
    issue(target, ca, tags={'owner': 'someone'})
    with pytest.raises(errors.DeployError) as failure:
        RequestEngine(target).run(ask(renew=True))
    assert failure.value.code == errors.NOT_OWNED and target.writes == []
    result = RequestEngine(target).run(ask(renew=True, take_ownership=True))
    assert result.outcome == 'requested' and any('Took ownership' in w for w in result.warnings)


def test_a_name_the_deploy_module_imported_is_switched_to_requests_only_when_asked(pki):
    target = FakeRequestTarget()
    key = pki.ec()
    target.seed(m.Material(pki.cert(key, 'www.example.com'), key, []),
                tags={provenance.MANAGED_BY: provenance.MANAGED_BY_VALUE, provenance.CERTIFICATE_ID: 'www'})
    assert provenance.MATERIAL in target.versions[-1]['tags']  # what an import by the deploy module carries
    target.policy = dict(policy().as_dict(), issuer='Unknown')
    with pytest.raises(errors.DeployError) as failure:
        RequestEngine(target).run(ask())
    assert failure.value.code == errors.CONFLICT and 'switch_from_import' in failure.value.message
    assert target.writes == []
    result = RequestEngine(target).run(ask(switch_from_import=True, renew=True))
    assert result.outcome == 'requested'


# -- request: check mode, lost answers, read-back ----------------------------------------------------------

def test_check_mode_predicts_and_never_writes(ca):
    target = FakeRequestTarget()
    result = RequestEngine(target).run(ask(check_mode=True))
    assert (result.outcome, result.changed, result.request['csr']) == ('requested', True, None)
    assert target.writes == [] and target.pending is None
    target.seed_pending(policy(), tags=OURS)
    assert RequestEngine(target).run(ask(check_mode=True)).outcome == 'pending'
    assert RequestEngine(target).run(ask(policy(curve='P-521'), replace=True, take_ownership=True, check_mode=True)).reason == 'replaced'
    assert target.writes == []


def test_a_create_whose_answer_was_lost_is_settled_by_reading_the_pending_request():
    target = FakeRequestTarget()
    lost = errors.DeployError(errors.SERVICE_ERROR, 'connection reset', may_have_written=True)
    target.fail('create', CommitThenFail(lost))
    result = RequestEngine(target).run(ask())
    assert result.outcome == 'requested' and len([c for c in target.writes if c[0] == 'create']) == 1


def test_a_create_that_did_not_commit_fails_with_its_own_error():
    target = FakeRequestTarget()
    target.fail('create', errors.DeployError(errors.SERVICE_ERROR, 'connection reset', may_have_written=True))
    with pytest.raises(errors.DeployError) as failure:
        RequestEngine(target).run(ask())
    assert failure.value.message == 'connection reset'


def test_a_read_back_showing_another_csr_is_a_concurrent_writer():
    target = FakeRequestTarget()
    other = FakeRequestTarget()
    other.seed_pending(policy())
    target.fail('read_pending', None, PendingRequest(csr=other.pending['csr'], status='inProgress'))
    with pytest.raises(errors.DeployError) as failure:
        RequestEngine(target).run(ask())
    assert failure.value.code == errors.CONFLICT and 'another writer' in failure.value.message


# -- merge -------------------------------------------------------------------------------------------------------

def merge_request(signed, **overrides):
    values = dict(signed=signed, certificate_id='www')
    values.update(overrides)
    return MergeRequest(**values)


def pending_and_signed(target, ca, days=90):
    csr = target.seed_pending(policy(), tags=OURS)
    return csr_material.load_signed(sign(ca, csr, days=days).public_bytes(Encoding.PEM), ca['cert'].public_bytes(Encoding.PEM))


def test_a_merge_checks_the_key_merges_with_the_request_tags_and_reads_the_version_back(ca):
    target = FakeRequestTarget()
    signed = pending_and_signed(target, ca)
    result = MergeEngine(target).run(merge_request(signed))
    assert (result.outcome, result.changed) == ('merged', True)
    assert result.verification == {'public_key': 'passed', 'read_back': 'passed', 'stored_chain': 'passed'}
    merges = [c for c in target.calls if c[0] == 'merge']
    assert len(merges) == 1 and merges[0][2] == OURS and merges[0][3] == [m.thumbprint(ca['cert'])]
    assert result.certificate['thumbprint'] == signed.thumbprint == target.versions[-1]['material'].thumbprint


def test_a_second_merge_of_the_same_certificate_is_unchanged(ca):
    target = FakeRequestTarget()
    signed = pending_and_signed(target, ca)
    MergeEngine(target).run(merge_request(signed))
    target.calls[:] = []
    again = MergeEngine(target).run(merge_request(signed))
    assert (again.outcome, again.changed) == ('unchanged', False) and target.writes == []


def test_a_certificate_over_another_key_is_refused_before_any_write(ca, pki):
    target = FakeRequestTarget()
    target.seed_pending(policy(), tags=OURS)
    stranger = pki.cert(pki.ec(), 'www.example.com', issuer=ca['cert'], issuer_key=ca['key'])
    with pytest.raises(errors.DeployError) as failure:
        MergeEngine(target).run(merge_request(csr_material.SignedCertificate(stranger, [ca['cert']])))
    assert failure.value.code == errors.KEY_MISMATCH
    assert target.writes == [] and target.pending is not None


def test_without_a_pending_request_a_merge_is_a_conflict(ca, pki):
    target = FakeRequestTarget()
    stranger = pki.cert(pki.ec(), 'www.example.com', issuer=ca['cert'], issuer_key=ca['key'])
    with pytest.raises(errors.DeployError) as failure:
        MergeEngine(target).run(merge_request(csr_material.SignedCertificate(stranger, [])))
    assert failure.value.code == errors.CONFLICT and 'no pending certificate request' in failure.value.message
    assert target.writes == []


def test_an_expired_certificate_is_refused_before_any_call(ca):
    target = FakeRequestTarget()
    csr = target.seed_pending(policy(), tags=OURS)
    old = sign(ca, csr, days=10, not_before=datetime.datetime.now(UTC) - datetime.timedelta(days=30))
    with pytest.raises(errors.DeployError) as failure:
        MergeEngine(target).run(merge_request(csr_material.SignedCertificate(old, [])))
    assert failure.value.code == errors.EXPIRED and target.calls == []


def test_merge_check_mode_predicts_from_the_pending_request_and_never_writes(ca, pki):
    target = FakeRequestTarget()
    signed = pending_and_signed(target, ca)
    result = MergeEngine(target).run(merge_request(signed, check_mode=True))
    assert (result.outcome, result.changed, result.verification['public_key']) == ('merged', True, 'passed')
    assert target.writes == [] and target.pending is not None
    stranger = pki.cert(pki.ec(), 'www.example.com', issuer=ca['cert'], issuer_key=ca['key'])
    with pytest.raises(errors.DeployError) as failure:
        MergeEngine(target).run(merge_request(csr_material.SignedCertificate(stranger, []), check_mode=True))
    assert failure.value.code == errors.KEY_MISMATCH


def test_a_merge_whose_answer_was_lost_is_settled_by_reading_latest(ca):
    target = FakeRequestTarget()
    signed = pending_and_signed(target, ca)
    target.fail('merge', CommitThenFail(errors.DeployError(errors.TIMEOUT, 'read timed out', may_have_written=True)))
    result = MergeEngine(target).run(merge_request(signed))
    assert result.outcome == 'merged' and any('answer was lost' in w for w in result.warnings)


def test_a_merge_that_did_not_commit_fails_with_its_own_error(ca):
    target = FakeRequestTarget()
    signed = pending_and_signed(target, ca)
    target.fail('merge', errors.DeployError(errors.TIMEOUT, 'read timed out', may_have_written=True))
    with pytest.raises(errors.DeployError) as failure:
        MergeEngine(target, verify_delay=0).run(merge_request(signed))
    assert failure.value.code == errors.TIMEOUT


def test_only_tags_that_differ_are_updated_on_the_merged_version(ca):
    target = FakeRequestTarget()
    signed = pending_and_signed(target, ca)
    MergeEngine(target).run(merge_request(signed))
    result = MergeEngine(target).run(merge_request(signed, user_tags={'team': 'web'}))
    assert (result.outcome, result.changed) == ('updated', True)
    assert target.versions[-1]['tags']['team'] == 'web' and [c[0] for c in target.writes] == ['merge', 'update']


def test_a_vault_that_keeps_the_leaf_alone_gives_a_warning(ca):
    target = FakeRequestTarget()
    signed = pending_and_signed(target, ca)
    original = target.merge

    def merge_leaf_only(signed_, tags):
        state = original(signed_, tags)
        target.versions[-1]['stored'] = model.StoredChain([signed_.leaf], 'pkcs12')
        return state
    target.merge = merge_leaf_only
    result = MergeEngine(target).run(merge_request(signed))
    assert result.outcome == 'merged' and result.verification['stored_chain'] == 'leaf_only'
    assert any('leaf alone' in w for w in result.warnings)


def test_another_writers_version_after_the_merge_is_reported_not_overwritten(ca, pki):
    target = FakeRequestTarget()
    signed = pending_and_signed(target, ca)
    original = target.merge
    key = pki.ec()

    def merge_then_someone(signed_, tags):
        state = original(signed_, tags)
        target.seed(m.Material(pki.cert(key, 'www.example.com'), key, []), tags={'writer': 'else'})
        return state
    target.merge = merge_then_someone
    with pytest.raises(errors.DeployError) as failure:
        MergeEngine(target).run(merge_request(signed))
    assert failure.value.code == errors.CONFLICT
    assert failure.value.details['result']['outcome'] == 'concurrent_writer'


# -- review follow-ups -------------------------------------------------------------------------------------------------

def test_renew_with_replace_makes_a_new_key_for_a_pending_request_of_the_same_policy():
    target = FakeRequestTarget(pending_version_tags=OURS)
    first = RequestEngine(target).run(ask())
    assert RequestEngine(target).run(ask(renew=True)).outcome == 'pending'  # renew alone: the pending one is the renewal
    again = RequestEngine(target).run(ask(renew=True, replace=True))
    assert (again.outcome, again.reason) == ('requested', 'replaced')
    assert again.request['csr_sha256'] != first.request['csr_sha256']


def test_a_soft_deleted_name_says_what_to_do_with_these_modules(ca):
    target = FakeRequestTarget()
    target.soft_deleted = []
    for engine, wanted in ((RequestEngine(target), ask()), (MergeEngine(target), None)):
        with pytest.raises(errors.DeployError) as failure:
            if wanted is None:
                csr = FakeRequestTarget().seed_pending(policy())
                engine.run(merge_request(csr_material.SignedCertificate(sign(ca, csr), [])))
            else:
                engine.run(wanted)
        assert failure.value.code == errors.SOFT_DELETED
        assert 'Recover it' in failure.value.message and 'on_soft_deleted: recover) or purge' in failure.value.message


def test_a_version_an_earlier_release_imported_without_a_record_is_an_import_too(pki):
    target = FakeRequestTarget()
    key = pki.ec()
    target.seed(m.Material(pki.cert(key, 'www.example.com'), key, []),
                tags={provenance.MANAGED_BY: provenance.MANAGED_BY_VALUE, provenance.CERTIFICATE_ID: 'www'}, record=False)
    assert provenance.MATERIAL not in target.versions[-1]['tags']
    with pytest.raises(errors.DeployError) as failure:
        RequestEngine(target).run(ask())
    assert failure.value.code == errors.CONFLICT and 'switch_from_import' in failure.value.message


def test_a_chain_the_vault_stored_in_another_order_is_a_warning(ca, pki):
    # A merge cannot ask the vault to keep the order: another order is reported, not failed.
    target = FakeRequestTarget()
    inter_key = pki.ec()
    inter = pki.cert(inter_key, 'Request Intermediate CA', issuer=ca['cert'], issuer_key=ca['key'], ca=True)
    csr = target.seed_pending(policy(), tags=OURS)
    now = datetime.datetime.now(UTC)
    leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(inter.subject).public_key(csr.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(inter_key, hashes.SHA256()))
    signed = csr_material.SignedCertificate(leaf, [inter, ca['cert']])
    original = target.merge

    def merge_reordered(signed_, tags):
        state = original(signed_, tags)
        target.versions[-1]['stored'] = model.StoredChain([leaf, ca['cert'], inter], 'pkcs12')
        return state
    target.merge = merge_reordered
    result = MergeEngine(target).run(merge_request(signed))
    assert result.outcome == 'merged' and result.verification['stored_chain'] == 'reordered'


def test_a_given_csr_is_checked_before_any_call_and_must_still_be_the_pending_one(ca, pki):
    from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.request import build_merge_request
    from cryptography.hazmat.primitives.serialization import Encoding as Enc
    target = FakeRequestTarget()
    csr = target.seed_pending(policy(), tags=OURS)
    leaf = sign(ca, csr)
    settings = type('Settings', (), {'certificate_name': 'www'})()
    params = dict(certificate=leaf.public_bytes(Enc.PEM).decode(), csr=csr.public_bytes(Enc.PEM).decode())
    wanted = build_merge_request(params, settings, False)
    assert wanted.csr_sha256 == csr_material.csr_facts(csr)['csr_sha256']
    # Another key than the given CSR's: refused offline, before any target exists.
    stranger = pki.cert(pki.ec(), 'www.example.com', issuer=ca['cert'], issuer_key=ca['key'])
    with pytest.raises(errors.DeployError) as failure:
        build_merge_request(dict(params, certificate=stranger.public_bytes(Enc.PEM).decode()), settings, False)
    assert failure.value.code == errors.KEY_MISMATCH and 'Nothing was sent' in failure.value.message
    with pytest.raises(errors.DeployError) as failure:
        build_merge_request(dict(params, csr='not a csr'), settings, False)
    assert failure.value.code == errors.INVALID_MATERIAL
    # The pending request was replaced after that CSR was signed: a conflict, nothing merged.
    target.seed_pending(policy())
    target.calls[:] = []
    with pytest.raises(errors.DeployError) as failure:
        MergeEngine(target).run(wanted)
    assert failure.value.code == errors.CONFLICT and 'replaced or renewed meanwhile' in failure.value.message
    assert target.writes == []


def test_a_request_the_vault_refuses_reports_no_change():
    target = FakeRequestTarget()
    target.fail('create', errors.DeployError(errors.INVALID_CONFIG, 'Key Vault refused the policy'))
    with pytest.raises(errors.DeployError) as failure:
        RequestEngine(target).run(ask())
    assert failure.value.details['result']['changed'] is False
    target.seed_pending(policy(), tags=OURS)
    target.fail('create', errors.DeployError(errors.INVALID_CONFIG, 'Key Vault refused the policy'))
    with pytest.raises(errors.DeployError) as failure:  # the old request was discarded first: that is a change
        RequestEngine(target).run(ask(policy(curve='P-384'), replace=True, take_ownership=True))
    assert failure.value.details['result']['changed'] is True
    lost = errors.DeployError(errors.SERVICE_ERROR, 'reset', may_have_written=True)
    target2 = FakeRequestTarget()
    target2.fail('create', lost)
    with pytest.raises(errors.DeployError) as failure:  # may have been written, and nothing pending: unknown, said as changed
        RequestEngine(target2).run(ask())
    assert failure.value.details['result']['changed'] is True


def test_renewal_is_decided_on_the_whole_days_it_reports(ca):
    # 30 days and 23 hours 55 minutes left: reported as 30 days (as azure_kv_certificate_info counts them), so with
    # renew_days_before: 30 it is due. Before, the decision used fractional days and reported 30 while not renewing.
    target = FakeRequestTarget()
    issue(target, ca, days=31)
    result = RequestEngine(target).run(ask(renew_days_before=30))
    assert (result.certificate['days_remaining'], result.outcome, result.reason) == (30, 'requested', 'renewal_due')
    assert RequestEngine(FakeRequestTarget()).run(ask()).reason == 'first_request'
