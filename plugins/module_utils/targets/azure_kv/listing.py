# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Listing a vault's certificates for a fleet task (``engine.fleet.ListingPlan`` decides how far).

``GET /certificates`` answers 25 certificates a page, each with its x5t thumbprint, tags, enabled flag and
dates, but no version and no certificate; ``nextLink`` names the next page. It needs the same permission as
reading one certificate (``Microsoft.KeyVault/vaults/certificates/read``), but at vault scope: an identity
whose role assignments are scoped to single certificates cannot list, and the caller then reads each one.
Pending certificates (a request in progress) are not listed, so those are read individually too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ... import errors
from ...engine.model import VersionState
from ...material import certificate as cert_material
from . import faults

PAGE_SIZE = 25  # Key Vault's largest page (maxresults)
# A listing reads at most this many pages (a million certificates): a vault that keeps answering more is not waited for.
MAX_PAGES = 40000


def listed_state(props):
    """The VersionState of one listed certificate (CertificateProperties): thumbprint, tags, enabled; no version."""
    versionless = props.id.rsplit('/', 1)[0] if props.version and props.id else props.id
    return VersionState(
        version=props.version, thumbprint=cert_material.thumbprint_from_x5t(props.x509_thumbprint),
        tags=props.tags or {}, enabled=props.enabled, created_on=getattr(props, 'created_on', None),
        ids={'versionless_id': versionless} if versionless else {})


def name_of(props):
    if getattr(props, 'name', None):
        return props.name
    parts = (props.id or '').split('://', 1)[-1].split('/')
    return parts[2] if len(parts) > 2 else None


def list_into(connection, plan):
    """Read pages of the vault's certificates into ``plan`` while ``plan.more()``; never raises.

    The first page goes through ``connection.first_request`` (on a shared connection it pays the challenge and
    the token, alone). A failure ends the listing (``plan.fail``): what was listed so far is kept, and every
    certificate not found is read on its own.
    """
    where = connection.settings.address.url
    pager = []
    seen = set()

    def fetch():
        if not pager:  # built on the first call, so that the vault's first request is the first page
            pager.append(_pager(connection))
        return _next_page(pager[0], where)

    while plan.more():
        if plan.pages >= MAX_PAGES:
            plan.fail(errors.SERVICE_ERROR)
            return
        try:
            page = connection.first_request(fetch)
        except errors.DeployError as exc:
            plan.fail(exc.code)
            return
        if page is None:  # not reached with Key Vault's pager (the last page has no nextLink); kept for safety
            plan.complete = True
            return
        items = [(name_of(props), listed_state(props)) for props in page]
        following = pager[0].continuation_token
        plan.take(items, last=following is None)
        if following is not None and (not same_host(following, where) or following in seen):
            # Key Vault's nextLink names the vault itself. Another host is not followed: it would answer the rest of
            # the listing (and could say "nothing changed") for a vault it is not. A link seen before is a loop.
            plan.fail(errors.SERVICE_ERROR)
            return
        seen.add(following)


def same_host(link, vault_url):
    """Whether the next page's link points at the vault's own scheme, host and port."""
    if not isinstance(link, str):
        return False

    def where(url):
        parts = urlsplit(url)
        return parts.scheme, (parts.hostname or '').lower(), parts.port or {'https': 443, 'http': 80}.get(parts.scheme)
    try:
        return where(link) == where(vault_url)
    except ValueError:  # a port that is no number
        return False


def _pager(connection):
    certs = connection.client()
    return certs.list_properties_of_certificates(max_page_size=PAGE_SIZE).by_page()


def _next_page(pager, where):
    """One page (its items), or None past the last; the request is sent here."""
    try:
        return list(next(pager))
    except StopIteration:
        return None
    except errors.DeployError:
        raise
    except Exception as exc:  # every SDK/transport failure is classified, none escapes raw
        raise faults.classify(exc, 'list', where)
