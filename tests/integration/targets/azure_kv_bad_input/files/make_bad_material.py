#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate defective certificate material for the bad-input corpus (at test time).

Usage: make_bad_material.py OUTPUT_DIR  -> prints a JSON map of the files written.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


def cert_for(key, start=None, days=30, signer=None):
    start = start or NOW - datetime.timedelta(hours=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'bad.certdeploy.test')])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=days)))
    signer = signer or key
    return builder.sign(signer, None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def main(out):
    os.makedirs(out, mode=0o700, exist_ok=True)
    files = {}

    def write(name, data, mode=0o600):
        path = os.path.join(out, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        files[name.replace('.', '_')] = path

    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for label, key in (('rsa1024', rsa.generate_private_key(public_exponent=65537, key_size=1024)),
                       ('ed25519', ed25519.Ed25519PrivateKey.generate()),
                       ('dsa', dsa.generate_private_key(key_size=2048)),
                       ('secp256k1', ec.generate_private_key(ec.SECP256K1()))):
        write(label + '.crt', pem(cert_for(key, signer=good if label == 'dsa' else None)))
        write(label + '.key', key_pem(key))
    write('notyet.crt', pem(cert_for(good, start=NOW + datetime.timedelta(days=2))))
    write('good.key', key_pem(good))
    good_cert = cert_for(good)
    write('good.crt', pem(good_cert))
    write('broken_chain.pem', pem(good_cert) + b'-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n')
    write('truncated_chain.pem', pem(good_cert)[:-40])
    write('cert_with_key.pem', pem(good_cert) + key_pem(good))
    write('not_pem.txt', b'this is not a certificate\n')
    nokey = pkcs12.serialize_key_and_certificates(b'x', None, None, [good_cert], serialization.NoEncryption())
    write('nokey.pfx', nokey)
    files['nokey_pfx_b64'] = base64.b64encode(nokey).decode()
    print(json.dumps(files, sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1])
