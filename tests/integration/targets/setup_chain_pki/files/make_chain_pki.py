#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate the chain-fidelity targets' PKI at test time (nothing is committed).

Usage: make_chain_pki.py OUTPUT_DIR

One leaf (RSA 2048, ``chain.certdeploy.test``) issued by an intermediate CA, which exists twice with the same
subject and key: ``inter`` issued by ``root``, and ``cross`` cross-signed by ``other_root``. So the leaf has
two valid chains, [inter, root] and [cross, other_root], and a chain-only change keeps the leaf (and its
thumbprint) as it is. Files (paths in the printed JSON under their names, dots as underscores):

  leaf.crt, leaf.key (PKCS#8)           the leaf alone and its key
  chain.pem                              inter, root        (leaf-first order)
  chain_rootfirst.pem                    root, inter        (the same, root first)
  chain_cross.pem                        cross, other_root  (the cross-signed path)
  inter.pem, cross.pem                   one certificate each
  leaf.pfx, chain.pfx, rootfirst.pfx     PKCS#12 with password: the leaf alone; + [inter, root]; + [root, inter]

Also printed: ``thumbprint`` (the leaf's), ``subjects`` (RFC 4514) and ``thumbprints`` (SHA-1, upper-case
hex) of leaf, inter, cross, root and other_root (inter and cross share their subject)
and ``digests``: the SHA-256 (hex) over the SHA-256 of each certificate's DER, in order -- the digest the
module's ``certdeploy-material`` record documents -- for the orders the tests expect:
leaf, chain (leaf inter root), no_root (leaf inter), cross (leaf cross other_root), root_first
(leaf root inter).
"""

from __future__ import annotations

import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testlib import testpki

PASSWORD = 'chain-pfx-pass'


def digest(*certs):
    outer = hashlib.sha256()
    for cert in certs:
        outer.update(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
    return outer.hexdigest()


def main(out):
    output = testpki.Output(out)
    write, files = output.write, output.files
    root, root_key, inter, inter_key = testpki.ca_pair('certdeploy chain root', 'certdeploy chain intermediate')
    other_root_key = testpki.ec_key(ec.SECP384R1())
    other_root = testpki.issue(other_root_key, 'certdeploy chain other root', ca=True, days=3650)
    # The same intermediate (subject and key) cross-signed by the other root.
    cross = testpki.issue(inter_key, 'certdeploy chain intermediate', other_root, other_root_key, ca=True, days=1825)
    key = testpki.rsa_key()
    leaf = testpki.issue(key, 'chain.certdeploy.test', inter, inter_key, days=90)

    write('leaf.crt', testpki.pem(leaf))
    write('leaf.key', testpki.key_pem(key, testpki.PKCS8), 0o600)
    write('chain.pem', testpki.pem(inter, root))
    write('chain_rootfirst.pem', testpki.pem(root, inter))
    write('chain_cross.pem', testpki.pem(cross, other_root))
    write('inter.pem', testpki.pem(inter))
    write('cross.pem', testpki.pem(cross))
    write('leaf.pfx', testpki.pfx('leaf', key, leaf, None, PASSWORD), 0o600)
    write('chain.pfx', testpki.pfx('leaf', key, leaf, [inter, root], PASSWORD), 0o600)
    write('rootfirst.pfx', testpki.pfx('leaf', key, leaf, [root, inter], PASSWORD), 0o600)
    files['password'] = PASSWORD
    files['thumbprint'] = testpki.thumbprint(leaf)
    labelled = (('leaf', leaf), ('inter', inter), ('cross', cross), ('root', root), ('other_root', other_root))
    files['subjects'] = dict((label, cert.subject.rfc4514_string()) for label, cert in labelled)
    files['thumbprints'] = dict((label, testpki.thumbprint(cert)) for label, cert in labelled)
    files['digests'] = {
        'leaf': digest(leaf),
        'chain': digest(leaf, inter, root),
        'no_root': digest(leaf, inter),
        'cross': digest(leaf, cross, other_root),
        'root_first': digest(leaf, root, inter),
    }
    print(json.dumps(files, sort_keys=True))


if __name__ == '__main__':
    main(sys.argv[1])
