# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""azure_kv_certificate_info: from module options to a read-only inventory of the vault and back."""

from __future__ import annotations

import os

from .. import errors
from ..targets.azure_kv.inventory import KeyVaultInventory
from .keyvault_options import keyvault_settings


def info_settings(params, env):
    """Key Vault settings from the info module's options; ``certificate_name`` may be None (list the vault)."""
    return keyvault_settings(params, env, name_required=False)


def gather(inventory, params):
    """The module result (without ``changed``) for one name or for the whole vault."""
    name = params.get('certificate_name')
    include_versions = params.get('include_versions', False)
    if name is None:
        return {'certificates': inventory.list_certificates(params.get('managed_only', False), include_versions)}
    result = inventory.describe(name, include_versions)
    result['certificates'] = [result['certificate']] if result['exists'] else []
    return result


def run_info(module, env=None):
    """Answer one info request for a module built with the info argument spec; exits the module.  Never writes."""
    params = module.params
    env = os.environ if env is None else env
    inventory = None
    if params.get('managed_only') and params.get('certificate_name') is not None:
        module.warn('managed_only applies when listing the vault (no certificate_name); with certificate_name it is '
                    'ignored. See certificate.owned instead.')
    try:
        inventory = KeyVaultInventory(info_settings(params, env), env=env)
        result = gather(inventory, params)
    except errors.DeployError as exc:
        if inventory is not None:
            for warning in inventory.warnings:
                module.warn(warning)
            inventory.close()
        module.fail_deploy(exc, changed=False)
        return
    inventory.close()
    for warning in inventory.warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)
