# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The run-level connection fragment of the deploy_many module is the azure_kv fragment, minus the certificate name."""

from __future__ import annotations

import yaml

from ansible_collections.certdeploy.cloud.plugins.doc_fragments import azure_kv, azure_kv_many


def test_the_many_fragment_is_the_key_vault_fragment_without_the_name():
    single = yaml.safe_load(azure_kv.ModuleDocFragment.DOCUMENTATION)
    many = yaml.safe_load(azure_kv_many.ModuleDocFragment.DOCUMENTATION)
    assert set(many['options']) == set(single['options']) - {'certificate_name'}
    for name, option in many['options'].items():
        if name != 'vault_url':
            assert option == single['options'][name], name
    assert 'required' not in many['options']['vault_url']
    assert many['options']['vault_url']['description'][1:] == single['options']['vault_url']['description'][1:]
    assert dict(many, options=None) == dict(single, options=None)
