# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import base64
import datetime
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.tests.unit.conftest import UNLOADABLE_KEY_OID


def code_of(func, *args, **kwargs):
    with pytest.raises(errors.DeployError) as info:
        func(*args, **kwargs)
    return info.value.code, info.value.message


# -- PEM keys -------------------------------------------------------------------

@pytest.mark.parametrize('fmt,label', [('pkcs8', b'BEGIN PRIVATE KEY'), ('pkcs1', b'BEGIN RSA PRIVATE KEY')])
def test_rsa_key_formats_load(pki, hierarchy, fmt, label):
    pem = pki.key_pem(hierarchy['key'], fmt)
    assert label in pem
    material = m.load_pem_material(pki.pem(hierarchy['leaf']), pem)
    assert material.key_description == ('RSA', 2048)


def test_ec_p384_sec1_key(pki):
    key = pki.ec(ec.SECP384R1)
    pem = pki.key_pem(key, 'sec1')
    assert b'BEGIN EC PRIVATE KEY' in pem
    material = m.load_pem_material(pki.pem(pki.cert(key)), pem)
    assert material.key_description == ('EC', 'P-384')


def test_encrypted_pkcs8_key(pki, hierarchy):
    pem = pki.key_pem(hierarchy['key'], 'pkcs8', passphrase=b'correct horse')
    assert b'ENCRYPTED PRIVATE KEY' in pem
    material = m.load_pem_material(pki.pem(hierarchy['leaf']), pem, passphrase='correct horse')
    assert material.thumbprint == m.thumbprint(hierarchy['leaf'])


def test_legacy_encrypted_pkcs1_key(pki, hierarchy):
    pem = pki.key_pem(hierarchy['key'], 'pkcs1', passphrase=b'pw')
    assert b'Proc-Type: 4,ENCRYPTED' in pem
    assert m.parse_private_key(pem, 'pw').key_size == 2048


def test_wrong_passphrase(pki, hierarchy):
    pem = pki.key_pem(hierarchy['key'], 'pkcs8', passphrase=b'right')
    code, msg = code_of(m.parse_private_key, pem, 'wrong')
    assert code == errors.INVALID_MATERIAL and 'passphrase' in msg


def test_missing_passphrase(pki, hierarchy):
    pem = pki.key_pem(hierarchy['key'], 'pkcs8', passphrase=b'right')
    code, msg = code_of(m.parse_private_key, pem)
    assert code == errors.INVALID_MATERIAL and 'private_key_passphrase' in msg


def test_passphrase_for_plain_key(pki, hierarchy):
    code, msg = code_of(m.parse_private_key, pki.key_pem(hierarchy['key']), 'unneeded')
    assert code == errors.INVALID_MATERIAL and 'not encrypted' in msg


def test_key_garbage(pki):
    garbage = b'-----BEGIN %s-----\nAAAA\n-----END %s-----\n' % (b'PRIVATE KEY', b'PRIVATE KEY')  # a malformed block, no key
    code = code_of(m.parse_private_key, garbage)[0]
    assert code == errors.INVALID_MATERIAL


def test_key_given_a_certificate(pki, hierarchy):
    code, msg = code_of(m.parse_private_key, pki.pem(hierarchy['leaf']))
    assert code == errors.INVALID_MATERIAL and 'exactly one' in msg


def test_two_keys_rejected(pki, hierarchy):
    pem = pki.key_pem(hierarchy['key']) + pki.key_pem(pki.ec())
    assert code_of(m.parse_private_key, pem)[0] == errors.INVALID_MATERIAL


# -- key types ----------------------------------------------------------------------

@pytest.mark.parametrize('maker', ['ed25519', 'dsa'])
def test_unsupported_key_types(pki, maker):
    key = getattr(pki, maker)()
    cert = pki.cert(key)
    code, msg = code_of(m.load_pem_material, pki.pem(cert), pki.key_pem(key))
    assert code == errors.UNSUPPORTED_KEY
    assert ('Ed25519' if maker == 'ed25519' else 'DSA') in msg


def test_unsupported_curve(pki):
    key = pki.ec(ec.SECP256K1)
    code, msg = code_of(m.load_pem_material, pki.pem(pki.cert(key)), pki.key_pem(key))
    assert code == errors.UNSUPPORTED_KEY and 'secp256k1' in msg


@pytest.mark.parametrize('curve,name', [(ec.SECP256R1, 'P-256'), (ec.SECP521R1, 'P-521')])
def test_supported_curves(pki, curve, name):
    key = pki.ec(curve)
    assert m.load_pem_material(pki.pem(pki.cert(key)), pki.key_pem(key)).key_description == ('EC', name)


def test_rsa_1024_rejected_by_rules(pki):
    key = pki.rsa(1024)
    material = m.load_pem_material(pki.pem(pki.cert(key)), pki.key_pem(key))
    code, msg = code_of(m.check_rules, material)
    assert code == errors.UNSUPPORTED_KEY and '1024' in msg


# -- certificates and chains ------------------------------------------------------

def test_key_mismatch(pki, hierarchy):
    other = pki.rsa(fresh=True)
    code, msg = code_of(m.load_pem_material, pki.pem(hierarchy['leaf']), pki.key_pem(other))
    assert code == errors.KEY_MISMATCH and 'does not belong to the certificate' in msg


def test_bundle_leaf_is_first_matching_certificate(pki, hierarchy):
    bundle = pki.pem(hierarchy['root'], hierarchy['inter'], hierarchy['leaf'])
    material = m.load_pem_material(bundle, pki.key_pem(hierarchy['key']))
    assert material.leaf == hierarchy['leaf']
    assert material.chain == [hierarchy['inter'], hierarchy['root']]


