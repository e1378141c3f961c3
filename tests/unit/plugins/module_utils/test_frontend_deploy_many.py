# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""frontend/deploy_many.py: merging options, planning, aggregating results; and the adapter's one connection per vault."""

from __future__ import annotations

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy_many as batch
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import keyvault_options as specs
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.deploy import failed_run
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import keyvault_settings
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.connection import ConnectionPool, VaultConnection
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.target import KeyVaultTarget
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_keyvault import (
    FakeCertificateClient, HttpError)

VAULT_A = 'https://kv-a.vault.azure.net'
VAULT_B = 'https://kv-b.vault.azure.net'


def result(name, vault=VAULT_A, outcome=None, changed=False, error_code=None, warnings=()):
    out = {'vault_url': vault, 'certificate_name': name, 'changed': changed, 'failed': error_code is not None,
           'warnings': list(warnings)}
    if outcome:
        out['outcome'] = outcome
    if error_code:
        out.update(error_code=error_code, msg='%s failed' % name)
    return out


# -- the argument spec is the single module's, per element ---------------------------------------------------

def test_each_element_takes_every_per_certificate_option_and_rule_of_the_single_module():
    element = specs.DEPLOY_MANY.options['certificates']
    certificate = specs.CERTIFICATE.options
    for name, spec in certificate.items():
        assert element['options'][name] == spec
    assert set(element['options']) == set(certificate) | {'certificate_name', 'vault_url'}
    assert element['options']['certificate_name']['required'] is True
    assert element['mutually_exclusive'] == specs.CERTIFICATE.rule('mutually_exclusive')
    assert element['required_one_of'] == specs.CERTIFICATE.rule('required_one_of')
    # The single module's spec is the connection options plus the same per-certificate options and rules.
    assert specs.DEPLOY.names() == specs.CONNECTION.names() | specs.CERTIFICATE.names() | {'metrics_file'}
    assert specs.DEPLOY.rule('mutually_exclusive') == specs.CERTIFICATE.rule('mutually_exclusive')


def test_run_level_options_are_the_connection_options_without_the_name():
    options = specs.DEPLOY_MANY.options
    assert 'certificate_name' not in options
    assert options['vault_url'] == {'type': 'str'}
    connection = specs.CONNECTION.options
    for name in set(connection) - {'certificate_name', 'vault_url'}:
        assert options[name] == connection[name]
    assert connection['vault_url']['required'] is True  # the shared spec itself is untouched


def test_secret_options_are_no_log_in_each_element():
    element = specs.DEPLOY_MANY.options['certificates']['options']
    assert {n for n, s in element.items() if s.get('no_log')} == {'private_key', 'private_key_passphrase', 'pfx', 'pfx_password'}


# -- item_params ---------------------------------------------------------------------------------------------

def test_item_params_take_the_run_connection_and_the_element_vault_wins():
    params = {'vault_url': VAULT_A, 'credential_mode': 'managed_identity', 'client_id': 'abc', 'timeout': 5,
              'metrics_file': '/tmp/m.prom', 'max_concurrency': 4, 'certificates': []}
    own = batch.item_params(params, {'certificate_name': 'www', 'vault_url': VAULT_B, 'tags': {'a': 1}})
    assert own['vault_url'] == VAULT_B and own['certificate_name'] == 'www' and own['tags'] == {'a': 1}
    assert own['credential_mode'] == 'managed_identity' and own['client_id'] == 'abc' and own['timeout'] == 5
    assert own['metrics_file'] is None and 'certificates' not in own and 'max_concurrency' not in own
    default = batch.item_params(params, {'certificate_name': 'api', 'vault_url': None})
    assert default['vault_url'] == VAULT_A


@pytest.mark.parametrize('value, expected', [(None, 4), (1, 1), (10, 10)])
def test_concurrency_bounds(value, expected):
    assert batch.check_concurrency(value) == expected


@pytest.mark.parametrize('value', [0, -1, 11])
def test_concurrency_out_of_bounds_is_invalid_config(value):
    with pytest.raises(errors.DeployError) as info:
        batch.check_concurrency(value)
    assert info.value.code == errors.INVALID_CONFIG and '1 and 10' in info.value.message


