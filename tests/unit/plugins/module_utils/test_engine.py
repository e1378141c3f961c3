# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Engine decisions and outcomes against the in-memory FakeTarget: the deploy contract of docs/architecture.md."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import model, tags
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import record as records
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.deploy import DeployEngine
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import DeployRequest
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import (
    CommitThenFail, ConcurrentImport, Tampered, FakeTarget)

MANAGED = tags.desired_tags({}, 'www')


@pytest.fixture
def target():
    return FakeTarget()


@pytest.fixture
def material(pki):
    h = pki.hierarchy()
    return m.Material(h['leaf'], h['key'], [h['inter'], h['root']])


@pytest.fixture
def other(pki):
    """A different certificate with a different key (a key rotation)."""
    h = pki.hierarchy(leaf_key=pki.rsa(fresh=True))
    return m.Material(h['leaf'], h['key'], [h['inter']])


def run(target, material, **options):
    options.setdefault('certificate_id', 'www')
    return DeployEngine(target, sleep=lambda s: None).run(DeployRequest(material, **options))


def fail(target, material, **options):
    with pytest.raises(errors.DeployError) as info:
        run(target, material, **options)
    return info.value


# -- happy paths ------------------------------------------------------------------

def test_first_deploy_creates(target, material):
    result = run(target, material)
    assert (result.changed, result.outcome) == (True, model.CREATED)
    assert len(target.versions) == 1
    assert target.versions[0]['tags'] == dict(MANAGED, **{tags.MATERIAL: records.Record.of_material(material, 'pkcs12', True).value()})
    assert result.certificate['thumbprint'] == material.thumbprint
    assert result.previous is None
    assert ('read_secret', ) not in [c[:1] for c in target.calls]


def test_identical_rerun_is_unchanged_and_writes_nothing(target, material):
    run(target, material)
    result = run(target, material)
    assert (result.changed, result.outcome) == (False, model.UNCHANGED)
    assert len(target.versions) == 1 and len(target.writes) == 1


def test_new_certificate_rotates_with_snapshot_of_previous_key(target, material, other):
    first = run(target, material).certificate['version']
    result = run(target, other)
    assert (result.changed, result.outcome) == (True, model.ROTATED)
    assert result.previous['version'] == first and result.previous['thumbprint'] == material.thumbprint
    assert ('read_secret', first) in target.calls
    assert len(target.versions) == 2 and target.versions[-1]['material'] is other


def test_tags_only_change_updates_properties_without_import(target, material):
    run(target, material)
    result = run(target, material, user_tags={'env': 'prod'})
    assert result.outcome == model.UPDATED and result.changed
    assert len(target.versions) == 1
    assert tags.without_record(target.versions[0]['tags']) == dict(MANAGED, env='prod')


def test_enabled_change_updates_properties(target, material):
    run(target, material)
    assert run(target, material, enabled=False).outcome == model.UPDATED
    assert target.versions[0]['enabled'] is False


def test_forbidden_update_falls_back_to_import(target, material):
    run(target, material)
    target.fail('update', errors.DeployError(errors.FORBIDDEN, 'no update/action'))
    result = run(target, material, user_tags={'env': 'prod'})
    assert result.outcome == model.ROTATED and len(target.versions) == 2
    assert any('importing a new version' in w for w in result.warnings)


def test_other_update_failures_are_not_masked(target, material):
    run(target, material)
    target.fail('update', errors.DeployError(errors.THROTTLED, 'slow down'))
    assert fail(target, material, user_tags={'a': 'b'}).code == errors.THROTTLED


def test_force_imports_the_same_certificate(target, material):
    run(target, material)
    assert run(target, material, force=True).outcome == model.ROTATED
    assert len(target.versions) == 2


def test_an_inconsistent_rsa_key_is_refused_before_any_write_and_a_no_op_does_not_pay_the_full_check(target, pki):
    from cryptography.hazmat.primitives.asymmetric import rsa
    good = pki.rsa(fresh=True)
    n = good.private_numbers()
    broken = rsa.RSAPrivateNumbers(n.p, n.q, n.d + 2, n.dmp1, n.dmq1, n.iqmp, n.public_numbers).private_key(
        unsafe_skip_rsa_key_validation=True)
    h = pki.hierarchy(leaf_key=good)
    run(target, m.Material(h['leaf'], good, [h['inter']]))
    bad = m.Material(h['leaf'], broken, [h['inter']])
    assert run(target, bad).outcome == model.UNCHANGED  # nothing is sent: the certificate match is enough
    writes = len(target.writes)
    for check_mode in (True, False):
        exc = fail(target, bad, force=True, check_mode=check_mode)
        assert exc.code == errors.INVALID_MATERIAL and 'not consistent' in exc.message
    assert len(target.writes) == writes
    # A tags-only change sends no key: check mode and the real run agree that it is an update.
    assert run(target, bad, user_tags={'team': 'web'}, check_mode=True).outcome == model.UPDATED
    assert run(target, bad, user_tags={'team': 'web'}).outcome == model.UPDATED


