# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import tags
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import config


def fails(func, *args, **kwargs):
    with pytest.raises(errors.DeployError) as info:
        func(*args, **kwargs)
    assert info.value.code == errors.INVALID_CONFIG
    return info.value.message


@pytest.mark.parametrize('url,expected,cloud', [
    ('https://contoso-tls.vault.azure.net', 'https://contoso-tls.vault.azure.net', 'public'),
    ('https://contoso-tls.vault.azure.net/', 'https://contoso-tls.vault.azure.net', 'public'),
    ('https://contoso-tls.vault.azure.net:443/', 'https://contoso-tls.vault.azure.net', 'public'),
    ('https://Contoso-TLS.Vault.Azure.NET', 'https://contoso-tls.vault.azure.net', 'public'),
    ('  https://kv1.vault.azure.net/  ', 'https://kv1.vault.azure.net', 'public'),
    ('https://gov-kv.vault.usgovcloudapi.net/', 'https://gov-kv.vault.usgovcloudapi.net', 'usgov'),
    ('https://cn-kv.vault.azure.cn', 'https://cn-kv.vault.azure.cn', 'china'),
])
def test_vault_url_normalisation_and_cloud_inference(url, expected, cloud):
    address = config.parse_vault_url(url)
    assert (address.url, address.cloud) == (expected, cloud)
    assert address.name == expected.split('//')[1].split('.')[0]


@pytest.mark.parametrize('url,fragment', [
    ('http://contoso.vault.azure.net', 'https://'),
    ('contoso.vault.azure.net', 'https://'),
    ('https://contoso.vault.azure.net/certificates/foo', 'path'),
    ('https://contoso.vault.azure.net/?x=1', 'query'),
    ('https://contoso.vault.azure.net/#frag', 'fragment'),
    ('https://user@contoso.vault.azure.net', 'user information'),
    ('https://user:pw@contoso.vault.azure.net', 'user information'),
    ('https://contoso.vault.azure.net:8443', 'port'),
    ('https://contoso.example.com', 'cloud: custom'),
    ('https://', 'no host'),
    ('', 'empty'),
    ('https://contoso.vault.azure.net:99999', 'not a valid URL'),
])
def test_vault_url_rejections(url, fragment):
    assert fragment in fails(config.parse_vault_url, url)


@pytest.mark.parametrize('name,problem', [
    ('ab', '3 to 24'),
    ('a' * 25, '3 to 24'),
    ('1vault', 'start with a letter'),
    ('vault-', 'end with a letter or digit'),
    ('va--ult', 'consecutive hyphens'),
    ('va_ult', 'letters, digits and hyphens'),
    ('a.b', 'single DNS label'),
])
def test_bad_vault_names(name, problem):
    assert problem in fails(config.parse_vault_url, 'https://%s.vault.azure.net' % name)


def test_explicit_cloud_must_match_suffix():
    msg = fails(config.parse_vault_url, 'https://kv1.vault.azure.net', 'usgov')
    assert 'usgov' in msg and 'public' in msg


def test_custom_cloud_accepts_emulator_hosts():
    assert config.parse_vault_url('https://127.0.0.1:8443/', 'custom').url == 'https://127.0.0.1:8443'
    assert config.parse_vault_url('https://Default.Localhost:443', 'custom').url == 'https://default.localhost'
    assert config.parse_vault_url('https://[::1]:8443', 'custom').url == 'https://[::1]:8443'
    assert config.parse_vault_url('https://kv.vault.azure.net', 'custom').name is None
    assert 'path' in fails(config.parse_vault_url, 'https://127.0.0.1:8443/vault', 'custom')


@pytest.mark.parametrize('name', ['www-example-com', 'a', 'A1-b2', 'x' * 127])
def test_good_certificate_names(name):
    assert config.check_certificate_name(name) == name


@pytest.mark.parametrize('name,suggestion', [
    ('www.example.com', 'www-example-com'),
    ('*.example.com', 'wildcard-example-com'),
    ('api_internal', 'api-internal'),
])
def test_dns_style_names_get_a_suggestion(name, suggestion):
    assert 'Try certificate_name: %s' % suggestion in fails(config.check_certificate_name, name)


