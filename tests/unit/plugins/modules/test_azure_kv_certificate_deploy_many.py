# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""azure_kv_certificate_deploy_many end to end through AnsibleModule, each certificate on an in-memory fake target."""

from __future__ import annotations

import json

import pytest

from ansible_collections.certdeploy.cloud.tests.unit.compat import patch_module_args

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy, deploy_many
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy_many as module
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import FakeTarget

VAULT_A = 'https://kv-a.vault.azure.net'
VAULT_B = 'https://kv-b.vault.azure.net'


@pytest.fixture
def material(tmp_path, pki):
    """Three leaves of one CA, each with its key on disk, and a key that matches none of them."""
    h = pki.hierarchy()
    out = {'chain': tmp_path / 'chain.pem'}
    out['chain'].write_bytes(pki.pem(h['inter'], h['root']))
    for name in ('www', 'api', 'mail'):
        leaf = pki.cert(h['key'], '%s.example.com' % name, issuer=h['inter'], issuer_key=pki.ec(), days=90)
        (tmp_path / (name + '.crt')).write_bytes(pki.pem(leaf))
        out[name] = leaf
    (tmp_path / 'key.pem').write_bytes(pki.key_pem(h['key']))
    (tmp_path / 'other.pem').write_bytes(pki.key_pem(pki.rsa(fresh=True)))
    out['dir'] = tmp_path
    out['key_pem'] = pki.key_pem(h['key']).decode()
    return out


@pytest.fixture
def targets(monkeypatch):
    """One FakeTarget per (vault, name), in place of the KeyVaultTarget deploy_many builds on a shared connection."""
    fakes = {}

    def target(settings, env=None, connection=None):
        key = (settings.address.url, settings.certificate_name)
        if key not in fakes:
            fakes[key] = FakeTarget()
            fakes[key].labels = {'target': 'fake', 'vault': key[0], 'name': key[1]}
        return fakes[key]

    monkeypatch.setattr(deploy_many, 'KeyVaultTarget', target)
    return fakes


def element(material, name, key='key.pem', **extra):
    out = {'certificate_name': name, 'certificate_path': str(material['dir'] / (name + '.crt')),
           'private_key_path': str(material['dir'] / key), 'chain_path': str(material['chain'])}
    out.update(extra)
    return out


def run_module(capsys, args, check_mode=False, diff=False):
    args = dict(args)
    args.setdefault('vault_url', VAULT_A)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def three(material, **extra):
    return [element(material, name, **extra) for name in ('www', 'api', 'mail')]


def test_created_then_unchanged(capsys, material, targets):
    first = run_module(capsys, {'certificates': three(material)})
    assert first['changed'] is True and not first.get('failed')
    assert [r['outcome'] for r in first['certificates']] == ['created'] * 3
    assert [r['certificate_name'] for r in first['certificates']] == ['www', 'api', 'mail']
    assert first['certificates'][1]['certificate']['thumbprint'] == m.thumbprint(material['api'])
    assert first['certificates'][0]['certificate']['tags']['certdeploy-certificate-id'] == 'www'
    assert first['summary']['created'] == 3 and first['failed_certificates'] == []
    assert first['msg'] == '3 certificates: 3 created.'
    rerun = run_module(capsys, {'certificates': three(material)})
    assert rerun['changed'] is False and [r['outcome'] for r in rerun['certificates']] == ['unchanged'] * 3
    assert all(len(t.versions) == 1 for t in targets.values()) and len(targets) == 3


