# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The module end to end through AnsibleModule, with the Key Vault target replaced by the in-memory fake."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.certdeploy.cloud.tests.unit.compat import patch_module_args

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import model
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import record as records
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy as frontend
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import DEPLOY
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy as module
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import FakeTarget

VAULT = 'https://kv1.vault.azure.net/'


@pytest.fixture
def files(tmp_path, pki):
    h = pki.hierarchy()
    paths = {}
    for name, data in (('cert', pki.pem(h['leaf'])), ('key', pki.key_pem(h['key'], 'pkcs1')),
                       ('chain', pki.pem(h['inter'], h['root'])),
                       ('enc_key', pki.key_pem(h['key'], 'pkcs8', b'pw')),
                       ('pfx', pki.pfx(h['key'], h['leaf'], [h['inter']], b'pfxpw'))):
        path = tmp_path / name
        path.write_bytes(data)
        paths[name] = str(path)
    paths['hierarchy'] = h
    return paths


@pytest.fixture
def target(monkeypatch):
    fake = FakeTarget()
    monkeypatch.setattr(frontend, 'KeyVaultTarget', lambda settings, env=None: fake)
    return fake


def run_module(capsys, args, check_mode=False, diff=False):
    args = dict(args)
    args.setdefault('vault_url', VAULT)
    args.setdefault('certificate_name', 'www')
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def paths_args(files, **extra):
    args = dict(certificate_path=files['cert'], private_key_path=files['key'], chain_path=files['chain'])
    args.update(extra)
    return args


def test_created_then_unchanged(capsys, files, target):
    first = run_module(capsys, paths_args(files))
    assert first['changed'] and first['outcome'] == 'created'
    assert first['certificate']['tags']['certdeploy-certificate-id'] == 'www'
    second = run_module(capsys, paths_args(files))
    assert not second['changed'] and second['outcome'] == 'unchanged'
    assert len(target.versions) == 1


def test_return_shape(capsys, files, target):
    result = run_module(capsys, paths_args(files, certificate_id='inv-42', tags={'env': 'prod', 'n': 3}))
    assert set(result) >= {'changed', 'outcome', 'certificate', 'rollback'}
    assert result['rollback'] == {'attempted': False, 'succeeded': False, 'version': None, 'reason': None}
    cert = result['certificate']
    assert cert['tags'] == {'env': 'prod', 'n': '3', 'certdeploy-managed-by': 'certdeploy', 'certdeploy-certificate-id': 'inv-42',
                            'certdeploy-material': cert['tags']['certdeploy-material']}
    assert cert['tags']['certdeploy-material'].startswith('v1;pkcs12;exportable;')
    assert result['verification'] == {'read_back': 'passed', 'stored_chain': 'passed'}
    assert result['differences'] == ['absent']
    for field in ('thumbprint', 'x5t', 'serial', 'subject', 'sans', 'not_before', 'expires', 'version', 'enabled', 'content_type'):
        assert field in cert


def test_check_and_diff_mode_write_nothing(capsys, files, target):
    result = run_module(capsys, paths_args(files), check_mode=True, diff=True)
    assert result['changed'] and result['outcome'] == 'created'
    assert result['diff']['before'] == {} and result['diff']['after']['version'] is None
    assert target.writes == []
    assert 'PRIVATE KEY' not in json.dumps(result)


def test_check_mode_without_a_credential_predicts_or_fails_as_asked(capsys, files, target):
    """No credential resolves: best_effort predicts changed with before: unknown; required fails with the read's code."""
    no_credential = errors.DeployError(errors.AUTH_FAILED, 'credential_mode client_secret needs AZURE_CLIENT_SECRET.')
    target.fail('read', no_credential)
    result = run_module(capsys, paths_args(files), check_mode=True, diff=True)
    assert result['changed'] and 'outcome' not in result and result['diff']['before'] == 'unknown'
    assert 'AZURE_CLIENT_SECRET' in json.dumps(result['warnings'])  # a plain or structured warning
    target.fail('read', no_credential)
    result = run_module(capsys, paths_args(files, check_mode_read='required'), check_mode=True, diff=True)
    assert result['failed'] and result['error_code'] == 'auth_failed' and 'check_mode_read is required' in result['msg']
    assert target.writes == []