@pytest.mark.parametrize('name', ['', 'x' * 128, 'ü-name', 'a b'])
def test_bad_certificate_names(name):
    fails(config.check_certificate_name, name)


@pytest.mark.parametrize('name', ['www-example-com\n', 'www-example-com\r\n', '\nwww-example-com', 'x' * 127 + '\n'])
def test_certificate_name_with_a_newline_is_refused(name):
    """A YAML folded scalar (``>``) ends in a newline; a ``$`` anchor would match before it and let the name through."""
    assert 'not a valid Key Vault object name' in fails(config.check_certificate_name, name)


@pytest.mark.parametrize('name', ['kv1\n', 'contoso-tls\n'])
def test_vault_name_with_a_trailing_newline_is_refused(name):
    assert 'start with a letter' in fails(config.check_vault_name, name)


def test_no_suggestion_when_mapping_cannot_help():
    assert 'Try' not in fails(config.check_certificate_name, 'ü')


@pytest.mark.parametrize('cloud,host', [('public', 'login.microsoftonline.com'), ('usgov', 'login.microsoftonline.us'),
                                        ('china', 'login.chinacloudapi.cn')])
def test_authority_hosts(cloud, host):
    assert config.authority_host_for(cloud) == host


def test_custom_authority_host():
    assert config.authority_host_for('custom', 'login.example.internal') == 'https://login.example.internal'
    assert config.authority_host_for('custom', None, {'AZURE_AUTHORITY_HOST': 'https://127.0.0.1:9443/'}) == 'https://127.0.0.1:9443'
    assert 'authority_host' in fails(config.authority_host_for, 'custom')
    assert config.authority_host_for('custom', required=False) is None
    assert 'https' in fails(config.authority_host_for, 'custom', 'http://login.example.internal')
    assert 'only used with cloud: custom' in fails(config.authority_host_for, 'public', 'https://login.example.internal')


@pytest.mark.parametrize('value,cloud', [('AzureCloud', 'public'), ('AzureUSGovernment', 'usgov'), ('AzureChinaCloud', 'china'),
                                         ('', None)])
def test_awx_cloud_environment(value, cloud):
    assert config.cloud_from_env({'AZURE_CLOUD_ENVIRONMENT': value}) == cloud


def test_awx_cloud_environment_unknown():
    assert 'AZURE_CLOUD_ENVIRONMENT' in fails(config.cloud_from_env, {'AZURE_CLOUD_ENVIRONMENT': 'AzureGermanCloud'})


# -- tags -------------------------------------------------------------------------

def test_user_tags_are_stringified():
    assert tags.normalise_user_tags({'a': 1, 'b': True, 'c': 'x', 'd': None, 'e': 1.5}) == \
        {'a': '1', 'b': 'true', 'c': 'x', 'd': '', 'e': '1.5'}


@pytest.mark.parametrize('key', ['certdeploy-managed-by', 'certdeploy-certificate-id', 'certdeploy-rollback-of',
                                 'CertDeploy-Anything'])
def test_reserved_tag_keys(key):
    assert 'reserved' in fails(tags.normalise_user_tags, {key: 'x'})


def test_nested_tag_values_rejected():
    assert 'must be strings' in fails(tags.normalise_user_tags, {'a': {'b': 1}})


def test_desired_tags_always_carry_provenance():
    wanted = tags.desired_tags({'env': 'prod'}, 'cert-42')
    assert wanted == {'env': 'prod', 'certdeploy-managed-by': 'certdeploy', 'certdeploy-certificate-id': 'cert-42'}
    assert tags.is_managed(wanted) and not tags.is_managed({'env': 'prod'})


def test_rollback_tags_mark_the_failed_version():
    out = tags.rollback_tags({'env': 'prod'}, 'v2')
    assert out['certdeploy-rollback-of'] == 'v2' and tags.is_managed(out)
    assert tags.comparable(out) == {'env': 'prod', 'certdeploy-managed-by': 'certdeploy'}


