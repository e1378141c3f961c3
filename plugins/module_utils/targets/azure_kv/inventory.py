# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read-only view of the certificates in one vault (azure_kv_certificate_info).

:class:`KeyVaultInventory` reads; it never writes and never reads a backing
secret, so it needs only ``Microsoft.KeyVault/vaults/certificates/read``, which
also covers describing a soft-deleted name.  It reuses the
deploy target's connection and response mapping.  The functions at module
level turn what Key Vault returns into the module's return values; they are
pure and unit-tested.
"""

from __future__ import annotations

import datetime

from ... import errors
from ...engine import tags as provenance
from ...material import certificate as cert_material
from . import faults, sdk as azure_sdk
from .target import KeyVaultTarget

# Fields of every certificate description, so the return shape holds when Key Vault
# returned no DER certificate (a pending certificate) or one that does not parse.
CERTIFICATE_FIELDS = (
    'name', 'version', 'id', 'versionless_id', 'secret_id', 'versionless_secret_id', 'key_id',
    'thumbprint', 'x5t', 'serial', 'subject', 'issuer', 'sans', 'not_before', 'expires', 'days_remaining',
    'enabled', 'tags', 'owned', 'content_type', 'exportable', 'created', 'updated',
)


# --------------------------------------------------------------------------
# Pure mapping
# --------------------------------------------------------------------------

def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(value):
    """ISO 8601 text of a datetime (naive datetimes are taken as UTC); None stays None; text passes through."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.isoformat()


# Whole days left, rounded down: the same count the request module renews by (material.certificate.days_remaining).
days_remaining = cert_material.days_remaining


def name_from_id(object_id):
    """The object name in a Key Vault id (``https://v.vault.azure.net/certificates/NAME[/VERSION]``)."""
    if not object_id:
        return None
    parts = object_id.split('://', 1)[-1].split('/')
    return parts[2] if len(parts) > 2 else None


def certificate_info(name, state, now, updated_on=None, not_before=None, expires_on=None):
    """The module's description of one certificate version from its VersionState.

    ``not_before``/``expires_on`` (the version's attributes) are used when the
    DER certificate was not returned or did not parse.
    """
    info = dict((field, None) for field in CERTIFICATE_FIELDS)
    info.update(state.describe())
    info['sans'] = info['sans'] if info['sans'] is not None else []
    info['name'] = name
    info['not_before'] = info['not_before'] or iso(not_before)
    info['expires'] = info['expires'] or iso(expires_on)
    info['days_remaining'] = days_remaining(info['expires'], now)
    info['owned'] = provenance.is_managed(state.tags)
    info['created'] = iso(state.created_on)
    info['updated'] = iso(updated_on)
    return info


def version_info(props, now, current_version=None):
    """One entry of the version history, from the CertificateProperties Key Vault lists.

    A version listing carries no certificate, so the thumbprint comes from Key Vault's x5t.
    """
    thumb = cert_material.thumbprint_from_x5t(getattr(props, 'x509_thumbprint', None))
    expires = iso(getattr(props, 'expires_on', None))
    tags = dict(getattr(props, 'tags', None) or {})
    return {
        'version': props.version,
        'id': getattr(props, 'id', None),
        'thumbprint': thumb,
        'x5t': cert_material.x5t_from_thumbprint(thumb) if thumb else None,
        'created': iso(getattr(props, 'created_on', None)),
        'updated': iso(getattr(props, 'updated_on', None)),
        'not_before': iso(getattr(props, 'not_before', None)),
        'expires': expires,
        'days_remaining': days_remaining(expires, now),
        'enabled': getattr(props, 'enabled', None),
        'tags': tags,
        'owned': provenance.is_managed(tags),
        'current': current_version is not None and props.version == current_version,
    }


def order_versions(versions):
    """Newest first by creation time; on equal times the current version first, then by version id."""
    def newest_first(entry):
        return (entry['created'] or '', entry['current'], entry['version'] or '')
    return sorted(versions, key=newest_first, reverse=True)