def test_duplicates_name_every_position_of_a_repeated_certificate():
    keys = [(VAULT_A, 'www'), (VAULT_B, 'www'), None, (VAULT_A, 'www'), (VAULT_A, 'api'), (VAULT_A, 'www')]
    assert batch.find_duplicates(keys) == {0: [0, 3, 5], 3: [0, 3, 5], 5: [0, 3, 5]}
    assert batch.find_duplicates([(VAULT_A, 'www'), (VAULT_B, 'www')]) == {}


def test_prepare_fails_only_the_bad_elements(monkeypatch):
    params = {'vault_url': None, 'certificates': [
        {'certificate_name': 'www', 'vault_url': VAULT_A},
        {'certificate_name': 'api'},
        {'certificate_name': 'www.example.com', 'vault_url': VAULT_A},
        {'certificate_name': 'www', 'vault_url': VAULT_A + '/'},
        {'certificate_name': 'www', 'vault_url': VAULT_B},
    ]}
    items = batch.prepare(params, {})
    assert [i.error.code if i.error else None for i in items] == [
        'invalid_config', 'invalid_config', 'invalid_config', 'invalid_config', None]
    assert 'no vault_url' in items[1].error.message
    assert 'wildcard' in items[2].error.message or 'www-example-com' in items[2].error.message
    assert 'more than once (certificates [0], [3])' in items[0].error.message  # the same vault, normalised
    assert items[4].settings.address.url == VAULT_B


def test_names_that_differ_only_in_case_are_one_certificate():
    params = {'vault_url': VAULT_A, 'certificates': [{'certificate_name': 'Www-Contoso'}, {'certificate_name': 'www-contoso'}]}
    items = batch.prepare(params, {})
    assert [i.error.code if i.error else None for i in items] == ['invalid_config', 'invalid_config']


def test_a_copy_from_another_elements_certificate_runs_after_it(monkeypatch):
    params = {'vault_url': VAULT_A, 'certificates': [
        {'certificate_name': 'copy', 'vault_url': VAULT_B,
         'copy_from': {'vault_url': VAULT_A + '/', 'certificate_name': 'WWW'}},
        {'certificate_name': 'www'},
        {'certificate_name': 'other', 'vault_url': VAULT_B, 'copy_from': {'vault_url': VAULT_B, 'certificate_name': 'elsewhere'}},
    ]}
    items = batch.prepare(params, {})
    first, second = batch.phases(items)
    assert [i.certificate_name for i in first] == ['www', 'other']
    assert [i.certificate_name for i in second] == ['copy']
    order = []
    monkeypatch.setattr(batch, 'deploy_item', lambda item, *args: order.append(item.certificate_name))
    batch.run_items(items, None, {}, False, False, 4)
    assert sorted(order[:2]) == ['other', 'www'] and order[2] == 'copy'


# -- results -------------------------------------------------------------------------------------------------

def test_failure_result_has_the_single_module_failure_keys():
    exc = errors.DeployError(errors.FORBIDDEN, 'no import', action='Microsoft.KeyVault/vaults/certificates/import/action',
                             warnings=['w1'], result={'changed': True, 'outcome': 'rollback_failed'})
    run = failed_run(exc, {'vault_url': VAULT_A, 'certificate_name': 'www'}, copied_from={'version': 'v1'})
    out = run.result
    assert run.error is exc and run.labels == {'target': 'azure_kv', 'vault': VAULT_A, 'name': 'www'}
    assert out['failed'] is True and out['error_code'] == 'forbidden' and out['msg'] == 'no import'
    assert out['missing_action'].endswith('import/action') and out['warnings'] == ['w1']
    assert out['changed'] is True and out['outcome'] == 'rollback_failed' and out['copied_from'] == {'version': 'v1'}
    plain = failed_run(errors.DeployError(errors.KEY_MISMATCH, 'k'), {}).result
    assert plain['changed'] is False and plain['rollback'] == {'attempted': False, 'succeeded': False, 'version': None,
                                                               'reason': None}


def test_missing_dependency_names_the_package():
    exc = errors.DeployError(errors.MISSING_DEPENDENCY, 'no sdk', package='azure-identity', exception='tb')
    out = failed_run(exc, {}).result
    assert 'azure-identity' in out['msg'] and 'exception' not in out  # the traceback is the single module's, at exit


