# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AnsibleModule wrapper shared by the collection's modules.

It guarantees the error contract (engine/errors.py) at the Ansible boundary:
every failure carries an ``error_code`` (argument-spec failures detected by
AnsibleModule itself become ``invalid_config``), a missing library is
reported with ``missing_required_lib``, and engine errors never surface as
tracebacks.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ..engine import errors
from ..targets.azure_kv import config as kv_config
from ..targets.azure_kv import credentials
from ..targets.azure_kv.target import KeyVaultSettings
from . import inprocess

# Options every Key Vault module takes (documented by the doc fragment certdeploy.cloud.azure_kv).
CONNECTION_ARGS = dict(
    vault_url=dict(type='str', required=True),
    certificate_name=dict(type='str', required=True),
    cloud=dict(type='str', choices=list(kv_config.CLOUD_CHOICES)),
    authority_host=dict(type='str'),
    credential_mode=dict(type='str', default='default', choices=list(credentials.MODES)),
    client_id=dict(type='str'),
    tenant_id=dict(type='str'),
    api_version=dict(type='str'),
    ca_path=dict(type='path'),
    verify_challenge_resource=dict(type='bool', default=True),
    timeout=dict(type='int', default=60),
)


# The documented shape holds on failures too: a rollback block, attempted or not.
NO_ROLLBACK = {'attempted': False, 'succeeded': False, 'version': None, 'reason': None}


class CertdeployModule(AnsibleModule):
    """AnsibleModule whose failures always carry an ``error_code``.

    ``FAILURE_DEFAULTS`` are added to every failure that lacks them: the deploy
    module's documented rollback block; read-only modules set it to ``{}``.
    """

    FAILURE_DEFAULTS = {'rollback': NO_ROLLBACK}

    def __new__(cls, *args, **kwargs):
        # Inside the controller's worker (the action plugin's in-process path) the same constructor call
        # yields the in-process stand-in, validated with the same argument spec (frontend/inprocess.py).
        if inprocess.CURRENT.get() is not None:
            return inprocess.build(cls, *args, **kwargs)
        return super(CertdeployModule, cls).__new__(cls)

    def __init__(self, *args, **kwargs):
        self._in_argspec = True
        super(CertdeployModule, self).__init__(*args, **kwargs)
        self._in_argspec = False

    def fail_json(self, msg, **kwargs):
        if getattr(self, '_in_argspec', False):
            kwargs.setdefault('error_code', errors.INVALID_CONFIG)
        for key, value in self.FAILURE_DEFAULTS.items():
            kwargs.setdefault(key, dict(value))
        super(CertdeployModule, self).fail_json(msg=msg, **kwargs)

    def fail_deploy(self, exc, **result):
        """Fail with a DeployError: code, message and any partial result it carries."""
        result.update(exc.details.get('result') or {})
        result['error_code'] = exc.code
        msg = exc.message
        if exc.code == errors.MISSING_DEPENDENCY and exc.details.get('package'):
            msg = missing_required_lib(exc.details['package'])
            result['exception'] = exc.details.get('exception')
        if exc.details.get('action'):
            result['missing_action'] = exc.details['action']
        for warning in exc.details.get('warnings') or []:
            self.warn(warning)
        self.fail_json(msg=msg, **result)


class ReadOnlyModule(CertdeployModule):
    """CertdeployModule for modules that never write (info, probe): failures carry ``error_code`` but no rollback block."""

    FAILURE_DEFAULTS = {}


def keyvault_settings(params, env=None, name_required=True):
    """Map module options to validated Key Vault settings (pure apart from reading ``env``).

    With ``name_required=False`` a missing ``certificate_name`` is allowed (the settings then name none).
    """
    env = os.environ if env is None else env
    cloud = params.get('cloud') or kv_config.cloud_from_env(env)
    address = kv_config.parse_vault_url(params['vault_url'], cloud)
    mode = params.get('credential_mode') or 'default'
    authority = kv_config.authority_host_for(address.cloud, params.get('authority_host'), env,
                                             required=mode != 'managed_identity')
    name = params.get('certificate_name')
    if name is not None or name_required:
        name = kv_config.check_certificate_name(name)
    if params.get('timeout') is not None and params['timeout'] <= 0:
        raise errors.DeployError(errors.INVALID_CONFIG, 'timeout must be a positive number of seconds.')
    return KeyVaultSettings(
        address=address,
        certificate_name=name,
        authority_host=authority,
        credential_mode=mode,
        tenant_id=params.get('tenant_id'),
        client_id=params.get('client_id'),
        content_type=params.get('content_type') or 'pkcs12',
        exportable=params.get('exportable', True),
        preserve_chain_order=params.get('preserve_chain_order', False),
        api_version=params.get('api_version'),
        ca_path=params.get('ca_path'),
        verify_challenge_resource=params.get('verify_challenge_resource', True),
        timeout=params.get('timeout') or 60,
    )