def test_chain_dedup_and_leaf_first_order(pki, hierarchy):
    chain = pki.pem(hierarchy['root'], hierarchy['inter'], hierarchy['root'], hierarchy['leaf'])
    material = m.load_pem_material(pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain)
    assert material.chain == [hierarchy['inter'], hierarchy['root']]


def test_a_root_first_chain_is_always_ordered_leaf_to_root(pki, hierarchy):
    chain = pki.pem(hierarchy['root'], hierarchy['inter'], hierarchy['inter'])
    material = m.load_pem_material(pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain)
    assert material.chain == [hierarchy['inter'], hierarchy['root']]
    pfx = m.load_pfx_material(pki.pfx(hierarchy['key'], hierarchy['leaf'], [hierarchy['root'], hierarchy['inter']]))
    assert pfx.chain == [hierarchy['inter'], hierarchy['root']]


def test_chain_root_drop_leaves_out_self_issued_certificates_only(pki, hierarchy):
    chain = pki.pem(hierarchy['root'], hierarchy['inter'])
    material = m.load_pem_material(pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain, chain_root='drop')
    assert material.chain == [hierarchy['inter']]
    pfx = m.load_pfx_material(pki.pfx(hierarchy['key'], hierarchy['leaf'], [hierarchy['inter'], hierarchy['root']]), chain_root='drop')
    assert pfx.chain == [hierarchy['inter']]
    kept = m.load_pem_material(pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain, chain_root='keep')
    assert kept.chain == [hierarchy['inter'], hierarchy['root']]
    # A self-signed leaf is the leaf, never dropped.
    key = pki.rsa()
    selfsigned = pki.cert(key)
    alone = m.load_pem_material(pki.pem(selfsigned), pki.key_pem(key), chain_root='drop')
    assert alone.leaf == selfsigned and alone.chain == []
    assert code_of(m.apply_chain_root, [], 'strip')[0] == errors.INVALID_CONFIG


def test_unrelated_chain_certificates_are_kept_after_the_path(pki, hierarchy):
    stranger = pki.cert(pki.ec(), 'Unrelated CA', ca=True)
    chain = pki.pem(stranger, hierarchy['root'], hierarchy['inter'])
    material = m.load_pem_material(pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain)
    assert material.chain == [hierarchy['inter'], hierarchy['root'], stranger]


def test_text_between_blocks_is_allowed(pki, hierarchy):
    chain = b'subject=CN = Test Intermediate CA\nissuer=CN = Test Root CA\n' + pki.pem(hierarchy['inter'])
    material = m.load_pem_material(pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain)
    assert material.chain == [hierarchy['inter']]


def test_unparseable_chain_block_is_an_error_not_skipped(pki, hierarchy):
    broken = b'-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n'
    chain = pki.pem(hierarchy['inter']) + broken
    code, msg = code_of(m.load_pem_material, pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain)
    assert code == errors.INVALID_MATERIAL and 'block 2 of the chain' in msg


def test_truncated_chain_block(pki, hierarchy):
    chain = pki.pem(hierarchy['inter'])[:-30]
    code, msg = code_of(m.load_pem_material, pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain)
    assert code == errors.INVALID_MATERIAL and 'without a matching END' in msg


def test_key_in_certificate_option(pki, hierarchy):
    data = pki.pem(hierarchy['leaf']) + pki.key_pem(hierarchy['key'])
    code, msg = code_of(m.load_pem_material, data, pki.key_pem(hierarchy['key']))
    assert code == errors.INVALID_MATERIAL and 'PRIVATE KEY' in msg


def test_no_pem_at_all(pki, hierarchy):
    code = code_of(m.load_pem_material, b'hello', pki.key_pem(hierarchy['key']))[0]
    assert code == errors.INVALID_MATERIAL


def test_certificate_facts(pki, hierarchy):
    facts = m.certificate_facts(hierarchy['leaf'])
    assert facts['thumbprint'] == hierarchy['leaf'].fingerprint(m.hashes.SHA1()).hex().upper()
    assert m.thumbprint_from_x5t(facts['x5t']) == facts['thumbprint']
    assert m.x5t_from_thumbprint(facts['thumbprint']) == facts['x5t']
    assert facts['sans'] == ['DNS:www.example.com']
    assert facts['subject'] == 'CN=www.example.com'
    assert facts['serial'] == '%X' % hierarchy['leaf'].serial_number


# -- validity ------------------------------------------------------------------------

def test_expired_certificate(pki):
    key = pki.rsa()
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    material = m.load_pem_material(pki.pem(pki.cert(key, days=10, not_before=start)), pki.key_pem(key))
    code, msg = code_of(m.check_rules, material)
    assert code == errors.EXPIRED and 'allow_expired' in msg
    assert 'allow_expired' in m.check_rules(material, allow_expired=True)[0]


def test_not_yet_valid_certificate(pki):
    key = pki.rsa()
    start = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3)
    material = m.load_pem_material(pki.pem(pki.cert(key, not_before=start)), pki.key_pem(key))
    code, msg = code_of(m.check_rules, material)
    assert code == errors.INVALID_MATERIAL and 'not valid before' in msg
    assert m.check_rules(material, allow_expired=True)


def test_valid_certificate_has_no_warnings(pki, hierarchy):
    assert m.check_rules(m.Material(hierarchy['leaf'], hierarchy['key'], [])) == []


# -- certificates whose public key cannot be loaded ----------------------------------
# pki.unloadable_key_cert(): a well-formed, validly signed certificate whose SubjectPublicKeyInfo names an algorithm
# cryptography does not implement; its public_key() raises UnsupportedAlgorithm.

def test_unloadable_key_certificate_before_the_leaf_is_invalid_material(pki, hierarchy):
    """Leaf selection compares public keys in bundle order: the unloadable one came first and escaped uncaught."""
    weird = pki.unloadable_key_cert()
    bundle = pki.pem(weird, hierarchy['leaf'], hierarchy['inter'])
    code, msg = code_of(m.load_pem_material, bundle, pki.key_pem(hierarchy['key']))
    assert code == errors.INVALID_MATERIAL
    assert 'Certificate 1 of the certificate' in msg and 'CN=Unloadable Key CA' in msg and UNLOADABLE_KEY_OID in msg