def test_aggregate_counts_changes_and_failures_in_input_order():
    results = [result('a', outcome='created', changed=True), result('b', error_code='key_mismatch'),
               result('c', outcome='unchanged'), result('d', VAULT_B, error_code='not_owned')]
    out = batch.aggregate(results)
    assert out['changed'] is True and out['failed'] is True and out['error_code'] == 'key_mismatch'
    assert out['certificates'] is results
    assert [f['certificate_name'] for f in out['failed_certificates']] == ['b', 'd']
    assert [f['index'] for f in out['failed_certificates']] == [1, 3]
    assert out['failed_certificates'][1] == {'index': 3, 'vault_url': VAULT_B, 'certificate_name': 'd',
                                             'error_code': 'not_owned', 'msg': 'd failed'}
    assert out['summary']['total'] == 4 and out['summary']['failed'] == 2 and out['summary']['changed'] == 1
    assert out['summary']['created'] == 1 and out['summary']['unchanged'] == 1 and out['summary']['rotated'] == 0
    assert out['msg'].startswith('2 of 4 certificates failed: b (key_mismatch) in %s, d (not_owned) in %s.' % (VAULT_A, VAULT_B))
    assert 'The others: 1 created, 1 unchanged.' in out['msg']


def test_aggregate_without_failures():
    out = batch.aggregate([result('a', outcome='unchanged'), result('b', outcome='unchanged')], check_mode=True)
    assert out['changed'] is False and 'failed' not in out and 'error_code' not in out
    assert out['failed_certificates'] == []
    assert out['msg'] == '2 certificates: 2 unchanged (check mode: predicted).'


def test_aggregate_all_failed_and_long_lists_are_cut():
    results = [result('c%d' % i, error_code='auth_failed') for i in range(13)]
    out = batch.aggregate(results)
    assert out['msg'].startswith('13 of 13 certificates failed: ')
    assert 'and 3 more' in out['msg'] and 'c12' not in out['msg'] and 'No other certificate' in out['msg']
    assert len(out['failed_certificates']) == 13


def test_a_changed_failure_counts_as_changed():
    failed_after_write = dict(result('a', error_code='rollback_failed'), changed=True, outcome='rollback_failed')
    out = batch.aggregate([failed_after_write])
    assert out['changed'] is True and out['summary']['rollback_failed'] == 0 and out['summary']['failed'] == 1


def test_warnings_are_grouped_by_text_in_order_of_appearance():
    results = [result('a', warnings=['same', 'only-a']), result('b', warnings=['same']), result('c')]
    assert batch.grouped_warnings(results) == [
        '2 certificates (a in %s, b in %s): same' % (VAULT_A, VAULT_A), 'a in %s: only-a' % VAULT_A]


def test_diff_list_heads_each_entry_with_vault_and_name():
    with_diff = dict(result('a', outcome='created'), diff={'before': {}, 'after': {'version': None}})
    unknown = dict(result('b', VAULT_B), diff={'before': 'unknown', 'after': {}})
    out = batch.diff_list([with_diff, result('c', error_code='expired'), unknown])
    assert out == [
        {'before_header': VAULT_A + '/certificates/a', 'after_header': VAULT_A + '/certificates/a', 'before': {},
         'after': {'version': None}},
        {'before_header': VAULT_B + '/certificates/b', 'after_header': VAULT_B + '/certificates/b', 'before': 'unknown',
         'after': {}},
    ]


def test_fresh_error_copies_code_message_and_facts_but_not_a_run_state():
    exc = errors.DeployError(errors.AUTH_FAILED, 'no token', warnings=['w'], result={'changed': True}, action='x')
    copy = exc.fresh('note')
    assert copy is not exc and copy.code == 'auth_failed' and copy.message == 'no token (note)'
    assert copy.details == {'action': 'x'}


# -- one connection per vault --------------------------------------------------------------------------------

class CountingConnections(object):
    """connection_factory for ConnectionPool: a VaultConnection over a fake client, counting how often one is built."""

    def __init__(self, clients):
        self.clients = clients
        self.built = []

    def __call__(self, settings, env=None, pacer=None):
        self.built.append(settings.address.url)
        return VaultConnection(settings, env=env, client=self.clients[settings.address.url], pacer=pacer)