def test_one_bad_certificate_fails_the_task_but_not_the_others(capsys, material, targets):
    certificates = three(material)
    certificates[1] = element(material, 'api', key='other.pem')
    out = run_module(capsys, {'certificates': certificates, 'max_concurrency': 3})
    assert out['failed'] is True and out['changed'] is True and out['error_code'] == 'key_mismatch'
    assert [r.get('outcome') for r in out['certificates']] == ['created', None, 'created']
    assert out['certificates'][1]['error_code'] == 'key_mismatch' and out['certificates'][1]['failed'] is True
    assert out['certificates'][1]['rollback']['attempted'] is False
    assert out['failed_certificates'] == [{'index': 1, 'vault_url': VAULT_A, 'certificate_name': 'api',
                                           'error_code': 'key_mismatch', 'msg': out['certificates'][1]['msg']}]
    assert out['msg'].startswith('1 of 3 certificates failed: api (key_mismatch) in %s.' % VAULT_A)
    assert (VAULT_A, 'api') not in targets or not targets[(VAULT_A, 'api')].writes
    assert len(targets[(VAULT_A, 'mail')].versions) == 1


def test_failures_do_not_hide_each_other(capsys, material, targets):
    certificates = [element(material, 'www', key='other.pem'), element(material, 'api', tags={'certdeploy-x': 'no'}),
                    element(material, 'mail')]
    out = run_module(capsys, {'certificates': certificates})
    assert [f['error_code'] for f in out['failed_certificates']] == ['key_mismatch', 'invalid_config']
    assert out['certificates'][2]['outcome'] == 'created'
    assert out['error_code'] == 'key_mismatch'


def test_check_mode_and_diff_predict_without_writing(capsys, material, targets):
    run_module(capsys, {'certificates': three(material)[:1]})
    out = run_module(capsys, {'certificates': three(material, tags={'env': 'prod'})}, check_mode=True, diff=True)
    assert out['changed'] is True
    assert [r['outcome'] for r in out['certificates']] == ['updated', 'created', 'created']
    assert all(not t.writes or len(t.writes) == 1 for t in targets.values())
    assert len(targets[(VAULT_A, 'www')].writes) == 1  # only the deploy before check mode wrote
    assert [d['before_header'] for d in out['diff']] == ['%s/certificates/%s' % (VAULT_A, n) for n in ('www', 'api', 'mail')]
    assert out['diff'][0]['before']['tags'] != out['diff'][0]['after']['tags']
    assert out['diff'][1]['before'] == {} and out['diff'][1]['after']['thumbprint'] == m.thumbprint(material['api'])
    assert out['certificates'][0]['diff'] == {'before': out['diff'][0]['before'], 'after': out['diff'][0]['after']}
    assert out['msg'].endswith('(check mode: predicted).')


def test_no_diff_without_diff_mode(capsys, material, targets):
    out = run_module(capsys, {'certificates': three(material)})
    assert 'diff' not in out and all('diff' not in r for r in out['certificates'])


def test_two_vaults_and_a_default(capsys, material, targets):
    certificates = [element(material, 'www'), element(material, 'www', vault_url=VAULT_B + '/'),
                    element(material, 'api', vault_url=VAULT_B)]
    out = run_module(capsys, {'certificates': certificates})
    assert [(r['vault_url'], r['certificate_name'], r['outcome']) for r in out['certificates']] == [
        (VAULT_A, 'www', 'created'), (VAULT_B, 'www', 'created'), (VAULT_B, 'api', 'created')]
    assert sorted(targets) == [(VAULT_A, 'www'), (VAULT_B, 'api'), (VAULT_B, 'www')]


def test_an_element_without_a_vault_fails_alone(capsys, material, targets):
    certificates = [element(material, 'www'), element(material, 'api', vault_url=VAULT_B)]
    out = run_module(capsys, {'vault_url': None, 'certificates': certificates})
    assert out['failed'] is True and out['failed_certificates'][0]['error_code'] == 'invalid_config'
    assert out['certificates'][1]['outcome'] == 'created'


def test_a_certificate_given_twice_fails_both_and_writes_neither(capsys, material, targets):
    out = run_module(capsys, {'certificates': [element(material, 'www'), element(material, 'api'),
                                               element(material, 'www', vault_url=VAULT_A + ':443')]})
    assert [f['index'] for f in out['failed_certificates']] == [0, 2]
    assert 'more than once' in out['failed_certificates'][0]['msg']
    assert (VAULT_A, 'www') not in targets


