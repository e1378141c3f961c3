#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a requested certificate's real state from the vault, independently of the modules under test.

Usage: request_state.py VAULT_URL NAME [cancel|discard]

Signs in with a client secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST), trusts
CERTDEPLOY_TEST_CA_FILE, and prints JSON:

  pending   the certificate operation: status, issuer, and when it carries a CSR its csr_sha256 (SHA-256 of the DER)
            and public_key_sha256 (of its SubjectPublicKeyInfo); null when the vault has none (404)
  versions  every version (version, thumbprint, public_key_sha256 of its certificate, tags, enabled, created),
            oldest first; [] while the name holds only a pending request
  latest    the latest version as above, or null
  count     how many versions
  policy    the policy the vault serves for the name (issuer, subject, dns_names, key_type, key_size, curve,
            exportable, reuse_key, validity_months, content_type), or null when it serves none (404)

With ``cancel`` it first asks the vault to cancel the pending operation; with ``discard`` it deletes it (test
set-up: a request someone else cancelled or removed).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.certificates import CertificateClient
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def client(vault_url):
    verify = os.environ.get('CERTDEPLOY_TEST_CA_FILE') or True
    credential = ClientSecretCredential(os.environ['AZURE_TENANT_ID'], os.environ['AZURE_CLIENT_ID'], os.environ['AZURE_CLIENT_SECRET'],
                                        authority=os.environ['AZURE_AUTHORITY_HOST'], disable_instance_discovery=True,
                                        connection_verify=verify)
    return CertificateClient(vault_url, credential, verify_challenge_resource=False, connection_verify=verify)


def spki_sha256(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def operation_facts(operation):
    facts = {'status': operation.status, 'issuer': operation.issuer_name, 'csr_sha256': None, 'public_key_sha256': None,
             'cancellation_requested': operation.cancellation_requested}
    if operation.csr:
        csr = x509.load_der_x509_csr(bytes(operation.csr))
        facts['csr_sha256'] = hashlib.sha256(bytes(operation.csr)).hexdigest()
        facts['public_key_sha256'] = spki_sha256(csr.public_key())
    return facts


def version_facts(props, cer=None):
    facts = {
        'version': props.version,
        'thumbprint': props.x509_thumbprint.hex().upper() if props.x509_thumbprint else None,
        'tags': props.tags or {},
        'enabled': props.enabled,
        'created': props.created_on.isoformat() if props.created_on else None,
        'public_key_sha256': None,
    }
    if cer:
        facts['public_key_sha256'] = spki_sha256(x509.load_der_x509_certificate(bytes(cer)).public_key())
    return facts


def policy_facts(policy):
    return {'issuer': policy.issuer_name, 'subject': policy.subject, 'dns_names': list(policy.san_dns_names or []),
            'key_type': str(policy.key_type) if policy.key_type else None, 'key_size': policy.key_size,
            'curve': str(policy.key_curve_name) if policy.key_curve_name else None, 'exportable': policy.exportable,
            'reuse_key': policy.reuse_key, 'validity_months': policy.validity_in_months,
            'content_type': str(policy.content_type) if policy.content_type else None}


def main(vault_url, name, action=None):
    certs = client(vault_url)
    if action == 'cancel':
        certs.cancel_certificate_operation(name)
    elif action == 'discard':
        certs.delete_certificate_operation(name)
    state = {'name': name, 'pending': None, 'versions': [], 'latest': None, 'policy': None}
    try:
        state['pending'] = operation_facts(certs.get_certificate_operation(name))
    except ResourceNotFoundError:
        pass
    try:
        latest = certs.get_certificate(name)
        state['latest'] = version_facts(latest.properties, latest.cer)
        versions = []
        for props in certs.list_properties_of_certificate_versions(name):
            version = certs.get_certificate_version(name, props.version)
            versions.append(version_facts(version.properties, version.cer))
        state['versions'] = sorted(versions, key=lambda v: (v['created'] or '', v['version']))
    except ResourceNotFoundError:
        pass
    try:
        state['policy'] = policy_facts(certs.get_certificate_policy(name))
    except ResourceNotFoundError:
        pass
    state['count'] = len(state['versions'])
    print(json.dumps(state, sort_keys=True))


if __name__ == '__main__':
    main(*sys.argv[1:])
