#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a certificate's real state from the vault, independently of the module under test.

Usage: vault_state.py VAULT_URL NAME [delete|purge|untag|unrecord]

Authenticates like the tests (managed identity at IDENTITY_ENDPOINT, or a
client secret when AZURE_CLIENT_SECRET is set), trusts CERTDEPLOY_TEST_CA_FILE,
and prints JSON: every version (version, thumbprint, tags, enabled, created)
oldest first, the latest version, and whether the name is soft-deleted.
With ``delete`` it soft-deletes the certificate first; with ``purge`` it also
purges it; with ``untag`` it replaces the latest version's tags by a foreign
owner's, as if someone else managed it (test set-up); with ``unrecord`` it removes the latest version's
``certdeploy-material`` tag (the record of what was imported) and keeps the others, as a version imported
by a release before that record looks.
"""

from __future__ import annotations

import json
import os
import sys

from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient


def client(vault_url):
    options = {'connection_verify': os.environ['CERTDEPLOY_TEST_CA_FILE']} if os.environ.get('CERTDEPLOY_TEST_CA_FILE') else {}
    if os.environ.get('AZURE_CLIENT_SECRET'):
        credential = ClientSecretCredential(os.environ['AZURE_TENANT_ID'], os.environ['AZURE_CLIENT_ID'], os.environ['AZURE_CLIENT_SECRET'],
                                            authority=os.environ['AZURE_AUTHORITY_HOST'], disable_instance_discovery=True, **options)
    else:
        credential = ManagedIdentityCredential(**options)
    api = {'api_version': os.environ['CERTDEPLOY_TEST_API_VERSION']} if os.environ.get('CERTDEPLOY_TEST_API_VERSION') else {}
    return CertificateClient(vault_url, credential, verify_challenge_resource=False, **dict(options, **api))


def version_facts(props):
    return {
        'version': props.version,
        'thumbprint': props.x509_thumbprint.hex().upper() if props.x509_thumbprint else None,
        'tags': props.tags or {},
        'enabled': props.enabled,
        'created': props.created_on.isoformat() if props.created_on else None,
    }


def main(vault_url, name, action=None):
    certs = client(vault_url)
    if action in ('delete', 'purge'):
        try:
            certs.begin_delete_certificate(name).result()
        except ResourceNotFoundError:
            pass
        if action == 'purge':
            try:
                certs.purge_deleted_certificate(name)
            except ResourceNotFoundError:
                pass
    if action == 'untag':
        latest = certs.get_certificate(name)
        certs.update_certificate_properties(name, latest.properties.version, tags={'owner': 'someone-else'})
    if action == 'unrecord':
        latest = certs.get_certificate(name)
        kept = dict((k, v) for k, v in (latest.properties.tags or {}).items() if k != 'certdeploy-material')
        certs.update_certificate_properties(name, latest.properties.version, tags=kept)
    state = {'name': name, 'versions': [], 'latest': None, 'soft_deleted': False}
    try:
        latest = certs.get_certificate(name)
        versions = [version_facts(p) for p in certs.list_properties_of_certificate_versions(name)]
        state['versions'] = sorted(versions, key=lambda v: (v['created'] or '', v['version']))
        state['latest'] = version_facts(latest.properties)
    except ResourceNotFoundError:
        try:
            certs.get_deleted_certificate(name)
            state['soft_deleted'] = True
        except ResourceNotFoundError:
            pass
    state['count'] = len(state['versions'])
    print(json.dumps(state, sort_keys=True))


if __name__ == '__main__':
    main(*sys.argv[1:])
