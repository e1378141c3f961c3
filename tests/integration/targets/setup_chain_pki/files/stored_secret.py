#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a certificate version's backing secret holds, read independently of the module under test.

Usage: stored_secret.py VAULT_URL NAME VERSION

GET /secrets/NAME/VERSION (through whatever VAULT_URL is: the fault proxy, where the chain-keeping test
double answers it, or the vault itself), authenticated like vault_state.py (managed identity at
IDENTITY_ENDPOINT, or a client secret when AZURE_CLIENT_SECRET is set; CERTDEPLOY_TEST_CA_FILE,
CERTDEPLOY_TEST_API_VERSION). Prints JSON: status, contentType, managed, whether kid is set, whether the
value holds a private key, and the certificates in the order stored (subjects, SHA-1 thumbprints); for a
PKCS#12 the certificate that carries the key comes first, then the others in their stored order. A value
that is neither PEM nor a password-less PKCS#12 (the Go emulator's JSON) is reported as ``unreadable``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys

from azure.core.rest import HttpRequest
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12

PEM_BLOCK = re.compile(r'-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----', re.DOTALL)


def client(vault_url):
    options = {'connection_verify': os.environ['CERTDEPLOY_TEST_CA_FILE']} if os.environ.get('CERTDEPLOY_TEST_CA_FILE') else {}
    if os.environ.get('AZURE_CLIENT_SECRET'):
        credential = ClientSecretCredential(os.environ['AZURE_TENANT_ID'], os.environ['AZURE_CLIENT_ID'], os.environ['AZURE_CLIENT_SECRET'],
                                            authority=os.environ['AZURE_AUTHORITY_HOST'], disable_instance_discovery=True, **options)
    else:
        credential = ManagedIdentityCredential(**options)
    api = {'api_version': os.environ['CERTDEPLOY_TEST_API_VERSION']} if os.environ.get('CERTDEPLOY_TEST_API_VERSION') else {}
    return CertificateClient(vault_url, credential, verify_challenge_resource=False, **dict(options, **api))


def certificates(value, content_type):
    """(certificates in stored order, whether a private key is there), or None when unreadable."""
    if content_type == 'application/x-pem-file':
        blocks = [(m.group(1), m.group(0)) for m in PEM_BLOCK.finditer(value)]
        certs = [x509.load_pem_x509_certificate(b.encode()) for label, b in blocks if label == 'CERTIFICATE']
        return certs, any(block[0].endswith('PRIVATE KEY') for block in blocks)
    try:
        bundle = pkcs12.load_pkcs12(base64.b64decode(value), None)
    except ValueError:
        return None
    return ([bundle.cert.certificate] if bundle.cert else []) + [c.certificate for c in bundle.additional_certs], bundle.key is not None


def main(vault_url, name, version):
    response = client(vault_url).send_request(HttpRequest('GET', '/secrets/%s/%s' % (name, version),
                                                          headers={'Accept': 'application/json'}))
    out = {'status': response.status_code}
    if response.status_code == 200:
        body = response.json()
        out.update(content_type=body.get('contentType'), managed=body.get('managed'), kid=bool(body.get('kid')),
                   keys=sorted(body))
        found = certificates(body.get('value') or '', body.get('contentType'))
        if found is None:
            out['unreadable'] = True
        else:
            certs, out['has_key'] = found
            out['subjects'] = [c.subject.rfc4514_string() for c in certs]
            out['thumbprints'] = [c.fingerprint(hashes.SHA1()).hex().upper() for c in certs]
    print(json.dumps(out, sort_keys=True))


if __name__ == '__main__':
    main(*sys.argv[1:])
