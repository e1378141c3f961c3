# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one test PKI helper of the integration targets: keys and certificates made at test time.

Imported (``from testlib import testpki``) by the targets' setup_certdeploy/files/make_pki.py,
setup_loopback_tls/files/make_role_pki.py and azure_kv_bad_input/files/make_bad_material.py, and by
benchmarks/bench.py.
Nothing here is ever written to the repository: the scripts write into a working directory that
the targets remove when they are done.

Certificate profiles (the ``extensions`` argument of ``issue()``):

  EXT_BASIC    BasicConstraints (critical); leaves also get a SubjectAlternativeName
  EXT_KEY_IDS  EXT_BASIC plus SubjectKeyIdentifier, AuthorityKeyIdentifier (issued certificates)
               and, on CAs, KeyUsage keyCertSign + cRLSign (critical)
  EXT_NONE     no extensions at all (the bare self-signed material of the bad-input corpus)
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)

EXT_NONE = 'none'
EXT_BASIC = 'basic'
EXT_KEY_IDS = 'key-ids'

PKCS8 = serialization.PrivateFormat.PKCS8
# PKCS#1 for RSA keys, SEC1 for EC keys ("BEGIN RSA/EC PRIVATE KEY").
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL


def rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key(curve):
    return ec.generate_private_key(curve)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(key, cn, issuer=None, issuer_key=None, ca=False, start=None, days=90, sans=None, ips=(), extensions=EXT_BASIC):
    """A certificate for ``key`` named ``cn``.

    Self-signed when ``issuer`` is None (signed by ``issuer_key`` if given, else by ``key``), otherwise
    issued by the certificate ``issuer`` with ``issuer_key``. Valid from ``start`` (default: an hour
    ago) for ``days`` days. Leaves carry ``sans`` (default: ``cn``) and ``ips`` as alternative names.
    """
    start = start or NOW - datetime.timedelta(hours=1)
    signer = issuer_key or key
    subject = name(cn)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer is not None else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=days)))
    if extensions != EXT_NONE:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if extensions == EXT_KEY_IDS:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        if issuer is not None:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
        if ca:
            builder = builder.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    if extensions != EXT_NONE and not ca:
        alt_names = [x509.DNSName(s) for s in (sans or [cn])] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    # Ed25519 and Ed448 sign without a separate digest.
    digest = None if isinstance(signer, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    return builder.sign(signer, digest)


def ca_pair(root_cn, intermediate_cn, extensions=EXT_BASIC):
    """A root (EC P-384, 10 years) and an intermediate CA (EC P-256, 5 years): (root, root_key, inter, inter_key)."""
    root_key = ec_key(ec.SECP384R1())
    root = issue(root_key, root_cn, ca=True, days=3650, extensions=extensions)
    inter_key = ec_key(ec.SECP256R1())
    inter = issue(inter_key, intermediate_cn, root, root_key, ca=True, days=1825, extensions=extensions)
    return root, root_key, inter, inter_key


def pem(*certs):
    return b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key, fmt=PKCS8, passphrase=None):
    encryption = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def pfx(friendly_name, key, cert, chain=None, password=None):
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    return pkcs12.serialize_key_and_certificates(friendly_name.encode() if friendly_name else None, key, cert, chain, encryption)


def b64(data):
    return base64.b64encode(data).decode('ascii')


def thumbprint(cert):
    """Upper-case hex SHA-1, as Key Vault reports it."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


class Output:
    """The output directory (created 0700) and the JSON map of what was written.

    ``write('rsa1.crt', ...)`` records the path under the key ``rsa1_crt`` (every dot becomes an underscore).
    """

    def __init__(self, directory, default_mode=0o644):
        self.directory = directory
        self.default_mode = default_mode
        self.files = {}
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def write(self, filename, data, mode=None):
        path = os.path.join(self.directory, filename)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.default_mode if mode is None else mode)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        self.files[filename.replace('.', '_')] = path
        return path