def test_pfx_with_password(capsys, files, target):
    result = run_module(capsys, {'pfx_path': files['pfx'], 'pfx_password': 'pfxpw'})
    assert result['outcome'] == 'created'
    assert target.versions[0]['material'].chain == [files['hierarchy']['inter']]


def test_key_content_is_no_log_and_never_returned(capsys, files, target, pki):
    key_pem = open(files['enc_key']).read()
    result = run_module(capsys, {'certificate': open(files['cert']).read(), 'private_key': key_pem,
                                 'private_key_passphrase': 'pw'})
    assert result['outcome'] == 'created'
    body = ''.join(key_pem.splitlines()[1:-1])
    assert body[:40] not in json.dumps(result)
    secrets = ('private_key', 'private_key_passphrase', 'pfx', 'pfx_password')
    assert all(DEPLOY.options[option]['no_log'] is True for option in secrets)


def test_argspec_failures_carry_invalid_config(capsys, files, target):
    result = run_module(capsys, dict(paths_args(files), pfx_path=files['pfx']))
    assert result['failed'] and result['error_code'] == 'invalid_config'
    assert 'mutually exclusive' in result['msg'] and result['rollback']['attempted'] is False
    result = run_module(capsys, {'certificate_path': files['cert'], 'private_key_path': files['key'], 'timeout': 'soon'})
    assert result['error_code'] == 'invalid_config'


def test_certificate_without_key(capsys, files, target):
    result = run_module(capsys, {'certificate_path': files['cert']})
    assert result['error_code'] == 'invalid_config' and 'private_key' in result['msg']


def test_unreadable_path(capsys, files, target):
    result = run_module(capsys, paths_args(files, private_key_path='/nonexistent/key.pem'))
    assert result['error_code'] == 'invalid_config' and '/nonexistent/key.pem' in result['msg']
    assert target.calls == []


def test_bad_vault_url_fails_before_any_call(capsys, files, target):
    result = run_module(capsys, paths_args(files, vault_url='http://kv1.vault.azure.net'))
    assert result['error_code'] == 'invalid_config' and target.calls == []
    assert result['rollback'] == {'attempted': False, 'succeeded': False, 'version': None, 'reason': None}


def test_engine_errors_keep_partial_result(capsys, files, target, pki):
    run_module(capsys, paths_args(files))
    target.fail('read_secret', errors.DeployError(errors.FORBIDDEN, 'denied', action='Microsoft.KeyVault/vaults/secrets/getSecret/action'))
    other = pki.hierarchy(leaf_key=pki.rsa(fresh=True))
    cert = pki.pem(other['leaf'])
    key = pki.key_pem(other['key']).decode()
    result = run_module(capsys, {'certificate': cert.decode(), 'private_key': key, 'rollback': 'required'})
    assert result['error_code'] == 'forbidden' and result['changed'] is False
    assert 'Nothing was written' in result['msg']


def test_metrics_file_written_but_not_in_check_mode(capsys, files, target, tmp_path):
    prom = tmp_path / 'deploy.prom'
    run_module(capsys, paths_args(files, metrics_file=str(prom)), check_mode=True)
    assert not prom.exists()
    run_module(capsys, paths_args(files, metrics_file=str(prom)))
    text = prom.read_text()
    assert 'certdeploy_deploy_total{name="www",outcome="created",target="fake",vault="mem://vault"} 1' in text


