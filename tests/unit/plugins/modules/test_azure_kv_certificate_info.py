# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""azure_kv_certificate_info end to end through AnsibleModule, against a fake read-only CertificateClient."""

from __future__ import annotations

import json

import pytest
import yaml

from ansible_collections.certdeploy.cloud.tests.unit.compat import patch_module_args

from ansible_collections.certdeploy.cloud.plugins.doc_fragments.azure_kv import ModuleDocFragment
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import info as frontend
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import INFO
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import inventory
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_info as module
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_keyvault import (
    FakeCertificateClient, HttpError, NoSecrets, properties)

VAULT = 'https://kv1.vault.azure.net/'
MANAGED = {'certdeploy-managed-by': 'certdeploy', 'certdeploy-certificate-id': 'www'}


@pytest.fixture
def vault(monkeypatch):
    fake = FakeCertificateClient()
    created = []

    def make(settings, env=None):
        created.append(settings)
        return inventory.KeyVaultInventory(settings, env=env, sdk_loader=lambda: None, clients=(fake, NoSecrets()))
    monkeypatch.setattr(frontend, 'KeyVaultInventory', make)
    fake.settings = created
    return fake


def run_module(capsys, args, check_mode=False):
    args = dict(args)
    args.setdefault('vault_url', VAULT)
    if check_mode:
        args['_ansible_check_mode'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def test_one_certificate(capsys, vault, hierarchy):
    vault.add('www', hierarchy['leaf'], 'v1', tags=MANAGED)
    result = run_module(capsys, {'certificate_name': 'www'})
    assert result['changed'] is False and result['exists'] is True and 'failed' not in result
    cert = result['certificate']
    assert result['certificates'] == [cert]
    assert cert['versionless_secret_id'] == 'https://kv1.vault.azure.net/secrets/www'
    assert cert['owned'] is True and isinstance(cert['days_remaining'], int) and 'versions' not in cert
    assert vault.closed


def test_missing_name_is_not_a_failure(capsys, vault):
    result = run_module(capsys, {'certificate_name': 'nothing'})
    assert result['changed'] is False and 'failed' not in result
    assert result['exists'] is False and result['certificates'] == [] and 'certificate' not in result
    assert 'deleted' not in result


def test_soft_deleted_name(capsys, vault, hierarchy):
    vault.add('gone', hierarchy['leaf'], 'v1', tags=MANAGED)
    vault.soft_delete('gone', '2026-03-01T00:00:00+00:00', '2026-05-30T00:00:00+00:00')
    result = run_module(capsys, {'certificate_name': 'gone'})
    assert result['exists'] is False and 'failed' not in result
    assert result['deleted']['scheduled_purge_date'] == '2026-05-30T00:00:00+00:00' and result['deleted']['version'] == 'v1'


def test_list_managed_with_versions(capsys, vault, pki, hierarchy):
    vault.add('www', hierarchy['leaf'], 'v1', tags=MANAGED)
    vault.add('www', pki.hierarchy()['leaf'], 'v2', tags=MANAGED)
    vault.add('legacy', pki.hierarchy()['leaf'], 'v1', tags={'owner': 'someone-else'})
    everything = run_module(capsys, {})
    assert [c['name'] for c in everything['certificates']] == ['legacy', 'www']
    assert 'exists' not in everything and 'certificate' not in everything
    managed = run_module(capsys, {'managed_only': True, 'include_versions': True})
    assert [c['name'] for c in managed['certificates']] == ['www']
    assert [v['version'] for v in managed['certificates'][0]['versions']] == ['v2', 'v1']
    assert vault.settings[0].certificate_name is None


def test_check_mode_gives_the_same_answer(capsys, vault, hierarchy):
    vault.add('www', hierarchy['leaf'], 'v1', tags=MANAGED)
    normal = run_module(capsys, {'certificate_name': 'www', 'include_versions': True})
    checked = run_module(capsys, {'certificate_name': 'www', 'include_versions': True}, check_mode=True)
    assert checked == normal and checked['changed'] is False


def test_managed_only_with_a_name_warns(capsys, vault, hierarchy):
    vault.add('www', hierarchy['leaf'], 'v1', tags={'owner': 'x'})
    result = run_module(capsys, {'certificate_name': 'www', 'managed_only': True})
    assert result['exists'] is True and result['certificate']['owned'] is False
    assert 'managed_only applies when listing' in json.dumps(result['warnings'])  # str (<2.19) or summary dicts


def test_invalid_name_suggests_one_and_reads_nothing(capsys, vault):
    result = run_module(capsys, {'certificate_name': '*.example.com'})
    assert result['failed'] and result['error_code'] == 'invalid_config'
    assert 'wildcard-example-com' in result['msg'] and vault.calls == []


def test_argspec_failures_carry_invalid_config_and_no_rollback_block(capsys, vault):
    result = run_module(capsys, {'include_versions': 'maybe'})
    assert result['failed'] and result['error_code'] == 'invalid_config' and 'rollback' not in result
    result = run_module(capsys, {'vault_url': 'http://kv1.vault.azure.net'})
    assert result['error_code'] == 'invalid_config' and 'rollback' not in result and vault.calls == []


def test_forbidden_carries_the_missing_action(capsys, vault):
    vault.errors['list_properties_of_certificates'] = HttpError(
        403, "Caller is not authorized. Action: 'Microsoft.KeyVault/vaults/certificates/read'")
    result = run_module(capsys, {})
    assert result['failed'] and result['changed'] is False and result['error_code'] == 'forbidden'
    assert result['missing_action'] == 'Microsoft.KeyVault/vaults/certificates/read'
    assert 'Traceback' not in json.dumps(result) and vault.closed


def test_documentation_matches_the_argument_spec():
    documented = yaml.safe_load(module.DOCUMENTATION)['options']
    fragment = dict(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options'],
                    **yaml.safe_load(ModuleDocFragment.CONNECTION)['options'])
    assert set(documented) | set(fragment) == set(INFO.options)
    assert documented['certificate_name']['required'] is False and 'required' not in INFO.options['certificate_name']
    for option in ('managed_only', 'include_versions'):
        assert documented[option]['default'] == INFO.options[option]['default']


def test_return_documentation_covers_every_version_field(pki):
    returned = yaml.safe_load(module.RETURN)
    versions = returned['certificate']['contains']['versions']['contains']
    entry = inventory.version_info(properties('www', pki.hierarchy()['leaf'], 'v1'), inventory.utc_now())
    assert set(versions) == set(entry)


def test_return_documentation_covers_every_certificate_field():
    returned = yaml.safe_load(module.RETURN)
    assert set(returned['certificate']['contains']) == set(inventory.CERTIFICATE_FIELDS) | {'versions'}
    assert set(returned['deleted']['contains']) == {
        'deleted_on', 'scheduled_purge_date', 'recovery_id', 'version', 'thumbprint', 'serial', 'subject', 'expires',
        'tags', 'owned'}
