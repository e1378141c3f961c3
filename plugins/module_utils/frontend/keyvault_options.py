# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The options of the Key Vault modules: each module's argument spec with its rules, and options -> KeyVaultSettings.

Every spec is built here, once, from four parts, and shared by the module files, the action plugins (which
run the same ``main()``) and deploy_many's list elements:

- ``CONNECTION``: which vault and certificate, sign-in and transport (the doc fragment certdeploy.cloud.azure_kv);
- ``CERTIFICATE``: one certificate and how it is deployed (material, expectations, tags, behaviour), with the
  rules that allow exactly one way of giving each part of the material;
- ``RUN``: options of a run rather than of a certificate;
- the module's own options.

``DEPLOY`` is CONNECTION + CERTIFICATE + RUN. ``DEPLOY_MANY`` is CONNECTION without ``certificate_name``
(``vault_url`` becoming each element's default) + RUN + a list whose elements are CERTIFICATE plus their own
``certificate_name`` and ``vault_url``: an option added to CERTIFICATE is an option of both deploy modules.
"""

from __future__ import annotations

import os

from .. import errors
from ..engine.model import CHECK_MODE_READ, ON_SOFT_DELETED, ROLLBACK_MODES
from ..targets.azure_kv import config as kv_config
from ..targets.azure_kv import credentials
from ..targets.azure_kv.target import KeyVaultSettings
from .argspec import ArgumentSpec

CONNECTION = ArgumentSpec(dict(
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
))

_PEM_OPTIONS = ('certificate', 'certificate_path', 'private_key', 'private_key_path', 'private_key_passphrase', 'chain',
                'chain_path')

CERTIFICATE = ArgumentSpec(
    dict(
        certificate=dict(type='str'),
        certificate_path=dict(type='path'),
        private_key=dict(type='str', no_log=True),
        private_key_path=dict(type='path', no_log=False),
        private_key_passphrase=dict(type='str', no_log=True),
        chain=dict(type='str'),
        chain_path=dict(type='path'),
        pfx=dict(type='str', no_log=True),
        pfx_path=dict(type='path'),
        pfx_password=dict(type='str', no_log=True),
        copy_from=dict(type='dict', options=dict(
            vault_url=dict(type='str', required=True),
            certificate_name=dict(type='str', required=True),
            version=dict(type='str'),
        )),
        min_days_remaining=dict(type='int'),
        expected_sans=dict(type='list', elements='str'),
        content_type=dict(type='str', default='pkcs12', choices=['pkcs12', 'pem']),
        exportable=dict(type='bool', default=True),
        enabled=dict(type='bool', default=True),
        tags=dict(type='dict', default={}),
        preserve_chain_order=dict(type='bool'),
        chain_root=dict(type='str', default='keep', choices=['keep', 'drop']),
        verify_stored_chain=dict(type='bool', default=True),
        certificate_id=dict(type='str'),
        take_ownership=dict(type='bool', default=False),
        rollback=dict(type='str', default='auto', choices=list(ROLLBACK_MODES)),
        on_soft_deleted=dict(type='str', default='fail', choices=list(ON_SOFT_DELETED)),
        force=dict(type='bool', default=False),
        allow_expired=dict(type='bool', default=False),
        check_mode_read=dict(type='str', default='best_effort', choices=list(CHECK_MODE_READ)),
    ),
    # Exactly one way of giving each part of the material, and one kind of material.
    mutually_exclusive=[
        ('certificate', 'certificate_path'),
        ('private_key', 'private_key_path'),
        ('chain', 'chain_path'),
        ('pfx', 'pfx_path'),
    ] + [(pfx, pem) for pfx in ('pfx', 'pfx_path', 'pfx_password') for pem in _PEM_OPTIONS] + [
        ('copy_from', option) for option in _PEM_OPTIONS + ('pfx', 'pfx_path', 'pfx_password')],
    required_one_of=[('certificate', 'certificate_path', 'pfx', 'pfx_path', 'copy_from')],
)

RUN = ArgumentSpec(dict(
    metrics_file=dict(type='path'),
))

# azure_kv_certificate_deploy: one certificate.
DEPLOY = CONNECTION.merged(CERTIFICATE, RUN)

# azure_kv_certificate_deploy_many. The HTTP connection pool of one SDK client holds 10 connections; more
# threads would only wait for them.
MAX_CONCURRENCY = 10
DEFAULT_CONCURRENCY = 4
# How long after a deploy_many task starts a certificate that was throttled is tried again.
DEFAULT_THROTTLE_RETRY_SECONDS = 600
# The connection options that apply to every element of the list (vault_url: the default of each element's own).
SHARED_CONNECTION = CONNECTION.without('certificate_name').with_options(vault_url=dict(type='str'))
ELEMENT = CERTIFICATE.merged(ArgumentSpec(dict(
    certificate_name=dict(type='str', required=True),
    vault_url=dict(type='str'),
)))
DEPLOY_MANY = SHARED_CONNECTION.merged(RUN, ArgumentSpec(dict(
    certificates=ELEMENT.as_suboptions(type='list', elements='dict', required=True),
    max_concurrency=dict(type='int', default=DEFAULT_CONCURRENCY),
    vault_read=dict(type='str', default='auto', choices=['auto', 'list', 'each']),
    throttle_retry_seconds=dict(type='int', default=DEFAULT_THROTTLE_RETRY_SECONDS),
)))

# azure_kv_certificate_info: one certificate, or (without certificate_name) the whole vault.
INFO = CONNECTION.with_options(certificate_name=dict(type='str')).merged(ArgumentSpec(dict(
    managed_only=dict(type='bool', default=False),
    include_versions=dict(type='bool', default=False),
)))


# azure_kv_certificate_request: a key made in the vault and a pending request for it, from a policy.
KEY_USAGES = ('digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign',
              'cRLSign', 'encipherOnly', 'decipherOnly')
DEFAULT_RENEW_DAYS_BEFORE = 30
OWNERSHIP = ArgumentSpec(dict(
    tags=dict(type='dict', default={}),
    certificate_id=dict(type='str'),
    take_ownership=dict(type='bool', default=False),
))
REQUEST = CONNECTION.merged(OWNERSHIP, RUN, ArgumentSpec(dict(
    subject=dict(type='str', required=True),
    dns_names=dict(type='list', elements='str', default=[]),
    key_type=dict(type='str', default='RSA', choices=['RSA', 'EC']),
    key_size=dict(type='int'),
    curve=dict(type='str', choices=['P-256', 'P-384', 'P-521']),
    hsm=dict(type='bool', default=False),
    exportable=dict(type='bool', default=True),
    reuse_key=dict(type='bool', default=False),
    validity_months=dict(type='int', default=12),
    key_usage=dict(type='list', elements='str', choices=list(KEY_USAGES)),
    extended_key_usage=dict(type='list', elements='str'),
    content_type=dict(type='str', default='pkcs12', choices=['pkcs12', 'pem']),
    replace=dict(type='bool', default=False),
    renew=dict(type='bool', default=False),
    renew_days_before=dict(type='int', default=DEFAULT_RENEW_DAYS_BEFORE),
    switch_from_import=dict(type='bool', default=False),
)))
# azure_kv_certificate_merge: the signed certificate of the pending request, and its chain.
MERGE = CONNECTION.merged(OWNERSHIP, RUN, ArgumentSpec(
    dict(
        certificate=dict(type='str'),
        certificate_path=dict(type='path'),
        chain=dict(type='str'),
        chain_path=dict(type='path'),
        chain_root=dict(type='str', default='keep', choices=['keep', 'drop']),
        verify_stored_chain=dict(type='bool', default=True),
        allow_expired=dict(type='bool', default=False),
    ),
    mutually_exclusive=[('certificate', 'certificate_path'), ('chain', 'chain_path')],
    required_one_of=[('certificate', 'certificate_path')],
))


def preserve_chain_order(params):
    """The preserve_chain_order option resolved: unset means on where the API version supports it (7.6 and later).
    Asking for it on an older API version is a configuration error."""
    wanted = params.get('preserve_chain_order')
    supported = kv_config.preserve_order_supported(params.get('api_version'))
    if wanted and not supported:
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'preserve_chain_order: true needs Key Vault API version %s or later; api_version is %s. Remove api_version '
            '(the SDK default supports it) or preserve_chain_order.' % (kv_config.PRESERVE_ORDER_SINCE, params.get('api_version')))
    return supported if wanted is None else bool(wanted)


def chain_order_warning(params, material):
    """The warning for a chain that Key Vault may reorder (an API version before 7.6), or None."""
    if params.get('preserve_chain_order') is None and material is not None and material.chain \
            and not kv_config.preserve_order_supported(params.get('api_version')):
        return ('api_version %s predates Key Vault API %s: Key Vault may reorder the chain this module ordered leaf -> '
                'root. The stored-chain check accepts another order with a warning. Use API %s or later to keep it.'
                % (params.get('api_version'), kv_config.PRESERVE_ORDER_SINCE, kv_config.PRESERVE_ORDER_SINCE))
    return None


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
        preserve_chain_order=preserve_chain_order(params),
        api_version=params.get('api_version'),
        ca_path=params.get('ca_path'),
        verify_challenge_resource=params.get('verify_challenge_resource', True),
        timeout=params.get('timeout') or 60,
    )
