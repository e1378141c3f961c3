# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the vault serves is what was meant: the engine's rules for the chain, its order, the content type and the
exportable flag -- the record each import writes, the one-time comparison of a version without it, and the check
of the stored chain after an import (target-agnostic, on the in-memory target)."""

from __future__ import annotations

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import model, tags
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import record as records
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import StoredChain
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import Meanwhile, StoresChain, Tampered
# The engine tests' target fixture and run/fail helpers: one definition of each.
# pylint: disable=unused-import
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.test_engine import (  # noqa: F401
    MANAGED, fail, run, target)
# pylint: enable=unused-import


@pytest.fixture
def pkix(pki):
    """A hierarchy, plus a cross-signed twin of its intermediate (same subject and key, another root)."""
    root_key, inter_key, other_root_key = pki.ec(), pki.ec(), pki.ec()
    root = pki.cert(root_key, 'Test Root CA', ca=True, days=3650)
    other_root = pki.cert(other_root_key, 'Other Root CA', ca=True, days=3650)
    inter = pki.cert(inter_key, 'Test Intermediate CA', issuer=root, issuer_key=root_key, ca=True, days=1800)
    cross = pki.cert(inter_key, 'Test Intermediate CA', issuer=other_root, issuer_key=other_root_key, ca=True, days=1800)
    key = pki.rsa()
    leaf = pki.cert(key, 'www.example.com', issuer=inter, issuer_key=inter_key)
    return {'root': root, 'inter': inter, 'cross': cross, 'other_root': other_root, 'leaf': leaf, 'key': key,
            'inter_key': inter_key}


def mat(p, *chain):
    return m.Material(p['leaf'], p['key'], [p[name] for name in chain])


def imports(target):
    return [c for c in target.calls if c[0] == 'import']


# -- the record ---------------------------------------------------------------------------------

def test_a_record_round_trips_and_anything_else_is_no_record(pkix):
    record = records.Record.of_material(mat(pkix, 'inter'), 'pem', False)
    assert records.Record.parse(record.value()) == record
    assert record.value().startswith('v1;pem;non-exportable;') and len(record.value()) <= 90
    for value in (None, '', 'v2;pem;exportable;' + 'a' * 64, 'v1;der;exportable;' + 'a' * 64, 'v1;pem;maybe;' + 'a' * 64,
                  'v1;pem;exportable;' + 'A' * 64, 'v1;pem;exportable;' + 'a' * 63, record.value() + ';x', 42):
        assert records.Record.parse(value) is None, value


def test_the_record_binds_the_order_and_every_certificate(pkix):
    def digest(*chain):
        return records.Record.of_material(mat(pkix, *chain), 'pkcs12', True).digest
    assert len({digest(), digest('inter'), digest('inter', 'root'), digest('root', 'inter'), digest('cross')}) == 5


def test_differences_name_each_part(pkix):
    a = records.Record.of_material(mat(pkix, 'inter'), 'pkcs12', True)
    assert a.differences(records.Record.of_material(mat(pkix), 'pem', False)) == ['chain', 'content_type', 'exportable']
    assert a.differences(records.Record.parse(a.value())) == []


def test_a_user_tag_with_the_record_key_is_refused():
    with pytest.raises(errors.DeployError) as info:
        tags.normalise_user_tags({tags.MATERIAL: 'v1;pem;exportable;' + 'a' * 64})
    assert info.value.code == errors.INVALID_CONFIG and tags.MATERIAL in info.value.message


# -- drift is a change ------------------------------------------------------------------------

@pytest.mark.parametrize('first,then', [((), ('inter',)), (('inter',), ('cross',)), (('inter', 'root'), ('inter',))],
                         ids=['chain_added_later', 'cross_signed_intermediate', 'root_dropped'])
def test_a_chain_only_change_imports_once_then_is_a_no_op(target, pkix, first, then):
    run(target, mat(pkix, *first))
    result = run(target, mat(pkix, *then))
    assert (result.outcome, result.differences) == (model.ROTATED, ['chain'])
    assert result.verification == {'read_back': 'passed', 'stored_chain': 'passed'}
    assert result.diff['before']['chain'] == [pkix[n].subject.rfc4514_string() for n in first]
    again = run(target, mat(pkix, *then))
    assert (again.outcome, again.changed, again.differences) == (model.UNCHANGED, False, [])
    assert len(imports(target)) == 2


@pytest.mark.parametrize('change,differences', [
    ({'exportable': False}, ['exportable']),
    ({'content_type': 'pem'}, ['content_type']),
    ({'content_type': 'pem', 'exportable': False}, ['content_type', 'exportable'])])
def test_content_type_and_exportable_flips_import_once(target, pkix, change, differences):
    run(target, mat(pkix, 'inter'))
    result = run(target, mat(pkix, 'inter'), **change)
    assert (result.outcome, result.differences) == (model.ROTATED, differences)
    stored = target.versions[-1]
    assert (stored['content_type'], stored['exportable']) == (change.get('content_type', 'pkcs12'), change.get('exportable', True))
    assert run(target, mat(pkix, 'inter'), **change).outcome == model.UNCHANGED


def test_check_mode_predicts_a_chain_change_and_writes_nothing(target, pkix):
    run(target, mat(pkix))
    result = run(target, mat(pkix, 'inter'), check_mode=True)
    assert (result.outcome, result.changed, result.differences) == (model.ROTATED, True, ['chain'])
    assert len(imports(target)) == 1 and result.verification is None


# -- a version without a record ------------------------------------------------------------------

def test_a_version_without_a_record_is_compared_once_and_only_the_record_is_written(target, pkix):
    target.seed(mat(pkix, 'inter'), MANAGED, record=False)
    result = run(target, mat(pkix, 'inter'))
    assert (result.outcome, result.differences) == (model.UPDATED, ['record'])
    assert any('only the record was written' in w for w in result.warnings)
    assert imports(target) == [] and ('read_stored', 'v1') in target.calls
    assert tags.MATERIAL in target.versions[0]['tags']
    target.calls[:] = []
    assert run(target, mat(pkix, 'inter')).outcome == model.UNCHANGED
    assert target.calls == [('read',)]


def test_a_version_without_a_record_in_check_mode_reads_the_chain_and_predicts_the_record(target, pkix):
    target.seed(mat(pkix, 'inter'), MANAGED, record=False)
    result = run(target, mat(pkix, 'inter'), check_mode=True)
    assert (result.outcome, result.differences) == (model.UPDATED, ['record'])
    assert target.writes == [] and any('a real run would only write the record' in w for w in result.warnings)


def test_a_version_without_a_record_and_another_chain_is_imported(target, pkix):
    target.seed(mat(pkix, 'inter'), MANAGED, record=False, stored=StoredChain([pkix['leaf']], 'pkcs12'))
    result = run(target, mat(pkix, 'inter'))
    assert (result.outcome, result.differences) == (model.ROTATED, ['chain'])
    assert any('stored chain was read and differs' in w for w in result.warnings)


@pytest.mark.parametrize('code', [errors.FORBIDDEN, errors.SERVICE_ERROR, errors.INVALID_MATERIAL])
def test_a_version_without_a_record_whose_chain_cannot_be_read_is_never_imported_for_it(target, pkix, code):
    target.seed(mat(pkix, 'inter'), MANAGED, record=False)
    target.fail('read_stored', errors.DeployError(code, 'no'))
    result = run(target, mat(pkix, 'inter'))
    assert (result.outcome, result.changed, result.differences) == (model.UNCHANGED, False, [])
    assert any('could not be read to compare it' in w for w in result.warnings)
    # Tags that differ are still updated, without a record (the chain was not compared).
    target.fail('read_stored', errors.DeployError(code, 'no'))
    result = run(target, mat(pkix, 'inter'), user_tags={'env': 'prod'})
    assert (result.outcome, result.differences) == (model.UPDATED, ['tags'])
    assert tags.MATERIAL not in target.versions[0]['tags'] and target.versions[0]['tags']['env'] == 'prod'
    assert imports(target) == []


def test_writing_only_the_record_when_forbidden_changes_nothing_and_imports_nothing(target, pkix):
    target.seed(mat(pkix, 'inter'), MANAGED, record=False)
    target.fail('update', errors.DeployError(errors.FORBIDDEN, 'update denied'))
    result = run(target, mat(pkix, 'inter'))
    assert (result.outcome, result.changed) == (model.UNCHANGED, False)
    assert imports(target) == [] and any('writing the record' in w and 'forbidden' in w for w in result.warnings)


def test_the_policy_of_a_version_without_a_record_decides_content_type_and_exportable_without_reading(target, pkix):
    target.seed(mat(pkix, 'inter'), MANAGED, record=False, exportable=False)
    result = run(target, mat(pkix, 'inter'))
    assert (result.outcome, result.differences) == (model.ROTATED, ['exportable'])
    assert ('read_stored', 'v1') not in target.calls


def test_a_policy_that_disagrees_with_the_record_is_reported_not_imported(target, pkix):
    target.seed(mat(pkix, 'inter'), MANAGED)
    target.versions[0]['exportable'] = False  # the policy changed after the import
    result = run(target, mat(pkix, 'inter'))
    assert (result.outcome, result.changed) == (model.UNCHANGED, False)
    assert any('policy was changed after the import' in w for w in result.warnings)


# -- the stored chain is checked after an import ----------------------------------------------------

def test_a_target_that_keeps_the_leaf_alone_gets_a_warning_not_a_rollback(target, pkix):
    target.fail('import', StoresChain([pkix['leaf']]))
    result = run(target, mat(pkix, 'inter', 'root'))
    assert result.outcome == model.CREATED and result.verification['stored_chain'] == 'leaf_only'
    assert any('with the leaf alone' in w and 'vault=mem://vault' in w for w in result.warnings)
    assert result.rollback['attempted'] is False


@pytest.mark.parametrize('stored', [('leaf', 'root', 'inter'), ('leaf', 'inter'), ('leaf', 'cross', 'root'),
                                    ('leaf', 'inter', 'root', 'other_root')], ids=['reordered', 'dropped', 'swapped', 'added'])
def test_a_chain_stored_otherwise_is_rolled_back(target, pkix, pki, stored):
    other_key = pki.rsa(fresh=True)
    previous = m.Material(pki.cert(other_key), other_key, [])
    target.seed(previous, MANAGED)
    target.fail('import', StoresChain([pkix[n] for n in stored]))
    err = fail(target, mat(pkix, 'inter', 'root'))
    assert err.details['result']['outcome'] == model.ROLLED_BACK
    assert err.details['result']['verification'] == {'read_back': 'passed', 'stored_chain': 'failed'}
    assert target.versions[-1]['material'] is previous


def test_another_order_is_a_warning_where_the_target_was_not_asked_to_keep_it(target, pkix):
    target.keeps_chain_order = False
    target.fail('import', StoresChain([pkix['leaf'], pkix['root'], pkix['inter']]))
    result = run(target, mat(pkix, 'inter', 'root'))
    assert result.outcome == model.CREATED and result.verification['stored_chain'] == 'reordered'


def test_another_stored_content_type_is_rolled_back(target, pkix, pki):
    other_key = pki.rsa(fresh=True)
    target.seed(m.Material(pki.cert(other_key), other_key, []), MANAGED)
    target.fail('import', StoresChain([pkix['leaf'], pkix['inter']], 'pem'))
    err = fail(target, mat(pkix, 'inter'))
    assert err.details['result']['verification']['stored_chain'] == 'failed' and 'content type pem' in err.message


def test_an_unreadable_stored_chain_is_retried_then_skipped_with_a_warning(target, pkix):
    target.fail('read_stored', *[errors.DeployError(errors.SERVICE_ERROR, 'flaky')] * 3)
    result = run(target, mat(pkix, 'inter'))
    assert result.outcome == model.CREATED and result.verification['stored_chain'] == 'skipped'
    assert [c[0] for c in target.calls].count('read_stored') == 3
    assert any('was not checked' in w for w in result.warnings)


def test_a_forbidden_stored_chain_read_is_not_retried(target, pkix):
    target.fail('read_stored', errors.DeployError(errors.FORBIDDEN, 'getSecret denied'))
    result = run(target, mat(pkix, 'inter'))
    assert result.verification['stored_chain'] == 'skipped'
    assert [c[0] for c in target.calls].count('read_stored') == 1


def test_the_check_can_be_turned_off(target, pkix):
    result = run(target, mat(pkix, 'inter'), verify_stored_chain=False)
    assert result.verification == {'read_back': 'passed', 'stored_chain': 'disabled'}
    assert 'read_stored' not in [c[0] for c in target.calls]


def test_a_re_paired_rollback_records_what_it_sends(target, pkix, pki):
    """The previous key cannot be read: the previous certificate goes back with the new key and chain, and its record
    says so (not the previous version's record, which described another chain)."""
    old_leaf = pki.cert(pkix['key'], 'www.example.com', issuer=pkix['inter'], issuer_key=pkix['inter_key'], days=30)
    target.seed(m.Material(old_leaf, pkix['key'], []), MANAGED)
    target.exportable = False
    target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    err = fail(target, mat(pkix, 'inter'))
    assert err.details['result']['outcome'] == model.ROLLED_BACK
    rollback = target.versions[-1]
    assert rollback['tags'][tags.MATERIAL] == records.Record.of_material(m.Material(old_leaf, pkix['key'], [pkix['inter']]),
                                                                         'pkcs12', True).value()


def test_a_version_without_a_record_whose_chain_is_stored_in_another_order_is_imported_not_recorded(target, pkix):
    """Found by the simulation: with preserve_chain_order off another order was taken for equal, and the wanted record
    (another order than the version holds) was written on it. Only an equal chain gets the record."""
    target.keeps_chain_order = False
    target.seed(mat(pkix, 'inter', 'root'), MANAGED, record=False,
                stored=StoredChain([pkix['leaf'], pkix['root'], pkix['inter']], 'pkcs12'))
    result = run(target, mat(pkix, 'inter', 'root'))
    assert (result.outcome, result.differences) == (model.ROTATED, ['chain'])
    assert target.versions[-1]['tags'][tags.MATERIAL] == records.Record.of_material(mat(pkix, 'inter', 'root'), 'pkcs12', True).value()


@pytest.mark.parametrize('effect', ['tampered', 'chain_dropped'])
def test_no_rollback_over_a_version_another_writer_took_over_after_the_import(target, pkix, pki, effect):
    """Found by the simulation: another writer removed our tag from the version just imported; a rollback would write
    over a certificate this module no longer owns."""
    other_key = pki.rsa(fresh=True)
    previous = m.Material(pki.cert(other_key), other_key, [])
    target.seed(previous, MANAGED)
    wanted = mat(pkix, 'inter', 'root')
    if effect == 'tampered':
        target.fail('import', Tampered(pki.cert(pki.rsa(fresh=True), 'tampered')))
    else:
        target.fail('import', StoresChain([pkix['leaf'], pkix['root']]))

    def disown(entry_index=-1):
        target.versions[entry_index]['tags'] = {'owner': 'another-team'}
    target.fail('read', None, Meanwhile(disown))
    err = fail(target, wanted)
    assert (err.code, err.details['result']['outcome']) == (errors.CONFLICT, model.ROLLBACK_FAILED)
    assert 'took it over' in err.message and err.details['result']['rollback']['attempted'] is False
    assert [c[3] for c in imports(target)] == ['import']
