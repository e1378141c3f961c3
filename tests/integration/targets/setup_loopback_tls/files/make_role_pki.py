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
The certificates are made by tests/integration/testlib/testpki.py, the integration targets' one PKI helper.
"""

from __future__ import annotations

import json
import sys

from testlib import testpki

PFX_PASSWORD = 'role-pfx-pass'
WWW = ['www.role.test', 'role.test']


def main(out):
    output = testpki.Output(out)
    write, files = output.write, output.files

    root, _root_key, inter, inter_key = testpki.ca_pair('certdeploy role test root', 'certdeploy role test intermediate',
                                                        extensions=testpki.EXT_KEY_IDS)
    write('root.pem', testpki.pem(root))
    write('chain.pem', testpki.pem(inter, root))

    leaves = {
        'server': dict(cn='localhost', sans=['localhost'], ips=['127.0.0.1']),
        'www1': dict(cn='www.role.test', sans=WWW),
        'www2': dict(cn='www.role.test', sans=WWW),
        'short': dict(cn='www.role.test', sans=WWW, days=4),
        'other': dict(cn='other.role.test', sans=['other.role.test']),
    }
    for label, spec in leaves.items():
        key = testpki.rsa_key()
        cert = testpki.issue(key, spec['cn'], inter, inter_key, days=spec.get('days', 90), sans=spec['sans'], ips=spec.get('ips', ()),
                             extensions=testpki.EXT_KEY_IDS)
        write(label + '.crt', testpki.pem(cert))
        write(label + '.fullchain.pem', testpki.pem(cert, inter))
        write(label + '.key', testpki.key_pem(key, testpki.TRADITIONAL if label == 'www2' else testpki.PKCS8), 0o600)
        write(label + '.pfx', testpki.pfx(label, key, cert, [inter, root], PFX_PASSWORD), 0o600)
        files[label + '_thumbprint'] = testpki.thumbprint(cert)
    files['pfx_password'] = PFX_PASSWORD
    print(json.dumps(files, sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1])