# -- IPv6 hosts of a custom cloud ------------------------------------------------------

@pytest.mark.parametrize('url,expected', [
    ('https://[::1]:8443/', 'https://[::1]:8443'),
    ('https://[::1]:8443', 'https://[::1]:8443'),
    ('https://[::1]/', 'https://[::1]'),
    ('https://[::1]', 'https://[::1]'),
    ('https://[::1]:443', 'https://[::1]'),
    ('https://[2001:DB8::10]:443/', 'https://[2001:db8::10]'),
    ('https://[2001:db8::10]:9443', 'https://[2001:db8::10]:9443'),
])
def test_ipv6_vault_url_keeps_its_brackets_and_round_trips(url, expected):
    address = config.parse_vault_url(url, 'custom')
    assert address.url == expected
    again = config.parse_vault_url(address.url, 'custom')
    assert again.url == address.url and again.cloud == 'custom' and again.name is None


@pytest.mark.parametrize('url', ['https://127.0.0.1:8443/', 'https://kv.emulator.internal:443', 'https://[::ffff:10.0.0.1]'])
def test_custom_vault_url_round_trips(url):
    address = config.parse_vault_url(url, 'custom')
    assert config.parse_vault_url(address.url, 'custom').url == address.url


def test_ipv6_vault_url_reaches_the_sdk_and_the_ids_with_its_brackets():
    """The URL the CertificateClient is built with, the ids the target predicts and its metric labels."""
    from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import keyvault_settings
    from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv.target import KeyVaultTarget
    settings = keyvault_settings({'vault_url': 'https://[::1]/', 'cloud': 'custom', 'certificate_name': 'www',
                                  'authority_host': 'https://[::1]:9443', 'verify_challenge_resource': False}, env={})
    target = KeyVaultTarget(settings, env={})
    try:
        assert target.connection.client().vault_url == 'https://[::1]'  # the real SDK client; no request is sent
        assert target.predicted_ids() == {'versionless_id': 'https://[::1]/certificates/www',
                                          'versionless_secret_id': 'https://[::1]/secrets/www'}
        assert target.labels['vault'] == 'https://[::1]'
    finally:
        target.close()


@pytest.mark.parametrize('api_version,supported', [
    (None, True), ('7.6', True), ('7.6-preview.2', True), ('7.10', True), ('2025-07-01', True), ('2026-04-01', True),
    ('7.5', False), ('7.0', False), ('2016-10-01', False), ('7.6.1', False), ('latest', False), ('', False)])
def test_preserve_order_is_supported_from_api_7_6(api_version, supported):
    assert config.preserve_order_supported(api_version) is supported


def test_preserve_chain_order_resolution_and_its_warning(pki):
    from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import keyvault_options as options
    from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
    h = pki.hierarchy()
    with_chain, alone = m.Material(h['leaf'], h['key'], [h['inter']]), m.Material(h['leaf'], h['key'], [])
    assert options.preserve_chain_order({}) is True
    assert options.preserve_chain_order({'api_version': '7.5'}) is False
    assert options.preserve_chain_order({'api_version': '7.6', 'preserve_chain_order': False}) is False
    assert options.preserve_chain_order({'api_version': '7.5', 'preserve_chain_order': False}) is False
    with pytest.raises(errors.DeployError) as info:
        options.preserve_chain_order({'api_version': '7.5', 'preserve_chain_order': True})
    assert info.value.code == errors.INVALID_CONFIG and '7.6' in info.value.message
    assert 'may reorder' in options.chain_order_warning({'api_version': '7.5'}, with_chain)
    assert options.chain_order_warning({'api_version': '7.5'}, alone) is None  # nothing to reorder
    assert options.chain_order_warning({'api_version': '7.5', 'preserve_chain_order': False}, with_chain) is None  # asked for
    assert options.chain_order_warning({'api_version': '7.6'}, with_chain) is None
    settings = options.keyvault_settings({'vault_url': 'https://contoso.vault.azure.net', 'certificate_name': 'www',
                                          'api_version': '7.4'}, env={})
    assert settings.preserve_chain_order is False
