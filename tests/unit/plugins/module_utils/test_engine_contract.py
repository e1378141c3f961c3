# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The engine's return contract to the letter: the exact keys and values of ``certificate``, ``previous``,
``diff`` and ``rollback``, the waits between read-backs, and the small rules of the value objects and tags.

Playbooks read these keys by name, so a renamed or missing key is a break even when the outcome is right.
"""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import model, tags
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import record as records
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.deploy import DeployEngine
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import DeployRequest, VersionState
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import CommitThenFail, FakeTarget, Tampered
# The engine tests' fixtures and helpers: one definition of the target, the materials and the run.
# pylint: disable=unused-import
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_engine import (  # noqa: F401
    MANAGED, fail, material, other, run, target)
# pylint: enable=unused-import

DIFF_FACTS = ('thumbprint', 'serial', 'subject', 'sans', 'not_before', 'expires')
NO_ROLLBACK = {'attempted': False, 'succeeded': False, 'version': None, 'reason': None}


def facts(material):
    every = m.certificate_facts(material.leaf)
    return dict((k, every.get(k)) for k in DIFF_FACTS)


def recorded(material, base=None, content_type='pkcs12', exportable=True):
    """``base`` tags (default: the provenance tags) plus the record an import of ``material`` writes."""
    return dict(MANAGED if base is None else base, **{tags.MATERIAL: records.Record.of_material(material, content_type, exportable).value()})


def storage(material, content_type='pkcs12', exportable=True, chain=True):
    """How the diff shows the stored form: content type, exportable, chain subjects (None: not read)."""
    return {'content_type': content_type, 'exportable': exportable,
            'chain': [m.subject_text(c) for c in material.chain] if chain else None}


def broken_rsa(pki):
    """A key whose public half matches its certificate but whose private numbers are inconsistent."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    good = pki.rsa(fresh=True)
    n = good.private_numbers()
    broken = rsa.RSAPrivateNumbers(n.p, n.q, n.d + 2, n.dmp1, n.dmq1, n.iqmp, n.public_numbers).private_key(
        unsafe_skip_rsa_key_validation=True)
    h = pki.hierarchy(leaf_key=good)
    return m.Material(h['leaf'], good, [h['inter']]), m.Material(h['leaf'], broken, [h['inter']])


# -- diff ------------------------------------------------------------------------------------

def test_diff_of_a_rotation_has_exactly_the_public_keys(target, material, other):
    first = target.seed(other, dict(MANAGED, env='a'))
    diff = run(target, material, enabled=False, user_tags={'env': 'b'}).diff
    assert diff == {
        'before': dict(facts(other), version=first, thumbprint=other.thumbprint, enabled=True,
                       tags=recorded(other, dict(MANAGED, env='a')), **storage(other)),  # the chain as the snapshot read it
        'after': dict(facts(material), version=None, enabled=False, tags=recorded(material, dict(MANAGED, env='b')),
                      **storage(material)),
    }


@pytest.mark.parametrize('enabled', [True, False])
def test_diff_of_an_update_keeps_the_version_and_says_the_wanted_enabled_flag(target, material, enabled):
    first = target.seed(material, dict(MANAGED, env='old'), enabled=not enabled)
    result = run(target, material, enabled=enabled)
    assert result.outcome == model.UPDATED
    assert result.diff['after'] == dict(facts(material), version=first, enabled=enabled, tags=recorded(material), **storage(material))
    assert result.diff['before']['enabled'] is (not enabled)


def test_diff_of_a_no_op_names_the_current_version(target, material):
    first = target.seed(material, MANAGED)
    diff = run(target, material).diff
    assert diff['after'] == dict(facts(material), version=first, enabled=True, tags=recorded(material), **storage(material))
    # The record equals the wanted one: the stored chain is known to be the wanted chain without reading it.
    assert diff['before'] == dict(facts(material), version=first, thumbprint=material.thumbprint, enabled=True,
                                  tags=recorded(material), **storage(material))


def test_check_mode_diff_with_an_unreadable_target_says_the_wanted_enabled_flag(target, material):
    target.fail('read', errors.DeployError(errors.AUTH_FAILED, 'no credential'))
    result = run(target, material, check_mode=True, enabled=False)
    assert result.diff == {'before': 'unknown', 'after': dict(facts(material), version=None, enabled=False, tags=recorded(material),
                                                              **storage(material))}


# -- certificate and previous --------------------------------------------------------------------