def test_unloadable_key_certificate_in_the_chain_is_invalid_material(pki, hierarchy):
    """Chain ordering skipped it silently, and it would have been sent to the vault as part of the chain."""
    chain = pki.pem(hierarchy['inter'], pki.unloadable_key_cert('Odd Intermediate'), hierarchy['root'])
    code, msg = code_of(m.load_pem_material, pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain)
    assert code == errors.INVALID_MATERIAL
    assert 'Certificate 2 of the chain' in msg and 'CN=Odd Intermediate' in msg and UNLOADABLE_KEY_OID in msg


@pytest.mark.parametrize('layout', ['without_a_main_certificate', 'in_the_chain'])
def test_unloadable_key_certificate_in_a_pfx_is_invalid_material(pki, hierarchy, layout):
    weird = pki.unloadable_key_cert()
    if layout == 'without_a_main_certificate':  # the odd certificate first, the leaf after it
        data = pkcs12.serialize_key_and_certificates(b'x', hierarchy['key'], None, [weird, hierarchy['leaf']],
                                                     serialization.NoEncryption())
    else:
        data = pki.pfx(hierarchy['key'], hierarchy['leaf'], [hierarchy['inter'], weird])
    code, msg = code_of(m.load_pfx_material, data)
    assert code == errors.INVALID_MATERIAL and 'of the PFX' in msg
    assert 'CN=Unloadable Key CA' in msg and UNLOADABLE_KEY_OID in msg