def settings_for(vault, name):
    return keyvault_settings({'vault_url': vault, 'certificate_name': name, 'credential_mode': 'managed_identity'}, {})


def shared_target(pool, vault, name):
    settings = settings_for(vault, name)
    return KeyVaultTarget(settings, connection=pool.connection(settings))


def test_one_client_per_vault_shared_by_every_certificate(pki):
    fakes = {VAULT_A: FakeCertificateClient(), VAULT_B: FakeCertificateClient()}
    leaf = pki.hierarchy()['leaf']
    for name in ('a1', 'a2', 'a3'):
        fakes[VAULT_A].add(name, leaf, 'v1', tags={'certdeploy-managed-by': 'certdeploy'})
    fakes[VAULT_B].add('b1', leaf, 'v1')
    connections = CountingConnections(fakes)
    pool = ConnectionPool({}, connection_factory=connections)
    states = [shared_target(pool, v, n).read_latest()
              for v, n in ((VAULT_A, 'a1'), (VAULT_B, 'b1'), (VAULT_A, 'a2'), (VAULT_A, 'a3'))]
    assert [s.version for s in states] == ['v1'] * 4
    assert sorted(connections.built) == [VAULT_A, VAULT_B]
    assert [c[1] for c in fakes[VAULT_A].calls] == ['a1', 'a2', 'a3'] and [c[1] for c in fakes[VAULT_B].calls] == ['b1']
    shared_target(pool, VAULT_A, 'a1').close()  # a certificate's target leaves the vault's client open
    assert not fakes[VAULT_A].closed
    pool.close()
    assert fakes[VAULT_A].closed and fakes[VAULT_B].closed


def test_a_target_of_its_own_closes_its_own_connection():
    fake = FakeCertificateClient()
    target = KeyVaultTarget(settings_for(VAULT_A, 'a1'), clients=fake)
    assert target.read_latest() is None
    target.close()
    assert fake.closed


def test_a_vault_wide_first_failure_spares_the_other_requests_of_that_vault(pki):
    fakes = {VAULT_A: FakeCertificateClient(), VAULT_B: FakeCertificateClient()}
    fakes[VAULT_A].errors['get_certificate'] = HttpError(401, 'no token for you')
    pool = ConnectionPool({}, connection_factory=CountingConnections(fakes))
    codes = []
    for name in ('a1', 'a2', 'a3'):
        with pytest.raises(errors.DeployError) as info:
            shared_target(pool, VAULT_A, name).read_latest()
        codes.append(info.value.code)
    assert codes == ['auth_failed'] * 3
    assert len(fakes[VAULT_A].calls) == 1
    assert shared_target(pool, VAULT_B, 'b1').read_latest() is None  # another vault is unaffected


def test_a_certificate_scoped_failure_does_not_stop_the_others(pki):
    fakes = {VAULT_A: FakeCertificateClient()}
    fakes[VAULT_A].errors['get_certificate'] = HttpError(403, 'Caller is not authorized. Action: certificates/read')
    pool = ConnectionPool({}, connection_factory=CountingConnections(fakes))
    for name in ('a1', 'a2'):
        with pytest.raises(errors.DeployError) as info:
            shared_target(pool, VAULT_A, name).read_latest()
        assert info.value.code == 'forbidden'
    assert len(fakes[VAULT_A].calls) == 2


def test_a_connection_that_cannot_be_built_fails_each_certificate_with_its_own_error():
    loads = []

    def missing_sdk():
        loads.append(1)
        raise errors.DeployError(errors.MISSING_DEPENDENCY, 'no sdk', package='azure-identity')

    pool = ConnectionPool({}, connection_factory=lambda settings, env, pacer: VaultConnection(
        settings, env, sdk_loader=missing_sdk, pacer=pacer))
    raised = []
    for name in ('a1', 'a2'):
        with pytest.raises(errors.DeployError) as info:
            shared_target(pool, VAULT_A, name).read_latest()
        raised.append(info.value)
    assert [e.code for e in raised] == ['missing_dependency'] * 2 and raised[0] is not raised[1]
    assert len(loads) == 1