def deleted_info(name, deleted, state, now):
    """What is known about a soft-deleted name: when it was deleted and purges, and its last version's facts."""
    last = certificate_info(name, state, now,
                            updated_on=getattr(deleted.properties, 'updated_on', None),
                            not_before=getattr(deleted.properties, 'not_before', None),
                            expires_on=getattr(deleted.properties, 'expires_on', None))
    return {
        'deleted_on': iso(getattr(deleted, 'deleted_on', None)),
        'scheduled_purge_date': iso(getattr(deleted, 'scheduled_purge_date', None)),
        'recovery_id': getattr(deleted, 'recovery_id', None),
        'version': last['version'],
        'thumbprint': last['thumbprint'],
        'serial': last['serial'],
        'subject': last['subject'],
        'expires': last['expires'],
        'tags': last['tags'],
        'owned': last['owned'],
    }


# --------------------------------------------------------------------------
# Reading a vault
# --------------------------------------------------------------------------

class KeyVaultInventory(object):
    """Reads certificates of one vault.  Clients are created on first use; nothing is ever written."""

    def __init__(self, settings, env=None, sdk_loader=azure_sdk.load, clients=None, now=None):
        self.settings = settings
        # The deploy adapter supplies the connection (credential, transport, retries) and the
        # response mapping; none of its writing methods is used here.
        self._target = KeyVaultTarget(settings, env=env, sdk_loader=sdk_loader, clients=clients)
        self._now = now or utc_now()
        self.warnings = []

    def _certs(self):
        return self._target.connection.client()

    def _where(self, name=None):
        base = self.settings.address.url
        return '%s/certificates/%s' % (base, name) if name else base

    def _call(self, name, func):
        try:
            return func()
        except errors.DeployError:
            raise
        except Exception as exc:  # every SDK/transport failure is classified, none escapes raw
            raise faults.classify(exc, 'read', self._where(name))

    def _describe(self, name, bundle, include_versions):
        state = self._target.state_of(bundle)
        props = bundle.properties
        info = certificate_info(name, state, self._now, updated_on=getattr(props, 'updated_on', None),
                                not_before=getattr(props, 'not_before', None), expires_on=getattr(props, 'expires_on', None))
        if include_versions:
            info['versions'] = self.versions(name, current_version=state.version)
        return info

    def versions(self, name, current_version=None):
        """The version history of ``name``, newest first."""
        certs = self._certs()
        listed = self._call(name, lambda: list(certs.list_properties_of_certificate_versions(name)))
        return order_versions([version_info(props, self._now, current_version) for props in listed])

    def describe(self, name, include_versions=False):
        """``{'exists': True, 'certificate': {...}}``, or ``{'exists': False}`` plus ``deleted`` for a soft-deleted name."""
        certs = self._certs()
        try:
            bundle = certs.get_certificate(name)
        except Exception as exc:
            if getattr(exc, 'status_code', None) != 404:
                raise faults.classify(exc, 'read', self._where(name))
            result = {'exists': False}
            deleted = self._deleted(name)
            if deleted is not None:
                result['deleted'] = deleted
            return result
        return {'exists': True, 'certificate': self._describe(name, bundle, include_versions)}

    def _deleted(self, name):
        """The soft-deleted certificate of ``name``, or None when there is none or it cannot be read."""
        certs = self._certs()
        try:
            deleted = certs.get_deleted_certificate(name)
        except Exception as exc:
            # 404: not deleted.  400: soft delete is off on this vault.  403: no certificates/read, so as far
            # as this identity can tell the name is free.  Anything else is a warning: it does not spoil the answer.
            if getattr(exc, 'status_code', None) not in (400, 403, 404):
                self.warnings.append('Could not tell whether %s is soft-deleted: %s'
                                     % (name, faults.classify(exc, 'read_deleted', self._where(name)).message))
            return None
        return deleted_info(name, deleted, self._target.state_of(deleted), self._now)

    def list_certificates(self, managed_only=False, include_versions=False):
        """Every certificate of the vault (only those tagged as managed by certdeploy with ``managed_only``), by name."""
        certs = self._certs()
        listed = self._call(None, lambda: list(certs.list_properties_of_certificates()))
        names = sorted(set(props.name or name_from_id(props.id) for props in listed
                           if not managed_only or provenance.is_managed(props.tags)))
        found = []
        for name in names:
            try:
                bundle = certs.get_certificate(name)
            except Exception as exc:
                if getattr(exc, 'status_code', None) == 404:  # deleted between the listing and now
                    continue
                raise faults.classify(exc, 'read', self._where(name))
            info = self._describe(name, bundle, include_versions)
            if managed_only and not info['owned']:  # re-tagged between the listing and now
                continue
            found.append(info)
        return found

    def close(self):
        self._target.close()
