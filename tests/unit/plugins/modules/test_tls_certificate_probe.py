# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tls_certificate_probe through AnsibleModule, against a loopback TLS server."""

from __future__ import annotations

import json

import pytest

from ansible_collections.certdeploy.cloud.tests.unit.compat import patch_module_args

from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.modules import tls_certificate_probe as module
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.tls_server import LoopbackTlsServer, closed_port


@pytest.fixture
def endpoint(tmp_path, pki):
    h = pki.hierarchy(subject='probe.example.test')
    other_key = pki.rsa(fresh=True)
    other = pki.cert(other_key, 'other.example.test')
    paths = {}
    for name, data in (('leaf.pem', pki.pem(h['leaf'], h['inter'])), ('key.pem', pki.key_pem(h['key'])),
                       ('root.pem', pki.pem(h['root']))):
        (tmp_path / name).write_bytes(data)
        paths[name] = str(tmp_path / name)
    server = LoopbackTlsServer(paths['leaf.pem'], paths['key.pem'])
    yield {'port': server.port, 'ca': paths['root.pem'], 'thumbprint': m.thumbprint(h['leaf']),
           'other': m.thumbprint(other), 'server': server}
    server.close()


def run_module(capsys, args, check_mode=False):
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def base(endpoint, **extra):
    args = dict(host='127.0.0.1', port=endpoint['port'], server_name='probe.example.test', ca_path=endpoint['ca'],
                connect_timeout=5)
    args.update(extra)
    return args


def test_reports_what_is_served(capsys, endpoint):
    result = run_module(capsys, base(endpoint))
    assert not result.get('failed') and result['changed'] is False
    assert result['matched'] is None and result['attempts'] == 1 and result['verified'] is True
    assert result['served']['thumbprint'] == endpoint['thumbprint']
    assert result['served']['subject'] == 'CN=probe.example.test'
    assert result['server_name'] == 'probe.example.test' and result['error'] is None


def test_matches_lower_case_colon_thumbprint_in_check_mode(capsys, endpoint):
    hexa = endpoint['thumbprint'].lower()
    colons = ':'.join(hexa[i:i + 2] for i in range(0, 40, 2))
    result = run_module(capsys, base(endpoint, expected_thumbprint=colons, timeout=30, interval=1), check_mode=True)
    assert result['matched'] is True and result['attempts'] == 1
    assert result['expected_thumbprint'] == endpoint['thumbprint']


def test_mismatch_is_reported_not_failed(capsys, endpoint):
    result = run_module(capsys, base(endpoint, expected_thumbprint=endpoint['other'], timeout=2, interval=1))
    assert not result.get('failed')
    assert result['matched'] is False and result['attempts'] >= 2
    assert result['served']['thumbprint'] == endpoint['thumbprint']
    assert 2 <= result['elapsed'] < 2 + 5


def test_mismatch_fails_when_asked(capsys, endpoint):
    result = run_module(capsys, base(endpoint, expected_thumbprint=endpoint['other'], fail_on_mismatch=True))
    assert result['failed'] and result['error_code'] == 'mismatch'
    assert endpoint['thumbprint'] in result['msg'] and endpoint['other'] in result['msg']
    assert 'rollback' not in result


def test_unverifiable_certificate(capsys, endpoint):
    args = base(endpoint)
    del args['ca_path']
    result = run_module(capsys, args)
    assert result['failed'] and result['error_code'] == 'tls_error' and 'ca_path' in result['msg']
    args['validate_certs'] = False
    result = run_module(capsys, args)
    assert not result.get('failed') and result['verified'] is False
    assert result['served']['thumbprint'] == endpoint['thumbprint']


def test_unreachable(capsys):
    port = closed_port()
    result = run_module(capsys, dict(host='127.0.0.1', port=port, validate_certs=False))
    assert result['failed'] and result['error_code'] == 'unreachable'
    # With an expected thumbprint the probe reports and warns instead of failing.
    result = run_module(capsys, dict(host='127.0.0.1', port=port, validate_certs=False, expected_thumbprint='A' * 40))
    assert not result.get('failed') and result['matched'] is False and result['served'] is None
    assert result['error']['code'] == 'unreachable'
    assert 'No certificate was read' in json.dumps(result.get('warnings'))  # 2.19+: structured warnings


@pytest.mark.parametrize('args,hint', [
    (dict(host='https://www.example.com'), 'not a URL'),
    (dict(host='www.example.com', expected_thumbprint='xyz'), '40 hexadecimal digits'),
    (dict(host='www.example.com', port='https'), 'port'),
    (dict(host='www.example.com', interval=0), 'interval'),
    (dict(port=443), 'host'),
    (dict(host='www.example.com', unknown=1), 'unknown'),
])
def test_invalid_options(capsys, args, hint):
    result = run_module(capsys, args)
    assert result['failed'] and result['error_code'] == 'invalid_config'
    assert hint in result['msg']