def test_previous_rollback_marker_is_not_drift(target, material):
    target.seed(material, tags.rollback_tags(MANAGED, 'v0'))
    assert run(target, material).outcome == model.UNCHANGED


# -- ownership ----------------------------------------------------------------------

def test_untagged_certificate_is_not_owned(target, material, other):
    target.seed(other, {'owner': 'someone'})
    err = fail(target, material)
    assert err.code == errors.NOT_OWNED and 'take_ownership' in err.message
    assert target.writes == []


def test_not_owned_even_with_the_same_thumbprint(target, material):
    target.seed(material, {})
    assert fail(target, material).code == errors.NOT_OWNED


def test_take_ownership_retags_same_certificate(target, material):
    target.seed(material, {'owner': 'someone'})
    result = run(target, material, take_ownership=True)
    assert result.outcome == model.UPDATED and tags.is_managed(target.versions[0]['tags'])


def test_take_ownership_imports_new_certificate(target, material, other):
    target.seed(other, {})
    assert run(target, material, take_ownership=True).outcome == model.ROTATED


def test_a_certificate_issued_from_requests_is_not_imported_over_unless_taken_over(target, material, other):
    # Its key was made in the vault (azure_kv_certificate_request and _merge): an import would replace it with one from outside.
    made_in_vault = {tags.MANAGED_BY: tags.MANAGED_BY_VALUE, tags.CERTIFICATE_ID: 'www', tags.SOURCE: tags.SOURCE_REQUEST}
    target.seed(other, made_in_vault, record=False)
    for options in ({}, {'check_mode': True}, {'force': True}):
        err = fail(target, material, **options)
        assert err.code == errors.CONFLICT and 'take_ownership' in err.message and 'made in the vault' in err.message
    assert target.writes == []
    assert run(target, material, take_ownership=True).outcome == model.ROTATED
    assert tags.SOURCE not in target.versions[-1]['tags']  # imported from now on


# -- check mode -----------------------------------------------------------------------

@pytest.mark.parametrize('setup,expected', [
    ('empty', model.CREATED), ('same', model.UNCHANGED), ('other', model.ROTATED), ('retag', model.UPDATED)])
def test_check_mode_predicts_without_writing(target, material, other, setup, expected):
    if setup == 'same':
        target.seed(material, MANAGED)
    elif setup == 'other':
        target.seed(other, MANAGED)
    elif setup == 'retag':
        target.seed(material, dict(MANAGED, env='old'))
    before = [dict(v) for v in target.versions]
    result = run(target, material, check_mode=True)
    assert result.outcome == expected and result.changed == (expected != model.UNCHANGED)
    assert target.writes == [] and not any(c[0] == 'read_secret' for c in target.calls)
    assert [dict(v) for v in target.versions] == before
    assert result.diff['after']['thumbprint'] == material.thumbprint


def test_check_mode_with_unreadable_target_warns_and_predicts_change(target, material):
    target.fail('read', errors.DeployError(errors.AUTH_FAILED, 'no credential'))
    result = run(target, material, check_mode=True)
    assert result.changed is True and result.outcome is None
    assert 'no credential' in result.warnings[0]
    assert result.certificate['versionless_id'] == 'mem://vault/www'


def test_check_mode_still_fails_on_ownership(target, material, other):
    target.seed(other, {})
    assert fail(target, material, check_mode=True).code == errors.NOT_OWNED


def test_unreadable_target_outside_check_mode_fails(target, material):
    target.fail('read', errors.DeployError(errors.FORBIDDEN, 'no read'))
    assert fail(target, material).code == errors.FORBIDDEN and target.writes == []


def test_check_mode_still_validates_material(target, pki):
    key = pki.rsa(1024)
    weak = m.Material(pki.cert(key), key, [])
    assert fail(target, weak, check_mode=True).code == errors.UNSUPPORTED_KEY
    assert target.calls == []


def test_reserved_user_tags_fail_before_any_call(target, material):
    assert fail(target, material, user_tags={'certdeploy-managed-by': 'me'}).code == errors.INVALID_CONFIG
    assert target.calls == []


# -- diff ------------------------------------------------------------------------------

def test_diff_holds_public_facts_only(target, material, other):
    target.seed(other, MANAGED)
    diff = run(target, material).diff
    assert diff['before']['thumbprint'] == other.thumbprint and diff['after']['thumbprint'] == material.thumbprint
    assert diff['after']['version'] is None
    text = repr(diff)
    assert 'PRIVATE' not in text and 'key' not in ''.join(diff['after'].keys())