def test_chain_certificate_with_an_unreadable_subject_is_invalid_material(pki, hierarchy):
    """Chain ordering compares names; a chain certificate whose subject cannot be parsed raised ValueError there."""
    odd = pki.malformed_cert('subject')
    chain = pki.pem(hierarchy['inter'], odd)
    code, msg = code_of(m.load_pem_material, pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key']), chain=chain)
    assert code == errors.INVALID_MATERIAL
    assert 'Certificate 2 of the chain (a subject that cannot be parsed) has a subject that cannot be parsed' in msg
    # (in a PFX, OpenSSL already refuses such a certificate when it opens the file: "could not be opened")


@pytest.mark.parametrize('part,article', [('subject', 'a'), ('issuer', 'an')])
def test_leaf_with_an_unreadable_name_and_a_chain_is_invalid_material(pki, hierarchy, part, article):
    key = pki.rsa()
    odd = pki.malformed_cert(part, key)
    code, msg = code_of(m.load_pem_material, pki.pem(odd), pki.key_pem(key), chain=pki.pem(hierarchy['inter']))
    assert code == errors.INVALID_MATERIAL
    assert 'Certificate 1 of the certificate' in msg and 'has %s %s that cannot be parsed' % (article, part) in msg


def test_order_chain_never_raises_on_unreadable_names(pki, hierarchy):
    """The engine orders a vault-held leaf's chain for a re-pair snapshot: an unreadable name is just no issuer."""
    odd = pki.malformed_cert('subject')
    assert m.order_chain(odd, [hierarchy['inter']]) == ([hierarchy['inter']], [hierarchy['inter']])
    assert m.order_chain(hierarchy['leaf'], [odd, hierarchy['inter']]) == ([hierarchy['inter'], odd], [odd])


def test_public_key_matches_is_false_for_an_unloadable_certificate(pki, hierarchy):
    """Also the engine's re-pair check on a certificate the vault holds: no crash, simply no match."""
    assert m.public_key_matches(pki.unloadable_key_cert(), hierarchy['key']) is False
    assert m.public_key_matches(hierarchy['leaf'], hierarchy['key']) is True


def test_exported_secret_with_an_unloadable_certificate_still_loads(pki, hierarchy):
    """What the vault holds is re-imported byte for byte on rollback: an odd chain certificate there is kept, not refused."""
    weird = pki.unloadable_key_cert()
    pem = (pki.pem(weird, hierarchy['leaf'], hierarchy['inter']) + pki.key_pem(hierarchy['key'])).decode()
    material = m.load_exported_secret(pem, 'application/x-pem-file')
    assert material.leaf == hierarchy['leaf'] and material.chain == [weird, hierarchy['inter']]
    pfx = base64.b64encode(pki.pfx(hierarchy['key'], hierarchy['leaf'], [weird])).decode()
    assert m.load_exported_secret(pfx, 'application/x-pkcs12').chain == [weird]


# -- PEM parsing: linear time ----------------------------------------------------------
# Counting, never timing: (1) every regular expression of the material module has only bounded repetitions and no
# backreference, so one match attempt costs at most a constant whatever the input; (2) split_pem runs one
# forward scan (one finditer over the whole input) and looks at each BEGIN/END line once. Together: time linear
# in the input. The quadratic parser this replaced re-scanned the rest of the input from every BEGIN line
# (a lazy ".*?" up to a backreferenced END line): 4,000 BEGIN lines without END took seconds.

def _regex_constructs(parsed):
    """(construct, upper bound) of every repetition and backreference in a parsed pattern, nested ones included."""
    for op, av in parsed:
        name = str(op)
        if name in ('MAX_REPEAT', 'MIN_REPEAT', 'POSSESSIVE_REPEAT'):
            yield name, av[1]
            yield from _regex_constructs(av[2])
        elif name == 'SUBPATTERN':
            yield from _regex_constructs(av[-1])
        elif name == 'BRANCH':
            for alternative in av[1]:
                yield from _regex_constructs(alternative)
        elif name in ('ASSERT', 'ASSERT_NOT'):
            yield from _regex_constructs(av[1])
        elif name in ('GROUPREF', 'GROUPREF_EXISTS'):
            yield name, None


def test_material_regular_expressions_have_only_bounded_repetition():
    try:
        from re import _parser as sre_parse, _constants as sre_constants  # Python 3.11+
    except ImportError:  # Python 3.10
        import sre_constants
        import sre_parse
    patterns = {name: value for name, value in vars(m).items() if isinstance(value, re.Pattern)}
    assert patterns, 'the PEM scanner is a compiled pattern of the module'
    for name, pattern in patterns.items():
        for construct, bound in _regex_constructs(sre_parse.parse(pattern.pattern, pattern.flags)):
            assert construct not in ('GROUPREF', 'GROUPREF_EXISTS'), '%s uses a backreference' % name
            assert bound != sre_constants.MAXREPEAT, '%s has an unbounded %s' % (name, construct)


class CountingPattern(object):
    """Stands in for the PEM scanner's compiled pattern and counts its scans and the markers they yield."""

    def __init__(self, pattern):
        self.pattern = pattern
        self.scans = []
        self.markers = 0

    def finditer(self, string, *args):
        self.scans.append((len(string), args))
        for match in self.pattern.finditer(string, *args):
            self.markers += 1
            yield match

    def __getattr__(self, name):
        raise AssertionError('the PEM scanner must only scan forward with finditer, not %s' % name)


PEM_SHAPES = {
    # well-formed blocks
    'blocks': lambda n, pem: pem * n,
    # openssl's subject=/issuer= lines and blank lines between blocks
    'text_between': lambda n, pem: (b'subject=CN = x\nissuer=CN = y\n\n' + pem) * n,
    # END lines of no block, then one block
    'stray_end_lines': lambda n, pem: b'-----END CERTIFICATE-----\n' * n + pem,
}


@pytest.mark.parametrize('shape', sorted(PEM_SHAPES))
def test_split_pem_is_one_forward_scan_that_scales_linearly(pki, hierarchy, monkeypatch, shape):
    pem = pki.pem(hierarchy['leaf'])
    counted = {}
    for n in (10, 1000):
        scanner = CountingPattern(m._PEM_MARKER)
        monkeypatch.setattr(m, '_PEM_MARKER', scanner)
        data = PEM_SHAPES[shape](n, pem)
        blocks = m.split_pem(data, 'certificate')
        monkeypatch.undo()
        assert scanner.scans == [(len(data), ())], 'one scan over the whole input, from its start'
        assert scanner.markers == data.count(b'-----BEGIN ') + data.count(b'-----END ')
        assert len(blocks) == (1 if shape == 'stray_end_lines' else n)
        counted[n] = scanner.markers
    # 100 times the repeated part, 100 times the work (after the stray END lines comes one block: 2 markers)
    fixed = 2 if shape == 'stray_end_lines' else 0
    assert counted[1000] - fixed == 100 * (counted[10] - fixed)


def test_split_pem_stops_at_the_first_begin_line_of_an_unterminated_block(pki, hierarchy, monkeypatch):
    """A BEGIN line inside an open block ends the scan with the error at once: 1,000 of them cost two markers."""
    scanner = CountingPattern(m._PEM_MARKER)
    monkeypatch.setattr(m, '_PEM_MARKER', scanner)
    data = b'-----BEGIN CERTIFICATE-----\nAAAA\n' * 1000
    code, msg = code_of(m.split_pem, data, 'chain')
    assert code == errors.INVALID_MATERIAL and 'without a matching END' in msg
    assert scanner.markers == 2 and len(scanner.scans) == 1


@pytest.mark.parametrize('data', [
    b'-----BEGIN CERTIFICATE-----\nAAAA\n',  # no END
    b'-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CERTIFICATE-----\n',  # the END of another label
    b'-----BEGIN CERTIFICATE-----AAAA\n-----END CERTIFICATE-----\n',  # no line break after the BEGIN line
    b'-----BEGIN CERTIFICATE-----\nAAAA\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',  # nested BEGIN
])
def test_split_pem_refuses_unterminated_or_mangled_blocks(data):
    code, msg = code_of(m.split_pem, data, 'chain')
    assert code == errors.INVALID_MATERIAL and 'The chain contains a PEM block without a matching END line' in msg


def test_split_pem_returns_each_block_from_begin_to_end_line_with_crlf_and_stray_text(pki, hierarchy):
    one = pki.pem(hierarchy['leaf']).replace(b'\n', b'\r\n')
    two = pki.key_pem(hierarchy['key'])
    data = b'-----END CERTIFICATE-----\r\nsubject=CN = x\r\n' + one + b'\n\n' + two + b'trailing text'
    assert m.split_pem(data, 'bundle') == [(b'CERTIFICATE', one.rstrip(b'\r\n')), (b'PRIVATE KEY', two.rstrip(b'\n'))]
    assert m.split_pem(data.decode(), 'bundle')[0][1] == one.rstrip(b'\r\n')
    assert m.split_pem(b'no pem here', 'bundle') == []


# -- input limits ------------------------------------------------------------------------

def _padded(data, size, filler=b'\n'):
    """``data`` followed by filler (text after the last block is allowed) up to exactly ``size`` bytes."""
    assert len(data) <= size
    return data + filler * (size - len(data))


@pytest.mark.parametrize('option', ['certificate', 'chain', 'private_key'])
def test_each_pem_input_may_be_exactly_the_size_cap_and_not_one_byte_more(pki, hierarchy, option):
    inputs = {'certificate': pki.pem(hierarchy['leaf']), 'chain': pki.pem(hierarchy['inter']),
              'private_key': pki.key_pem(hierarchy['key'])}
    inputs[option] = _padded(inputs[option], m.MAX_PEM_BYTES)
    material = m.load_pem_material(inputs['certificate'], inputs['private_key'], chain=inputs['chain'])
    assert material.leaf == hierarchy['leaf'] and material.chain == [hierarchy['inter']]
    inputs[option] += b'\n'
    code, msg = code_of(m.load_pem_material, inputs['certificate'], inputs['private_key'], chain=inputs['chain'])
    assert code == errors.INVALID_MATERIAL
    what = option.replace('_', ' ')
    assert 'The %s has more than %d bytes (4 MiB)' % (what, m.MAX_PEM_BYTES) in msg


def test_pem_text_is_measured_in_utf8_bytes(pki, hierarchy):
    """Two-byte characters between blocks: fewer characters than the cap, more bytes."""
    pem = pki.pem(hierarchy['leaf']).decode()
    text = pem + '\u00e9' * ((m.MAX_PEM_BYTES - len(pem)) // 2 + 1)
    assert len(text) <= m.MAX_PEM_BYTES < len(text.encode('utf-8'))
    code, msg = code_of(m.load_pem_material, text, pki.key_pem(hierarchy['key']))
    assert code == errors.INVALID_MATERIAL and 'more than %d bytes' % m.MAX_PEM_BYTES in msg


def test_the_cap_is_checked_before_any_parsing(monkeypatch):
    """50 MB of BEGIN lines: refused on its length, the scanner never runs."""
    monkeypatch.setattr(m, '_PEM_MARKER', CountingPattern(m._PEM_MARKER))
    data = b'-----BEGIN CERTIFICATE-----\n' * (50 * 1024 * 1024 // 28)
    code, msg = code_of(m.split_pem, data, 'certificate')
    assert code == errors.INVALID_MATERIAL and '4 MiB' in msg
    assert m._PEM_MARKER.scans == []


def test_certificate_and_chain_hold_at_most_max_certificates_together(pki, hierarchy):
    """Counted over both options, before de-duplication: what the user sent, not what is kept."""
    key = pki.key_pem(hierarchy['key'])
    bundle = pki.pem(hierarchy['leaf'], hierarchy['inter'])
    at_cap = pki.pem(*[hierarchy['inter']] * (m.MAX_CERTIFICATES - 2))
    material = m.load_pem_material(bundle, key, chain=at_cap)
    assert material.chain == [hierarchy['inter']]
    over = at_cap + pki.pem(hierarchy['root'])
    code, msg = code_of(m.load_pem_material, bundle, key, chain=over)
    assert code == errors.INVALID_MATERIAL
    assert 'The certificate and chain hold %d certificates; at most %d are accepted' % (
        m.MAX_CERTIFICATES + 1, m.MAX_CERTIFICATES) in msg
    # the same total in the certificate option alone
    code, msg = code_of(m.load_pem_material, bundle + over, key)
    assert code == errors.INVALID_MATERIAL and 'The certificate holds %d certificates' % (m.MAX_CERTIFICATES + 1) in msg
    assert m.load_pem_material(bundle + at_cap, key).leaf == hierarchy['leaf']


def test_pfx_holds_at_most_max_certificates(pki, hierarchy):
    cas = [hierarchy['inter']] * (m.MAX_CERTIFICATES - 1)
    assert m.load_pfx_material(pki.pfx(hierarchy['key'], hierarchy['leaf'], cas)).chain == [hierarchy['inter']]
    code, msg = code_of(m.load_pfx_material, pki.pfx(hierarchy['key'], hierarchy['leaf'], cas + [hierarchy['root']]))
    assert code == errors.INVALID_MATERIAL
    assert 'The PFX holds %d certificates; at most %d are accepted' % (m.MAX_CERTIFICATES + 1, m.MAX_CERTIFICATES) in msg


@pytest.mark.parametrize('as_text', [False, True])
def test_pfx_may_be_exactly_the_size_cap_and_not_one_byte_more(pki, hierarchy, monkeypatch, as_text):
    """A PFX cannot be padded, so the cap is set to this PFX's size; the decoded size counts for base64 text."""
    data = pki.pfx(hierarchy['key'], hierarchy['leaf'], [hierarchy['inter']])
    given = base64.b64encode(data).decode() if as_text else data
    monkeypatch.setattr(m, 'MAX_PFX_BYTES', len(data))
    assert m.load_pfx_material(given).leaf == hierarchy['leaf']
    monkeypatch.setattr(m, 'MAX_PFX_BYTES', len(data) - 1)
    code, msg = code_of(m.load_pfx_material, given)
    assert code == errors.INVALID_MATERIAL and 'The PFX has more than %d bytes, the most' % (len(data) - 1) in msg


def test_oversized_pfx_is_refused_on_its_size_not_parsed(pki):
    code, msg = code_of(m.load_pfx_material, b'\x30' * (m.MAX_PFX_BYTES + 1))
    assert code == errors.INVALID_MATERIAL and 'The PFX has more than %d bytes (4 MiB)' % m.MAX_PFX_BYTES in msg


def test_limits_are_generous_for_real_material():
    """The documented values (docs and module documentation are checked against these names)."""
    assert m.MAX_PEM_BYTES == m.MAX_PFX_BYTES == 4 * 1024 * 1024
    assert m.MAX_CERTIFICATES == 100


# -- PFX ---------------------------------------------------------------------------

def test_pfx_with_password_and_chain(pki, hierarchy):
    data = pki.pfx(hierarchy['key'], hierarchy['leaf'], [hierarchy['root'], hierarchy['inter']], password=b's3cret')
    material = m.load_pfx_material(data, 's3cret')
    assert material.leaf == hierarchy['leaf']
    assert material.chain == [hierarchy['inter'], hierarchy['root']]


def test_pfx_as_base64_text(pki, hierarchy):
    data = base64.b64encode(pki.pfx(hierarchy['key'], hierarchy['leaf'])).decode()
    material = m.load_pfx_material(data[:40] + '\n' + data[40:])
    assert material.leaf == hierarchy['leaf']


def test_pfx_bad_base64():
    assert code_of(m.load_pfx_material, 'not base64 ***')[0] == errors.INVALID_MATERIAL


def test_pfx_wrong_password(pki, hierarchy):
    data = pki.pfx(hierarchy['key'], hierarchy['leaf'], password=b'right')
    code, msg = code_of(m.load_pfx_material, data, 'wrong')
    assert code == errors.INVALID_MATERIAL and 'pfx_password' in msg


def test_pfx_missing_password(pki, hierarchy):
    data = pki.pfx(hierarchy['key'], hierarchy['leaf'], password=b'right')
    code, msg = code_of(m.load_pfx_material, data)
    assert code == errors.INVALID_MATERIAL and 'pfx_password is missing' in msg


def test_pfx_without_key(pki, hierarchy):
    data = pkcs12.serialize_key_and_certificates(b'x', None, None, [hierarchy['leaf']], serialization.NoEncryption())
    code, msg = code_of(m.load_pfx_material, data)
    assert code == errors.INVALID_MATERIAL and 'no private key' in msg


def test_pfx_key_mismatch(pki, hierarchy):
    other = pki.rsa(fresh=True)
    data = pkcs12.serialize_key_and_certificates(b'x', other, None, [hierarchy['leaf']], serialization.NoEncryption())
    assert code_of(m.load_pfx_material, data)[0] == errors.KEY_MISMATCH


def test_pfx_unsupported_key(pki):
    key = pki.ed25519()
    data = pki.pfx(key, pki.cert(key))
    assert code_of(m.load_pfx_material, data)[0] == errors.UNSUPPORTED_KEY


# -- serialisation ---------------------------------------------------------------

def test_pkcs12_round_trip_is_password_protected(pki, hierarchy):
    material = m.Material(hierarchy['leaf'], hierarchy['key'], [hierarchy['inter'], hierarchy['root']])
    password = m.new_transport_password()
    data = m.build_pkcs12(material, password)
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(data, None)
    again = m.load_pfx_material(data, password)
    assert again.leaf == material.leaf
    assert again.chain == material.chain
    assert m.public_key_matches(again.leaf, hierarchy['key'])


def test_pem_bundle_uses_pkcs8_key_and_leaf_first(pki, hierarchy):
    material = m.load_pem_material(pki.pem(hierarchy['leaf']), pki.key_pem(hierarchy['key'], 'pkcs1'), chain=pki.pem(hierarchy['inter']))
    data = m.build_pem(material)
    assert b'BEGIN RSA PRIVATE KEY' not in data and b'BEGIN PRIVATE KEY' in data
    assert data.index(pki.pem(hierarchy['leaf'])) == 0
    again = m.load_exported_secret(data.decode(), 'application/x-pem-file')
    assert again.leaf == hierarchy['leaf'] and again.chain == [hierarchy['inter']]


def test_exported_secret_without_key_is_rejected(pki, hierarchy):
    data = base64.b64encode(pkcs12.serialize_key_and_certificates(b'x', None, None, [hierarchy['leaf']], serialization.NoEncryption()))
    assert code_of(m.load_exported_secret, data.decode(), 'application/x-pkcs12')[0] == errors.INVALID_MATERIAL


def test_messages_never_contain_key_material(pki, hierarchy):
    pem = pki.key_pem(hierarchy['key'], 'pkcs8', passphrase=b'right')
    body = b''.join(pem.splitlines()[1:-1])[:40].decode()
    for call in (lambda: m.parse_private_key(pem, 'wrong'), lambda: m.parse_private_key(pem[:-60])):
        with pytest.raises(errors.DeployError) as info:
            call()
        assert body not in str(info.value)


def test_malformed_extension_is_invalid_material(pki):
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID
    key = pki.rsa()
    builder = (x509.CertificateBuilder().subject_name(pki.cert(key).subject).issuer_name(pki.cert(key).subject)
               .public_key(key.public_key()).serial_number(7)
               .not_valid_before(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1))
               .not_valid_after(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=9))
               .add_extension(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b'\x30\x03\x87\x01\x01'),
                              critical=False))
    cert = builder.sign(key, m.hashes.SHA256())
    code, msg = code_of(m.check_rules, m.Material(cert, key, []))
    assert code == errors.INVALID_MATERIAL and 'malformed extension' in msg


