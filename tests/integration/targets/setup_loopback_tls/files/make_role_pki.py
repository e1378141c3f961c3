#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate, at test time, the PKI of the role and probe tests (nothing is committed).

Usage: make_role_pki.py OUTPUT_DIR

A root and an intermediate CA, and these leaves:

  server  localhost / 127.0.0.1: the loopback HTTPS server's own certificate
  www1    www.role.test and role.test, RSA 2048, 90 days
  www2    the same names with a new key (a rotation), 90 days
  short   the same names, valid for 3 more days (min_days_remaining)
  other   other.role.test only (expected_sans)

For each leaf: NAME.crt (leaf), NAME.fullchain.pem (leaf + intermediate), NAME.key
(PKCS#8; www2.key is PKCS#1, as certbot writes RSA keys), NAME.pfx (password
protected, with the chain). Also chain.pem (intermediate + root) and root.pem.
Prints a JSON map of the files, the thumbprints (upper-case hex SHA-1) and the PFX password.
"""

from __future__ import annotations

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
PFX_PASSWORD = 'role-pfx-pass'
WWW = ['www.role.test', 'role.test']


def issue(key, cn, issuer=None, issuer_key=None, ca=False, days=90, sans=None, ips=()):
    import ipaddress
    start = NOW - datetime.timedelta(hours=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        names = [x509.DNSName(s) for s in (sans or [cn])] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def pem(*certs):
    return b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


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
    root = issue(root_key, 'certdeploy role test root', ca=True, days=3650)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = issue(inter_key, 'certdeploy role test intermediate', root, root_key, ca=True, days=1825)
    write('root.pem', pem(root))
    write('chain.pem', pem(inter, root))

    leaves = {
        'server': dict(cn='localhost', sans=['localhost'], ips=['127.0.0.1']),
        'www1': dict(cn='www.role.test', sans=WWW),
        'www2': dict(cn='www.role.test', sans=WWW),
        'short': dict(cn='www.role.test', sans=WWW, days=4),
        'other': dict(cn='other.role.test', sans=['other.role.test']),
    }
    for label, spec in leaves.items():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = issue(key, spec['cn'], inter, inter_key, days=spec.get('days', 90), sans=spec['sans'], ips=spec.get('ips', ()))
        key_format = serialization.PrivateFormat.TraditionalOpenSSL if label == 'www2' else serialization.PrivateFormat.PKCS8
        write(label + '.crt', pem(cert))
        write(label + '.fullchain.pem', pem(cert, inter))
        write(label + '.key', key.private_bytes(serialization.Encoding.PEM, key_format, serialization.NoEncryption()), 0o600)
        write(label + '.pfx', pkcs12.serialize_key_and_certificates(
            label.encode(), key, cert, [inter, root], serialization.BestAvailableEncryption(PFX_PASSWORD.encode())), 0o600)
        files[label + '_thumbprint'] = cert.fingerprint(hashes.SHA1()).hex().upper()
    files['pfx_password'] = PFX_PASSWORD
    print(json.dumps(files, sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1])