# -- soft delete ------------------------------------------------------------------------

def test_soft_deleted_fails_by_default(target, material):
    target.soft_deleted = []
    assert fail(target, material).code == errors.SOFT_DELETED


def test_soft_deleted_recover_then_deploy(target, material, other):
    target.seed(other, MANAGED)
    target.soft_deleted, target.versions = target.versions, []
    result = run(target, material, on_soft_deleted='recover')
    assert ('recover',) in target.calls and result.outcome == model.ROTATED
    assert any('recovered' in w for w in result.warnings)


def test_soft_deleted_recover_in_check_mode_does_not_recover(target, material):
    target.soft_deleted = []
    result = run(target, material, on_soft_deleted='recover', check_mode=True)
    assert result.changed and target.writes == []


def test_a_real_run_never_asks_for_deleted_names_check_mode_does(target, material, other):
    """Telling a soft-deleted name from a free one costs a request: only check mode, which writes nothing, asks."""
    run(target, material)                      # first import: read, import, read back
    run(target, other)                         # rotation
    assert target.deleted_lookups == [False, False, False, False]
    del target.deleted_lookups[:]
    run(target, material, check_mode=True)
    assert target.deleted_lookups == [True]


def test_soft_deleted_is_found_by_the_import_and_nothing_is_recovered(target, material):
    target.soft_deleted = []
    err = fail(target, material)
    assert err.code == errors.SOFT_DELETED
    assert [c[0] for c in target.calls] == ['read', 'import'] and target.versions == []
    assert 'result' not in err.details  # nothing changed


def test_soft_deleted_found_by_the_import_is_recovered_once_and_deployed(target, material, other):
    target.seed(other, MANAGED)
    target.soft_deleted, target.versions = target.versions, []
    result = run(target, other, on_soft_deleted='recover')
    # The recovered version is what was wanted: nothing is imported after the recovery.
    # The deleted certificate's tags are read first: only an owned one is recovered.
    assert [c[0] for c in target.calls] == ['read', 'import', 'read_deleted', 'recover', 'read']
    assert (result.changed, result.outcome) == (True, model.UPDATED)
    assert [w for w in result.warnings if 'recovered' in w] == [
        'The soft-deleted certificate was recovered (on_soft_deleted: recover).']