MALFORMED_PART = {'san_value': 'extension', 'x400_address': 'extension', 'duplicate_extension': 'extension',
                  'subject': 'subject', 'issuer': 'issuer'}


@pytest.mark.parametrize('kind', sorted(MALFORMED_PART))
def test_every_lazily_parsed_part_of_the_leaf_is_invalid_material(pki, kind):
    """cryptography parses names and extensions when they are read, and not only with ValueError (a duplicate
    extension, an x400Address name): each is invalid_material naming the part, never an exception of its own."""
    key = pki.rsa()
    code, msg = code_of(m.check_rules, m.Material(pki.malformed_cert(kind, key), key, []))
    assert code == errors.INVALID_MATERIAL and 'The certificate has a malformed %s' % MALFORMED_PART[kind] in msg


@pytest.mark.parametrize('kind', sorted(MALFORMED_PART))
def test_certificate_facts_strict_raises_a_value_error_and_lenient_reports_the_part(pki, kind):
    """Strict (the default) raises a ValueError subclass, which callers that read a vault's certificates catch;
    lenient (the probe) keeps the exact facts (thumbprint, validity) and says what could not be read."""
    cert = pki.malformed_cert(kind)
    with pytest.raises(ValueError):
        m.certificate_facts(cert)
    facts = m.certificate_facts(cert, lenient=True)
    assert facts['thumbprint'] == m.thumbprint(cert) and facts['expires'] == m.not_after(cert).isoformat()
    assert len(facts['parse_errors']) == 1 and MALFORMED_PART[kind] in facts['parse_errors'][0]
    assert facts['sans'] == ([] if MALFORMED_PART[kind] == 'extension' else ['DNS:odd.example.test'])
    assert facts['subject'] == (None if kind == 'subject' else 'CN=odd.example.test')
    assert facts['issuer'] == (None if kind == 'issuer' else 'CN=Odd Test Issuer')


