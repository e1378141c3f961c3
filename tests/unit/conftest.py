# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Test-time PKI: every key and certificate the unit tests use is generated here, never committed."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

UTC = datetime.timezone.utc


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
