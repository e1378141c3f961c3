# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A fake, read-only CertificateClient holding several certificates with versions, for the info module's tests.

It implements only the SDK's read methods; any other call fails the test.  Responses have the shapes of
azure-keyvault-certificates' models (KeyVaultCertificate, CertificateProperties, DeletedCertificate).
"""

from __future__ import annotations

import datetime
import types

from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m

VAULT = 'https://kv1.vault.azure.net'
UTC = datetime.timezone.utc
READS = ('get_certificate', 'list_properties_of_certificates', 'list_properties_of_certificate_versions', 'get_deleted_certificate')


class HttpError(Exception):
    """Stands in for azure.core.exceptions.HttpResponseError: only status_code and message matter to the adapter."""

    def __init__(self, status, message='error'):
        super(HttpError, self).__init__(message)
        self.status_code = status
        self.message = message


def properties(name, cert, version, tags=None, enabled=True, created=None, x5t=None):
    """CertificateProperties of one version, as Key Vault lists it (no DER certificate)."""
    created = created or datetime.datetime(2026, 1, 1, tzinfo=UTC)
    return types.SimpleNamespace(
        id='%s/certificates/%s/%s' % (VAULT, name, version), name=name, version=version, vault_url=VAULT,
        x509_thumbprint=x5t if x5t is not None else (bytes.fromhex(m.thumbprint(cert)) if cert is not None else None),
        tags=dict(tags) if tags is not None else None, enabled=enabled, created_on=created, updated_on=created,
        not_before=m.not_before(cert) if cert is not None else None,
        expires_on=m.not_after(cert) if cert is not None else None)


def certificate(props, cert, content_type='application/x-pkcs12'):
    """KeyVaultCertificate: the properties plus the DER certificate, ids and policy."""
    base = '%s/%%s/%s/%s' % (VAULT, props.name, props.version)
    return types.SimpleNamespace(
        id=props.id, name=props.name, properties=props, cer=m.leaf_der(cert) if cert is not None else None,
        secret_id=base % 'secrets', key_id=base % 'keys', policy=types.SimpleNamespace(content_type=content_type))


class FakeCertificateClient(object):
    """Certificates by name, each a list of (properties, certificate) versions, oldest first."""

    def __init__(self):
        self.store = {}
        self.deleted = {}
        self.calls = []
        self.errors = {}  # method name -> exception raised by that read
        self.closed = False

    def add(self, name, cert, version, tags=None, enabled=True, created=None, content_type='application/x-pkcs12'):
        props = properties(name, cert, version, tags, enabled, created)
        self.store.setdefault(name, []).append(certificate(props, cert, content_type))
        return props

    def soft_delete(self, name, deleted_on, purge_on):
        latest = self.store.pop(name)[-1]
        self.deleted[name] = types.SimpleNamespace(
            id=latest.id, name=name, properties=latest.properties, cer=latest.cer, secret_id=latest.secret_id,
            key_id=latest.key_id, policy=latest.policy, deleted_on=deleted_on, scheduled_purge_date=purge_on,
            recovery_id='%s/deletedcertificates/%s' % (VAULT, name))

    def __getattr__(self, attribute):
        raise AssertionError('the info module called %s, which is not a read' % attribute)

    def _record(self, method, *args):
        self.calls.append((method,) + args)
        if method in self.errors:
            raise self.errors[method]

    def get_certificate(self, name):
        self._record('get_certificate', name)
        if name not in self.store:
            raise HttpError(404, 'A certificate with (name/id) %s was not found in this key vault.' % name)
        return self.store[name][-1]

    def list_properties_of_certificates(self):
        self._record('list_properties_of_certificates')
        for versions in self.store.values():
            yield versions[-1].properties

    def list_properties_of_certificate_versions(self, name):
        self._record('list_properties_of_certificate_versions', name)
        if name not in self.store:
            raise HttpError(404, 'not found')
        return iter([bundle.properties for bundle in self.store[name]])

    def get_deleted_certificate(self, name):
        self._record('get_deleted_certificate', name)
        if name not in self.deleted:
            raise HttpError(404, 'Deleted certificate not found')
        return self.deleted[name]

    def close(self):
        self.closed = True


class NoSecrets(object):
    """The secret client: the info module must never use it."""

    def __getattr__(self, attribute):
        raise AssertionError('the info module used the secret client (%s)' % attribute)

    def close(self):
        pass
