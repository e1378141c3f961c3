# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The input limits the docs state are the ones material/certificate.py enforces.

Each material option of azure_kv_certificate_deploy (azure_kv_certificate_deploy_many refers to them) and the
operator guide's "Input limits" section state the byte limit in MiB and in bytes and, where it applies, the
number of certificates, all derived here from the module's constants: a changed constant fails this test
until the docs say the new value.
"""

from __future__ import annotations

import os
import re

import yaml

from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy as deploy_module

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
MIB = 1024 * 1024


def _size(limit):
    assert limit % MIB == 0, 'the docs state the limits in whole MiB'
    return '%d MiB (%d bytes)' % (limit // MIB, limit)


def test_deploy_module_states_the_limit_of_each_material_option():
    options = yaml.safe_load(deploy_module.DOCUMENTATION)['options']
    text = {name: ' '.join(options[name]['description']) for name in options}
    for name in ('certificate', 'chain', 'private_key'):
        assert _size(m.MAX_PEM_BYTES) in text[name], name
    assert _size(m.MAX_PFX_BYTES) in text['pfx']
    for name in ('certificate', 'chain', 'pfx'):
        assert 'at most %d certificates' % m.MAX_CERTIFICATES in text[name], name
    for name, content in (('certificate_path', 'certificate'), ('chain_path', 'chain'), ('pfx_path', 'pfx')):
        assert 'The limits of O(%s) apply' % content in text[name], name
    assert 'At most %d MiB' % (m.MAX_PEM_BYTES // MIB) in text['private_key_path']
    for name in ('certificate_path', 'chain_path', 'private_key_path', 'pfx_path'):
        assert 'no more of the file than %d MiB and one byte is read' % (m.MAX_PEM_BYTES // MIB) in text[name], name


def test_operator_guide_states_the_limits():
    with open(os.path.join(ROOT, 'docs', 'operator-guide.md'), encoding='utf-8') as handle:
        guide = handle.read()
    section = re.search(r'^## Input limits\n(.*?)^## ', guide, re.M | re.S).group(1)
    rows = dict(re.findall(r'^\| (.+?) \| (.+?) \|$', section, re.M))
    assert rows['`certificate`, `chain`, `private_key` (and their `*_path` files)'] == '%s each' % _size(m.MAX_PEM_BYTES)
    assert rows['`pfx` (decoded), `pfx_path`'] == _size(m.MAX_PFX_BYTES)
    assert rows['certificates in `certificate` and `chain` together, or in one PFX'].startswith('%d ' % m.MAX_CERTIFICATES)
    assert 'error_code: invalid_material' in section
