# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""deploy_many documents its optional vault_url itself; the rules of the URL are the single-certificate fragment's."""

from __future__ import annotations

import yaml

from ansible_collections.certdeploy.cloud.plugins.doc_fragments import azure_kv
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy_many as many


def test_deploy_many_takes_the_connection_fragment_and_states_the_same_vault_url_rules():
    doc = yaml.safe_load(many.DOCUMENTATION)
    single = yaml.safe_load(azure_kv.ModuleDocFragment.DOCUMENTATION)['options']
    connection = yaml.safe_load(azure_kv.ModuleDocFragment.CONNECTION)['options']
    assert doc['extends_documentation_fragment'] == ['certdeploy.cloud.azure_kv.connection']
    assert 'required' not in doc['options']['vault_url']
    assert doc['options']['vault_url']['description'][1:] == single['vault_url']['description'][1:]
    assert not set(connection) & {'vault_url', 'certificate_name'}
