# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The TLS probe: option rules, the bounded wait (fake clock), and real handshakes with a loopback server."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.module_utils.probe import tls
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.tls_server import LoopbackTlsServer, closed_port

A = 'A' * 40
B = 'B' * 40


def code_of(func, *args, **kwargs):
    with pytest.raises(errors.DeployError) as info:
        func(*args, **kwargs)
    return info.value.code, info.value.message


# -- options ----------------------------------------------------------------------

def test_thumbprint_normalised():
    hexa = '6a3f0c1e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a49'
    assert tls.normalise_thumbprint(hexa) == hexa.upper()
    colons = ':'.join(hexa[i:i + 2] for i in range(0, 40, 2))
    assert tls.normalise_thumbprint(colons) == hexa.upper()
    assert tls.normalise_thumbprint(' %s \n' % hexa.upper()) == hexa.upper()
    assert tls.normalise_thumbprint(None) is None


@pytest.mark.parametrize('value', ['abc', 'G' * 40, 'A' * 64, 'ajcPHpuNem9eTTwrGg-ejXxrWkk', ''])
def test_thumbprint_rejected(value):
    code, msg = code_of(tls.normalise_thumbprint, value)
    assert code == 'invalid_config'
    assert '40 hexadecimal digits' in msg


def test_options_defaults_and_ipv6():
    opts = tls.check_options('www.example.com', 443)
    assert opts['server_name'] == 'www.example.com'
    assert tls.check_options('[::1]', 8443, 'api.example.com')['host'] == '::1'
    assert tls.check_options('10.0.0.4', 443, 'api.example.com')['server_name'] == 'api.example.com'


@pytest.mark.parametrize('kwargs,hint', [
    (dict(host='https://www.example.com'), 'not a URL'),
    (dict(host='www.example.com/path'), 'not a URL'),
    (dict(host=''), 'host must be'),
    (dict(host='bad host'), 'neither a host name'),
    (dict(host='ok.example.com', server_name='https://x'), 'server_name must be'),
    (dict(host='ok.example.com', port=0), 'port must be between'),
    (dict(host='ok.example.com', port=70000), 'port must be between'),
    (dict(host='ok.example.com', timeout=-1), 'timeout'),
    (dict(host='ok.example.com', interval=0), 'interval'),
    (dict(host='ok.example.com', connect_timeout=0), 'connect_timeout'),
])
def test_options_rejected(kwargs, hint):
    kwargs.setdefault('port', 443)
    code, msg = code_of(tls.check_options, **kwargs)
    assert code == 'invalid_config'
    assert hint in msg


def test_unreadable_ca_path(tmp_path):
    code, msg = code_of(tls.client_context, True, str(tmp_path / 'missing.pem'))
    assert code == 'invalid_config' and 'missing.pem' in msg
    garbage = tmp_path / 'garbage.pem'
    garbage.write_text('not a certificate')
    assert code_of(tls.client_context, True, str(garbage))[0] == 'invalid_config'


def test_unknown_code_refused():
    with pytest.raises(ValueError):
        raise errors.DeployError('nope', 'x')


# -- the bounded wait (fake time) --------------------------------------------------

class FakeTime(object):
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(clock, *steps):
    """fetch() that returns/raises the steps in order (the last one repeats); each attempt takes 0.5 s."""
    calls = []

    def fetch():
        step = steps[min(len(calls), len(steps) - 1)]
        calls.append(step)
        clock.now += 0.5
        if isinstance(step, errors.DeployError):
            raise step
        return {'thumbprint': step, 'subject': 'CN=x'}
    fetch.calls = calls
    return fetch


def test_match_on_first_attempt():
    t = FakeTime()
    report = tls.wait_for_certificate(scripted(t, A), A, timeout=60, interval=5, clock=t.clock, sleep=t.sleep)
    assert report == {'matched': True, 'attempts': 1, 'elapsed': 0.5, 'served': {'thumbprint': A, 'subject': 'CN=x'}, 'error': None}
    assert t.sleeps == []


def test_waits_until_the_new_certificate_is_served():
    t = FakeTime()
    fetch = scripted(t, A, A, errors.DeployError('unreachable', 'reset'), B)
    report = tls.wait_for_certificate(fetch, B, timeout=60, interval=5, clock=t.clock, sleep=t.sleep)
    assert report['matched'] is True and report['attempts'] == 4
    assert report['served']['thumbprint'] == B and report['error'] is None
    assert t.sleeps == [5, 5, 5]


