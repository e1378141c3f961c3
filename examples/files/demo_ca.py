#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throw-away CA for examples/demo_issue.yml (nothing is committed; run it in a scratch directory).

Usage:
  demo_ca.py init DIR          make a root and an intermediate CA in DIR (keys 0600); prints the files as JSON
  demo_ca.py sign DIR < CSR    sign a PEM certificate signing request with the intermediate: a 90-day server
                               certificate with the CSR's subject and DNS names (its key is the CSR's, which
                               never leaves Key Vault); prints {"certificate", "chain", "thumbprint"} as JSON

Stands in for your CA (or an ACME client) in the demo's sign step, examples/files/demo_sign.yml.
Uses only `cryptography`, which the collection needs anyway.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


def _pem(*certs):
    return b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _write(directory, filename, data, mode=0o644):
    path = os.path.join(directory, filename)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), 'wb') as handle:
        handle.write(data)
    return path


def _ca(cn, key, issuer=None, issuer_key=None, days=3650):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.subject if issuer is not None else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(issuer_key if issuer_key is not None else key, hashes.SHA256()))


def init(directory):
    os.makedirs(directory, mode=0o700, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca('certdeploy demo root CA', root_key)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _ca('certdeploy demo issuing CA', inter_key, root, root_key, days=1825)
    key_pem = inter_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {'intermediate_key': _write(directory, 'intermediate.key', key_pem, 0o600),
            'intermediate': _write(directory, 'intermediate.pem', _pem(inter)),
            'chain': _write(directory, 'chain.pem', _pem(inter, root))}


def sign(directory):
    csr = x509.load_pem_x509_csr(sys.stdin.buffer.read())
    if not csr.is_signature_valid:
        sys.exit('demo_ca.py: the CSR signature does not verify')
    with open(os.path.join(directory, 'intermediate.pem'), 'rb') as handle:
        inter = x509.load_pem_x509_certificate(handle.read())
    with open(os.path.join(directory, 'intermediate.key'), 'rb') as handle:
        inter_key = serialization.load_pem_private_key(handle.read(), None)
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    builder = (x509.CertificateBuilder()
               .subject_name(csr.subject)
               .issuer_name(inter.subject)
               .public_key(csr.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(minutes=5))
               .not_valid_after(NOW + datetime.timedelta(days=90))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    leaf = builder.sign(inter_key, hashes.SHA256())
    with open(os.path.join(directory, 'chain.pem'), 'rb') as handle:
        chain = handle.read()
    return {'certificate': _pem(leaf).decode('ascii'), 'chain': chain.decode('ascii'),
            'thumbprint': leaf.fingerprint(hashes.SHA1()).hex().upper()}


def main(argv):
    if len(argv) != 2 or argv[0] not in ('init', 'sign'):
        sys.exit(__doc__)
    print(json.dumps(init(argv[1]) if argv[0] == 'init' else sign(argv[1])))


if __name__ == '__main__':
    main(sys.argv[1:])
