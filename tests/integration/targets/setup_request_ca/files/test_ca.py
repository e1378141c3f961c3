#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The request targets' own small CA, made at test time (nothing is committed), and a CSR reader.

Usage:
  test_ca.py init DIR                     make a root CA and an intermediate CA in DIR (keys 0600)
  test_ca.py sign DIR [--other-key [--key-out NAME]] [--days N] < CSR.pem
                                          issue a leaf for the CSR (its subject and DNS names, serverAuth),
                                          signed by the intermediate; --other-key: over a fresh key of its own
                                          instead of the CSR's (a certificate that does not belong to the request);
                                          --key-out: that key is written to DIR/NAME (0600, PKCS#8), for a deploy
  test_ca.py inspect < CSR.pem            what the CSR says, computed here, independently of the module
  test_ca.py cert < CERT.pem              the same facts of a certificate (first PEM block)

Every command prints one JSON object. ``sign`` prints ``certificate`` (PEM of the leaf), ``chain`` (PEM:
intermediate, root), ``thumbprint`` (SHA-1, upper-case hex, as Key Vault shows it), ``public_key_sha256``,
``not_after`` and ``serial``. ``inspect`` prints ``csr_sha256`` (SHA-256 of the CSR's DER, lower-case hex),
``public_key_sha256`` (SHA-256 of its SubjectPublicKeyInfo DER), ``subject`` (RFC 4514), ``common_name``,
``dns_names``, ``key_type`` (RSA or EC), ``key_size`` (bits; the curve's size for EC), ``curve`` (P-256, P-384,
P-521 or null) and ``signature_valid``. The certificates come from tests/integration/testlib/testpki.py.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testlib import testpki

CURVES = {'secp256r1': 'P-256', 'secp384r1': 'P-384', 'secp521r1': 'P-521'}


def spki_sha256(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def key_facts(public_key):
    if isinstance(public_key, rsa.RSAPublicKey):
        return {'key_type': 'RSA', 'key_size': public_key.key_size, 'curve': None}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {'key_type': 'EC', 'key_size': public_key.curve.key_size, 'curve': CURVES.get(public_key.curve.name, public_key.curve.name)}
    return {'key_type': type(public_key).__name__, 'key_size': None, 'curve': None}


def dns_names(extensions):
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


def common_name(subject):
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if names else None


def read_stdin():
    data = sys.stdin.buffer.read()
    if not data.strip():
        sys.exit('test_ca.py: nothing on stdin')
    return data


def load_ca(directory):
    with open(os.path.join(directory, 'intermediate.pem'), 'rb') as handle:
        inter = x509.load_pem_x509_certificate(handle.read())
    with open(os.path.join(directory, 'intermediate.key'), 'rb') as handle:
        inter_key = serialization.load_pem_private_key(handle.read(), None)
    with open(os.path.join(directory, 'root.pem'), 'rb') as handle:
        root = x509.load_pem_x509_certificate(handle.read())
    return root, inter, inter_key


def cmd_init(args):
    output = testpki.Output(args.dir)
    root, _root_key, inter, inter_key = testpki.ca_pair('certdeploy request test root', 'certdeploy request test intermediate',
                                                        extensions=testpki.EXT_KEY_IDS)
    output.write('root.pem', testpki.pem(root))
    output.write('intermediate.pem', testpki.pem(inter))
    output.write('intermediate.key', testpki.key_pem(inter_key), 0o600)
    output.write('chain.pem', testpki.pem(inter, root))
    result = dict(output.files)
    result.update({'dir': args.dir, 'root_thumbprint': testpki.thumbprint(root), 'intermediate_thumbprint': testpki.thumbprint(inter)})
    return result


def cmd_sign(args):
    csr = x509.load_pem_x509_csr(read_stdin())
    if not csr.is_signature_valid:
        sys.exit('test_ca.py: the CSR signature does not verify')
    root, inter, inter_key = load_ca(args.dir)
    if args.key_out and not args.other_key:
        sys.exit('test_ca.py: --key-out needs --other-key (the CSR\'s key stays in the vault)')
    own_key = testpki.rsa_key() if args.other_key else None
    public_key = own_key.public_key() if own_key is not None else csr.public_key()
    start = testpki.NOW - datetime.timedelta(minutes=5)
    builder = (x509.CertificateBuilder()
               .subject_name(csr.subject)
               .issuer_name(inter.subject)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + datetime.timedelta(days=args.days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), critical=False))
    names = dns_names(csr.extensions) or ([common_name(csr.subject)] if common_name(csr.subject) else [])
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    leaf = builder.sign(inter_key, hashes.SHA256())
    extra = {}
    if args.key_out:
        extra['private_key_path'] = testpki.Output(args.dir).write(args.key_out, testpki.key_pem(own_key), 0o600)
    extra.update({'certificate': testpki.pem(leaf).decode('ascii'), 'chain': testpki.pem(inter, root).decode('ascii'),
                  'thumbprint': testpki.thumbprint(leaf), 'public_key_sha256': spki_sha256(leaf.public_key()),
                  'not_after': leaf.not_valid_after_utc.isoformat(), 'serial': format(leaf.serial_number, 'x'),
                  'dns_names': names})
    return extra


def cmd_inspect(_args):
    csr = x509.load_pem_x509_csr(read_stdin())
    der = csr.public_bytes(serialization.Encoding.DER)
    result = {'csr_sha256': hashlib.sha256(der).hexdigest(), 'public_key_sha256': spki_sha256(csr.public_key()),
              'subject': csr.subject.rfc4514_string(), 'common_name': common_name(csr.subject),
              'dns_names': dns_names(csr.extensions), 'signature_valid': csr.is_signature_valid}
    result.update(key_facts(csr.public_key()))
    return result


def cmd_cert(_args):
    cert = x509.load_pem_x509_certificate(read_stdin())
    result = {'thumbprint': testpki.thumbprint(cert), 'public_key_sha256': spki_sha256(cert.public_key()),
              'subject': cert.subject.rfc4514_string(), 'issuer': cert.issuer.rfc4514_string(),
              'dns_names': dns_names(cert.extensions), 'not_after': cert.not_valid_after_utc.isoformat()}
    result.update(key_facts(cert.public_key()))
    return result


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)
    init = commands.add_parser('init')
    init.add_argument('dir')
    init.set_defaults(run=cmd_init)
    sign = commands.add_parser('sign')
    sign.add_argument('dir')
    sign.add_argument('--other-key', action='store_true')
    sign.add_argument('--key-out')
    sign.add_argument('--days', type=int, default=90)
    sign.set_defaults(run=cmd_sign)
    commands.add_parser('inspect').set_defaults(run=cmd_inspect)
    commands.add_parser('cert').set_defaults(run=cmd_cert)
    args = parser.parse_args(argv)
    print(json.dumps(args.run(args), sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1:])
