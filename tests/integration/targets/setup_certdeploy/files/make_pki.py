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
The certificates are made by tests/integration/testlib/testpki.py, shared with the other targets.
"""

from __future__ import annotations

import datetime
import json
import sys

from cryptography.hazmat.primitives.asymmetric import ec

from testlib import testpki

PASSWORDS = {'enc': 'integration-key-pass', 'pfx': 'integration-pfx-pass'}


def main(out):
    output = testpki.Output(out)
    write, files = output.write, output.files

    root, _root_key, inter, inter_key = testpki.ca_pair('certdeploy integration root', 'certdeploy integration intermediate')
    write('chain.pem', testpki.pem(inter, root))
    write('root.pem', testpki.pem(root))

    leaves = {
        'rsa1': testpki.rsa_key(),
        'rsa2': testpki.rsa_key(),
        'ec384': testpki.ec_key(ec.SECP384R1()),
        'enc': testpki.rsa_key(),
        'expired': testpki.rsa_key(),
        'leafonly': testpki.rsa_key(),
    }
    for label, key in leaves.items():
        if label == 'expired':
            # Valid from 30 days ago for 29 days: expired yesterday.
            cert = testpki.issue(key, '%s.certdeploy.test' % label, inter, inter_key, start=testpki.NOW - datetime.timedelta(days=30), days=29)
        else:
            cert = testpki.issue(key, '%s.certdeploy.test' % label, inter, inter_key, days=90)
        write(label + '.crt', testpki.pem(cert))
        if label == 'enc':
            write(label + '.key', testpki.key_pem(key, testpki.PKCS8, PASSWORDS['enc']), 0o600)
        else:
            write(label + '.key', testpki.key_pem(key, testpki.TRADITIONAL), 0o600)
        if label == 'rsa1':
            write(label + '.pk8', testpki.key_pem(key, testpki.PKCS8), 0o600)
        if label in ('rsa2', 'leafonly'):
            pfx = testpki.pfx(label, key, cert, [inter, root] if label == 'rsa2' else None, PASSWORDS['pfx'])
            write(label + '.pfx', pfx, 0o600)
            files[label + '_pfx_b64'] = testpki.b64(pfx)
        files[label + '_thumbprint'] = testpki.thumbprint(cert)
    files['passwords'] = PASSWORDS
    print(json.dumps(files, sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1])
