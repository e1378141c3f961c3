#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate the integration tests' PKI at test time (nothing is committed).

Usage: make_pki.py OUTPUT_DIR

Writes a root and an intermediate CA and these leaves, each with its key in the
formats the tests need:

  rsa1   RSA 2048, key as PKCS#1 (rsa1.key) and PKCS#8 (rsa1.pk8)
  rsa2   RSA 2048 with a new key (a rotation); also rsa2.pfx with password and chain
  ec384  EC P-384, key as SEC1 (ec384.key)
  enc    RSA 2048, key as encrypted PKCS#8 (passphrase in passwords.json)
  expired  RSA 2048, expired yesterday
  leafonly RSA 2048 with no chain file (for emulators that reject PFX chains); leafonly.pfx without chain

and chain.pem (intermediate + root).  Prints a JSON map of every file written.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
PASSWORDS = {'enc': 'integration-key-pass', 'pfx': 'integration-pfx-pass'}


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(subject_key, cn, issuer=None, issuer_key=None, ca=False, start=None, days=90, sans=None):
    start = start or NOW - datetime.timedelta(hours=1)
    builder = (x509.CertificateBuilder()
               .subject_name(name(cn))
               .issuer_name(issuer.subject if issuer else name(cn))
               .public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in (sans or [cn])]), critical=False)
    return builder.sign(issuer_key or subject_key, hashes.SHA256())


def pem(*certs):
    return b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key, fmt, passphrase=None):
    encryption = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def main(out):
    os.makedirs(out, mode=0o700, exist_ok=True)
    files = {}

    def write(filename, data, mode=0o644):
        path = os.path.join(out, filename)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        files[filename.replace('.', '_')] = path

    root_key = ec.generate_private_key(ec.SECP384R1())
    root = issue(root_key, 'certdeploy integration root', ca=True, days=3650)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = issue(inter_key, 'certdeploy integration intermediate', root, root_key, ca=True, days=1825)
    write('chain.pem', pem(inter, root))
    write('root.pem', pem(root))

    pkcs8 = serialization.PrivateFormat.PKCS8
    traditional = serialization.PrivateFormat.TraditionalOpenSSL
    leaves = {
        'rsa1': rsa.generate_private_key(public_exponent=65537, key_size=2048),
        'rsa2': rsa.generate_private_key(public_exponent=65537, key_size=2048),
        'ec384': ec.generate_private_key(ec.SECP384R1()),
        'enc': rsa.generate_private_key(public_exponent=65537, key_size=2048),
        'expired': rsa.generate_private_key(public_exponent=65537, key_size=2048),
        'leafonly': rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    for label, key in leaves.items():
        start = NOW - datetime.timedelta(days=30) if label == 'expired' else None
        cert = issue(key, '%s.certdeploy.test' % label, inter, inter_key, start=start, days=29 if label == 'expired' else 90)
        write(label + '.crt', pem(cert))
        if label == 'enc':
            write(label + '.key', key_pem(key, pkcs8, PASSWORDS['enc']), 0o600)
        else:
            write(label + '.key', key_pem(key, traditional), 0o600)
        if label == 'rsa1':
            write(label + '.pk8', key_pem(key, pkcs8), 0o600)
        if label in ('rsa2', 'leafonly'):
            pfx = pkcs12.serialize_key_and_certificates(
                label.encode(), key, cert, [inter, root] if label == 'rsa2' else None,
                serialization.BestAvailableEncryption(PASSWORDS['pfx'].encode()))
            write(label + '.pfx', pfx, 0o600)
            files[label + '_pfx_b64'] = base64.b64encode(pfx).decode('ascii')
        files[label + '_thumbprint'] = cert.fingerprint(hashes.SHA1()).hex().upper()
    files['passwords'] = PASSWORDS
    print(json.dumps(files, sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1])