def test_warnings_are_not_repeated_when_the_run_starts_over(target, pki):
    later = pki.hierarchy(leaf_not_before=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
    early = m.Material(later['leaf'], later['key'], [later['inter']])  # not valid yet: check_rules warns
    target.soft_deleted = []
    result = run(target, early, on_soft_deleted='recover', allow_expired=True)
    assert result.outcome == model.CREATED
    assert len(result.warnings) == len(set(result.warnings)) and len(result.warnings) >= 2


def test_soft_deleted_in_check_mode_is_told_by_the_read(target, material):
    target.soft_deleted = []
    err = fail(target, material, check_mode=True)
    assert err.code == errors.SOFT_DELETED and target.writes == [] and target.deleted_lookups == [True]


# -- snapshot and rollback ----------------------------------------------------------------

def test_rollback_required_without_material_fails_before_import(target, material, other):
    target.seed(other, MANAGED)
    target.fail('read_secret', errors.DeployError(errors.FORBIDDEN, 'no getSecret'))
    err = fail(target, material, rollback='required')
    assert err.code == errors.FORBIDDEN and 'Nothing was written' in err.message
    assert target.writes == []


def test_rollback_auto_without_material_warns_and_deploys(target, material, other):
    target.seed(other, MANAGED)
    target.fail('read_secret', errors.DeployError(errors.FORBIDDEN, 'no getSecret'))
    result = run(target, material)
    assert result.outcome == model.ROTATED
    assert any('Rollback is unavailable' in w for w in result.warnings)


def test_rollback_disabled_takes_no_snapshot(target, material, other):
    target.seed(other, MANAGED)
    run(target, material, rollback='disabled')
    assert not any(c[0] == 'read_secret' for c in target.calls)


def test_stored_thumbprint_mismatch_rolls_back_with_previous_key(target, material, other, pki):
    first = target.seed(other, MANAGED, content_type='pem')
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    err = fail(target, material)
    assert err.code == errors.SERVICE_ERROR
    result = err.details['result']
    assert result['outcome'] == model.ROLLED_BACK
    assert result['rollback']['attempted'] and result['rollback']['succeeded']
    latest = target.versions[-1]
    assert latest['material'] is other and latest['tags'][tags.ROLLBACK_OF] == 'v2'
    assert result['rollback']['version'] == latest['version'] != first
    assert len(target.versions) == 3
    # Byte for byte: the previous version's exported bytes went back unchanged, in their own format.
    assert latest['payload'] == 'exported-bytes-of-' + first and latest['content_type'] == 'pem'
    assert [c for c in target.calls if c[0] == 'import'][-1][3] == 'import_exported'
    # Before re-importing, the versions were listed (no other writer's since the snapshot); after, latest was read.
    assert [c[0] for c in target.calls][-3:] == ['list_versions', 'import', 'read']


def test_rollback_re_pairs_only_when_public_keys_match(target, pki):
    key = pki.rsa(fresh=True)
    old = m.Material(pki.cert(key, 'www.example.com'), key, [])
    renewed = m.Material(pki.cert(key, 'www.example.com'), key, [])
    target.seed(old, MANAGED, content_type='pem')
    target.fail('read_secret', errors.DeployError(errors.FORBIDDEN, 'no getSecret'))
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    result = fail(target, renewed).details['result']
    assert result['outcome'] == model.ROLLED_BACK
    latest = target.versions[-1]
    assert m.thumbprint(latest['material'].leaf) == old.thumbprint
    # Rebuilt from the old certificate and the new key, in the previous version's format.
    assert [c for c in target.calls if c[0] == 'import'][-1][3] == 'import' and latest['content_type'] == 'pem'


def test_key_rotation_without_previous_key_cannot_roll_back(target, material, other, pki):
    target.seed(other, MANAGED)
    target.exportable = False
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    err = fail(target, material)
    assert err.code == errors.ROLLBACK_FAILED
    assert err.details['result']['outcome'] == model.ROLLBACK_FAILED
    assert err.details['result']['rollback']['attempted'] is False
    assert 'Manual step' in err.message
    assert len(target.versions) == 2  # nothing re-imported, nothing disabled
    assert all(v['enabled'] for v in target.versions)


def test_failed_rollback_import_reports_rollback_failed(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')), *[errors.DeployError(errors.SERVICE_ERROR, 'boom')] * 3)
    err = fail(target, material)
    assert err.code == errors.ROLLBACK_FAILED
    rb = err.details['result']['rollback']
    assert rb['attempted'] and not rb['succeeded'] and 'boom' in rb['reason']


def test_first_deploy_mismatch_has_nothing_to_roll_back_to(target, material, pki):
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    err = fail(target, material)
    assert err.code == errors.ROLLBACK_FAILED and 'no previous version' in err.message


# -- verify ----------------------------------------------------------------------------------

def test_concurrent_writer_is_reported_not_overwritten(target, material, other):
    target.seed(other, MANAGED)
    intruder = other
    target.fail('import', ConcurrentImport(intruder))
    err = fail(target, material)
    assert err.code == errors.CONFLICT
    assert err.details['result']['outcome'] == model.CONCURRENT_WRITER
    assert err.details['result']['rollback']['attempted'] is False
    assert target.versions[-1]['tags'] == {'writer': 'someone-else'}
    assert len(target.versions) == 3


def test_verify_read_failure_is_unverified_without_rollback(target, material, other):
    target.seed(other, MANAGED)
    target.fail('read', None, *[errors.DeployError(errors.SERVICE_ERROR, 'flaky')] * 3)
    result = run(target, material)
    assert result.outcome == model.UNVERIFIED and result.changed
    assert result.rollback['attempted'] is False
    assert target.versions[-1]['material'] is material


def test_verify_read_is_retried(target, material):
    target.fail('read', None, errors.DeployError(errors.THROTTLED, 'slow'))
    assert run(target, material).outcome == model.CREATED


def test_import_error_after_commit_is_recognised(target, material, other):
    target.seed(other, MANAGED)
    target.fail('import', CommitThenFail(errors.DeployError(errors.SERVICE_ERROR, 'connection reset')))
    result = run(target, material)
    assert result.outcome == model.ROTATED and len(target.versions) == 2
    assert any('connection reset' in w for w in result.warnings)


def test_import_error_without_commit_fails_after_the_attempts_each_after_a_read(target, material):
    target.fail('import', *[errors.DeployError(errors.SERVICE_ERROR, '500')] * 3)
    err = fail(target, material)
    assert err.code == errors.SERVICE_ERROR and target.versions == []
    assert [c[0] for c in target.calls] == ['read', 'import', 'read', 'import', 'read', 'import', 'read']


def test_an_import_that_did_not_commit_is_sent_again_after_a_read(target, material, other):
    target.seed(other, MANAGED)
    target.fail('import', errors.DeployError(errors.SERVICE_ERROR, '503 before the write'))
    result = run(target, material)
    assert result.outcome == model.ROTATED and len(target.versions) == 2
    assert [c[0] for c in target.calls] == ['read', 'read_secret', 'import', 'read', 'import', 'read', 'read_stored']


def test_an_import_that_committed_and_was_answered_503_is_not_sent_again(target, material, other):
    """azure-core resends a POST answered 503; the engine must not: it reads, finds ours, and adds nothing."""
    target.seed(other, MANAGED)
    target.fail('import', CommitThenFail(errors.DeployError(errors.SERVICE_ERROR, 'HTTP 503 after the write')))
    result = run(target, material)
    assert result.outcome == model.ROTATED and len(target.versions) == 2
    assert [c[0] for c in target.calls].count('import') == 1


def test_a_resend_wish_longer_than_the_engine_waits_fails_throttled(target, material):
    slept = []
    target.fail('import', errors.DeployError(errors.THROTTLED, '429', retry_after=86400.0))
    with pytest.raises(errors.DeployError) as info:
        DeployEngine(target, sleep=slept.append).run(DeployRequest(material, 'www'))
    assert info.value.code == errors.THROTTLED and '86400 s' in info.value.message
    assert slept == [] and target.versions == []


def test_a_short_resend_wish_is_waited_for(target, material):
    slept = []
    target.fail('import', errors.DeployError(errors.THROTTLED, '429', retry_after=3.0))
    assert DeployEngine(target, sleep=slept.append).run(DeployRequest(material, 'www')).outcome == model.CREATED
    assert slept == [3.0]


def test_an_unreadable_target_after_a_failed_import_means_no_resend(target, material):
    target.fail('import', errors.DeployError(errors.SERVICE_ERROR, '504'))
    target.fail('read', None, errors.DeployError(errors.THROTTLED, 'busy'))
    err = fail(target, material)
    assert err.code == errors.SERVICE_ERROR and 'not sent again' in err.message
    assert [c[0] for c in target.calls].count('import') == 1
    # Whether it was written is unknown: the result must not claim "nothing changed".
    assert err.details['result']['changed'] is True and err.details['result']['outcome'] == model.UNVERIFIED


def test_the_engines_own_sleeps_stay_within_its_bound(target, material, other, pki):
    slept = []
    target.seed(other, MANAGED)
    target.fail('import', errors.DeployError(errors.SERVICE_ERROR, '503'), Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')),
                errors.DeployError(errors.THROTTLED, '429', retry_after=30.0), errors.DeployError(errors.THROTTLED, '429', retry_after=30.0))
    target.fail('read', None, None, *[errors.DeployError(errors.THROTTLED, 'busy')] * 2)
    engine = DeployEngine(target, sleep=slept.append)
    with pytest.raises(errors.DeployError):
        engine.run(DeployRequest(material, 'www'))
    assert slept and sum(slept) <= engine.sleep_bound()
    assert engine.sleep_bound() == 3 * (2 + 4) + 2 * 2 * 30


def test_import_client_error_is_not_second_guessed(target, material):
    target.fail('import', errors.DeployError(errors.INVALID_MATERIAL, 'bad'))
    assert fail(target, material).code == errors.INVALID_MATERIAL
    assert [c[0] for c in target.calls].count('read') == 1


def test_warnings_survive_a_failure(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('read_secret', errors.DeployError(errors.FORBIDDEN, 'no getSecret'))
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    err = fail(target, material)
    assert any('Rollback is unavailable' in w for w in err.details['warnings'])


# -- review follow-ups ---------------------------------------------------------------------

def test_soft_delete_found_only_at_import_is_recovered(target, material, other):
    target.seed(other, MANAGED)
    target.soft_deleted, target.versions = target.versions, []
    real_read = target.read_latest

    def blind_read(**kwargs):  # deleted certificates may not be read: the name looks free
        if target.soft_deleted is not None:
            target.calls.append(('read',))
            return None
        return real_read(**kwargs)
    target.read_latest = blind_read
    target.fail('import', errors.DeployError(errors.SOFT_DELETED, '409 ObjectIsDeletedButRecoverable'))
    result = run(target, material, on_soft_deleted='recover')
    assert ('recover',) in target.calls and result.outcome == model.ROTATED and result.changed


def test_a_soft_deleted_certificate_this_collection_does_not_own_is_not_recovered(target, material, other):
    target.seed(other, {'owner': 'someone'})
    target.soft_deleted, target.versions = target.versions, []
    err = fail(target, material, on_soft_deleted='recover')
    assert err.code == errors.NOT_OWNED and 'not recovered' in err.message
    assert 'result' not in err.details  # nothing was changed
    assert ('recover',) not in target.calls and target.versions == [] and target.soft_deleted


def test_take_ownership_recovers_a_foreign_soft_deleted_certificate(target, material, other):
    target.seed(other, {'owner': 'someone'})
    target.soft_deleted, target.versions = target.versions, []
    result = run(target, material, on_soft_deleted='recover', take_ownership=True)
    assert ('recover',) in target.calls and result.outcome == model.ROTATED


def test_errors_after_a_recovery_report_the_change(target, material, other):
    target.seed(other, MANAGED)
    target.soft_deleted, target.versions = target.versions, []
    target.fail('read_secret', errors.DeployError(errors.FORBIDDEN, 'no getSecret'))
    err = fail(target, material, on_soft_deleted='recover', rollback='required')
    assert ('recover',) in target.calls
    assert err.code == errors.FORBIDDEN and err.details['result']['changed'] is True


def test_required_rollback_keeps_the_missing_action(target, material, other):
    target.seed(other, MANAGED)
    target.fail('read_secret', errors.DeployError(errors.FORBIDDEN, 'no getSecret', action='secrets/getSecret/action'))
    err = fail(target, material, rollback='required')
    assert err.code == errors.FORBIDDEN and err.details['action'] == 'secrets/getSecret/action'
    assert 'different public key' in err.details['result']['rollback']['reason']


def test_unavailable_rollback_reason_is_returned(target, material, other):
    target.seed(other, MANAGED)
    target.exportable = False
    result = run(target, material)
    assert 'cannot be re-paired' in result.rollback['reason'] and not result.rollback['attempted']


def test_stale_read_back_is_unverified_not_a_concurrent_writer(target, material, other):
    target.seed(other, MANAGED)
    stale = target._state(target.versions[0])
    target.fail('read', None, stale, stale, stale)
    result = run(target, material)
    assert result.outcome == model.UNVERIFIED and result.rollback['attempted'] is False


# -- exported material (copy_from) and caller expectations ---------------------------

def test_exported_material_is_imported_unchanged_and_idempotent(target, material):
    exported = model.ExportedVersion('source-bytes', 'pkcs12', material, version='s1')
    result = DeployEngine(target).run(DeployRequest(None, 'www', exported=exported))
    assert result.outcome == model.CREATED and target.versions[-1]['payload'] == 'source-bytes'
    again = DeployEngine(target).run(DeployRequest(None, 'www', exported=exported))
    assert again.outcome == model.UNCHANGED and len(target.versions) == 1


def test_min_days_remaining_refuses_a_certificate_about_to_expire(target, pki):
    key = pki.rsa()
    soon = m.Material(pki.cert(key, 'www.example.com', days=6), key, [])  # issued yesterday: 5 days left
    err = fail(target, soon, min_days_remaining=30)
    assert err.code == errors.INVALID_MATERIAL and 'min_days_remaining requires at least 30' in err.message
    assert target.calls == []
    assert run(target, soon, min_days_remaining=4).outcome == model.CREATED


def test_expected_sans_must_all_be_covered(target, material):
    sans = m.subject_alternative_names(material.leaf)
    name = sans[0].split(':', 1)[1]
    err = fail(target, material, expected_sans=[name, 'api.example.org'])
    assert err.code == errors.INVALID_MATERIAL and 'api.example.org' in err.message and name not in err.message.split(';')[0]
    assert target.calls == []
    assert run(target, material, expected_sans=[name.upper(), 'DNS:' + name]).outcome == model.CREATED


# -- the deploy contract, pinned down (each of these failed, or let a mutation survive, before) ----------

def test_garbled_import_response_with_a_newer_foreign_version_is_not_rolled_back_over(target, material, other, pki):
    """Ours lands as v2, another writer's as v3, and our response comes back garbled: v3 stays latest, untouched."""
    target.seed(other, MANAGED)
    intruder = m.Material(pki.cert(pki.rsa(fresh=True), 'intruder'), None, [])
    target.fail('import', ConcurrentImport(intruder, garbled_leaf=pki.cert(pki.rsa(fresh=True), 'garbled')))
    err = fail(target, material)
    assert err.code == errors.CONFLICT
    result = err.details['result']
    assert result['outcome'] == model.CONCURRENT_WRITER and result['rollback']['attempted'] is False
    assert len(target.versions) == 3 and target.versions[-1]['tags'] == {'writer': 'someone-else'}
    assert [c[0] for c in target.calls].count('import') == 1  # nothing re-imported over v3
    assert 'the import response showed thumbprint' in err.message


def test_garbled_import_response_reads_latest_before_rolling_back(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    fail(target, material)
    ops = [c[0] for c in target.calls]
    first_import = ops.index('import')
    assert 'read' in ops[first_import + 1:ops.index('import', first_import + 1)]


def test_read_back_thumbprint_mismatch_rolls_back(target, material, other, pki):
    """The import response matched, but the read-back shows another certificate in our version: roll back."""
    target.seed(other, MANAGED)
    seen = {}

    def tampered_read():
        latest = target._state(target.versions[-1], leaf_override=pki.cert(pki.rsa(fresh=True), 'tampered'))
        seen['version'] = latest.version
        return latest
    real_read = target.read_latest
    reads = {'n': 0}

    def read_latest(**kwargs):
        reads['n'] += 1
        return tampered_read() if reads['n'] == 2 else real_read(**kwargs)
    target.read_latest = read_latest
    err = fail(target, material)
    result = err.details['result']
    assert result['outcome'] == model.ROLLED_BACK and result['rollback']['succeeded']
    assert 'Reading version %s back returned thumbprint' % seen['version'] in err.message
    assert target.versions[-1]['material'] is other and target.versions[-1]['tags'][tags.ROLLBACK_OF] == seen['version']


@pytest.mark.parametrize('transient', [
    'stale', 'missing', errors.DeployError(errors.THROTTLED, 'slow'), errors.DeployError(errors.AUTH_FAILED, 'token hiccup'),
    errors.DeployError(errors.UNREACHABLE, 'connection refused'), errors.DeployError(errors.TIMEOUT, 'timed out')])
def test_read_back_retries_what_is_transient(target, material, other, transient):
    target.seed(other, MANAGED)
    stale = target._state(target.versions[0])
    effect = stale if transient == 'stale' else transient
    real_read = target.read_latest
    queue = [effect, effect]

    def read_latest(**kwargs):
        if any(c[0] == 'import' for c in target.calls) and queue:
            target.calls.append(('read',))
            item = queue.pop(0)
            if isinstance(item, Exception):
                raise item
            return None if item == 'missing' else item
        return real_read(**kwargs)
    target.read_latest = read_latest
    result = run(target, material)
    assert queue == [] and result.outcome == model.ROTATED  # two bad reads, the third counts
    assert result.rollback['attempted'] is False


@pytest.mark.parametrize('bad', ['stale', 'missing'])
def test_read_back_that_stays_stale_or_missing_is_unverified_after_every_attempt(target, material, other, bad):
    target.seed(other, MANAGED)
    stale = target._state(target.versions[0])
    reads = []
    real_read = target.read_latest

    def read_latest(**kwargs):
        if any(c[0] == 'import' for c in target.calls):
            reads.append(1)
            return stale if bad == 'stale' else None
        return real_read(**kwargs)
    target.read_latest = read_latest
    result = run(target, material)
    assert len(reads) == 3  # verify_attempts, not one
    assert result.outcome == model.UNVERIFIED and result.outcome not in (model.CREATED, model.ROTATED)
    assert result.rollback['attempted'] is False and len(target.versions) == 2


def test_forbidden_read_back_is_unverified_not_raised_and_not_retried(target, material, other):
    target.seed(other, MANAGED)
    target.fail('read', None, errors.DeployError(errors.FORBIDDEN, 'no read permission'))
    result = run(target, material)
    assert result.outcome == model.UNVERIFIED and 'no read permission' in ' '.join(result.warnings)
    assert [c[0] for c in target.calls].count('read') == 2


def test_auth_failed_read_back_is_retried(target, material):
    target.fail('read', None, errors.DeployError(errors.AUTH_FAILED, 'token expired'))
    assert run(target, material).outcome == model.CREATED


def test_rollback_disabled_with_a_mismatch_reports_an_outcome_and_what_the_vault_holds(target, material, other, pki):
    target.seed(other, MANAGED)
    tampered = pki.cert(pki.rsa(fresh=True), 'tampered')
    target.fail('import', Tampered(tampered))
    err = fail(target, material, rollback='disabled')
    result = err.details['result']
    assert err.code == errors.SERVICE_ERROR
    assert result['outcome'] == model.ROLLBACK_FAILED
    assert result['rollback'] == {'attempted': False, 'succeeded': False, 'version': None, 'reason': 'rollback is disabled'}
    assert result['certificate']['version'] == 'v2' and 'faulty version v2' in err.message and 'Manual step' in err.message
    assert [c[0] for c in target.calls].count('import') == 1 and len(target.versions) == 2


@pytest.mark.parametrize('enabled, exportable', [(True, True), (False, True), (True, False)])
def test_rollback_restores_the_previous_flags_not_this_runs(target, pki, enabled, exportable):
    key = pki.rsa(fresh=True)
    old = m.Material(pki.cert(key, 'www.example.com'), key, [])
    renewed = m.Material(pki.cert(key, 'www.example.com'), key, [])
    target.seed(old, MANAGED, enabled=enabled, exportable=exportable)
    if not exportable:
        target.exportable = False  # its key cannot be read back: rollback re-pairs (same public key)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    result = fail(target, renewed, enabled=True).details['result']
    assert result['outcome'] == model.ROLLED_BACK
    restored = target.versions[-1]
    assert (restored['enabled'], restored['exportable']) == (enabled, exportable)
    assert m.thumbprint(restored['material'].leaf) == old.thumbprint
    # Nothing was disabled on the way: no update call, and the faulty version keeps its flags.
    assert not any(c[0] == 'update' for c in target.calls) and target.versions[1]['enabled'] is True


def test_rollback_failed_message_names_the_manual_step(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')), *[errors.DeployError(errors.SERVICE_ERROR, 'boom')] * 3)
    err = fail(target, material)
    assert 'Manual step: re-import the previous certificate (version v1' in err.message and 'do not disable' in err.message


def test_snapshot_warning_quotes_no_key_bytes(target, pki):
    from cryptography.hazmat.primitives import serialization
    key = pki.rsa(fresh=True)
    old = m.Material(pki.cert(key, 'www.example.com'), key, [])
    renewed = m.Material(pki.cert(key, 'www.example.com'), key, [])
    target.seed(old, MANAGED)
    target.fail('read_secret', errors.DeployError(errors.FORBIDDEN, 'no getSecret'))
    result = run(target, renewed)
    assert result.outcome == model.ROTATED and any('re-pair' in w for w in result.warnings)
    text = ' '.join(result.warnings) + repr(result.as_dict())
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
        body = [line for line in pem.splitlines() if not line.startswith('-----')]
        assert not [line for line in body if line[:24] in text]


def test_check_mode_unreadable_target_diff_before_is_unknown(target, material):
    target.fail('read', errors.DeployError(errors.AUTH_FAILED, 'no credential'))
    result = run(target, material, check_mode=True)
    assert result.changed and result.outcome is None
    assert result.diff['before'] == 'unknown' and result.diff['after']['thumbprint'] == material.thumbprint


@pytest.mark.parametrize('code', [errors.AUTH_FAILED, errors.UNREACHABLE, errors.FORBIDDEN])
def test_check_mode_read_required_fails_instead_of_predicting(target, material, code):
    target.fail('read', errors.DeployError(code, 'cannot read', action='x/read'))
    err = fail(target, material, check_mode=True, check_mode_read='required')
    assert err.code == code and 'check_mode_read is required' in err.message and err.details['action'] == 'x/read'
    assert target.writes == []


# -- rollback is decided on what the target holds (issue: garbled responses, foreign versions, unconfirmed restores) --

def test_a_garbled_import_response_alone_does_not_roll_back(target, material, other, pki):
    """The response shows another thumbprint, but reading back shows ours stored correctly: deployed, with a warning."""
    target.seed(other, MANAGED)
    target.fail('import', pki.cert(pki.rsa(fresh=True), 'garbled'))
    result = run(target, material)
    assert result.outcome == model.ROTATED and result.rollback['attempted'] is False
    assert len(target.versions) == 2 and target.versions[-1]['material'] is material
    assert result.certificate['thumbprint'] == material.thumbprint
    assert any('the response was wrong' in w for w in result.warnings)


def test_no_rollback_over_a_version_created_after_the_snapshot(target, material, other, pki):
    """Another writer's version lands between our snapshot and our (faulty) version: the snapshot is not re-imported."""
    target.seed(other, MANAGED)
    foreign = m.Material(pki.cert(pki.rsa(fresh=True), 'foreign'), None, [])
    real_export = target.export_version

    def snapshot_then_foreign(state):
        exported = real_export(state)
        target.seed(foreign, {'writer': 'someone-else'})
        return exported
    target.export_version = snapshot_then_foreign
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    err = fail(target, material)
    assert err.code == errors.CONFLICT and 'would bury it' in err.message
    result = err.details['result']
    assert result['outcome'] == model.ROLLBACK_FAILED and result['rollback']['attempted'] is False
    assert 'v2' in result['rollback']['reason']
    assert [c[0] for c in target.calls].count('import') == 1 and len(target.versions) == 3


def test_rollback_is_refused_when_the_versions_cannot_be_listed(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    target.fail('list_versions', errors.DeployError(errors.FORBIDDEN, 'no list'))
    err = fail(target, material)
    assert err.code == errors.ROLLBACK_FAILED and 'could not be listed' in err.message
    assert [c[0] for c in target.calls].count('import') == 1


def test_rolled_back_only_when_a_read_shows_the_previous_certificate_latest(target, material, other, pki):
    """The rollback import is answered, but every read afterwards still shows our faulty version: not rolled back."""
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    real_read = target.read_latest
    reads = []

    def read(look_for_deleted=True):
        reads.append(look_for_deleted)
        if len(reads) >= 3:  # the first read, the read-back of our version, then the reads confirming the rollback
            target.calls.append(('read',))
            return target._state(next(e for e in target.versions if e['version'] == 'v2'))
        return real_read(look_for_deleted=look_for_deleted)
    target.read_latest = read
    err = fail(target, material)
    result = err.details['result']
    assert err.code == errors.ROLLBACK_FAILED and 'unconfirmed' in err.message, err.message
    assert result['outcome'] == model.ROLLBACK_FAILED and result['rollback']['succeeded'] is False
    assert len(reads) == 2 + 3  # the confirming read-back was tried verify_attempts times
