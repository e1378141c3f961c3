# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import credentials

AUTHORITY = 'login.microsoftonline.us'


class Recorder(object):
    """Stands in for the azure.identity module and records what would be constructed."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def construct(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return name
        return construct


def build(mode, env, **options):
    identity = Recorder()
    settings = credentials.resolve(mode, AUTHORITY, env=env, **options)
    credentials.build_credential(settings, identity, connection_verify='/tmp/ca.pem')
    assert len(identity.calls) == 1
    return identity.calls[0]


SECRET_ENV = {'AZURE_TENANT_ID': 't1', 'AZURE_CLIENT_ID': 'c1', 'AZURE_CLIENT_SECRET': 's1'}
AWX_ENV = {'AZURE_TENANT': 't2', 'AZURE_CLIENT_ID': 'c2', 'AZURE_SECRET': 's2'}


def test_client_secret_from_standard_env():
    name, args, kwargs = build('client_secret', SECRET_ENV)
    assert name == 'ClientSecretCredential' and args == ('t1', 'c1', 's1')
    assert kwargs == {'authority': AUTHORITY, 'connection_verify': '/tmp/ca.pem'}


def test_client_secret_from_awx_env():
    name, args, dummy = build('client_secret', AWX_ENV)
    assert name == 'ClientSecretCredential' and args == ('t2', 'c2', 's2')


def test_standard_names_win_over_awx_names():
    dummy, args, dummy = build('client_secret', dict(AWX_ENV, **SECRET_ENV))
    assert args == ('t1', 'c1', 's1')


def test_options_win_over_env():
    args = build('client_secret', SECRET_ENV, tenant_id='opt-tenant', client_id='opt-client')[1]
    assert args == ('opt-tenant', 'opt-client', 's1')


def test_client_secret_missing_pieces_are_named_without_values():
    with pytest.raises(errors.DeployError) as info:
        credentials.resolve('client_secret', AUTHORITY, env={'AZURE_CLIENT_ID': 'c'})
    assert info.value.code == errors.AUTH_FAILED
    assert 'tenant_id' in info.value.message and 'AZURE_CLIENT_SECRET' in info.value.message
    assert 'client_id' not in info.value.message.split('needs')[1].split(';')[0]


def test_managed_identity_system_and_user_assigned():
    assert build('managed_identity', {}) == ('ManagedIdentityCredential', (), {'connection_verify': '/tmp/ca.pem'})
    kwargs = build('managed_identity', {}, client_id='uami')[2]
    assert kwargs['client_id'] == 'uami'


def test_managed_identity_ignores_a_secret_in_the_environment():
    assert build('managed_identity', SECRET_ENV)[0] == 'ManagedIdentityCredential'


def test_workload_identity():
    env = {'AZURE_TENANT_ID': 't', 'AZURE_CLIENT_ID': 'c', 'AZURE_FEDERATED_TOKEN_FILE': '/var/run/token'}
    name, dummy, kwargs = build('workload_identity', env)
    assert name == 'WorkloadIdentityCredential'
    assert kwargs['token_file_path'] == '/var/run/token' and kwargs['authority'] == AUTHORITY
    assert (kwargs['tenant_id'], kwargs['client_id']) == ('t', 'c')


def test_workload_identity_needs_token_file():
    with pytest.raises(errors.DeployError) as info:
        credentials.resolve('workload_identity', AUTHORITY, env={'AZURE_TENANT_ID': 't', 'AZURE_CLIENT_ID': 'c'})
    assert 'AZURE_FEDERATED_TOKEN_FILE' in info.value.message


def test_default_prefers_a_complete_secret_config_incl_awx_names():
    assert build('default', AWX_ENV)[0] == 'ClientSecretCredential'


def test_default_falls_back_to_default_azure_credential():
    name, dummy, kwargs = build('default', {'AZURE_TENANT_ID': 't'}, client_id='uami')
    assert name == 'DefaultAzureCredential'
    assert kwargs['authority'] == AUTHORITY
    assert kwargs['managed_identity_client_id'] == 'uami' and kwargs['workload_identity_client_id'] == 'uami'
    assert kwargs['workload_identity_tenant_id'] == 't'
    assert kwargs['exclude_interactive_browser_credential'] is True


def test_repr_hides_the_secret():
    settings = credentials.resolve('client_secret', AUTHORITY, env=SECRET_ENV)
    assert 's1' not in repr(settings) and '<set>' in repr(settings)


def test_real_azure_identity_types(monkeypatch):
    from azure import identity  # pylint: disable=import-outside-toplevel
    for name in ('AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_FEDERATED_TOKEN_FILE', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT'):
        monkeypatch.delenv(name, raising=False)
    settings = credentials.resolve('client_secret', AUTHORITY, env=SECRET_ENV)
    assert isinstance(credentials.build_credential(settings, identity), identity.ClientSecretCredential)
    settings = credentials.resolve('managed_identity', AUTHORITY, client_id='uami', env={})
    assert isinstance(credentials.build_credential(settings, identity), identity.ManagedIdentityCredential)
    settings = credentials.resolve('default', AUTHORITY, env={})
    assert isinstance(credentials.build_credential(settings, identity), identity.DefaultAzureCredential)


def test_custom_authority_skips_instance_discovery():
    identity = Recorder()
    settings = credentials.resolve('client_secret', 'https://127.0.0.1:9443', env=SECRET_ENV)
    credentials.build_credential(settings, identity)
    assert identity.calls[0][2] == {'authority': 'https://127.0.0.1:9443', 'disable_instance_discovery': True}
    identity = Recorder()
    credentials.build_credential(credentials.resolve('client_secret', AUTHORITY, env=SECRET_ENV), identity)
    assert 'disable_instance_discovery' not in identity.calls[0][2]


class Refusing(object):
    def get_token(self, *scopes, **kwargs):
        raise ConnectionError("HTTPConnection(host='127.0.0.1', port=9): Connection refused")

    def get_token_info(self, *scopes, **kwargs):
        raise TimeoutError('token endpoint timed out')


def test_token_failures_are_sign_in_failures():
    guard = credentials.guarded(Refusing())
    with pytest.raises(errors.DeployError) as info:
        guard.get_token('https://vault.azure.net/.default')
    # No connection to the identity endpoint: unreachable, naming the credential and the endpoint, the cause once.
    assert info.value.code == errors.UNREACHABLE and 'Refusing' in info.value.message
    assert '127.0.0.1:9' in info.value.message and info.value.message.count('refused') == 1
    with pytest.raises(errors.DeployError) as info:
        guard.get_token_info('https://vault.azure.net/.default')
    assert info.value.code == errors.AUTH_FAILED and 'Refusing' in info.value.message and 'timed out' in info.value.message


def test_guard_keeps_the_token_protocol_of_the_credential():
    class Old(object):
        def get_token(self, *scopes, **kwargs):
            return 'token'
    assert credentials.guarded(Old()).get_token('s') == 'token'
    assert not hasattr(credentials.guarded(Old()), 'get_token_info')
    assert hasattr(credentials.guarded(Refusing()), 'get_token_info')
