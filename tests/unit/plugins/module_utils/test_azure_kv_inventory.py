# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The info module's reading: pure mapping functions, and KeyVaultInventory against a fake CertificateClient."""

from __future__ import annotations

import datetime
import types

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import VersionState
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import config, inventory as inv
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.target import KeyVaultSettings
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_keyvault import (
    READS, VAULT, FakeCertificateClient, HttpError, NoSecrets, properties)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MANAGED = {'certdeploy-managed-by': 'certdeploy', 'certdeploy-certificate-id': 'www'}


def at(days, hours=0):
    return NOW + datetime.timedelta(days=days, hours=hours)


@pytest.fixture
def leaf(pki):
    return pki.hierarchy()['leaf']


@pytest.fixture
def vault():
    return FakeCertificateClient()


def make_inventory(certs):
    settings = KeyVaultSettings(config.parse_vault_url(VAULT), None, 'login.microsoftonline.com')
    return inv.KeyVaultInventory(settings, sdk_loader=lambda: None, clients=(certs, NoSecrets()), now=NOW)


# -- pure mapping -------------------------------------------------------------

def test_days_remaining_rounds_down_and_goes_negative():
    assert inv.days_remaining(at(30, 1), NOW) == 30
    assert inv.days_remaining(at(29, 23), NOW) == 29
    assert inv.days_remaining(at(0, 1), NOW) == 0
    assert inv.days_remaining(at(0, -1), NOW) == -1
    assert inv.days_remaining(at(-10), NOW) == -10


def test_days_remaining_accepts_iso_text_naive_times_and_nothing():
    assert inv.days_remaining(at(5).isoformat(), NOW) == 5
    assert inv.days_remaining(at(5).replace(tzinfo=None), NOW) == 5
    assert inv.days_remaining(None, NOW) is None
    assert inv.days_remaining('not a date', NOW) is None


def test_iso():
    assert inv.iso(NOW) == '2026-03-01T12:00:00+00:00'
    assert inv.iso(NOW.replace(tzinfo=None)) == '2026-03-01T12:00:00+00:00'
    assert inv.iso(None) is None and inv.iso('2026-03-01') == '2026-03-01'


def test_name_from_id():
    assert inv.name_from_id(VAULT + '/certificates/www/abc') == 'www'
    assert inv.name_from_id(VAULT + '/certificates/www') == 'www'
    assert inv.name_from_id(None) is None and inv.name_from_id('https://kv1.vault.azure.net') is None


def test_certificate_info_from_a_full_state(leaf):
    facts = m.certificate_facts(leaf)
    state = VersionState('v2', facts['thumbprint'], tags=MANAGED, enabled=True, facts=facts,
                         ids={'id': VAULT + '/certificates/www/v2'}, created_on=at(-1), content_type='pem')
    info = inv.certificate_info('www', state, NOW, updated_on=at(-1, 2))
    assert set(info) == set(inv.CERTIFICATE_FIELDS)
    assert (info['name'], info['version'], info['thumbprint'], info['content_type']) == ('www', 'v2', facts['thumbprint'], 'pem')
    assert info['subject'] == 'CN=www.example.com' and info['sans'] == ['DNS:www.example.com']
    assert info['expires'] == facts['expires'] and info['days_remaining'] == inv.days_remaining(m.not_after(leaf), NOW)
    assert info['owned'] is True and info['tags'] == MANAGED
    assert info['created'] == at(-1).isoformat() and info['updated'] == at(-1, 2).isoformat()
    assert info['id'] == VAULT + '/certificates/www/v2' and info['secret_id'] is None


def test_certificate_info_without_a_certificate_falls_back_to_attributes():
    # A pending certificate, or one whose DER did not parse: Key Vault's attributes still say when it expires.
    state = VersionState('v1', None, tags={'owner': 'x'}, enabled=False)
    info = inv.certificate_info('www', state, NOW, not_before=at(-2), expires_on=at(3))
    assert info['serial'] is None and info['subject'] is None and info['sans'] == []
    assert info['not_before'] == at(-2).isoformat() and info['expires'] == at(3).isoformat()
    assert info['days_remaining'] == 3 and info['owned'] is False and info['enabled'] is False


def test_version_info_takes_the_thumbprint_from_x5t(leaf):
    props = properties('www', leaf, 'v1', tags=MANAGED, created=at(-5))
    entry = inv.version_info(props, NOW, current_version='v1')
    assert entry['thumbprint'] == m.thumbprint(leaf) and entry['x5t'] == m.x5t(leaf)
    assert entry['expires'] == m.not_after(leaf).isoformat() and entry['not_before'] == m.not_before(leaf).isoformat()
    assert entry['created'] == at(-5).isoformat() and entry['current'] is True and entry['owned'] is True
    assert entry['id'] == VAULT + '/certificates/www/v1'
    # The REST form of x5t (base64url text) maps the same way.
    text = inv.version_info(properties('www', leaf, 'v2', x5t=m.x5t(leaf)), NOW, current_version='v1')
    assert text['thumbprint'] == m.thumbprint(leaf) and text['current'] is False and text['owned'] is False


