# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""azure_kv_certificate_deploy and each element of azure_kv_certificate_deploy_many are one deploy path:
for the same options and the same vault state, the same result, success or failure, key for key."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.common import warnings as module_warnings
from ansible_collections.certdeploy.cloud.tests.unit.compat import patch_module_args

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy, deploy_many
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy as single_module
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy_many as many_module
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import FakeTarget

VAULT = 'https://kv1.vault.azure.net'
OWNED = {'certdeploy-managed-by': 'certdeploy', 'certdeploy-certificate-id': 'www'}


def seed_nothing(target, material):
    pass


def seed_same(target, material):
    target.seed(material, OWNED)


def seed_other_tags(target, material):
    target.seed(material, dict(OWNED, team='old'))


def seed_untagged(target, material):
    target.seed(material)


def seed_forbidden_import(target, material):
    target.fail('import', errors.DeployError(errors.FORBIDDEN, 'denied', action='Microsoft.KeyVault/vaults/certificates/import/action'))


def seed_unreadable(target, material):
    target.fail('read', errors.DeployError(errors.AUTH_FAILED, 'no token'))


def seed_missing_sdk(target, material):
    target.fail('read', errors.DeployError(errors.MISSING_DEPENDENCY, 'No module named azure.identity', package='azure-identity',
                                           exception='Traceback (most recent call last): ...'))


SCENARIOS = {
    'missing_dependency': (seed_missing_sdk, {}),
    'created': (seed_nothing, {}),
    'unchanged': (seed_same, {}),
    'updated': (seed_other_tags, {}),
    'not_owned': (seed_untagged, {}),
    'forbidden': (seed_forbidden_import, {}),
    'auth_failed': (seed_unreadable, {}),
    'check_mode_unreadable': (seed_unreadable, {'check_mode': True, 'diff': True}),
    'check_mode_diff': (seed_other_tags, {'check_mode': True, 'diff': True}),
    'key_mismatch': (seed_nothing, {'key': 'other'}),
    'bad_name': (seed_nothing, {'name': 'www.example.com'}),
}


@pytest.fixture
def files(tmp_path, pki):
    h = pki.hierarchy()
    for name, data in (('cert', pki.pem(h['leaf'])), ('key', pki.key_pem(h['key'])), ('chain', pki.pem(h['inter'], h['root'])),
                       ('other', pki.key_pem(pki.rsa(fresh=True)))):
        (tmp_path / name).write_bytes(data)
    return tmp_path, m.Material(h['leaf'], h['key'], [h['inter'], h['root']])


def run(capsys, module, args, check_mode, diff):
    module_warnings._global_warnings.clear()  # AnsibleModule's warnings are process-wide; one module run each
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def warning_text(warning):
    # A plain string, or (ansible-core 2.19+) a structured WarningSummary holding the text in its event.
    if isinstance(warning, str):
        return warning
    return warning.get('msg') or (warning.get('event') or {}).get('msg')


def normalised(result):
    result = dict(result)
    # The traceback of a missing library is the single module's top-level 'exception' (shown with -vvv); an element
    # of a fleet has none.  vault_url and certificate_name head each element of a fleet.
    for key in ('invocation', 'vault_url', 'certificate_name', 'exception'):
        result.pop(key, None)
    result['failed'] = bool(result.get('failed'))
    result['warnings'] = [warning_text(w) for w in result.get('warnings') or []]
    return result


@pytest.mark.parametrize('scenario', sorted(SCENARIOS))
def test_single_and_fleet_element_return_the_same(scenario, capsys, monkeypatch, files, tmp_path):
    seed, how = SCENARIOS[scenario]
    folder, material = files
    options = {'certificate_path': str(folder / 'cert'), 'private_key_path': str(folder / how.get('key', 'key')),
               'chain_path': str(folder / 'chain'), 'tags': {'team': 'new'} if scenario in ('updated', 'check_mode_diff') else {}}
    name = how.get('name', 'www')
    fakes = []

    def fresh(*_args, **_kwargs):
        fake = FakeTarget()
        seed(fake, material)
        fakes.append(fake)
        return fake

    monkeypatch.setattr(deploy, 'KeyVaultTarget', fresh)
    monkeypatch.setattr(deploy_many, 'KeyVaultTarget', fresh)
    check_mode, diff = how.get('check_mode', False), how.get('diff', False)
    single = run(capsys, single_module, dict(options, vault_url=VAULT, certificate_name=name), check_mode, diff)
    many = run(capsys, many_module, dict(vault_url=VAULT, certificates=[dict(options, certificate_name=name)]), check_mode, diff)
    element = many['certificates'][0]
    assert normalised(single) == normalised(element)
    assert bool(many.get('failed')) == bool(single.get('failed'))
    if single.get('failed'):
        assert many['error_code'] == single['error_code'] and many['failed_certificates'][0]['msg'] == single['msg']
    # Both runs reached the same vault state the same way.
    assert len(fakes) in (0, 2) and (not fakes or fakes[0].calls == fakes[1].calls)