def test_previous_is_exactly_the_short_form(target, material, other):
    first = target.seed(other, MANAGED)
    every = m.certificate_facts(other.leaf)
    result = run(target, material)
    assert result.previous == {'version': first, 'thumbprint': other.thumbprint,
                               'serial': every['serial'], 'expires': every['expires']}
    assert result.as_dict()['previous'] == result.previous


def test_a_first_deploy_returns_no_previous_and_a_fresh_result_returns_only_changed_and_rollback(target, material):
    assert 'previous' not in run(target, material).as_dict()
    assert model.DeployResult().as_dict() == {'changed': False, 'rollback': NO_ROLLBACK}


def test_a_no_op_returns_the_stored_version_in_full(target, material):
    target.seed(material, MANAGED)
    result = run(target, material)
    assert result.outcome == model.UNCHANGED
    assert result.certificate == target._state(target.versions[0]).describe()


def test_an_update_returns_the_updated_version_in_full(target, material):
    target.seed(material, MANAGED)
    result = run(target, material, user_tags={'env': 'prod'})
    assert result.outcome == model.UPDATED
    assert result.certificate == target._state(target.versions[0]).describe()
    assert result.certificate['tags'] == recorded(material, dict(MANAGED, env='prod'))


def test_check_mode_predicts_an_update_on_the_current_version_and_a_rotation_as_a_new_one(target, material, other):
    first = target.seed(material, dict(MANAGED, env='old'))
    current_ids = target._state(target.versions[0]).ids
    predicted = run(target, material, check_mode=True, enabled=False).certificate
    assert predicted == dict(current_ids, **dict(m.certificate_facts(material.leaf), version=first, tags=recorded(material),
                                                 enabled=False))

    target.versions[0]['tags'] = recorded(material)
    predicted = run(target, other, check_mode=True).certificate
    assert predicted == dict({'versionless_id': 'mem://vault/www'},
                             **dict(m.certificate_facts(other.leaf), version=None, tags=recorded(other), enabled=True))
    assert 'id' not in predicted  # a rotation makes a new version: the current version's id is not its id


def test_check_mode_prediction_with_an_unreadable_target(target, material):
    target.fail('read', errors.DeployError(errors.AUTH_FAILED, 'no credential'))
    predicted = run(target, material, check_mode=True, enabled=False).certificate
    assert predicted == dict({'versionless_id': 'mem://vault/www'},
                             **dict(m.certificate_facts(material.leaf), version=None, tags=recorded(material), enabled=False))


def test_an_unverified_import_returns_what_the_import_response_named(target, material, other):
    target.seed(other, MANAGED)
    target.fail('read', None, *[errors.DeployError(errors.SERVICE_ERROR, 'flaky')] * 3)
    result = run(target, material)
    assert result.outcome == model.UNVERIFIED
    assert result.certificate == target._state(target.versions[-1]).describe()
    assert result.certificate['thumbprint'] == material.thumbprint


# -- check the private key before a key is sent (or predicted to be) -----------------------------------

def test_check_mode_with_an_unreadable_target_checks_the_key_in_full(target, pki):
    bad = broken_rsa(pki)[1]
    target.fail('read', errors.DeployError(errors.AUTH_FAILED, 'no credential'))
    assert fail(target, bad, check_mode=True).code == errors.INVALID_MATERIAL


def test_a_forbidden_update_checks_the_key_in_full_before_importing_instead(target, pki):
    good, bad = broken_rsa(pki)
    run(target, good)
    target.fail('update', errors.DeployError(errors.FORBIDDEN, 'no update'))
    assert fail(target, bad, user_tags={'env': 'prod'}).code == errors.INVALID_MATERIAL
    assert [c[0] for c in target.writes] == ['import', 'update']  # the first deploy's import only


# -- reads: never ask for deleted names in a real run --------------------------------------------------

def test_after_a_failed_import_and_after_a_recovery_latest_is_read_without_asking_for_deleted_names(target, material):
    target.fail('import', errors.DeployError(errors.SERVICE_ERROR, '503'))
    assert run(target, material).outcome == model.CREATED
    assert target.deleted_lookups == [False, False, False]  # current, after the failed import, the read-back

    fresh = FakeTarget()
    fresh.soft_deleted = []
    fresh.fail('read', errors.DeployError(errors.SOFT_DELETED, 'soft-deleted'))
    assert run(fresh, material, on_soft_deleted='recover').outcome == model.CREATED
    assert fresh.deleted_lookups == [False, False, False]  # the failed read, the read after the recovery, the read-back


