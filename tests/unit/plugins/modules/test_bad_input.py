# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Bad input through the modules: a clear error_code and message, never a traceback or a hang.

The deploy modules run with the Key Vault target replaced by the in-memory fake, so nothing is sent anywhere; a
bad input must fail before the target is even called.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.certdeploy.cloud.tests.unit.compat import patch_module_args

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy as frontend
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import deploy_many as frontend_many
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy as deploy_module
from ansible_collections.certdeploy.cloud.plugins.modules import azure_kv_certificate_deploy_many as deploy_many_module
from ansible_collections.certdeploy.cloud.plugins.modules import tls_certificate_probe as probe_module
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import FakeTarget
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.tls_server import LoopbackTlsServer

VAULT = 'https://kv1.vault.azure.net'


@pytest.fixture
def target(monkeypatch):
    fake = FakeTarget()
    monkeypatch.setattr(frontend, 'KeyVaultTarget', lambda settings, env=None: fake)
    monkeypatch.setattr(frontend_many, 'KeyVaultTarget', lambda settings, env=None, connection=None: fake)
    return fake


@pytest.fixture
def files(tmp_path, pki):
    h = pki.hierarchy()
    out = {'dir': tmp_path, 'hierarchy': h}
    for name, data in (('cert', pki.pem(h['leaf'])), ('key', pki.key_pem(h['key'])), ('chain', pki.pem(h['inter'], h['root']))):
        (tmp_path / name).write_bytes(data)
        out[name] = str(tmp_path / name)
    return out


def run(capsys, module, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def deploy(capsys, **args):
    args.setdefault('vault_url', VAULT)
    args.setdefault('certificate_name', 'www')
    return run(capsys, deploy_module, args)


# -- names ----------------------------------------------------------------------

def test_certificate_name_with_a_trailing_newline_fails_invalid_config(capsys, files, target):
    """``certificate_name: >`` followed by the name makes "www-contoso-com\\n"; it must not reach the vault."""
    paths = dict(certificate_path=files['cert'], private_key_path=files['key'])
    result = deploy(capsys, certificate_name='www-contoso-com\n', **paths)
    assert result['failed'] and result['error_code'] == 'invalid_config'
    assert 'not a valid Key Vault object name' in result['msg'] and 'Try certificate_name: www-contoso-com' in result['msg']
    assert target.calls == []
    many = run(capsys, deploy_many_module, {'vault_url': VAULT, 'certificates': [
        dict(paths, certificate_name='www-contoso-com\n')]})
    assert many['failed'] and many['error_code'] == 'invalid_config' and many['certificates'][0]['error_code'] == 'invalid_config'
    assert target.calls == []


# -- material -------------------------------------------------------------------

def test_certificate_with_an_unloadable_public_key_before_the_leaf_fails_invalid_material(capsys, files, target, pki):
    """It raised cryptography's UnsupportedAlgorithm out of the module: a traceback instead of an error_code."""
    h = files['hierarchy']
    bundle = (pki.pem(pki.unloadable_key_cert(), h['leaf'])).decode()
    result = deploy(capsys, certificate=bundle, private_key_path=files['key'], chain_path=files['chain'])
    assert result['failed'] and result['error_code'] == 'invalid_material'
    assert 'CN=Unloadable Key CA' in result['msg'] and 'Certificate 1 of the certificate' in result['msg']
    assert target.calls == []


# -- the probe --------------------------------------------------------------------

def test_probe_of_a_certificate_with_a_malformed_extension_matches_and_warns(capsys, tmp_path, pki):
    """tls_certificate_probe ended in a traceback (ValueError from the subjectAltName) for such a served certificate."""
    key = pki.rsa()
    cert = pki.malformed_cert('san_value', key)
    (tmp_path / 'odd.pem').write_bytes(pki.pem(cert))
    (tmp_path / 'odd.key').write_bytes(pki.key_pem(key))
    server = LoopbackTlsServer(str(tmp_path / 'odd.pem'), str(tmp_path / 'odd.key'))
    try:
        result = run(capsys, probe_module, {'host': '127.0.0.1', 'port': server.port, 'validate_certs': False,
                                            'expected_thumbprint': m.thumbprint(cert), 'connect_timeout': 5})
    finally:
        server.close()
    assert not result.get('failed') and result['matched'] is True
    assert result['served']['thumbprint'] == m.thumbprint(cert) and result['served']['sans'] == []
    assert 'extension' in result['served']['parse_errors'][0]
    assert 'could not be parsed in full' in json.dumps(result['warnings'])  # a plain or structured warning


# -- input size caps --------------------------------------------------------------

def test_material_file_over_the_cap_fails_invalid_material_naming_the_limit(capsys, files, target):
    big = files['dir'] / 'big-chain.pem'
    with open(str(big), 'wb') as handle:
        handle.write(open(files['chain'], 'rb').read())
        handle.truncate(m.MAX_PEM_BYTES + 1)  # sparse: NUL bytes after the chain
    result = deploy(capsys, certificate_path=files['cert'], private_key_path=files['key'], chain_path=str(big))
    assert result['failed'] and result['error_code'] == 'invalid_material'
    assert 'The chain has more than %d bytes (4 MiB)' % m.MAX_PEM_BYTES in result['msg']
    assert target.calls == []


def test_material_file_of_exactly_the_cap_is_read_to_its_last_byte(capsys, files, target):
    """Padding first, the chain's END line in the file's last bytes: reading one byte short would cut it off."""
    chain = open(files['chain'], 'rb').read().rstrip(b'\n')
    exact = files['dir'] / 'exact-chain.pem'
    exact.write_bytes(b'\n' * (m.MAX_PEM_BYTES - len(chain)) + chain)
    assert exact.stat().st_size == m.MAX_PEM_BYTES
    result = deploy(capsys, certificate_path=files['cert'], private_key_path=files['key'], chain_path=str(exact))
    assert not result.get('failed') and result['outcome'] == 'created'
    assert target.versions[0]['material'].chain == [files['hierarchy']['inter'], files['hierarchy']['root']]


@pytest.mark.skipif(not os.path.exists('/dev/zero'), reason='needs /dev/zero')
@pytest.mark.parametrize('option', ['certificate_path', 'pfx_path'])
def test_endless_material_file_fails_instead_of_hanging(capsys, files, target, option):
    """A path that never ends (a device, a pipe) was read to its end: the module hung and filled the memory."""
    args = {'pfx_path': '/dev/zero'} if option == 'pfx_path' else {'certificate_path': '/dev/zero', 'private_key_path': files['key']}
    result = deploy(capsys, **args)
    assert result['failed'] and result['error_code'] == 'invalid_material' and '4 MiB' in result['msg']
    assert target.calls == []
