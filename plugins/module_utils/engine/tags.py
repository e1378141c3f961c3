# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Provenance tags and the ownership guard.

Tags live per version on most targets (Key Vault included) and are not
inherited by a new version, so every write sends the full set built here.
"""

from __future__ import annotations

from .. import errors

RESERVED_PREFIX = 'certdeploy-'
MANAGED_BY = 'certdeploy-managed-by'
MANAGED_BY_VALUE = 'certdeploy'
CERTIFICATE_ID = 'certdeploy-certificate-id'
ROLLBACK_OF = 'certdeploy-rollback-of'
# The record of what the import sent (content type, exportable, digest of the ordered chain): see record.py.
MATERIAL = 'certdeploy-material'
# How the versions of a name come about: 'request' when the key is made in the target and a signed certificate is
# merged (azure_kv_certificate_request and _merge); absent on imports.
SOURCE = 'certdeploy-source'
SOURCE_REQUEST = 'request'


def normalise_user_tags(tags):
    """Validate user tags: string keys, scalar values, no reserved key.  Returns a str→str dict."""
    out = {}
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not key:
            raise errors.DeployError(errors.INVALID_CONFIG, 'Tag keys must be non-empty strings (got %r).' % (key,))
        if key.lower().startswith(RESERVED_PREFIX):
            raise errors.DeployError(
                errors.INVALID_CONFIG,
                'The tag key "%s" is reserved: keys starting with "%s" are provenance tags the module sets itself '
                '(%s, %s, %s, %s). Rename the tag.' % (key, RESERVED_PREFIX, MANAGED_BY, CERTIFICATE_ID, MATERIAL, ROLLBACK_OF),
            )
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, (int, float)):
            value = str(value)
        elif value is None:
            value = ''
        elif not isinstance(value, str):
            raise errors.DeployError(
                errors.INVALID_CONFIG,
                'The value of tag "%s" is a %s; tag values must be strings, numbers or booleans.' % (key, type(value).__name__),
            )
        out[key] = value
    return out


def desired_tags(user_tags, certificate_id, record=None):
    """The full tag set every write carries: user tags plus the provenance tags (and the record, when given)."""
    tags = dict(user_tags)
    tags[MANAGED_BY] = MANAGED_BY_VALUE
    tags[CERTIFICATE_ID] = certificate_id
    if record is not None:
        tags[MATERIAL] = record.value()
    return tags


def request_tags(user_tags, certificate_id):
    """The full tag set of a request and of its merge: the provenance tags, marked as made from a request."""
    tags = desired_tags(user_tags, certificate_id)
    tags[SOURCE] = SOURCE_REQUEST
    return tags


def imported_by_deploy(tags):
    """Whether a managed version was imported by the deploy module (it carries the import's record, and no request mark)."""
    tags = tags or {}
    return is_managed(tags) and MATERIAL in tags and tags.get(SOURCE) != SOURCE_REQUEST


def without_record(tags):
    return dict((k, v) for k, v in tags.items() if k != MATERIAL)


def rollback_tags(previous_tags, failed_version):
    """Tags of a rollback import: the previous version's tags, marked as ours and as a rollback of ``failed_version``."""
    tags = dict(previous_tags)
    tags[MANAGED_BY] = MANAGED_BY_VALUE
    tags[ROLLBACK_OF] = failed_version or 'unknown'
    return tags


def is_managed(tags):
    return (tags or {}).get(MANAGED_BY) == MANAGED_BY_VALUE


def comparable(tags):
    """Tags as compared for idempotency: the rollback marker of an earlier rollback does not count as drift."""
    return {k: v for k, v in (tags or {}).items() if k != ROLLBACK_OF}