@pytest.mark.parametrize('case, extra, code, vault', [
    ('bad material', {'certificate_path': None, 'certificate': 'not a certificate'}, 'invalid_material', 'https://kv1.vault.azure.net'),
    ('key mismatch', {'private_key_path': 'other_key'}, 'key_mismatch', 'https://kv1.vault.azure.net'),
    ('bad vault URL', {'vault_url': 'http://kv1.example.com/'}, 'invalid_config', 'http://kv1.example.com/'),
])
def test_metrics_count_failures_before_a_target_exists(capsys, files, target, tmp_path, pki, case, extra, code, vault):
    prom = tmp_path / 'deploy.prom'
    if extra.get('private_key_path') == 'other_key':
        other = tmp_path / 'other.key'
        other.write_bytes(pki.key_pem(pki.rsa(fresh=True)))
        extra = dict(extra, private_key_path=str(other))
    args = paths_args(files, metrics_file=str(prom), **extra)
    args = dict((k, v) for k, v in args.items() if v is not None)
    result = run_module(capsys, args)
    assert result['failed'] and result['error_code'] == code, case
    assert target.calls == []
    text = prom.read_text()
    assert 'certdeploy_deploy_failures_total{error_code="%s",name="www",target="azure_kv",vault="%s"} 1' % (code, vault) in text, text


def test_return_documentation_lists_every_outcome_and_error_code():
    returned = yaml.safe_load(module.RETURN)
    outcome_doc = ' '.join(returned['outcome']['description'])
    code_doc = ' '.join(returned['error_code']['description'])
    assert all('V(%s)' % outcome in outcome_doc for outcome in model.OUTCOMES)
    assert all('V(%s)' % code in code_doc for code in errors.DEPLOY_CODES)


# -- copy_from and the caller's expectations ------------------------------------------

SOURCE = 'https://central.vault.azure.net'


@pytest.fixture
def vaults(monkeypatch):
    """Two fake vaults, picked by URL: the copy_from source and the target."""
    fakes = {'source': FakeTarget(), 'target': FakeTarget()}
    monkeypatch.setattr(frontend, 'KeyVaultTarget',
                        lambda settings, env=None: fakes['source' if settings.address.url == SOURCE else 'target'])
    return fakes


def copy_args(**extra):
    args = dict(copy_from={'vault_url': SOURCE + '/', 'certificate_name': 'www'})
    args.update(extra)
    return args


def test_copy_from_imports_the_source_bytes_unchanged(capsys, vaults, files):
    h = files['hierarchy']
    version = vaults['source'].seed(frontend.cert_material.Material(h['leaf'], h['key'], [h['inter']]), {'src': '1'})
    result = run_module(capsys, copy_args())
    assert result['outcome'] == 'created'
    stored = vaults['target'].versions[-1]
    assert stored['payload'] == 'exported-bytes-of-' + version and 'src' not in stored['tags']
    assert result['copied_from'] == {'vault_url': SOURCE, 'certificate_name': 'www', 'version': version,
                                     'thumbprint': result['certificate']['thumbprint'], 'content_type': 'pkcs12'}
    assert run_module(capsys, copy_args())['outcome'] == 'unchanged'
    assert [c[0] for c in vaults['source'].writes] == []


def test_copy_from_in_another_format_is_rebuilt(capsys, vaults, files):
    h = files['hierarchy']
    vaults['source'].seed(frontend.cert_material.Material(h['leaf'], h['key'], []), content_type='pem')
    result = run_module(capsys, copy_args())
    assert result['outcome'] == 'created' and result['copied_from']['content_type'] == 'pem'
    stored = vaults['target'].versions[-1]
    assert stored['content_type'] == 'pkcs12' and stored['payload'].startswith('exported-bytes-of-')
    assert [c[3] for c in vaults['target'].calls if c[0] == 'import'] == ['import']  # rebuilt, not imported as exported


def test_copy_from_a_chosen_version_and_a_missing_one(capsys, vaults, files, pki):
    h = files['hierarchy']
    first = vaults['source'].seed(frontend.cert_material.Material(h['leaf'], h['key'], []))
    key = pki.rsa(fresh=True)
    vaults['source'].seed(frontend.cert_material.Material(pki.cert(key), key, []))
    result = run_module(capsys, copy_args(copy_from={'vault_url': SOURCE, 'certificate_name': 'www', 'version': first}))
    assert result['copied_from']['version'] == first
    assert result['certificate']['thumbprint'] == frontend.cert_material.thumbprint(h['leaf'])
    missing = run_module(capsys, copy_args(copy_from={'vault_url': SOURCE, 'certificate_name': 'www', 'version': 'nope'}))
    assert missing['failed'] and missing['error_code'] == 'invalid_config'
    assert missing['msg'].startswith('copy_from source: ')


