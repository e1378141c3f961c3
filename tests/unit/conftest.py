# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Test-time PKI: every key and certificate the unit tests use is generated here, never committed."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

UTC = datetime.timezone.utc
UNLOADABLE_KEY_OID = '1.3.101.99'
UNLOADABLE_KEY_OID_FROM = bytes.fromhex('06032b6570')  # DER of OID 1.3.101.112 (Ed25519)
UNLOADABLE_KEY_OID_TO = bytes.fromhex('06032b6563')  # DER of OID 1.3.101.99 (unassigned here)


def _der_length(length):
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(body)]) + body


def _der(tag, content):
    """One DER element: tag, length, content."""
    return bytes([tag]) + _der_length(len(content)) + content


def _der_end(data, start):
    """The offset just past the DER element that starts at ``start``."""
    first = data[start + 1]
    if first < 0x80:
        return start + 2 + first
    count = first & 0x7F
    return start + 2 + count + int.from_bytes(data[start + 2:start + 2 + count], 'big')


class Pki(object):
    """Builds keys, CAs, leaves and serialisations on demand (RSA keys are cached per size)."""

    _rsa_cache = {}

    def rsa(self, bits=2048, fresh=False):
        if fresh or bits not in self._rsa_cache:
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            if fresh:
                return key
            self._rsa_cache[bits] = key
        return self._rsa_cache[bits]

    def ec(self, curve=ec.SECP256R1):
        return ec.generate_private_key(curve())

    def ed25519(self):
        return ed25519.Ed25519PrivateKey.generate()

    def dsa(self):
        return dsa.generate_private_key(key_size=2048)

    def cert(self, key, subject='leaf.example.com', issuer=None, issuer_key=None, days=90, not_before=None,
             sans=None, ca=False):
        now = datetime.datetime.now(UTC)
        start = not_before or now - datetime.timedelta(days=1)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        issuer_name = issuer.subject if issuer is not None else name
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans is None and not ca:
            sans = [subject]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
        signer = issuer_key or key
        algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        return builder.sign(signer, algorithm)

    def hierarchy(self, leaf_key=None, leaf_days=90, leaf_not_before=None, subject='www.example.com'):
        """Root → intermediate → leaf; returns dict(root, inter, leaf, key)."""
        root_key = self.ec(ec.SECP384R1)
        root = self.cert(root_key, 'Test Root CA', ca=True, days=3650)
        inter_key = self.ec()
        inter = self.cert(inter_key, 'Test Intermediate CA', issuer=root, issuer_key=root_key, ca=True, days=1800)
        key = leaf_key or self.rsa()
        leaf = self.cert(key, subject, issuer=inter, issuer_key=inter_key, days=leaf_days, not_before=leaf_not_before)
        return {'root': root, 'inter': inter, 'leaf': leaf, 'key': key}

    def tamper(self, cert, old, new, signer_key):
        """``cert`` with the bytes ``old`` replaced by ``new`` (of the same length) in its to-be-signed part, signed again.

        The signature is valid (by ``signer_key``, SHA-256, the algorithm ``cert`` was signed with), so what
        is left wrong is only what was replaced: e.g. an unknown public-key algorithm OID, or an extension
        OID that makes a duplicate. cryptography parses such parts only when they are read.
        """
        assert len(old) == len(new), 'a replacement of another length would break the DER lengths around it'
        tbs = cert.tbs_certificate_bytes
        assert tbs.count(old) == 1, 'the bytes to replace must occur exactly once'
        tbs = tbs.replace(old, new)
        der = cert.public_bytes(serialization.Encoding.DER)
        algorithm_start = der.index(cert.tbs_certificate_bytes) + len(cert.tbs_certificate_bytes)
        algorithm = der[algorithm_start:_der_end(der, algorithm_start)]
        if isinstance(signer_key, rsa.RSAPrivateKey):
            signature = signer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = signer_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        return x509.load_der_x509_certificate(_der(0x30, tbs + algorithm + _der(0x03, b'\x00' + signature)))

    def unloadable_key_cert(self, subject='Unloadable Key CA', days=90):
        """A well-formed, validly signed certificate whose public key cryptography cannot load (UnsupportedAlgorithm).

        Its SubjectPublicKeyInfo names the algorithm OID 1.3.101.99, which nothing implements (an Ed25519 key,
        OID 1.3.101.112, with the last arc rewritten).  Self-issued; signed by an EC key that is thrown away.
        """
        signer = self.ec()
        cert = self.cert(ed25519.Ed25519PrivateKey.generate(), subject, issuer_key=signer, days=days, ca=True)
        return self.tamper(cert, UNLOADABLE_KEY_OID_FROM, UNLOADABLE_KEY_OID_TO, signer)

    MALFORMED_KINDS = ('san_value', 'x400_address', 'duplicate_extension', 'subject', 'issuer')

    def malformed_cert(self, kind, key=None):
        """A self-signed certificate for ``key`` (RSA-2048 by default) with one part cryptography refuses only when read.

        ``san_value``: a subjectAltName whose IP address is one byte (ValueError); ``x400_address``: a
        subjectAltName holding an x400Address (UnsupportedGeneralNameType); ``duplicate_extension``: two
        subjectAltName extensions (DuplicateExtension); ``subject`` / ``issuer``: a CN that is not UTF-8 (ValueError).
        The certificate itself loads, and its signature is valid.
        """
        key = key or self.rsa()
        now = datetime.datetime.now(UTC)
        marker = 'QQQQQQQQ'
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, marker if kind == 'subject' else 'odd.example.test')])
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, marker if kind == 'issuer' else 'Odd Test Issuer')])
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30)))
        san_oid = x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        stand_in_oid = x509.ObjectIdentifier('2.5.29.99')  # same DER length as 2.5.29.17, the subjectAltName OID
        extensions = {
            'san_value': [x509.UnrecognizedExtension(san_oid, b'\x30\x03\x87\x01\x01')],
            'x400_address': [x509.UnrecognizedExtension(san_oid, b'\x30\x02\xa3\x00')],
            'duplicate_extension': [x509.SubjectAlternativeName([x509.DNSName('odd.example.test')]),
                                    x509.UnrecognizedExtension(stand_in_oid, b'\x30\x00')],
            'subject': [x509.SubjectAlternativeName([x509.DNSName('odd.example.test')])],
            'issuer': [x509.SubjectAlternativeName([x509.DNSName('odd.example.test')])],
        }[kind]
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        cert = builder.sign(key, hashes.SHA256())
        if kind == 'duplicate_extension':
            return self.tamper(cert, bytes.fromhex('0603551d63'), bytes.fromhex('0603551d11'), key)
        if kind in ('subject', 'issuer'):
            return self.tamper(cert, marker.encode(), b'\xff' * len(marker), key)
        return cert

    @staticmethod
    def pem(*certs):
        return b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    @staticmethod
    def key_pem(key, fmt='pkcs8', passphrase=None):
        formats = {
            'pkcs8': serialization.PrivateFormat.PKCS8,
            'pkcs1': serialization.PrivateFormat.TraditionalOpenSSL,  # RSA → PKCS#1, EC → SEC1
            'sec1': serialization.PrivateFormat.TraditionalOpenSSL,
        }
        encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        return key.private_bytes(serialization.Encoding.PEM, formats[fmt], encryption)

    @staticmethod
    def pfx(key, cert, cas=None, password=None):
        encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        return pkcs12.serialize_key_and_certificates(b'test', key, cert, cas, encryption)


@pytest.fixture(scope='session')
def pki():
    return Pki()


@pytest.fixture
def hierarchy(pki):
    return pki.hierarchy()