@pytest.mark.parametrize('concurrency', [1, 4, 10])
def test_results_keep_input_order_at_any_concurrency(capsys, material, targets, concurrency):
    names = ['c%02d' % i for i in range(12)]
    certificates = [dict(element(material, 'www'), certificate_name=name) for name in names]
    out = run_module(capsys, {'certificates': certificates, 'max_concurrency': concurrency})
    assert [r['certificate_name'] for r in out['certificates']] == names
    assert out['summary']['created'] == 12


def test_bad_concurrency_is_invalid_config(capsys, material, targets):
    out = run_module(capsys, {'certificates': three(material), 'max_concurrency': 0})
    assert out['failed'] is True and out['error_code'] == 'invalid_config' and 'rollback' not in out
    assert not targets


def test_argument_errors_are_invalid_config(capsys, material, targets):
    both = dict(element(material, 'www'), pfx_path='/tmp/x.pfx')
    out = run_module(capsys, {'certificates': [both]})
    assert out['failed'] is True and out['error_code'] == 'invalid_config'
    out = run_module(capsys, {'certificates': [{'certificate_name': 'www'}]})
    assert out['error_code'] == 'invalid_config' and 'one of' in out['msg']


def test_key_content_never_appears_in_the_result(capsys, material, targets):
    certificates = [dict(element(material, 'www'), private_key=material['key_pem'], private_key_path=None)]
    certificates[0].pop('private_key_path')
    out = run_module(capsys, {'certificates': certificates})
    assert out['certificates'][0]['outcome'] == 'created'
    text = json.dumps(out)
    body = ''.join(material['key_pem'].strip().splitlines()[1:-1])
    assert 'PRIVATE KEY' not in text and body[:64] not in text


def test_unexpected_errors_stay_with_their_certificate(capsys, material, targets, monkeypatch):
    real = deploy.load_material

    def flaky(params):
        if params['certificate_name'] == 'api':
            raise RuntimeError('boom')
        return real(params)

    monkeypatch.setattr(deploy, 'load_material', flaky)
    out = run_module(capsys, {'certificates': three(material)})
    assert [r.get('error_code') for r in out['certificates']] == [None, 'service_error', None]
    assert 'RuntimeError' in out['certificates'][1]['msg']


def test_warnings_name_their_certificates(capsys, material, targets, pki, tmp_path):
    h = pki.hierarchy()
    expired = pki.cert(h['key'], 'old.example.com', issuer=h['inter'], issuer_key=pki.ec(), days=1,
                       not_before=m.not_after(material['www']).replace(year=2020))
    (tmp_path / 'old.crt').write_bytes(pki.pem(expired))
    (tmp_path / 'old.key').write_bytes(pki.key_pem(h['key']))
    certificates = [dict(element(material, 'www'), certificate_name=n, certificate_path=str(tmp_path / 'old.crt'),
                         private_key_path=str(tmp_path / 'old.key'), allow_expired=True) for n in ('o1', 'o2')]
    out = run_module(capsys, {'certificates': certificates})
    assert [r['outcome'] for r in out['certificates']] == ['created', 'created']
    assert all(r['warnings'] for r in out['certificates'])
    text = json.dumps(out['warnings'])  # a plain or structured warning
    assert '2 certificates (o1 in %s, o2 in %s): ' % (VAULT_A, VAULT_A) in text


def test_metrics_are_written_for_every_certificate(capsys, material, targets, tmp_path):
    path = tmp_path / 'certdeploy.prom'
    certificates = three(material)
    certificates[2] = element(material, 'mail', key='other.pem')
    run_module(capsys, {'certificates': certificates, 'metrics_file': str(path)})
    text = path.read_text()
    assert text.count('certdeploy_deploy_total{') == 2
    assert 'error_code="key_mismatch"' in text and 'name="mail"' in text