def test_certificate_facts_of_a_sound_certificate_have_no_parse_errors(pki, hierarchy):
    assert 'parse_errors' not in m.certificate_facts(hierarchy['leaf'], lenient=True)
    assert m.certificate_facts(hierarchy['leaf'], lenient=True) == m.certificate_facts(hierarchy['leaf'])


# -- caller expectations: min_days_remaining, expected_sans ----------------------------

def _with_sans(pki, *names):
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    key = pki.rsa()
    now = datetime.datetime.now(datetime.timezone.utc)
    general = [x509.IPAddress(ipaddress.ip_address(n[3:])) if n.startswith('IP:') else x509.DNSName(n) for n in names]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'sans.example.com')])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=40))
            .add_extension(x509.SubjectAlternativeName(general), critical=False).sign(key, hashes.SHA256()))
    return m.Material(cert, key, [])


@pytest.mark.parametrize('wanted', [
    ['www.example.com'], ['WWW.Example.COM.'], ['DNS:api.example.com'], ['a.wild.example.com'],
    ['10.0.0.1'], ['IP:2001:db8::1'], ['ip:2001:0db8:0::1'],
])
def test_expected_sans_covered(pki, wanted):
    material = _with_sans(pki, 'www.example.com', 'api.example.com', '*.wild.example.com', 'IP:10.0.0.1', 'IP:2001:db8::1')
    m.check_expectations(material, expected_sans=wanted)


