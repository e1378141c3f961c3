# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every Key Vault permission the collection names is one Azure knows.

tests/unit/data/keyvault_permissions.yml holds Microsoft's published Key Vault RBAC actions and data actions and the
vault access-policy permission names (its header names the sources).  This test reads README.md, docs/, plugins/,
roles/ and examples/ and checks against those lists:

- every ``Microsoft.KeyVault/...`` string, and every short form of a vault action (``certificates/read``,
  ``.../secrets/getSecret/action``); a ``*`` wildcard must match at least one listed action;
- every custom-role JSON block (```json fences with Actions or DataActions): it parses, its DataActions are data
  actions and its Actions are control-plane actions;
- the permissions given to ``az keyvault set-policy`` and the access-policy permissions the docs name as
  ``certificate **get**`` or ``secret `get```;
- every data action the Key Vault adapter can name in ``missing_action`` (``faults.ACTIONS``, read from its source
  text) is a published data action and appears in docs/permissions.md, the page that says which step needs it.

Only files are read; nothing is imported from the collection.
"""

from __future__ import annotations

import ast
import json
import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
DATA = os.path.join(ROOT, 'tests', 'unit', 'data', 'keyvault_permissions.yml')
FAULTS = os.path.join(ROOT, 'plugins', 'module_utils', 'targets', 'azure_kv', 'faults.py')
PERMISSIONS_PAGE = os.path.join(ROOT, 'docs', 'permissions.md')
SCANNED_DIRS = ('docs', 'plugins', 'roles', 'examples')
SCANNED_FILES = ('README.md',)
TEXT_SUFFIXES = ('.md', '.py', '.yml', '.yaml', '.json', '.txt', '.rst', '.sh', '.j2')

# Not a path component (a file path such as .../data-plane/Microsoft.KeyVault/stable/... is no action).
FULL = re.compile(r'(?<![\w/.])Microsoft\.KeyVault/[A-Za-z0-9_.*/-]+')
# A vault action without its provider prefix: not part of a longer path or URL (a REST path such as
# /secrets/{name} is preceded by a slash), optionally written as .../certificates/import/action.
SHORT = re.compile(r'(?<![\w/.{}<>-])(?:\.\.\./)?'
                   r'((?:certificates|secrets|keys|deletedCertificates|deletedSecrets|deletedKeys|certificatecas|'
                   r'certificatecontacts|storageaccounts|keyrotationpolicies)/[A-Za-z*]+(?:/[A-Za-z*]+)*)', re.I)
JSON_FENCE = re.compile(r'^```json[^\n]*\n(.*?)^```', re.M | re.S)
SET_POLICY = re.compile(r'az keyvault set-policy\b((?:[^\n]*\\\n)*[^\n]*)')
POLICY_FLAG = re.compile(r'--(key|secret|certificate|storage)-permissions((?:\s+[A-Za-z]+)+)')
# "certificate **get**", "certificate **list** and **get**", "secret `get`", "certificate `get import update`".
NAMED_PERMISSION = re.compile(r'\b(certificate|secret|key)s? ((?:\*\*[A-Za-z]+\*\*(?:,? (?:and |or )?)?)+|`[a-z ]+`)')
ROLE_KEYS = {
    'actions': 'control_plane_actions', 'notactions': 'control_plane_actions',
    'dataactions': 'data_actions', 'notdataactions': 'data_actions',
}


def load_permissions():
    with open(DATA) as f:
        data = yaml.safe_load(f)
    rbac = {kind: sorted(set(a.lower() for a in actions)) for kind, actions in data['rbac'].items()}
    policy = {kind: set(p.lower() for p in names) for kind, names in data['access_policy'].items()}
    return rbac, policy


RBAC, POLICY = load_permissions()
ALL_ACTIONS = sorted(set(RBAC['control_plane_actions']) | set(RBAC['data_actions']))


def scanned_files():
    paths = [os.path.join(ROOT, name) for name in SCANNED_FILES]
    for top in SCANNED_DIRS:
        for root, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(d for d in dirs if d != '__pycache__')
            paths.extend(os.path.join(root, name) for name in sorted(files) if name.endswith(TEXT_SUFFIXES))
    return [p for p in paths if os.path.isfile(p)]


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def where(path, text, offset):
    return '%s:%d' % (os.path.relpath(path, ROOT), text.count('\n', 0, offset) + 1)


def known(action, listed):
    """True when ``action`` is listed, or, with a ``*``, matches at least one listed action."""
    action = action.lower()
    if '*' not in action:
        return action in listed
    pattern = re.compile('^' + '.*'.join(re.escape(part) for part in action.split('*')) + '$')
    return any(pattern.match(a) for a in listed)


def named_actions(path, text):
    """(where, action as written, full action) for every Key Vault action named in ``text``."""
    found = []
    for match in FULL.finditer(text):
        action = match.group(0).rstrip('.')
        found.append((where(path, text, match.start()), action, action))
    for match in SHORT.finditer(text):
        short = match.group(1)
        found.append((where(path, text, match.start()), match.group(0), 'Microsoft.KeyVault/vaults/' + short))
    return found


def role_actions(document):
    """(key, action) for every Actions / DataActions / NotActions / NotDataActions entry in a role definition."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            kind = ROLE_KEYS.get(key.lower())
            if kind is not None and isinstance(value, list):
                found.extend((key, kind, action) for action in value)
            else:
                found.extend(role_actions(value))
    elif isinstance(document, list):
        for item in document:
            found.extend(role_actions(item))
    return found


def json_role_blocks():
    """(where, block text) for every ```json fence in a Markdown file that defines actions."""
    blocks = []
    for path in scanned_files():
        if not path.endswith('.md'):
            continue
        text = read(path)
        for match in JSON_FENCE.finditer(text):
            if re.search(r'"(?:Not)?(?:Data)?Actions"\s*:', match.group(1), re.I):
                blocks.append((where(path, text, match.start()), match.group(1)))
    return blocks


def policy_permissions(path, text):
    """(where, kind, permission) for the access-policy permissions ``text`` names."""
    found = []
    for command in SET_POLICY.finditer(text):
        for flag in POLICY_FLAG.finditer(command.group(1)):
            kind = {'key': 'keys', 'secret': 'secrets', 'certificate': 'certificates', 'storage': 'storage'}[flag.group(1)]
            for name in flag.group(2).split():
                found.append((where(path, text, command.start()), kind, name))
    if path.endswith('.md'):
        for match in NAMED_PERMISSION.finditer(text):
            kind = match.group(1) + 's'
            for name in re.findall(r'[A-Za-z]+', match.group(2)):
                if name not in ('and', 'or'):
                    found.append((where(path, text, match.start()), kind, name))
    return found


def test_the_list_is_the_published_one():
    # A few facts of the published list, so that a damaged data file cannot make every check pass.
    assert 'microsoft.keyvault/vaults/certificates/read' in RBAC['data_actions']
    assert 'microsoft.keyvault/vaults/secrets/getsecret/action' in RBAC['data_actions']
    assert 'microsoft.keyvault/vaults/secrets/read' in RBAC['control_plane_actions']
    assert 'microsoft.keyvault/vaults/secrets/read' not in RBAC['data_actions']
    assert not any('deletedcertificates' in a for a in ALL_ACTIONS)
    assert {'get', 'list', 'import', 'update', 'recover', 'getissuers'} <= POLICY['certificates']
    assert 'getsecret' not in POLICY['secrets']


def test_every_named_action_is_a_key_vault_action():
    named = [found for path in scanned_files() for found in named_actions(path, read(path))]
    # The collection names its actions in many places; finding few means the scan broke, not that all is well.
    assert len(named) >= 20, named
    unknown = ['%s: %s' % (at, written) for at, written, action in named if not known(action, ALL_ACTIONS)]
    assert not unknown, 'Key Vault actions that Azure does not know:\n' + '\n'.join(unknown)


def test_custom_roles_in_the_docs_parse_and_use_listed_actions():
    blocks = json_role_blocks()
    assert blocks, 'no custom-role JSON found in the docs'
    problems = []
    for at, block in blocks:
        try:
            document = json.loads(block)
        except ValueError as exc:
            problems.append('%s: the JSON does not parse: %s' % (at, exc))
            continue
        actions = role_actions(document)
        if not actions:
            problems.append('%s: no Actions or DataActions list' % at)
        for key, kind, action in actions:
            if not known(action, RBAC[kind]):
                problems.append('%s: %s lists %s, which is not one of Microsoft.KeyVault\'s %s'
                                % (at, key, action, kind.replace('_', ' ')))
    assert not problems, '\n'.join(problems)


def test_access_policy_permissions_are_real():
    named = [found for path in scanned_files() for found in policy_permissions(path, read(path))]
    assert any(kind == 'certificates' for at, kind, name in named), named
    unknown = ['%s: %s permission %r' % (at, kind, name) for at, kind, name in named if name.lower() not in POLICY[kind]]
    assert not unknown, 'access-policy permissions that Key Vault does not know:\n' + '\n'.join(unknown)


def adapter_actions():
    """faults.ACTIONS as written in its source: {operation: data action}."""
    tree = ast.parse(read(FAULTS), FAULTS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'ACTIONS' for t in node.targets):
            return dict((key.value, value.value) for key, value in zip(node.value.keys, node.value.values))
    raise AssertionError('faults.ACTIONS not found')


def test_every_action_the_adapter_names_is_on_the_permissions_page():
    actions = adapter_actions()
    # The deploy's and the request's operations at least; fewer means the source was not read as expected.
    assert {'read', 'import', 'get_secret', 'create', 'merge', 'discard'} <= set(actions), sorted(actions)
    page = read(PERMISSIONS_PAGE)
    documented = set(action.lower() for dummy, dummy2, action in named_actions(PERMISSIONS_PAGE, page))
    problems = []
    for operation, action in sorted(actions.items()):
        if action.lower() not in RBAC['data_actions']:
            problems.append('%s: %s is not a published data action' % (operation, action))
        elif action.lower() not in documented:
            problems.append('%s: %s is not on docs/permissions.md' % (operation, action))
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('text, bad', [
    ('needs `Microsoft.KeyVault/vaults/deletedCertificates/read`.', 'Microsoft.KeyVault/vaults/deletedCertificates/read'),
    ('grant `secrets/getSecret` first', 'secrets/getSecret'),
    ('C(.../certificates/import) and', '.../certificates/import'),
    ('"Microsoft.KeyVault/vaults/certificates/*"', None),
    ('"Microsoft.KeyVault/vaults/certficates/*"', 'Microsoft.KeyVault/vaults/certficates/*'),
    ('GET /deletedcertificates/{name} and /secrets/x/y', None),
    ('see specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.5/certificates.json', None),
])
def test_the_scan_finds_what_it_should(text, bad):
    unknown = [written for dummy, written, action in named_actions(DATA, text) if not known(action, ALL_ACTIONS)]
    assert unknown == ([bad] if bad else [])


def test_the_role_check_finds_what_it_should():
    role = {'Actions': ['Microsoft.KeyVault/vaults/read'],
            'DataActions': ['Microsoft.KeyVault/vaults/secrets/read', 'Microsoft.KeyVault/vaults/certificates/read']}
    wrong = [action for key, kind, action in role_actions(role) if not known(action, RBAC[kind])]
    # secrets/read is a control-plane action: listed, but not as a data action.
    assert wrong == ['Microsoft.KeyVault/vaults/secrets/read']


def test_the_policy_check_finds_what_it_should():
    text = ('az keyvault set-policy -n v --object-id x \\\n  --certificate-permissions get import setSecret \\\n'
            '  --secret-permissions get\n\n| x | certificate **list** and **gets** |\n')
    named = policy_permissions('x.md', text)
    assert [(kind, name) for dummy, kind, name in named] == [
        ('certificates', 'get'), ('certificates', 'import'), ('certificates', 'setSecret'), ('secrets', 'get'),
        ('certificates', 'list'), ('certificates', 'gets')]
