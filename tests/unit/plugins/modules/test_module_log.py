# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""No key byte and no password in what a module logs on the target host (syslog or the journal).

An AnsibleModule logs its arguments when it starts (``_log_invocation``): to the journal when the systemd bindings
are there (the message, plus one journal field per argument), to syslog otherwise. Core masks a ``no_log`` value by
substring, which a nested value escapes: in the text of a list of dicts, a PEM key's newlines are ``\\n`` and the key
no longer matches its own no-log value. These tests drive the real start-up of each module's own module class,
capture both channels at their lowest level (``syslog.syslog``, ``journal.send``) and look for the secrets there.

- ``test_deploy_many_start_up_logs_no_key_material``: deploy_many's own spec and realistic arguments (a PEM key, a
  line-wrapped PFX, passwords with characters a repr escapes), through full validation.
- ``test_no_module_logs_a_no_log_value``: every module of plugins/modules, its spec found by running its ``main()``
  (not listed here), with a key or a password in every ``no_log`` option at every depth, list elements and
  suboptions included.
"""

from __future__ import annotations

import base64
import glob
import importlib
import json
import os
import re

import pytest

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import ansible_module
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.ansible_module import create_module
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import DEPLOY_MANY
from ansible_collections.certdeploy.cloud.tests.unit.compat import module_side, patch_module_args

MODULES_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'plugins', 'modules')
MODULES = sorted(os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(MODULES_DIR, '*.py'))
                 if not os.path.basename(path).startswith('_'))
PACKAGE = 'ansible_collections.certdeploy.cloud.plugins.modules.'

# A password with the characters Python's repr and JSON escape (quote, backslash) and one they keep (non-ASCII).
PASSWORD = 'Pfx\'pa"ss\\w0rd-é-7f3c9a'
FRAGMENT = 16  # no run of this many characters of a key's body may be logged
RULE_KEYS = ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if', 'required_by')


# -- capturing what the module logs ---------------------------------------------------------------------------

class _Journal(object):
    def __init__(self, records):
        self.records = records

    def send(self, **fields):
        self.records.append(' '.join('%s=%s' % (name, value) for name, value in sorted(fields.items())))


def start_module(args, channel, build):
    """Run ``build()`` (which constructs a module) with ``args`` as the module's arguments; returns everything that
    reached ``channel`` (``syslog``: syslog.syslog's messages; ``journal``: journal.send's message and fields)."""
    records = []

    def to_syslog(*parts):
        records.append(' '.join(str(part) for part in parts))

    with module_side(), patch_module_args(args), pytest.MonkeyPatch.context() as mp:
        mp.setattr('syslog.syslog', to_syslog)
        mp.setattr('syslog.openlog', lambda *a, **k: None)
        if channel == 'journal':
            mp.setattr(basic, 'has_journal', True)
            mp.setattr(basic, 'journal', _Journal(records), raising=False)
        else:
            mp.setattr(basic, 'has_journal', False)
        module = build()
    assert records, 'the module logged nothing: the capture does not see its log'
    assert any('Invoked' in record for record in records)
    return module, '\n'.join(records)


# -- what must not be in it --------------------------------------------------------------------------------------

def pem_body(pem):
    """The base64 body of a PEM block, without its header, footer and line breaks."""
    lines = pem.strip().splitlines()
    return ''.join(line for line in lines if not line.startswith('-----') and ':' not in line)


def fragments(body, size=FRAGMENT):
    return set(body[i:i + size] for i in range(len(body) - size + 1))


def forms(secret):
    """A secret as it is written plainly, inside a Python repr and inside JSON."""
    return {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


def leaks(text, key_bodies=(), passwords=(), public=()):
    """What of the secrets ``text`` holds: key-body fragments and passwords (in any of their forms).

    A fragment that is also in one of the ``public`` bodies is not a leak: an RSA key holds its public modulus,
    which its certificate shows too."""
    shown = set()
    for body in public:
        shown.update(fragments(body))
    found = []
    for body in key_bodies:
        found.extend(sorted(f for f in fragments(body) - shown if f in text)[:3])
    for password in passwords:
        found.extend(form for form in forms(password) if form in text)
    return found


# -- deploy_many with realistic arguments ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def material(pki):
    h = pki.hierarchy()
    pfx = pki.pfx(h['key'], h['leaf'], [h['inter']], password=PASSWORD.encode())
    return {
        'cert': pki.pem(h['leaf']).decode(),
        'key': pki.key_pem(h['key']).decode(),
        'encrypted_key': pki.key_pem(pki.rsa(fresh=True), passphrase=PASSWORD.encode()).decode(),
        # A PFX read from a base64 file keeps the file's line breaks (76 characters a line).
        'pfx': base64.encodebytes(pfx).decode(),
    }


@pytest.mark.parametrize('channel', ['syslog', 'journal'])
def test_deploy_many_start_up_logs_no_key_material(material, channel):
    args = {
        'vault_url': 'https://kv-a.vault.azure.net',
        'certificates': [
            {'certificate_name': 'www-pem', 'certificate': material['cert'], 'private_key': material['key']},
            {'certificate_name': 'api-encrypted', 'certificate': material['cert'],
             'private_key': material['encrypted_key'], 'private_key_passphrase': PASSWORD},
            {'certificate_name': 'mail-pfx', 'pfx': material['pfx'], 'pfx_password': PASSWORD,
             'tags': {'owner': 'web-team'}},
        ],
    }
    module, logged = start_module(args, channel, lambda: create_module(DEPLOY_MANY))
    assert module.params['certificates'][0]['private_key'] == material['key']  # the module itself still has it
    bodies = [pem_body(material['key']), pem_body(material['encrypted_key']), material['pfx'].replace('\n', '')]
    assert leaks(logged, bodies, [PASSWORD], public=[pem_body(material['cert'])]) == []
    # What is not secret is still logged: the names, the vault, the tags.
    for text in ('www-pem', 'api-encrypted', 'mail-pfx', 'https://kv-a.vault.azure.net', 'web-team'):
        assert text in logged
    assert 'BEGIN CERTIFICATE' in logged  # a certificate is public, and stays in the log


@pytest.mark.parametrize('channel', ['syslog', 'journal'])
def test_a_message_built_the_way_core_builds_it_is_masked_too(material, channel):
    """The second layer alone: AnsibleModule's own start-up message (the text of the list, masked only by
    substring), sent through the module's log(), holds no secret either. This is what a core that logs its
    arguments some other way than through ``_log_invocation`` would send."""
    args = {'vault_url': 'https://kv-a.vault.azure.net', 'certificates': [
        {'certificate_name': 'api-encrypted', 'certificate': material['cert'],
         'private_key': material['encrypted_key'], 'private_key_passphrase': PASSWORD},
        {'certificate_name': 'mail-pfx', 'pfx': material['pfx'], 'pfx_password': PASSWORD}]}

    def build_and_log_as_core_does():
        module = create_module(DEPLOY_MANY)
        AnsibleModule._log_invocation(module)
        return module

    module, logged = start_module(args, channel, build_and_log_as_core_does)
    bodies = [pem_body(material['encrypted_key']), material['pfx'].replace('\n', '')]
    assert leaks(logged, bodies, [PASSWORD], public=[pem_body(material['cert'])]) == []
    assert 'mail-pfx' in logged


def test_loggable_params_masks_by_alias_and_by_a_password_like_name():
    spec = {'items': {'type': 'list', 'elements': 'dict', 'options': {
        'name': {'type': 'str'},
        'secret': {'type': 'str', 'no_log': True, 'aliases': ['token']},
        'login_password': {'type': 'str'},
        'inner': {'type': 'dict', 'options': {'key': {'type': 'str', 'no_log': True}, 'id': {'type': 'str'}}},
    }}}
    params = {'items': [{'name': 'a', 'token': 's1', 'secret': 's1', 'login_password': 'p1',
                         'inner': {'key': 'k1', 'id': 'i1'}}, {'name': 'b', 'inner': None}]}
    assert ansible_module.loggable_params(spec, params) == {'items': [
        {'name': 'a', 'token': 'NOT_LOGGING_PARAMETER', 'secret': 'NOT_LOGGING_PARAMETER',
         'login_password': 'NOT_LOGGING_PASSWORD', 'inner': {'key': 'NOT_LOGGING_PARAMETER', 'id': 'i1'}},
        {'name': 'b', 'inner': None}]}
    assert params['items'][0]['secret'] == 's1'  # the module's own params are not touched


# -- every module, every no_log option ---------------------------------------------------------------------------

class _Built(Exception):
    def __init__(self, module_class, kwargs):
        super(_Built, self).__init__('built')
        self.module_class = module_class
        self.kwargs = kwargs


def module_under_test(name, monkeypatch):
    """The module class and the AnsibleModule keyword arguments that module ``name``'s main() builds its module with."""
    def capture(self, *args, **kwargs):
        raise _Built(type(self), kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(AnsibleModule, '__init__', capture)
        with pytest.raises(_Built) as built:
            importlib.import_module(PACKAGE + name).main()
    return built.value.module_class, built.value.kwargs


def without_rules(spec):
    """The spec with no rule between options, at any depth: every option can then be given at once."""
    out = {}
    for name, option in spec.items():
        option = dict((key, value) for key, value in option.items() if key not in RULE_KEYS)
        if option.get('options'):
            option['options'] = without_rules(option['options'])
        out[name] = option
    return out


def _secret_value(option, secret, where):
    kind = option.get('type', 'str')
    if kind in ('str', 'raw', 'path'):
        return secret
    if kind == 'list' and option.get('elements', 'str') in ('str', 'raw', 'path') and not option.get('options'):
        return [secret]
    if kind == 'dict' and not option.get('options'):
        return {'value': secret}
    raise AssertionError('no_log option %s is of a type this test cannot hold a secret in (%s): extend the test'
                         % (where, kind))


def _plain_value(name, option):
    if option.get('choices'):
        return list(option['choices'])[0]
    kind = option.get('type', 'str')
    return {'str': 'value-of-%s' % name, 'raw': 'value-of-%s' % name, 'path': '/nonexistent/%s' % name, 'int': 1,
            'float': 1.5, 'bool': True, 'dict': {'label': 'value-of-%s' % name},
            'list': ['value-of-%s' % name]}[kind]


def arguments(spec, secret, found, prefix=''):
    """A value for every option of ``spec``, at every depth: ``secret`` in each no_log one (its path added to
    ``found``), a plain value elsewhere; a list of dicts gets two elements."""
    args = {}
    for name, option in spec.items():
        where = prefix + name
        if basic.boolean(option.get('no_log', False)):
            found.append(where)
            args[name] = _secret_value(option, secret, where)
        elif option.get('options'):
            if option.get('type', 'str') == 'list':
                args[name] = [arguments(option['options'], secret, found, '%s[%d].' % (where, i)) for i in range(2)]
            else:
                args[name] = arguments(option['options'], secret, found, where + '.')
        else:
            args[name] = _plain_value(name, option)
    return args


def test_every_module_file_is_covered():
    assert set(MODULES) >= {'azure_kv_certificate_deploy', 'azure_kv_certificate_deploy_many',
                            'azure_kv_certificate_info', 'tls_certificate_probe'}


@pytest.mark.parametrize('channel', ['syslog', 'journal'])
@pytest.mark.parametrize('secret_kind', ['key', 'password'])
@pytest.mark.parametrize('name', MODULES)
def test_no_module_logs_a_no_log_value(name, secret_kind, channel, material, monkeypatch):
    module_class, kwargs = module_under_test(name, monkeypatch)
    spec = without_rules(kwargs['argument_spec'])
    secret = material['key'] if secret_kind == 'key' else PASSWORD
    found = []
    args = arguments(spec, secret, found)
    module, logged = start_module(args, channel, lambda: module_class(argument_spec=spec, supports_check_mode=True))
    if name.startswith('azure_kv_certificate_deploy'):
        assert 'private_key' in ' '.join(found) and 'pfx_password' in ' '.join(found)  # the walk reaches them
    if name == 'azure_kv_certificate_deploy_many':
        assert 'certificates[1].private_key' in found
    if secret_kind == 'key':
        assert leaks(logged, key_bodies=[pem_body(secret)]) == []
    else:
        assert leaks(logged, passwords=[secret]) == []
    # Every option is still named in the log, and a plain value of every depth still shows.
    for option in spec:
        assert re.search(r'\b%s=' % option, logged), option