def test_version_info_without_thumbprint_or_dates():
    props = types.SimpleNamespace(version='v9', x509_thumbprint=None, tags=None, enabled=True)
    entry = inv.version_info(props, NOW)
    assert entry['thumbprint'] is None and entry['x5t'] is None and entry['expires'] is None
    assert entry['days_remaining'] is None and entry['tags'] == {} and entry['current'] is False


def test_order_versions_newest_first_current_first_on_ties():
    entries = [
        {'version': 'a', 'created': at(-3).isoformat(), 'current': False},
        {'version': 'c', 'created': at(-1).isoformat(), 'current': False},
        {'version': 'b', 'created': at(-1).isoformat(), 'current': True},
        {'version': 'z', 'created': None, 'current': False},
    ]
    assert [e['version'] for e in inv.order_versions(entries)] == ['b', 'c', 'a', 'z']


def test_deleted_info(leaf):
    facts = m.certificate_facts(leaf)
    deleted = types.SimpleNamespace(deleted_on=at(-1), scheduled_purge_date=at(89), recovery_id=VAULT + '/deletedcertificates/www',
                                    properties=types.SimpleNamespace(updated_on=None, not_before=None, expires_on=None))
    state = VersionState('v3', facts['thumbprint'], tags=MANAGED, facts=facts)
    info = inv.deleted_info('www', deleted, state, NOW)
    assert info == {
        'deleted_on': at(-1).isoformat(), 'scheduled_purge_date': at(89).isoformat(),
        'recovery_id': VAULT + '/deletedcertificates/www', 'version': 'v3', 'thumbprint': facts['thumbprint'],
        'serial': facts['serial'], 'subject': facts['subject'], 'expires': facts['expires'], 'tags': MANAGED, 'owned': True}


# -- KeyVaultInventory against the fake client --------------------------------

def test_describe_an_existing_certificate(vault, leaf):
    vault.add('www', leaf, 'v1', tags=MANAGED)
    result = make_inventory(vault).describe('www')
    assert result['exists'] is True and 'deleted' not in result
    cert = result['certificate']
    assert cert['thumbprint'] == m.thumbprint(leaf) and cert['x5t'] == m.x5t(leaf)
    assert cert['serial'] == '%X' % leaf.serial_number and cert['sans'] == ['DNS:www.example.com']
    assert cert['versionless_secret_id'] == VAULT + '/secrets/www' and cert['versionless_id'] == VAULT + '/certificates/www'
    assert cert['secret_id'] == VAULT + '/secrets/www/v1' and cert['key_id'] == VAULT + '/keys/www/v1'
    assert cert['owned'] is True and cert['content_type'] == 'pkcs12' and cert['enabled'] is True
    assert cert['days_remaining'] == inv.days_remaining(m.not_after(leaf), NOW)
    assert 'versions' not in cert
    assert [c[0] for c in vault.calls] == ['get_certificate']


def test_describe_an_unmanaged_pem_certificate(vault, leaf):
    vault.add('www', leaf, 'v1', tags={'owner': 'someone-else'}, content_type='application/x-pem-file')
    cert = make_inventory(vault).describe('www')['certificate']
    assert cert['owned'] is False and cert['content_type'] == 'pem' and cert['tags'] == {'owner': 'someone-else'}


def test_describe_a_missing_name(vault):
    result = make_inventory(vault).describe('nothing')
    assert result == {'exists': False}
    assert [c[0] for c in vault.calls] == ['get_certificate', 'get_deleted_certificate']


def test_describe_a_soft_deleted_name(vault, leaf):
    vault.add('gone', leaf, 'v1', tags=MANAGED)
    vault.soft_delete('gone', at(-1), at(89))
    inventory = make_inventory(vault)
    result = inventory.describe('gone')
    assert result['exists'] is False
    assert result['deleted']['deleted_on'] == at(-1).isoformat()
    assert result['deleted']['scheduled_purge_date'] == at(89).isoformat()
    assert result['deleted']['thumbprint'] == m.thumbprint(leaf) and result['deleted']['owned'] is True
    assert result['deleted']['recovery_id'] == VAULT + '/deletedcertificates/gone'
    assert inventory.warnings == []


@pytest.mark.parametrize('status', [400, 403])
def test_deleted_read_refused_or_unsupported_reads_as_free(vault, status):
    vault.errors['get_deleted_certificate'] = HttpError(status, 'no')
    inventory = make_inventory(vault)
    assert inventory.describe('nothing') == {'exists': False} and inventory.warnings == []