def test_copy_from_excludes_material_options(capsys, vaults, files):
    result = run_module(capsys, copy_args(certificate_path=files['cert']))
    assert result['failed'] and result['error_code'] == 'invalid_config' and 'mutually exclusive' in result['msg']


def test_copy_from_source_unreadable_in_check_mode_predicts(capsys, vaults):
    vaults['source'].fail('read_version', errors.DeployError(errors.FORBIDDEN, 'no certificates/read'))
    result = run_module(capsys, copy_args(), check_mode=True)
    assert result['changed'] and not result.get('failed')
    assert 'could not read the copy_from source' in json.dumps(result['warnings'])  # a plain or structured warning
    assert vaults['target'].calls == []


def test_copy_from_source_forbidden_fails_outside_check_mode(capsys, vaults):
    vaults['source'].fail('read_version', errors.DeployError(errors.FORBIDDEN, 'no certificates/read', action='x/read'))
    result = run_module(capsys, copy_args())
    assert result['failed'] and result['error_code'] == 'forbidden' and result['missing_action'] == 'x/read'


def test_expectations_reach_the_engine(capsys, files, target):
    result = run_module(capsys, paths_args(files, min_days_remaining=365))
    assert result['failed'] and result['error_code'] == 'invalid_material' and 'min_days_remaining' in result['msg']
    result = run_module(capsys, paths_args(files, expected_sans=['nope.example.org']))
    assert result['failed'] and result['error_code'] == 'invalid_material' and 'nope.example.org' in result['msg']
    assert target.writes == []
    assert run_module(capsys, paths_args(files, min_days_remaining=30, expected_sans=['www.example.com']))['outcome'] == 'created'


def test_chain_root_drop_leaves_the_root_out_and_a_later_keep_imports_it(capsys, files, target):
    h = files['hierarchy']
    dropped = run_module(capsys, paths_args(files, chain_root='drop'))
    assert dropped['outcome'] == 'created' and target.versions[-1]['material'].chain == [h['inter']]
    assert run_module(capsys, paths_args(files, chain_root='drop'))['outcome'] == 'unchanged'
    kept = run_module(capsys, paths_args(files))
    assert (kept['outcome'], kept['differences']) == ('rotated', ['chain'])
    assert target.versions[-1]['material'].chain == [h['inter'], h['root']]


def test_chain_root_does_not_apply_to_copy_from(capsys, vaults):
    result = run_module(capsys, copy_args(chain_root='drop'))
    assert result['failed'] and result['error_code'] == 'invalid_config' and 'copy_from' in result['msg']
    assert vaults['source'].calls == [] and vaults['target'].calls == []


def test_a_copy_keeps_its_sources_chain_order_and_records_it(capsys, vaults, files):
    """The source stores its chain root first; the copy sends it as stored, and its record and stored-chain check agree."""
    h = files['hierarchy']
    source = frontend.cert_material.Material(h['leaf'], h['key'], [h['root'], h['inter']])
    vaults['source'].seed(source, {'src': '1'})
    result = run_module(capsys, copy_args())
    assert result['outcome'] == 'created' and result['verification']['stored_chain'] == 'passed'
    assert vaults['target'].versions[-1]['material'].chain == [h['root'], h['inter']]
    assert result['certificate']['tags']['certdeploy-material'] == records.Record.of_material(source, 'pkcs12', True).value()
    assert run_module(capsys, copy_args())['outcome'] == 'unchanged'


def test_an_api_version_before_7_6_warns_that_the_chain_may_be_reordered(capsys, files, target):
    result = run_module(capsys, paths_args(files, api_version='7.5'))
    assert result['outcome'] == 'created'
    assert 'may reorder the chain' in json.dumps(result['warnings'])  # a plain or structured warning
    failed = run_module(capsys, paths_args(files, api_version='7.5', preserve_chain_order=True))
    assert failed['failed'] and failed['error_code'] == 'invalid_config'
