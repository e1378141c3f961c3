# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import yaml

from ansible_collections.certdeploy.cloud.plugins.doc_fragments.azure_kv import ModuleDocFragment as _KeyVault


def _run_level(documentation):
    """The Key Vault connection options for a module that deploys a list of certificates.

    Built from the azure_kv fragment itself, so the two cannot drift: the certificate name belongs to each
    element of the list, and the vault URL is the default of each element's own.
    """
    doc = yaml.safe_load(documentation)
    del doc['options']['certificate_name']
    vault_url = doc['options']['vault_url']
    vault_url['required'] = False
    vault_url['description'] = [
        'URL of the vault of every element of O(certificates) that gives no C(vault_url) of its own.',
    ] + vault_url['description'][1:]
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


class ModuleDocFragment(object):
    # Connection, identity and transport options of the modules that deploy many certificates in one run.
    DOCUMENTATION = _run_level(_KeyVault.DOCUMENTATION)