def test_deleted_read_failure_is_a_warning_not_a_failure(vault):
    vault.errors['get_deleted_certificate'] = HttpError(503, 'Service Unavailable')
    inventory = make_inventory(vault)
    assert inventory.describe('nothing') == {'exists': False}
    assert len(inventory.warnings) == 1 and 'soft-deleted' in inventory.warnings[0] and '503' in inventory.warnings[0]


def test_describe_forbidden_names_the_read_action(vault):
    vault.errors['get_certificate'] = HttpError(
        403, "Caller is not authorized. Action: 'Microsoft.KeyVault/vaults/certificates/read'")
    with pytest.raises(errors.DeployError) as info:
        make_inventory(vault).describe('www')
    assert info.value.code == errors.FORBIDDEN
    assert info.value.details['action'] == 'Microsoft.KeyVault/vaults/certificates/read'
    assert VAULT + '/certificates/www' in info.value.message


def test_describe_with_versions(vault, pki, leaf):
    older = pki.hierarchy(leaf_key=pki.rsa(fresh=True))['leaf']
    vault.add('www', older, 'v1', tags=MANAGED, created=at(-30))
    vault.add('www', leaf, 'v2', tags={'certdeploy-rollback-of': 'x'}, enabled=False, created=at(-1))
    cert = make_inventory(vault).describe('www', include_versions=True)['certificate']
    assert cert['version'] == 'v2' and cert['owned'] is False
    assert [(v['version'], v['current'], v['thumbprint'], v['enabled']) for v in cert['versions']] == [
        ('v2', True, m.thumbprint(leaf), False), ('v1', False, m.thumbprint(older), True)]
    assert cert['versions'][1]['owned'] is True and cert['versions'][1]['created'] == at(-30).isoformat()


def test_list_every_certificate_by_name(vault, pki, leaf):
    other = pki.hierarchy(subject='api.example.com')['leaf']
    vault.add('zeta', leaf, 'v1', tags=MANAGED)
    vault.add('alpha', other, 'v1', tags={'owner': 'someone-else'})
    found = make_inventory(vault).list_certificates()
    assert [(c['name'], c['owned']) for c in found] == [('alpha', False), ('zeta', True)]
    assert found[0]['sans'] == ['DNS:api.example.com'] and found[1]['thumbprint'] == m.thumbprint(leaf)
    assert all('versions' not in c for c in found)


def test_list_managed_only_skips_unmanaged_without_reading_them(vault, pki, leaf):
    vault.add('ours', leaf, 'v1', tags=MANAGED)
    vault.add('theirs', pki.hierarchy()['leaf'], 'v1', tags={'owner': 'x'})
    vault.add('untagged', pki.hierarchy()['leaf'], 'v1', tags=None)
    found = make_inventory(vault).list_certificates(managed_only=True, include_versions=True)
    assert [c['name'] for c in found] == ['ours'] and [v['version'] for v in found[0]['versions']] == ['v1']
    assert ('get_certificate', 'theirs') not in vault.calls and ('get_certificate', 'untagged') not in vault.calls


def test_list_skips_a_certificate_deleted_while_listing(vault, leaf):
    vault.add('www', leaf, 'v1', tags=MANAGED)
    vault.add('gone', leaf, 'v1', tags=MANAGED)
    real_get = vault.get_certificate

    def get_certificate(name):
        if name == 'gone':
            raise HttpError(404, 'not found')
        return real_get(name)
    vault.get_certificate = get_certificate
    assert [c['name'] for c in make_inventory(vault).list_certificates()] == ['www']


def test_list_failures_while_paging_are_classified(vault, leaf):
    vault.add('www', leaf, 'v1')
    vault.errors['list_properties_of_certificates'] = HttpError(429, 'Too many requests')
    with pytest.raises(errors.DeployError) as info:
        make_inventory(vault).list_certificates()
    assert info.value.code == errors.THROTTLED and VAULT in info.value.message


def test_a_list_read_failure_for_one_certificate_fails_the_listing(vault, leaf):
    vault.add('www', leaf, 'v1')
    vault.errors['get_certificate'] = HttpError(500, 'Internal error')
    with pytest.raises(errors.DeployError) as info:
        make_inventory(vault).list_certificates()
    assert info.value.code == errors.SERVICE_ERROR and '/certificates/www' in info.value.message


def test_an_empty_vault_lists_nothing(vault):
    assert make_inventory(vault).list_certificates(managed_only=True) == []


def test_only_reads_are_ever_called_and_close_closes(vault, leaf):
    vault.add('www', leaf, 'v1', tags=MANAGED)
    inventory = make_inventory(vault)
    inventory.describe('www', include_versions=True)
    inventory.describe('nothing')
    inventory.list_certificates(include_versions=True)
    inventory.close()
    assert {c[0] for c in vault.calls} <= set(READS) and vault.closed