@pytest.mark.parametrize('wanted', [
    ['example.com'],               # not listed
    ['a.b.wild.example.com'],      # a wildcard covers one label only
    ['wild.example.com'],          # ... and not the bare domain
    ['10.0.0.2'], ['DNS:10.0.0.9'],
])
def test_expected_sans_missing(pki, wanted):
    material = _with_sans(pki, 'www.example.com', '*.wild.example.com', 'IP:10.0.0.1')
    with pytest.raises(errors.DeployError) as info:
        m.check_expectations(material, expected_sans=wanted)
    assert info.value.code == errors.INVALID_MATERIAL and wanted[0] in info.value.message
    assert 'DNS:www.example.com' in info.value.message  # says what the certificate does cover


def test_expected_sans_bad_ip_is_a_config_error(pki):
    with pytest.raises(errors.DeployError) as info:
        m.check_expectations(_with_sans(pki, 'www.example.com'), expected_sans=['IP:not-an-ip'])
    assert info.value.code == errors.INVALID_CONFIG


def test_min_days_remaining_boundary(pki):
    material = _with_sans(pki, 'www.example.com')  # 40 days left
    now = datetime.datetime.now(datetime.timezone.utc)
    m.check_expectations(material, min_days_remaining=39, now=now)
    with pytest.raises(errors.DeployError) as info:
        m.check_expectations(material, min_days_remaining=41, now=now)
    assert info.value.code == errors.INVALID_MATERIAL and 'in 39 days' in info.value.message


# -- no key bytes in any message: asserted on the key's own base64 lines, not on the word "PRIVATE" ---------

def key_body_lines(pem):
    """The base64 lines of a PEM block: what would leak if a message quoted the key."""
    return [line for line in pem.decode('ascii').splitlines() if line and not line.startswith('-----') and len(line) >= 16]


def assert_no_key_bytes(text, pem):
    leaked = [line for line in key_body_lines(pem) if line in text or line[:24] in text]
    assert not leaked, 'message quotes %d line(s) of the key' % len(leaked)


def test_key_parse_error_quotes_no_key_bytes(pki, hierarchy):
    pem = pki.key_pem(hierarchy['key'])
    lines = pem.splitlines()
    truncated = b'\n'.join(lines[:4] + lines[-1:]) + b'\n'  # armour intact, DER cut short: cannot be parsed
    code, msg = code_of(m.parse_private_key, truncated)
    assert code == errors.INVALID_MATERIAL
    assert_no_key_bytes(msg, truncated)
    code, msg = code_of(m.load_pem_material, pki.pem(hierarchy['leaf']), truncated)
    assert code == errors.INVALID_MATERIAL
    assert_no_key_bytes(msg, truncated)


@pytest.mark.parametrize('maker', ['ed25519', 'dsa'])
def test_unsupported_key_error_quotes_no_key_bytes(pki, maker):
    key = getattr(pki, maker)()
    pem = pki.key_pem(key)
    code, msg = code_of(m.describe_key, key)
    assert code == errors.UNSUPPORTED_KEY
    assert_no_key_bytes(msg, pem)
    code, msg = code_of(m.load_pem_material, pki.pem(pki.cert(key)), pem)
    assert code == errors.UNSUPPORTED_KEY
    assert_no_key_bytes(msg, pem)


