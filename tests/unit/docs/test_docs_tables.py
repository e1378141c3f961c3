# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The tables the docs give users are checked against what they describe.

- The role's variables: every ``azure_kv_certificate_*`` name in README.md, docs/ and the role's README is a
  variable of ``roles/azure_kv_certificate/meta/argument_specs.yml`` (or the result fact, or a module or test
  target of that name), and every short variable name in the role README's sources table is one too.
- The AWX credential table (docs/awx.md): the variables it says the modules read are exactly the AWX-injected
  ones the credential and cloud code reads, the others are read nowhere, and the cloud names it lists are the
  ones the code accepts.

Only files are read, and the code's variable names are taken from its source text (the modules under test are
the ones the user runs, not a copy of their lists).
"""

from __future__ import annotations

import ast
import glob
import os
import re

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
ROLE = os.path.join(ROOT, 'roles', 'azure_kv_certificate')
KV = os.path.join(ROOT, 'plugins', 'module_utils', 'targets', 'azure_kv')
PREFIX = 'azure_kv_certificate_'
# Names with the prefix that are not role variables: the fact the role sets, the variables the issue entry point
# hands to the user's sign step and the facts that step sets, and modules and test targets.
NOT_VARIABLES = {'azure_kv_certificate_result', 'azure_kv_certificate_deploy', 'azure_kv_certificate_deploy_many',
                 'azure_kv_certificate_info', 'azure_kv_certificate_role', 'azure_kv_certificate_role_args',
                 'azure_kv_certificate_csr', 'azure_kv_certificate_csr_sha256', 'azure_kv_certificate_signed',
                 'azure_kv_certificate_signed_chain', 'azure_kv_certificate_request', 'azure_kv_certificate_merge',
                 'azure_kv_certificate_request_akv', 'azure_kv_certificate_issue_akv'}


def read(path):
    with open(path, encoding='utf-8') as handle:
        return handle.read()


def role_variables():
    specs = yaml.safe_load(read(os.path.join(ROLE, 'meta', 'argument_specs.yml')))['argument_specs']
    return set(name for entry in specs.values() for name in entry['options'])


def test_every_role_variable_the_docs_name_exists():
    variables = role_variables()
    assert len(variables) > 40  # the file was read
    unknown = []
    for path in [os.path.join(ROOT, 'README.md'), os.path.join(ROLE, 'README.md')] + sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md'))):
        for number, line in enumerate(read(path).splitlines(), 1):
            for name in re.findall(r'\b(%s\w+)' % PREFIX, line):
                if name not in variables and name not in NOT_VARIABLES:
                    unknown.append('%s:%d: %s' % (os.path.relpath(path, ROOT), number, name))
    assert unknown == []


def test_the_role_readme_sources_table_names_role_variables():
    variables = role_variables()
    text = read(os.path.join(ROLE, 'README.md'))
    rows = [line for line in text.splitlines() if re.match(r'^\| `(files|pfx|url|remote|key_vault)` \|', line)]
    assert [row.split('`')[1] for row in rows] == ['files', 'pfx', 'url', 'remote', 'key_vault']
    named = set()
    for row in rows:
        cell = row.split('|')[2]
        for name in re.findall(r'`([a-z_]+)(?:[:`])', cell):
            named.add(name)
    unknown = sorted(name for name in named if PREFIX + name not in variables)
    assert named and unknown == []
    source = yaml.safe_load(read(os.path.join(ROLE, 'meta', 'argument_specs.yml')))['argument_specs']['main']['options']
    assert sorted(source[PREFIX + 'source']['choices']) == sorted(row.split('`')[1] for row in rows)


def string_constants(path):
    """Every string literal of a Python file (the environment variable names the code reads are among them)."""
    tree = ast.parse(read(path), path)
    return set(node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str))


def awx_table():
    text = read(os.path.join(ROOT, 'docs', 'awx.md'))
    start = text.index('| AWX field | environment variable | read by the modules |')
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith('|'):
            break
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        rows.append((cells[0], re.findall(r'`(AZURE_[A-Z_]+)`', cells[1]), cells[2]))
    return rows


def test_the_awx_credential_table_matches_the_code():
    rows = awx_table()
    assert len(rows) >= 5
    read_by_code = string_constants(os.path.join(KV, 'credentials.py')) | string_constants(os.path.join(KV, 'config.py'))
    said_read = set(name for _field, names, answer in rows if answer.startswith('yes') for name in names)
    said_unread = set(name for _field, names, answer in rows if answer.startswith('no') for name in names)
    assert said_read and said_unread
    assert sorted(said_read - read_by_code) == []       # "yes": the code reads it
    assert sorted(said_unread & read_by_code) == []     # "no": nothing reads it
    # Every variable AWX's Azure credential injects that the code reads is in the table.
    awx_names = {'AZURE_SUBSCRIPTION_ID', 'AZURE_CLIENT_ID', 'AZURE_SECRET', 'AZURE_TENANT', 'AZURE_CLOUD_ENVIRONMENT',
                 'AZURE_AD_USER', 'AZURE_PASSWORD'}
    assert sorted((awx_names & read_by_code) - said_read) == []
    assert sorted(awx_names - said_read - said_unread) == []


def test_the_awx_cloud_names_are_the_ones_the_code_accepts():
    cloud_row = [answer for _field, names, answer in awx_table() if 'AZURE_CLOUD_ENVIRONMENT' in names]
    assert len(cloud_row) == 1
    documented = set(re.findall(r'`(Azure[A-Za-z]+)`', cloud_row[0]))
    tree = ast.parse(read(os.path.join(KV, 'config.py')))
    accepted = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'AWX_CLOUD_NAMES' for t in node.targets):
            accepted = dict((key.value, value.value) for key, value in zip(node.value.keys, node.value.values))
    assert accepted, 'config.AWX_CLOUD_NAMES not found'
    # The code compares without case, spaces or underscores, and takes a few aliases besides: every documented name
    # is accepted, and the documented names reach every cloud the code knows by name.
    documented = set(name.lower() for name in documented)
    assert sorted(documented - set(accepted)) == []
    assert set(accepted[name] for name in documented) == set(accepted.values())
