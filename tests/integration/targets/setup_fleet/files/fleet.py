#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleets for the integration targets: material made at test time, and the vault's real state read directly.

    fleet.py material OUT PREFIX COUNT SET [SET ...]
        EC P-256 leaves (fast to make; lowkey-vault and the Go emulator take them), one per name and set, no
        chain (neither emulator keeps one), written to OUT. Prints JSON {SET: [deploy_many element, ...]}: each
        element has certificate_name (PREFIX-NNN), certificate_path, private_key_path; and {SET_thumbprints: [...]}.
    fleet.py state VAULT_URL PREFIX
        JSON: total (every certificate of the vault, as its list shows it: V), and for each name that starts with
        PREFIX: count (its versions), thumbprint/enabled/tags of its latest version, soft_deleted names apart.
    fleet.py disable VAULT_URL NAME          disables the latest version (out of band; lowkey-vault then answers
                                             every GET of the certificate 404, see emulators/README.md)
    fleet.py set-tag VAULT_URL NAME KEY VALUE
                                             sets one tag of the latest version, keeping the others (out of band)
    fleet.py delete VAULT_URL NAME           soft-deletes the certificate
    fleet.py import-unowned VAULT_URL NAME CRT KEY
        imports the certificate as a PKCS#12 without certdeploy's tags (someone else's certificate)
    fleet.py cleanup VAULT_URL PREFIX        deletes and purges every certificate named PREFIX..., soft-deleted ones too

Reads and writes go to the vault directly (not through a test proxy), authenticated as setup_certdeploy's
vault_state.py does (same environment). Prefixes keep the targets' fleets apart in a vault the targets share.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'setup_certdeploy', 'files'))

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError  # noqa: E402  pylint: disable=wrong-import-position
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402  pylint: disable=wrong-import-position

from testlib import testpki  # noqa: E402  pylint: disable=wrong-import-position
import vault_state  # noqa: E402  pylint: disable=wrong-import-position


def material(out, prefix, count, *sets):
    output = testpki.Output(out)
    _root, _root_key, inter, inter_key = testpki.ca_pair('certdeploy fleet root', 'certdeploy fleet intermediate')
    result = {}
    for set_name in sets:
        items, thumbprints = [], []
        for index in range(int(count)):
            name = '%s-%03d' % (prefix, index)
            key = testpki.ec_key(ec.SECP256R1())
            leaf = testpki.issue(key, '%s.%s.certdeploy.test' % (name, set_name), inter, inter_key, days=90)
            base = '%s-%s' % (name, set_name)
            items.append({'certificate_name': name,
                          'certificate_path': output.write(base + '.crt', testpki.pem(leaf)),
                          'private_key_path': output.write(base + '.key', testpki.key_pem(key), 0o600)})
            thumbprints.append(testpki.thumbprint(leaf))
        result[set_name] = items
        result[set_name + '_thumbprints'] = thumbprints
    print(json.dumps(result))


def state(vault_url, prefix):
    certs = vault_state.client(vault_url)
    out = {'total': 0, 'certificates': {}, 'soft_deleted': []}
    for props in certs.list_properties_of_certificates():
        out['total'] += 1
        if not props.name.startswith(prefix):
            continue
        versions = list(certs.list_properties_of_certificate_versions(props.name))
        out['certificates'][props.name] = {
            'count': len(versions),
            'thumbprint': props.x509_thumbprint.hex().upper() if props.x509_thumbprint else None,
            'enabled': props.enabled,
            'tags': props.tags or {},
        }
    try:
        out['soft_deleted'] = sorted(d.name for d in certs.list_deleted_certificates() if d.name.startswith(prefix))
    except HttpResponseError as exc:  # an emulator without the list of deleted certificates
        out['soft_deleted'] = None
        out['soft_deleted_error'] = str(exc).splitlines()[0]
    print(json.dumps(out, sort_keys=True))


def disable(vault_url, name):
    certs = vault_state.client(vault_url)
    latest = certs.get_certificate(name)
    # The tags are sent again: lowkey-vault clears the tags of a PATCH that carries none (Key Vault keeps them).
    certs.update_certificate_properties(name, latest.properties.version, enabled=False, tags=latest.properties.tags or {})
    print(json.dumps({'disabled': name, 'version': latest.properties.version}))


def set_tag(vault_url, name, key, value):
    certs = vault_state.client(vault_url)
    latest = certs.get_certificate(name)
    tags = dict(latest.properties.tags or {}, **{key: value})
    certs.update_certificate_properties(name, latest.properties.version, tags=tags)
    print(json.dumps({'tagged': name, 'version': latest.properties.version, 'tags': tags}))


def delete(vault_url, name):
    vault_state.client(vault_url).begin_delete_certificate(name).result()
    print(json.dumps({'deleted': name}))


def import_unowned(vault_url, name, crt, key):
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from azure.keyvault.certificates import CertificatePolicy  # pylint: disable=import-outside-toplevel
    with open(crt, 'rb') as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    with open(key, 'rb') as handle:
        private_key = serialization.load_pem_private_key(handle.read(), None)
    password = 'fleet-unowned'  # lowkey-vault needs a password on a PKCS#12 import (emulators/README.md)
    blob = testpki.pfx(name, private_key, cert, None, password)
    done = vault_state.client(vault_url).import_certificate(
        name, blob, password=password, policy=CertificatePolicy.get_default(), tags={'owner': 'someone-else'})
    print(json.dumps({'imported': name, 'version': done.properties.version}))


def cleanup(vault_url, prefix):
    certs = vault_state.client(vault_url)
    names = [p.name for p in certs.list_properties_of_certificates() if p.name.startswith(prefix)]
    for name in names:
        certs.begin_delete_certificate(name).result()
    purged = 0
    try:
        deleted_names = [d.name for d in certs.list_deleted_certificates()]
    except HttpResponseError:
        deleted_names = names
    for deleted_name in deleted_names:
        if deleted_name.startswith(prefix):
            try:
                certs.purge_deleted_certificate(deleted_name)
                purged += 1
            except ResourceNotFoundError:
                pass
    print(json.dumps({'deleted': len(names), 'purged': purged}))


COMMANDS = {'material': material, 'state': state, 'disable': disable, 'set-tag': set_tag, 'delete': delete,
            'import-unowned': import_unowned, 'cleanup': cleanup}

if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
