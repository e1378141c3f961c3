# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The in-process stand-in (frontend/module_standin.py) against AnsibleModule: the same main(), the same arguments,
the same result -- argument-spec failures, frontend failures, engine outcomes, check and diff mode, warnings and
no_log masking. The Key Vault target is the in-memory fake on both sides."""

from __future__ import annotations

import json

import pytest


from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.common.parameters import PASS_VARS

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy as frontend
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import info as info_frontend
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import module_standin as inprocess
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.ansible_module import CertdeployModule, create_module
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.argspec import ArgumentSpec
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy as deploy_module
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_info as info_module
from ansible_collections.certdeploy.cloud.tests.unit.compat import module_side, patch_module_args
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import FakeTarget

VAULT = 'https://kv1.vault.azure.net/'


@pytest.fixture
def material(tmp_path, pki):
    h = pki.hierarchy()
    paths = {'cert_pem': pki.pem(h['leaf']).decode(), 'key_pem': pki.key_pem(h['key'], 'pkcs8').decode(),
             'other_key_pem': pki.key_pem(pki.rsa(fresh=True), 'pkcs8').decode()}
    for name, data in (('cert', pki.pem(h['leaf'])), ('chain', pki.pem(h['inter'], h['root']))):
        path = tmp_path / name
        path.write_bytes(data)
        paths[name] = str(path)
    return paths


@pytest.fixture
def target(monkeypatch):
    fake = FakeTarget()
    monkeypatch.setattr(frontend, 'KeyVaultTarget', lambda settings, env=None: fake)
    return fake


def as_module(capsys, module, args, check_mode=False, diff=False):
    # AnsibleModule keeps warnings in a process-wide store meant for one module run; start each run empty.
    module_warnings._global_warnings.clear()
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_module_name='certdeploy.cloud.test')
    if 'inject_invocation' in PASS_VARS:  # ansible-core 2.21 adds invocation only when asked; 2.19 always does
        args['_ansible_inject_invocation'] = True
    # Once controller code is imported into this test process (the action plugin's tests do), module_utils would send
    # warnings to the controller's display; a real module process is never a controller.
    with patch_module_args(args), module_side():
        with pytest.raises(SystemExit):
            module.main()
    result = json.loads(capsys.readouterr().out)
    # A module's warnings leave the process as structured summaries; the action plugin's as plain messages.
    if 'warnings' in result:
        result['warnings'] = [w['event']['msg'] if isinstance(w, dict) else w for w in result['warnings']]
    result.pop('exception', None)
    return result


def in_process(module, args, check_mode=False, diff=False):
    invocation = inprocess.Invocation('certdeploy.cloud.test', args, check_mode=check_mode, diff=diff, inject_invocation=True)
    return json.loads(json.dumps(inprocess.run_main(module.main, invocation)))


def both(capsys, module, args, **modes):
    return as_module(capsys, module, args, **modes), in_process(module, args, **modes)


def base(material, **extra):
    args = dict(vault_url=VAULT, certificate_name='www', certificate_path=material['cert'], private_key=material['key_pem'],
                chain_path=material['chain'])
    args.update(extra)
    return args


@pytest.mark.parametrize('args, code', [
    (dict(bogus=1), 'invalid_config'),                                       # unsupported option
    (dict(private_key_path='/nonexistent'), 'invalid_config'),              # mutually exclusive with private_key
    (dict(timeout='soon'), 'invalid_config'),                               # type error
    (dict(rollback='sometimes'), 'invalid_config'),                         # not one of the choices
    (dict(vault_url='https://x.vault.azure.net'), 'invalid_config'),        # frontend: vault name too short
    (dict(private_key='not a key'), 'invalid_material'),                    # material: no PEM key
])
def test_failures_are_the_same(capsys, material, target, args, code):
    module_result, stand_in = both(capsys, deploy_module, base(material, **args))
    assert module_result == stand_in
    assert stand_in['failed'] and stand_in['error_code'] == code
    assert stand_in['rollback'] == {'attempted': False, 'succeeded': False, 'version': None, 'reason': None}
    assert material['key_pem'].splitlines()[1] not in json.dumps(stand_in)


def test_missing_required_option_is_the_same(capsys, material, target):
    args = base(material)
    del args['vault_url']
    module_result, stand_in = both(capsys, deploy_module, args)
    assert module_result == stand_in and stand_in['error_code'] == 'invalid_config'
    assert 'vault_url' in stand_in['msg']


def test_key_mismatch_is_the_same(capsys, material, target):
    module_result, stand_in = both(capsys, deploy_module, base(material, private_key=material['other_key_pem']))
    assert module_result == stand_in and stand_in['error_code'] == 'key_mismatch'


def test_lifecycle_is_the_same(capsys, material, target):
    # Each call runs twice against the same fake vault: the module first, then the stand-in, so the stand-in sees
    # the vault the module left -- compare outcomes in that order.
    predicted_m, predicted_s = both(capsys, deploy_module, base(material), check_mode=True, diff=True)
    assert predicted_m == predicted_s and predicted_s['outcome'] == 'created' and 'diff' in predicted_s
    assert target.versions == []
    created = as_module(capsys, deploy_module, base(material, tags={'team': 'web'}))
    assert created['outcome'] == 'created'
    rerun_m, rerun_s = both(capsys, deploy_module, base(material, tags={'team': 'web'}))
    assert rerun_m == rerun_s and rerun_s['outcome'] == 'unchanged' and rerun_s['changed'] is False
    # no_log: the key given as content is masked in the invocation on both paths.
    assert rerun_s['invocation']['module_args']['private_key'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    tags_m, tags_s = both(capsys, deploy_module, base(material, tags={'team': 'api'}), check_mode=True, diff=True)
    assert tags_m == tags_s and tags_s['outcome'] == 'updated'


def test_warnings_are_the_same(capsys, material, target):
    args = base(material, certificate_name='www', managed_only=True)
    del args['private_key'], args['certificate_path'], args['chain_path']
    module_result, stand_in = both(capsys, info_module, args)
    assert module_result == stand_in
    assert any('managed_only' in warning for warning in stand_in['warnings'])


def test_no_log_value_is_removed_everywhere(capsys, material, target, monkeypatch):
    # A frontend failure that quotes a no_log value: AnsibleModule removes it from the whole result, so must the stand-in.
    secret = 'pfx-password-quoted-back'

    def quoting(params):
        raise frontend.errors.DeployError(frontend.errors.INVALID_CONFIG, 'cannot open the PFX with %s' % params['pfx_password'])

    monkeypatch.setattr(frontend, 'load_material', quoting)
    args = dict(vault_url=VAULT, certificate_name='www', pfx='MIIB', pfx_password=secret)
    module_result, stand_in = both(capsys, deploy_module, args)
    assert module_result == stand_in
    assert secret not in json.dumps(stand_in) and '********' in stand_in['msg']


def test_check_mode_unsupported_is_skipped_as_ansible_module_does():
    def main():
        inprocess.InProcessModule(inprocess.current_invocation(), argument_spec=dict(name=dict(type='str')),
                                  module_class=CertdeployModule, supports_check_mode=False).exit_json(changed=True)

    result = inprocess.run_main(main, inprocess.Invocation('x.y.z', {'name': 'a'}, check_mode=True))
    assert result['skipped'] is True and 'does not support check mode' in result['msg']


def test_create_module_outside_run_main_is_a_real_ansible_module_and_inside_the_stand_in(capsys):
    spec = ArgumentSpec(dict(name=dict(type='str')))
    with patch_module_args({'name': 'a'}):
        module = create_module(spec)
    assert isinstance(module, CertdeployModule) and not isinstance(module, inprocess.InProcessModule)
    assert inprocess.current_invocation() is None
    seen = {}

    def main():
        seen['module'] = create_module(spec)
        seen['module'].exit_json(changed=False)

    inprocess.run_main(main, inprocess.Invocation('x.y.z', {'name': 'b'}))
    assert isinstance(seen['module'], inprocess.InProcessModule) and seen['module'].params['name'] == 'b'


def test_a_main_that_does_not_exit_is_a_failure():
    result = inprocess.run_main(lambda: None, inprocess.Invocation('x.y.z', {}))
    assert result['failed'] is True
    assert inprocess.current_invocation() is None


def test_ansible_module_machinery_is_not_available_in_process():
    seen = {}

    def main():
        module = create_module(ArgumentSpec(dict(name=dict(type='str'))))
        seen['fail_deploy'] = callable(module.fail_deploy)  # the class's own helper works on the stand-in
        with pytest.raises(AttributeError):
            module.run_command(['true'])
        module.exit_json(changed=False)

    inprocess.run_main(main, inprocess.Invocation('x.y.z', {}))
    assert seen == {'fail_deploy': True}


def test_info_run_uses_the_same_module_class(monkeypatch, material, capsys):
    class Inventory(object):
        warnings = []

        def __init__(self, settings, env=None):
            pass

        def describe(self, name, include_versions):
            return {'exists': True, 'certificate': {'name': name, 'versions': [] if include_versions else None}}

        def close(self):
            pass

    monkeypatch.setattr(info_frontend, 'KeyVaultInventory', Inventory)
    module_result, stand_in = both(capsys, info_module, dict(vault_url=VAULT, certificate_name='www', include_versions=True))
    assert module_result == stand_in and stand_in['exists'] is True and stand_in['changed'] is False


def test_deploy_many_is_the_same(capsys, monkeypatch, tmp_path, pki):
    # The list module's main() runs in-process unchanged, on the same spec.
    from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy_many
    from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy_many as many_module

    fakes = {}

    def target(settings, env=None, connection=None):
        return fakes.setdefault((settings.address.url, settings.certificate_name), FakeTarget())

    monkeypatch.setattr(deploy_many, 'KeyVaultTarget', target)
    h = pki.hierarchy()
    (tmp_path / 'www.crt').write_bytes(pki.pem(h['leaf']))
    key = pki.key_pem(h['key'], 'pkcs8').decode()
    args = dict(vault_url=VAULT, certificates=[
        {'certificate_name': 'www', 'certificate_path': str(tmp_path / 'www.crt'), 'private_key': key},
        {'certificate_name': 'bad', 'certificate_path': str(tmp_path / 'www.crt'), 'private_key': 'not a key'}])
    predicted_m, predicted_s = both(capsys, many_module, args, check_mode=True, diff=True)
    assert predicted_m == predicted_s
    assert key.splitlines()[1] not in json.dumps(predicted_s)
    unsupported_m, unsupported_s = both(capsys, many_module, dict(args, bogus=True))
    assert unsupported_m == unsupported_s and unsupported_s['error_code'] == 'invalid_config'


def test_sdk_request_traces_stay_out_of_the_workers_log(caplog):
    import logging
    logger = logging.getLogger('azure.core.pipeline.policies.http_logging_policy')

    def main():
        logger.info('Request URL: https://kv.vault.azure.net/certificates/x')
        logger.warning('a warning still goes through')
        return None

    with caplog.at_level(logging.INFO):
        inprocess.run_main(main, inprocess.Invocation('x.y.z', {}))
    messages = [record.getMessage() for record in caplog.records]
    assert 'a warning still goes through' in messages
    assert not any('Request URL' in m for m in messages)
    assert logging.getLogger('azure').level == logging.NOTSET  # restored
