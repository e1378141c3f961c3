# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Each module's argument spec is built once (frontend/keyvault_options.py, frontend/probe.py) and is the one that
the module process, the action plugin's in-process path and deploy_many's list elements all validate with.
(That every action plugin runs one of these modules' main() is tested with the action plugins, in
plugin_utils/test_in_process_action.py: controller code cannot be imported here.)"""

from __future__ import annotations

import importlib

import pytest
import yaml

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import ansible_module, module_standin
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import keyvault_options as specs
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.probe import PROBE

MODULES = 'ansible_collections.certdeploy.cloud.plugins.modules.'

EXPECTED = {
    'azure_kv_certificate_deploy': (specs.DEPLOY, ansible_module.DeployModule),
    'azure_kv_certificate_deploy_many': (specs.DEPLOY_MANY, ansible_module.CertdeployModule),
    'azure_kv_certificate_info': (specs.INFO, ansible_module.CertdeployModule),
    'azure_kv_certificate_request': (specs.REQUEST, ansible_module.CertdeployModule),
    'azure_kv_certificate_merge': (specs.MERGE, ansible_module.CertdeployModule),
    'tls_certificate_probe': (PROBE, ansible_module.CertdeployModule),
}


class Built(Exception):
    def __init__(self, module, kwargs):
        super(Built, self).__init__('built')
        self.module = module
        self.kwargs = kwargs


def _capture(self, *args, **kwargs):
    raise Built(self, kwargs)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_the_module_process_builds_the_spec(name, monkeypatch):
    spec, module_class = EXPECTED[name]
    monkeypatch.setattr(AnsibleModule, '__init__', _capture)
    with pytest.raises(Built) as built:
        importlib.import_module(MODULES + name).main()
    assert built.value.module.__class__ is module_class
    assert built.value.kwargs == dict(spec.module_kwargs(), supports_check_mode=True)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_the_in_process_path_builds_the_same_spec(name, monkeypatch):
    spec, module_class = EXPECTED[name]
    seen = {}

    def capture(self, invocation, module_class=None, **kwargs):
        seen.update(module_class=module_class, kwargs=kwargs)
        raise module_standin.ModuleExit({'captured': True})

    monkeypatch.setattr(module_standin.InProcessModule, '__init__', capture)
    result = module_standin.run_main(importlib.import_module(MODULES + name).main, module_standin.Invocation(name, {}))
    assert result == {'captured': True}
    assert seen == {'module_class': module_class, 'kwargs': dict(spec.module_kwargs(), supports_check_mode=True)}


def test_deploy_many_elements_take_the_single_modules_certificate_options_and_rules():
    element = specs.DEPLOY_MANY.options['certificates']
    assert element['type'] == 'list' and element['elements'] == 'dict' and element['required'] is True
    single = specs.DEPLOY.options
    for name, option in specs.CERTIFICATE.options.items():
        assert element['options'][name] == option == single[name]
    for rule in ('mutually_exclusive', 'required_one_of'):
        assert element[rule] == specs.DEPLOY.rule(rule) == specs.CERTIFICATE.rule(rule) != []
    assert set(element['options']) - specs.CERTIFICATE.names() == {'certificate_name', 'vault_url'}


def test_deploy_many_documents_every_element_option():
    many = importlib.import_module(MODULES + 'azure_kv_certificate_deploy_many')
    documented = yaml.safe_load(many.DOCUMENTATION)['options']['certificates']['suboptions']
    assert set(documented) == set(specs.DEPLOY_MANY.options['certificates']['options'])