def test_check_mode_on_a_soft_deleted_name_warns_that_it_would_be_recovered(target, material):
    target.soft_deleted = []
    result = run(target, material, on_soft_deleted='recover', check_mode=True)
    assert 'The certificate is soft-deleted; it would be recovered first and then compared.' in result.warnings


# -- resend: the version from before is not mistaken for this import ----------------------------------

def test_a_forced_reimport_of_the_same_certificate_is_sent_again_when_it_did_not_commit(target, material):
    first = target.seed(material, MANAGED)
    target.fail('import', errors.DeployError(errors.SERVICE_ERROR, '503'))
    result = run(target, material, force=True)
    # Latest still holds the same thumbprint, but in the version from before: not this import, so it is resent.
    assert result.outcome == model.ROTATED and result.certificate['version'] != first
    assert [c[0] for c in target.calls].count('import') == 2 and len(target.versions) == 2


# -- waits between read-backs ----------------------------------------------------------------------

def test_read_back_waits_two_then_four_seconds_by_default(target, material):
    slept = []
    target.fail('read', None, *[errors.DeployError(errors.THROTTLED, 'busy')] * 2)
    engine = DeployEngine(target, sleep=slept.append)
    assert engine.run(DeployRequest(material, 'www')).outcome == model.CREATED
    assert slept == [2.0, 4.0]


def test_a_read_back_that_finds_nothing_says_so(target, material):
    real = target.read_latest
    reads = []

    def vanishing(look_for_deleted=True):
        reads.append(look_for_deleted)
        return real(look_for_deleted) if len(reads) == 1 else None
    target.read_latest = vanishing
    result = run(target, material)
    assert result.outcome == model.UNVERIFIED
    assert any('reading it back failed (the certificate was not found)' in w for w in result.warnings)


# -- rollback: the exact rollback report -----------------------------------------------------------

def test_a_successful_rollback_reports_its_version_cause_and_the_restored_certificate(target, material, other, pki):
    target.seed(other, MANAGED)
    bad = pki.cert(pki.rsa(fresh=True), 'tampered')
    target.fail('import', Tampered(bad))
    result = fail(target, material).details['result']
    assert result['outcome'] == model.ROLLED_BACK
    cause = 'Reading version v2 back returned thumbprint %s, not the %s that was sent.' % (m.thumbprint(bad), material.thumbprint)
    assert result['rollback'] == {'attempted': True, 'succeeded': True, 'version': 'v3', 'reason': cause}
    assert result['certificate'] == target._state(target.versions[-1]).describe()
    assert result['certificate']['thumbprint'] == other.thumbprint


def test_an_unavailable_rollback_reports_why_in_the_rollback_reason(target, material, other, pki):
    target.seed(other, MANAGED)
    target.exportable = False
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    err = fail(target, material)
    reason = ('the previous private key could not be read (invalid_material: no private key in the secret) and the '
              'previous certificate has a different public key, so it cannot be re-paired')
    assert err.details['result']['rollback'] == dict(NO_ROLLBACK, reason=reason)
    assert err.details['result']['outcome'] == model.ROLLBACK_FAILED


def test_an_unavailable_rollback_says_when_the_target_did_not_return_the_previous_certificate(target, material, other):
    first = target.seed(other, MANAGED)
    bare = VersionState(first, other.thumbprint, tags=MANAGED, facts=m.certificate_facts(other.leaf))  # no leaf
    target.fail('read', bare)
    target.exportable = False
    result = run(target, material)
    assert result.outcome == model.ROTATED
    assert result.rollback == dict(NO_ROLLBACK, reason=(
        'the previous private key could not be read (invalid_material: no private key in the secret) and the target '
        'did not return the previous certificate, so it cannot be re-paired'))