def test_timeout_bounds_the_wait_and_reports_the_miss():
    t = FakeTime()
    fetch = scripted(t, A)
    report = tls.wait_for_certificate(fetch, B, timeout=12, interval=5, clock=t.clock, sleep=t.sleep)
    # attempts at 0, 5.5, 11 and, after a shorter sleep, at the deadline (12 s); none after it
    assert report['matched'] is False
    assert report['attempts'] == 4
    assert t.sleeps == [5, 5, 0.5]
    assert report['elapsed'] == 12 + 0.5
    assert report['served']['thumbprint'] == A
    assert tls.failure(report, B, fail_on_mismatch=False) is None
    problem = tls.failure(report, B, fail_on_mismatch=True)
    assert problem.code == 'mismatch' and A in problem.message and B in problem.message


def test_timeout_zero_is_one_attempt():
    t = FakeTime()
    report = tls.wait_for_certificate(scripted(t, A), B, timeout=0, interval=5, clock=t.clock, sleep=t.sleep)
    assert report['attempts'] == 1 and report['matched'] is False and t.sleeps == []


def test_unreachable_until_the_end():
    t = FakeTime()
    down = errors.DeployError('unreachable', 'Cannot connect to h:443: refused.')
    report = tls.wait_for_certificate(scripted(t, down), B, timeout=10, interval=5, clock=t.clock, sleep=t.sleep)
    assert report['matched'] is False and report['served'] is None
    assert report['error'] == {'code': 'unreachable', 'message': 'Cannot connect to h:443: refused.'}
    assert tls.failure(report, B, False) is None
    problem = tls.failure(report, B, True)
    assert problem.code == 'unreachable' and B in problem.message


def test_without_expected_the_first_certificate_ends_the_wait():
    t = FakeTime()
    down = errors.DeployError('unreachable', 'refused')
    report = tls.wait_for_certificate(scripted(t, down, A), None, timeout=30, interval=5, clock=t.clock, sleep=t.sleep)
    assert report['matched'] is None and report['attempts'] == 2 and report['served']['thumbprint'] == A
    assert tls.failure(report, None, False) is None


def test_without_expected_no_certificate_fails():
    t = FakeTime()
    down = errors.DeployError('tls_error', 'handshake failed')
    report = tls.wait_for_certificate(scripted(t, down), None, timeout=0, interval=5, clock=t.clock, sleep=t.sleep)
    problem = tls.failure(report, None, False)
    assert problem.code == 'tls_error' and problem.message == 'handshake failed'


def test_a_failure_after_a_match_candidate_is_not_a_match():
    # The last attempt failed although an earlier one saw another certificate: not matched, error reported.
    t = FakeTime()
    fetch = scripted(t, A, errors.DeployError('unreachable', 'refused'))
    report = tls.wait_for_certificate(fetch, B, timeout=6, interval=5, clock=t.clock, sleep=t.sleep)
    assert report['matched'] is False and report['served']['thumbprint'] == A and report['error']['code'] == 'unreachable'


# -- real handshakes with a loopback server ----------------------------------------

@pytest.fixture
def served(tmp_path, pki):
    """Two leaves for tls.example.test from one CA, their files, and a server serving the first."""
    root_key = pki.ec()
    root = pki.cert(root_key, 'Probe Test Root', ca=True, days=3650)
    inter_key = pki.ec()
    inter = pki.cert(inter_key, 'Probe Test Intermediate', issuer=root, issuer_key=root_key, ca=True, days=1800)
    key1, key2 = pki.rsa(), pki.rsa(fresh=True)
    leaf1 = pki.cert(key1, 'tls.example.test', issuer=inter, issuer_key=inter_key)
    leaf2 = pki.cert(key2, 'tls.example.test', issuer=inter, issuer_key=inter_key)
    h = {'leaf': leaf1, 'inter': inter, 'root': root, 'key': key1}
    second, second_key = leaf2, key2
    files = {}
    for name, data in (('leaf1.pem', pki.pem(h['leaf'], h['inter'])), ('key1.pem', pki.key_pem(h['key'])),
                       ('leaf2.pem', pki.pem(second)), ('key2.pem', pki.key_pem(second_key)),
                       ('root.pem', pki.pem(h['root']))):
        (tmp_path / name).write_bytes(data)
        files[name] = str(tmp_path / name)
    server = LoopbackTlsServer(files['leaf1.pem'], files['key1.pem'])
    yield {'server': server, 'files': files, 'thumbprint1': m.thumbprint(h['leaf']), 'thumbprint2': m.thumbprint(second)}
    server.close()


