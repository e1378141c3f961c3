#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make throw-away certificates for examples/demo.yml (nothing is committed; run it in a scratch directory).

Usage: make_demo_certificates.py OUTPUT_DIR

Writes a demo CA (root + intermediate) and two RSA 2048 leaves for www.demo.certdeploy.test:
``first`` as PEM certificate + PKCS#8 key + chain, and ``renewed`` (a new key: a rotation) as a
password-protected PKCS#12 with its chain.  Prints a JSON map of the files (and the PFX password,
which is as throw-away as the keys).  Uses only `cryptography`, which the collection needs anyway.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
NAME = 'www.demo.certdeploy.test'


def issue(subject, key, issuer=None, issuer_key=None, ca=False, days=90):
    """A certificate for key, signed by issuer_key (self-signed when no issuer is given)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer.subject if issuer is not None else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(minutes=5))
               .not_valid_after(NOW + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def main(out):
    os.makedirs(out, mode=0o700, exist_ok=True)
    files = {}

    def write(label, filename, data):
        path = os.path.join(out, filename)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'wb') as handle:
            handle.write(data)
        files[label] = path

    def pem(*certificates):
        return b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)

    def new_key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    root_key, inter_key = new_key(), new_key()
    root = issue('certdeploy demo root CA', root_key, ca=True, days=365)
    inter = issue('certdeploy demo intermediate CA', inter_key, root, root_key, ca=True, days=365)
    write('chain', 'chain.pem', pem(inter, root))

    first_key, renewed_key = new_key(), new_key()
    first = issue(NAME, first_key, inter, inter_key, days=90)
    write('first_certificate', 'first.crt', pem(first))
    write('first_key', 'first.key', first_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    renewed = issue(NAME, renewed_key, inter, inter_key, days=180)
    password = secrets.token_urlsafe(12)
    write('renewed_pfx', 'renewed.pfx', pkcs12.serialize_key_and_certificates(
        b'renewed', renewed_key, renewed, [inter, root], serialization.BestAvailableEncryption(password.encode())))
    files['renewed_pfx_password'] = password
    print(json.dumps(files, sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1])