def test_a_failed_rollback_import_is_reported_as_rollback_failed(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')), errors.DeployError(errors.INVALID_MATERIAL, 'refused'))
    err = fail(target, material)
    assert err.code == errors.ROLLBACK_FAILED
    assert err.details['result']['outcome'] == model.ROLLBACK_FAILED
    assert err.details['result']['rollback'] == {'attempted': True, 'succeeded': False, 'version': None,
                                                 'reason': 'invalid_material: refused'}


def test_a_rollback_whose_read_back_stays_on_the_faulty_version_is_unconfirmed(target, material, other, pki):
    target.seed(other, MANAGED)
    bad = pki.cert(pki.rsa(fresh=True), 'tampered')
    faulty = VersionState('v2', m.thumbprint(bad), tags=MANAGED, facts=m.certificate_facts(bad))
    target.fail('import', Tampered(bad))
    target.fail('read', None, None, faulty, faulty, faulty)  # current, read-back of the import, then every rollback read-back
    err = fail(target, material)
    assert err.code == errors.ROLLBACK_FAILED
    assert err.details['result']['outcome'] == model.ROLLBACK_FAILED
    assert err.details['result']['rollback']['reason'] == (
        'the rollback import was sent, but reading back failed (the target still returned the previous version v2)')


def test_a_rollback_whose_read_back_shows_another_version_reports_that_version(target, material, other, pki):
    target.seed(other, MANAGED)
    bad = pki.cert(pki.rsa(fresh=True), 'tampered')
    foreign = pki.cert(pki.rsa(fresh=True), 'foreign')
    intruder = VersionState('v9', m.thumbprint(foreign), tags={'writer': 'someone-else'}, facts=m.certificate_facts(foreign))
    target.fail('import', Tampered(bad))
    target.fail('read', None, None, intruder)  # current, read-back of the import, the rollback's read-back
    result = fail(target, material).details['result']
    assert result['outcome'] == model.ROLLBACK_FAILED
    assert result['certificate'] == intruder.describe()  # what the target holds now, not the faulty version
    assert result['rollback'] == {'attempted': True, 'succeeded': False, 'version': None, 'reason': (
        'the rollback import was sent, but reading back shows version v9 with thumbprint %s as latest' % m.thumbprint(foreign))}


def test_a_rollback_from_the_backing_secret_restores_the_previous_exportable_flag_not_this_runs(material, other, pki):
    target = FakeTarget()
    target.seed(other, MANAGED, exportable=True)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    assert fail(target, material, exportable=False).details['result']['outcome'] == model.ROLLED_BACK
    assert [c[3] for c in target.calls if c[0] == 'import'] == ['import', 'import_exported']
    assert [v['exportable'] for v in target.versions] == [True, False, True]


def test_rollback_required_fails_as_rollback_failed_unless_the_read_was_forbidden(target, material, other):
    target.seed(other, MANAGED)
    target.exportable = False  # the previous key is not exportable (not a permission problem)
    err = fail(target, material, rollback='required')
    assert err.code == errors.ROLLBACK_FAILED and target.writes == []
    assert 'certificate' not in err.details['result'] and err.details['result']['changed'] is False


def test_re_pairing_uses_the_new_key_and_the_previous_certificates_own_chain(target, pki):
    key = pki.rsa(fresh=True)
    h = pki.hierarchy(leaf_key=key)
    old = m.Material(h['leaf'], key, [h['inter'], h['root']])
    stray = pki.cert(pki.ec(), 'stray.example.com')
    renewed = m.Material(pki.cert(key, 'www.example.com'), key, [h['inter'], stray, h['root']])
    target.seed(old, MANAGED)
    target.exportable = False
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    assert fail(target, renewed).details['result']['outcome'] == model.ROLLED_BACK
    restored = target.versions[-1]['material']
    assert m.thumbprint(restored.leaf) == old.thumbprint
    assert restored.key is key
    assert [m.thumbprint(c) for c in restored.chain] == [m.thumbprint(h['inter']), m.thumbprint(h['root'])]


# -- value objects ---------------------------------------------------------------------------------

def test_version_state_defaults_and_normalisation():
    state = VersionState('v1', 'ab12')
    assert state.thumbprint == 'AB12' and state.enabled is True and state.exportable is None
    assert VersionState('v1', 'ab12', exportable=False).exportable is False
    assert VersionState('v1', None).thumbprint is None


def test_a_request_refuses_an_expired_certificate_unless_told(target, pki):
    now = datetime.datetime.now(datetime.timezone.utc)
    h = pki.hierarchy(leaf_not_before=now - datetime.timedelta(days=100), leaf_days=10)
    expired = m.Material(h['leaf'], h['key'], [h['inter']])
    err = fail(target, expired)
    assert err.code == errors.EXPIRED and target.calls == []


# -- tags -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('key', ['', 1, None])
def test_tag_keys_must_be_non_empty_strings(key):
    with pytest.raises(errors.DeployError) as info:
        tags.normalise_user_tags({key: 'x'})
    assert info.value.code == errors.INVALID_CONFIG and repr(key) in info.value.message


def test_tag_values_are_normalised_to_strings():
    assert tags.normalise_user_tags({'a': True, 'b': False, 'c': 3, 'd': None, 'e': 'x'}) == {
        'a': 'true', 'b': 'false', 'c': '3', 'd': '', 'e': 'x'}


def test_a_tag_value_of_another_type_is_named_in_the_error():
    with pytest.raises(errors.DeployError) as info:
        tags.normalise_user_tags({'a': ['x']})
    assert info.value.code == errors.INVALID_CONFIG and 'is a list;' in info.value.message


def test_a_rollback_of_an_unknown_version_is_marked_unknown():
    wanted = {'env': 'prod', tags.MANAGED_BY: tags.MANAGED_BY_VALUE, tags.ROLLBACK_OF: 'unknown'}
    assert tags.rollback_tags({'env': 'prod'}, None) == wanted


# -- the resend wait and the engine's own sleep bound ---------------------------------------------------

@pytest.mark.parametrize('wish, shown', [(45.5, '45.5'), (60.0, '60'), (float('inf'), 'inf')])
def test_a_resend_wish_over_the_limit_is_quoted_as_asked(target, material, wish, shown):
    target.fail('import', errors.DeployError(errors.THROTTLED, '429', retry_after=wish))
    err = fail(target, material)
    assert err.code == errors.THROTTLED and err.details['retry_after'] == wish
    assert 'asked to wait %s s before the import is sent again, longer than the 30 s' % shown in err.message


def test_the_sleep_bound_counts_no_resend_when_an_import_is_sent_once():
    engine = DeployEngine(FakeTarget(), verify_attempts=3, verify_delay=2.0, import_attempts=1, resend_wait_max=30.0)
    assert engine.sleep_bound() == 3 * (2 + 4)  # read-backs after the import, of its stored chain, after a rollback
    assert DeployEngine(FakeTarget(), verify_attempts=1, import_attempts=0).sleep_bound() == 0


# -- rollback never buries a newer version; older ones do not count -------------------------------------

def test_a_version_older_than_the_snapshot_does_not_block_the_rollback(target, material, other, pki):
    target.seed(other, {'old': 'one'})
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    assert fail(target, material).details['result']['outcome'] == model.ROLLED_BACK


def test_a_version_of_unknown_creation_time_counts_as_newer(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    real = target.list_versions
    unknown = VersionState('vx', 'AA', created_on=None)
    target.list_versions = lambda: real() + [unknown]
    err = fail(target, material)
    assert err.code == errors.CONFLICT
    assert err.details['result']['rollback'] == dict(NO_ROLLBACK, reason=(
        'version vx was created after the snapshot (version v1) by another writer'))


def test_two_newer_versions_are_both_named(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    real = target.list_versions
    target.list_versions = lambda: real() + [VersionState('vx', 'AA', created_on=7), VersionState('vy', 'BB', created_on=8)]
    result = fail(target, material).details['result']
    assert result['outcome'] == model.ROLLBACK_FAILED
    assert result['rollback']['reason'] == 'version vx, vy was created after the snapshot (version v1) by another writer'


def test_unlistable_versions_fail_the_rollback_with_the_reason_and_the_result(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    target.fail('list_versions', errors.DeployError(errors.FORBIDDEN, 'no list'))
    result = fail(target, material).details['result']
    assert result['outcome'] == model.ROLLBACK_FAILED and result['changed'] is True
    assert result['rollback'] == dict(NO_ROLLBACK, reason=(
        'the versions could not be listed to rule out another writer (forbidden: no list)'))


# -- the rollback import is resent like any import: once more only when a read shows it did not commit ----------

def test_a_rollback_import_that_committed_before_failing_is_not_sent_again(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')),
                CommitThenFail(errors.DeployError(errors.SERVICE_ERROR, 'connection reset')))
    result = fail(target, material).details['result']
    assert result['outcome'] == model.ROLLED_BACK and result['rollback']['version'] == 'v3'
    assert [c[0] for c in target.calls].count('import') == 2 and len(target.versions) == 3


def test_a_rollback_import_that_did_not_commit_is_sent_again(target, material, other, pki):
    target.seed(other, MANAGED)
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')), errors.DeployError(errors.SERVICE_ERROR, '503'))
    err = fail(target, material)
    assert err.details['result']['outcome'] == model.ROLLED_BACK, err.message
    assert [c[0] for c in target.calls].count('import') == 3 and len(target.versions) == 3