def options(port, server_name='tls.example.test', connect_timeout=5):
    return tls.check_options('127.0.0.1', port, server_name, 0, 1, connect_timeout)


def test_reads_and_verifies_the_served_leaf(served):
    context = tls.client_context(True, served['files']['root.pem'])
    facts = tls.probe_once(options(served['server'].port), context)
    assert facts['thumbprint'] == served['thumbprint1']
    assert facts['subject'] == 'CN=tls.example.test'
    assert facts['sans'] == ['DNS:tls.example.test']
    assert facts['tls_version'] in ('TLSv1.2', 'TLSv1.3')
    assert facts['expires'].endswith('+00:00')


def test_verification_failures_are_tls_errors(served):
    port = served['server'].port
    # unknown issuer: the system store does not hold the test root
    code, msg = code_of(tls.probe_once, options(port), tls.client_context(True))
    assert code == 'tls_error' and 'failed verification' in msg and 'ca_path' in msg
    # wrong name
    code, msg = code_of(tls.probe_once, options(port, 'other.example.test'), tls.client_context(True, served['files']['root.pem']))
    assert code == 'tls_error' and 'other.example.test' in msg


def test_without_validation_any_certificate_is_read(served):
    facts = tls.probe_once(options(served['server'].port, 'other.example.test'), tls.client_context(False))
    assert facts['thumbprint'] == served['thumbprint1']


def test_closed_port_is_unreachable():
    code, msg = code_of(tls.probe_once, options(closed_port()), tls.client_context(False))
    assert code == 'unreachable' and '127.0.0.1' in msg


def test_plain_http_listener_is_a_tls_error():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)

    def answer():
        conn = sock.accept()[0]
        conn.recv(4096)  # the ClientHello
        conn.sendall(b'HTTP/1.0 400 Bad Request\r\n\r\n')
        conn.close()
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        code, msg = code_of(tls.probe_once, options(sock.getsockname()[1], connect_timeout=2), tls.client_context(False))
    finally:
        thread.join(5)
        sock.close()
    assert code == 'tls_error' and 'TLS handshake with 127.0.0.1' in msg


def test_wait_sees_the_switch(served):
    server = served['server']
    context = tls.client_context(False)
    opts = options(server.port)
    attempts = []

    def fetch():
        attempts.append(1)
        if len(attempts) == 2:
            server.switch(served['files']['leaf2.pem'], served['files']['key2.pem'])
        return tls.probe_once(opts, context)

    report = tls.wait_for_certificate(fetch, served['thumbprint2'], timeout=10, interval=1, sleep=lambda s: None)
    assert report['matched'] is True and report['attempts'] == 2
    assert report['served']['thumbprint'] == served['thumbprint2']


# -- a served certificate with a part cryptography refuses when it is read ------------------

@pytest.mark.parametrize('kind,part', [('san_value', 'extension'), ('x400_address', 'extension'),
                                       ('duplicate_extension', 'extension'), ('subject', 'subject'), ('issuer', 'issuer')])
def test_served_certificate_with_a_malformed_part_is_reported_with_its_thumbprint(pki, kind, part):
    """served_facts raised (ValueError, DuplicateExtension, ...) out of the probe; the thumbprint, what the probe
    compares, does not depend on the part, so the facts come back with parse_errors naming it."""
    cert = pki.malformed_cert(kind)
    facts = tls.served_facts(m.leaf_der(cert))
    assert facts['thumbprint'] == m.thumbprint(cert)
    assert facts['parse_errors'] == ['the %s cannot be parsed (%s)' % (part, facts['parse_errors'][0].split(' (', 1)[1][:-1])]


@pytest.mark.parametrize('kind', ['san_value', 'x400_address'])  # OpenSSL refuses to serve the other two
def test_probe_reads_and_matches_a_served_certificate_with_a_malformed_extension(tmp_path, pki, kind):
    key = pki.rsa()
    cert = pki.malformed_cert(kind, key)
    (tmp_path / 'odd.pem').write_bytes(pki.pem(cert))
    (tmp_path / 'odd.key').write_bytes(pki.key_pem(key))
    server = LoopbackTlsServer(str(tmp_path / 'odd.pem'), str(tmp_path / 'odd.key'))
    try:
        opts = options(server.port)
        context = tls.client_context(False)
        report = tls.wait_for_certificate(lambda: tls.probe_once(opts, context), m.thumbprint(cert))
    finally:
        server.close()
    assert report['matched'] is True and report['error'] is None
    assert report['served']['thumbprint'] == m.thumbprint(cert) and report['served']['sans'] == []
    assert 'extension' in report['served']['parse_errors'][0]
