# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""frontend/argspec.py: options and their rules travel together, through merges, changes and nesting."""

from __future__ import annotations

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.argspec import ArgumentSpec

MATERIAL = ArgumentSpec(dict(cert=dict(type='str'), cert_path=dict(type='path'), key=dict(type='str', no_log=True)),
                        mutually_exclusive=[('cert', 'cert_path')], required_one_of=[['cert', 'cert_path']])
TARGET = ArgumentSpec(dict(url=dict(type='str', required=True), name=dict(type='str', required=True)))


def test_merged_keeps_every_option_and_every_rule():
    spec = TARGET.merged(MATERIAL, ArgumentSpec(dict(a=dict(type='bool'), b=dict(type='bool')), required_together=[('a', 'b')]))
    kwargs = spec.module_kwargs()
    assert set(kwargs['argument_spec']) == {'url', 'name', 'cert', 'cert_path', 'key', 'a', 'b'}
    assert kwargs['mutually_exclusive'] == [('cert', 'cert_path')]
    assert kwargs['required_one_of'] == [('cert', 'cert_path')]
    assert kwargs['required_together'] == [('a', 'b')]
    assert 'required_if' not in kwargs and 'required_by' not in kwargs


def test_an_option_defined_twice_is_an_error():
    with pytest.raises(ValueError, match='defined twice: name'):
        TARGET.merged(ArgumentSpec(dict(name=dict(type='str'))))


def test_rules_must_name_options_of_the_spec():
    with pytest.raises(ValueError, match='cert_pth'):
        ArgumentSpec(dict(cert=dict(type='str')), mutually_exclusive=[('cert', 'cert_pth')])
    with pytest.raises(ValueError, match='nope'):
        ArgumentSpec(dict(a=dict(type='str')), required_if=[('a', 'x', ('nope',))])
    with pytest.raises(ValueError, match='other'):
        ArgumentSpec(dict(a=dict(type='str')), required_by={'a': 'other'})
    with pytest.raises(TypeError):
        ArgumentSpec(dict(a=dict(type='str')), mutualy_exclusive=[('a', 'a')])


def test_without_and_with_options_leave_the_original_alone():
    loose = TARGET.without('name').with_options(url=dict(type='str'))
    assert loose.options == {'url': {'type': 'str'}}
    assert TARGET.options['url'] == {'type': 'str', 'required': True} and 'name' in TARGET.options
    with pytest.raises(ValueError):
        MATERIAL.without('cert_path')  # a rule still names it


def test_handed_out_dicts_are_copies():
    kwargs = MATERIAL.module_kwargs()
    kwargs['argument_spec']['cert']['type'] = 'int'
    kwargs['mutually_exclusive'].append(('x', 'y'))
    assert MATERIAL.options['cert']['type'] == 'str' and MATERIAL.rule('mutually_exclusive') == [('cert', 'cert_path')]


def test_as_suboptions_carries_the_rules_into_each_element():
    spec = ArgumentSpec(dict(items=MATERIAL.as_suboptions(type='list', elements='dict', required=True)))
    validator = ArgumentSpecValidator(**spec.module_kwargs())
    good = validator.validate({'items': [{'cert': 'a'}, {'cert_path': '/x'}]})
    assert good.error_messages == []
    both = validator.validate({'items': [{'cert': 'a', 'cert_path': '/x'}]})
    assert 'mutually exclusive' in both.errors.msg
    neither = validator.validate({'items': [{'key': 'k'}]})
    assert 'one of the following is required' in neither.errors.msg


def test_equality_is_by_options_and_rules():
    assert TARGET.merged(MATERIAL) == ArgumentSpec(dict(TARGET.options, **MATERIAL.options),
                                                   mutually_exclusive=[('cert', 'cert_path')],
                                                   required_one_of=[('cert', 'cert_path')])
    assert TARGET.merged(MATERIAL) != ArgumentSpec(dict(TARGET.options, **MATERIAL.options))