def _inconsistent_rsa_pem(pki):
    """An RSA key whose public half is a real key's but whose private exponent is wrong."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = good.private_numbers()
    broken = rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d + 2, numbers.dmp1, numbers.dmq1, numbers.iqmp,
                                   numbers.public_numbers)
    key = broken.private_key(unsafe_skip_rsa_key_validation=True)
    return good, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())


def test_rsa_consistency_check_is_deferred_to_check_private_key(pki):
    good, pem = _inconsistent_rsa_pem(pki)
    key = m.parse_private_key(pem)  # loads: the public half is sound
    assert key.public_key().public_numbers() == good.public_key().public_numbers()
    with pytest.raises(errors.DeployError) as info:
        m.check_private_key(key)
    assert info.value.code == errors.INVALID_MATERIAL
    assert 'not consistent' in info.value.message
    m.check_private_key(good)  # a sound key passes


def _numbers_with(good, **changes):
    from cryptography.hazmat.primitives.asymmetric import rsa
    n = good.private_numbers()
    values = dict(p=n.p, q=n.q, d=n.d, dmp1=n.dmp1, dmq1=n.dmq1, iqmp=n.iqmp, public_numbers=n.public_numbers)
    values.update(changes)
    return rsa.RSAPrivateNumbers(**values).private_key(unsafe_skip_rsa_key_validation=True)


@pytest.mark.parametrize('part,expected', [
    ('d', 'private exponent'), ('dmp1', 'CRT exponents'), ('dmq1', 'CRT exponents'), ('iqmp', 'CRT coefficient'),
])
def test_each_private_number_is_checked(part, expected):
    from cryptography.hazmat.primitives.asymmetric import rsa
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    broken = _numbers_with(good, **{part: getattr(good.private_numbers(), part) + 2})
    with pytest.raises(errors.DeployError) as info:
        m.check_private_key(broken)
    assert info.value.code == errors.INVALID_MATERIAL and expected in info.value.message
    for value in (good.private_numbers().d, good.private_numbers().p):
        assert str(value) not in info.value.message


def test_a_composite_factor_with_numbers_made_to_agree_is_refused_by_the_signature_check():
    """p is the product of two primes; d, the CRT exponents and coefficient are computed so that every identity of
    the numbers holds. Only a working signature tells: OpenSSL's full check would have found p not prime."""
    import math as _math
    from cryptography.hazmat.primitives.asymmetric import rsa
    e = 65537
    while True:  # 65537 must be invertible modulo lambda(n) (almost always at the first try)
        one = rsa.generate_private_key(public_exponent=e, key_size=1024).private_numbers()
        two = rsa.generate_private_key(public_exponent=e, key_size=1024).private_numbers()
        p, q = one.p * one.q, two.p
        lam = (p - 1) * (q - 1) // _math.gcd(p - 1, q - 1)
        if _math.gcd(e, lam) == 1:
            break
    d = pow(e, -1, lam)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q))
    key = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    with pytest.raises(errors.DeployError) as info:
        m.check_private_key(key)
    assert 'does not verify' in info.value.message


def test_the_rsa_check_accepts_sound_keys_of_every_supported_size(pki):
    from cryptography.hazmat.primitives.asymmetric import rsa
    for bits in (2048, 3072, 4096):
        m.check_private_key(rsa.generate_private_key(public_exponent=65537, key_size=bits))


# -- what a target stores, compared with what was sent ----------------------------------------------

def test_compare_stored_verdicts(pki, hierarchy):
    leaf, inter, root = hierarchy['leaf'], hierarchy['inter'], hierarchy['root']
    other = pki.cert(pki.ec(), 'Other CA', ca=True)
    sent = [leaf, inter, root]
    assert m.compare_stored(sent, [leaf, inter, root]) == (m.STORED_EQUAL, None)
    assert m.compare_stored(sent, [leaf])[0] == m.STORED_LEAF_ONLY
    assert m.compare_stored([leaf], [leaf])[0] == m.STORED_EQUAL  # nothing but the leaf was sent
    assert m.compare_stored(sent, [leaf, root, inter], order_kept=False)[0] == m.STORED_REORDERED
    verdict, detail = m.compare_stored(sent, [leaf, root, inter])
    assert verdict == m.STORED_DIFFERS and 'another order although keeping it was asked for' in detail
    for stored in ([leaf, inter], [leaf, inter, root, other], [leaf, other, root], [inter, leaf, root], [other]):
        assert m.compare_stored(sent, stored, order_kept=False)[0] == m.STORED_DIFFERS
    assert 'CN=Other CA' in m.compare_stored(sent, [leaf, other, root])[1]


@pytest.mark.parametrize('kind', ['pem', 'pkcs12', 'pkcs12-no-key'])
def test_stored_certificates_reads_a_backing_secret_in_its_order_with_or_without_a_key(pki, hierarchy, kind):
    leaf, inter, root, key = hierarchy['leaf'], hierarchy['inter'], hierarchy['root'], hierarchy['key']
    if kind == 'pem':
        value = pki.key_pem(key) + pki.pem(leaf, root, inter)
        certs = m.stored_certificates(value, 'application/x-pem-file')
        assert m.stored_certificates(pki.pem(leaf, root), 'application/x-pem-file') == [leaf, root]  # no key (non-exportable)
    elif kind == 'pkcs12':
        data = pkcs12.serialize_key_and_certificates(None, key, leaf, [root, inter], serialization.NoEncryption())
        certs = m.stored_certificates(base64.b64encode(data).decode(), 'application/x-pkcs12')
    else:  # a non-exportable certificate's PKCS#12: certificates without a key
        data = pkcs12.serialize_key_and_certificates(None, None, None, [leaf, root, inter], serialization.NoEncryption())
        certs = m.stored_certificates(base64.b64encode(data).decode(), 'application/x-pkcs12')
    assert certs == [leaf, root, inter]


def test_stored_certificates_refuses_what_it_cannot_read(pki, hierarchy):
    for value, mime in (('not base64!', 'application/x-pkcs12'), (base64.b64encode(b'{"cer": "x"}').decode(), 'application/x-pkcs12'),
                        ('no pem here', 'application/x-pem-file')):
        assert code_of(m.stored_certificates, value, mime)[0] == errors.INVALID_MATERIAL


def test_chain_digest_and_subjects(hierarchy):
    leaf, inter = hierarchy['leaf'], hierarchy['inter']
    assert m.chain_digest([leaf, inter]) != m.chain_digest([inter, leaf]) != m.chain_digest([leaf])
    assert len(m.chain_digest([leaf])) == 64
    assert m.subject_text(inter) == 'CN=Test Intermediate CA'
