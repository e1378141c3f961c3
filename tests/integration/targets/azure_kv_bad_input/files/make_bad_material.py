#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate defective certificate material for the bad-input corpus (at test time).

Usage: make_bad_material.py OUTPUT_DIR  -> prints a JSON map of the files written.

Every certificate is a bare self-signed bad.certdeploy.test (no extensions), valid for 30 days,
made by tests/integration/testlib/testpki.py, the integration targets' one PKI helper.
"""

from __future__ import annotations

import datetime
import json
import sys

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519

from testlib import testpki

CN = 'bad.certdeploy.test'


def cert_for(key, start=None, signer=None):
    return testpki.issue(key, CN, issuer_key=signer, start=start, days=30, extensions=testpki.EXT_NONE)


def main(out):
    output = testpki.Output(out, default_mode=0o600)
    write, files = output.write, output.files

    good = testpki.rsa_key()
    for label, key in (('rsa1024', testpki.rsa_key(1024)),
                       ('ed25519', ed25519.Ed25519PrivateKey.generate()),
                       ('dsa', dsa.generate_private_key(key_size=2048)),
                       ('secp256k1', testpki.ec_key(ec.SECP256K1()))):
        # The DSA certificate is signed by the good RSA key (its subject and issuer name stay the same).
        write(label + '.crt', testpki.pem(cert_for(key, signer=good if label == 'dsa' else None)))
        write(label + '.key', testpki.key_pem(key))
    write('notyet.crt', testpki.pem(cert_for(good, start=testpki.NOW + datetime.timedelta(days=2))))
    write('good.key', testpki.key_pem(good))
    good_cert = cert_for(good)
    write('good.crt', testpki.pem(good_cert))
    write('broken_chain.pem', testpki.pem(good_cert) + b'-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n')
    write('truncated_chain.pem', testpki.pem(good_cert)[:-40])
    write('cert_with_key.pem', testpki.pem(good_cert) + testpki.key_pem(good))
    write('not_pem.txt', b'this is not a certificate\n')
    nokey = testpki.pfx('x', None, None, [good_cert])
    write('nokey.pfx', nokey)
    files['nokey_pfx_b64'] = testpki.b64(nokey)
    print(json.dumps(files, sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1])
