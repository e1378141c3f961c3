# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Translate Azure SDK and transport failures into the engine's stable error codes."""

from __future__ import annotations

import re

from ... import errors
from . import retry

# Key Vault RBAC data actions per operation, named when Key Vault's own message does not.
ACTIONS = {
    'read': 'Microsoft.KeyVault/vaults/certificates/read',
    'import': 'Microsoft.KeyVault/vaults/certificates/import/action',
    'update': 'Microsoft.KeyVault/vaults/certificates/update/action',
    'recover': 'Microsoft.KeyVault/vaults/certificates/recover/action',
    # Get Deleted Certificate needs the same data action as Get Certificate: Key Vault has no separate one.
    'read_deleted': 'Microsoft.KeyVault/vaults/certificates/read',
    'get_secret': 'Microsoft.KeyVault/vaults/secrets/getSecret/action',
    'list_versions': 'Microsoft.KeyVault/vaults/certificates/read',
    'list': 'Microsoft.KeyVault/vaults/certificates/read',  # at vault scope: a role scoped to one certificate cannot list
    # A key made in the vault: create the request, read it and the policy, cancel or delete it, merge the signed certificate.
    'create': 'Microsoft.KeyVault/vaults/certificates/create/action',
    'read_pending': 'Microsoft.KeyVault/vaults/certificates/read',
    'read_policy': 'Microsoft.KeyVault/vaults/certificates/read',
    'discard': 'Microsoft.KeyVault/vaults/certificates/update/action',
    'merge': 'Microsoft.KeyVault/vaults/certificates/create/action',
}

_ACTION = re.compile(r"Action:\s*'?([A-Za-z0-9./_-]+)'?")
_ACCESS_POLICY = re.compile(r"(The user, group or application .*? does not have [^.]*? permission on key vault '[^']*')")
_DNS = ('Name or service not known', 'nodename nor servname', 'getaddrinfo failed', 'Temporary failure in name resolution',
        'Failed to resolve', 'NameResolutionError', 'No address associated with hostname')
_TLS = ('CERTIFICATE_VERIFY_FAILED', 'SSLCertVerificationError', 'certificate verify failed', 'hostname mismatch')
# What the operating system or urllib3 says when no connection could be made at all.
_NO_CONNECTION = (
    ('Connection refused', 'connection refused'),
    ('No route to host', 'no route to host'),
    ('Network is unreachable', 'network is unreachable'),
)
_PROXY = 'Unable to connect to proxy'
_ENDPOINT = re.compile(r"host='([^']+)', port=(\d+)")
# Key Vault's own codes (error.code or error.innererror.code) for a caller the vault's network rules refused.
_NETWORK_CODES = ('ForbiddenByConnection', 'ForbiddenByFirewall')
_NETWORK_TEXT = ('public network access is disabled', 'client address is not authorized', 'not authorized and caller is not a trusted service')
# Key Vault's codes for an object (not the vault) that does not exist.
_OBJECT_NOT_FOUND = ('CertificateNotFound', 'SecretNotFound', 'KeyNotFound', 'VersionNotFound', 'PendingCertificateNotFound')
_OBJECT_NOT_FOUND_TEXT = re.compile(r'\b(?:certificate|secret|key|version)\b.{0,120}\b(?:was not found|not found|does not exist)', re.I)
# A 400 about tags: Key Vault's code, or its message naming tags as the subject (not "bad tag" inside a DER parser).
_TAGS = re.compile(r'(?<!bad )\b(?:too many tags|tags? (?:name|key|value)s?\b|tags? (?:exceed|must|cannot|can not|is too|are too|count)|'
                   r'number of tags|tag names?|tag values?|invalid tags?)', re.I)


def _text(exc):
    """str(exc), and the inner exception's text when it adds something (never the same text twice)."""
    outer = ' '.join(str(exc).split())
    inner = getattr(exc, 'inner_exception', None)
    inner = ' '.join(str(inner).split()) if inner is not None else ''
    if inner and inner not in outer:
        return '%s (%s)' % (outer, inner) if outer else inner
    return outer


def no_connection(text):
    """(cause, 'host:port') when text says no connection could be made at all (refused, no route, proxy); else None.

    Used for the vault and for sign-in and identity endpoints alike, so both report ``unreachable``.
    """
    proxy = _PROXY in text
    for marker, cause in _NO_CONNECTION:
        if marker in text:
            break
    else:
        if not proxy:
            return None
        cause = 'no connection could be made'
    endpoint = _ENDPOINT.search(text)
    where = '%s:%s' % endpoint.groups() if endpoint else None
    if proxy:
        cause = 'the proxy%s refused the connection' % (' at %s' % where if where else '') if cause == 'connection refused' \
            else 'the proxy%s could not be reached (%s)' % (' at %s' % where if where else '', cause)
        where = None
    return cause, where


def sign_in_unreachable(credential, text):
    """The ``unreachable`` error for a sign-in or identity endpoint that could not be connected to."""
    cause, endpoint = no_connection(text)
    return errors.DeployError(
        errors.UNREACHABLE,
        'The sign-in endpoint%s could not be reached, so %s got no token for Key Vault: %s. Check authority_host or '
        'cloud, the managed-identity endpoint, and any firewall or proxy on the way.'
        % (' %s' % endpoint if endpoint else '', credential, cause))


def is_object_not_found(exc):
    """True for a 404 in which Key Vault names the missing certificate, secret or version (its code, or its message).

    A 404 that names nothing did not come from a vault's object store: a wrong URL, a proxy or a private endpoint
    that is not a vault. That must not read as "the certificate does not exist yet".
    """
    status = getattr(exc, 'status_code', None)
    if status is None:
        status = getattr(getattr(exc, 'response', None), 'status_code', None)
    if status != 404:
        return False
    return any(code in _OBJECT_NOT_FOUND for code in _codes(exc)) or bool(_OBJECT_NOT_FOUND_TEXT.search(_service_message(exc)))


def _service_message(exc):
    error = getattr(exc, 'error', None)
    message = getattr(error, 'message', None) or getattr(exc, 'message', None) or str(exc)
    return ' '.join(str(message).split())


def _codes(exc):
    error = getattr(exc, 'error', None)
    codes = []
    while error is not None and len(codes) < 5:
        code = getattr(error, 'code', None)
        if code:
            codes.append(str(code))
        error = getattr(error, 'innererror', None) or getattr(error, 'inner_error', None)
        if isinstance(error, dict):
            codes.append(str(error.get('code')))
            break
    return codes


def classify(exc, operation, subject=''):
    """Return a DeployError for ``exc`` raised during ``operation`` (a key of ACTIONS)."""
    if isinstance(exc, errors.DeployError):
        return exc
    refused = retry.refused_wait(exc)
    if refused is not None:
        return budget_exceeded(refused, operation, subject)
    name = type(exc).__name__
    status = getattr(exc, 'status_code', None)
    if status is None:
        response = getattr(exc, 'response', None)
        status = getattr(response, 'status_code', None)
    text = _text(exc)
    where = (' (%s)' % subject) if subject else ''

    if name == 'NotImplementedError' and 'API version' in text:
        return errors.DeployError(errors.INVALID_CONFIG, 'api_version is not supported by the installed SDK: %s' % text)
    if 'challenge resource' in text:
        return errors.DeployError(
            errors.AUTH_FAILED,
            'Key Vault\'s authentication challenge named a resource that does not match the vault host%s, so no token was sent. '
            'If this is an emulator or a private endpoint alias you trust, set verify_challenge_resource: false.' % where)
    if name in ('CredentialUnavailableError', 'ClientAuthenticationError', 'AuthenticationRequiredError') or status == 401:
        if status is None and no_connection(text) is not None:
            return sign_in_unreachable(name, text)
        return errors.DeployError(
            errors.AUTH_FAILED,
            'Could not sign in to Key Vault%s: %s' % (where, ' '.join(text.split())[:2000]))
    if status is None:
        if name in ('ServiceRequestTimeoutError', 'ServiceResponseTimeoutError') or 'timed out' in text.lower():
            return errors.DeployError(
                errors.TIMEOUT, 'The request to Key Vault timed out during %s%s; raise timeout or check the network.' % (operation, where))
        if any(marker in text for marker in _TLS):
            return errors.DeployError(
                errors.INVALID_CONFIG,
                'TLS verification of Key Vault failed%s: %s. If the vault is reached through an emulator or a TLS-inspecting '
                'proxy, add its CA with ca_path; verification is never switched off.' % (where, _first_line(text)))
        if any(marker in text for marker in _DNS):
            return errors.DeployError(
                errors.VAULT_NOT_FOUND,
                'The vault host could not be resolved%s; check vault_url (and private DNS for private endpoints).' % where)
        unreachable = no_connection(text)
        if unreachable is not None:
            cause, endpoint = unreachable
            return errors.DeployError(
                errors.UNREACHABLE, 'Key Vault%s could not be reached during %s: %s. Check vault_url, and any firewall or proxy '
                'on the way.' % (where or (' (%s)' % endpoint if endpoint else ''), operation, cause))
        if name in ('ServiceRequestError', 'ServiceResponseError', 'ConnectionError'):
            return errors.DeployError(errors.SERVICE_ERROR, 'Could not talk to Key Vault during %s%s: %s' % (operation, where, _first_line(text)))
        return errors.DeployError(errors.SERVICE_ERROR, 'Unexpected failure during %s%s: %s: %s' % (operation, where, name, _first_line(text)))

    message = _service_message(exc)
    codes = _codes(exc)
    lowered = message.lower()
    if status == 403 and (any(code in _NETWORK_CODES for code in codes) or any(marker in lowered for marker in _NETWORK_TEXT)):
        return errors.DeployError(
            errors.NETWORK_DENIED,
            'The vault\'s network rules refused this caller during %s%s (firewall or private endpoint; not a permission '
            'problem): %s Allow the address this host connects from, or reach the vault through its private endpoint.'
            % (operation, where, message))
    if status == 403 and ('SecretDisabled' in codes or 'CertificateDisabled' in codes or 'disabled secret' in lowered
                          or 'disabled certificate' in lowered):
        # Not a permission problem: Key Vault hands out no key of a disabled version.
        return errors.DeployError(
            errors.CONFLICT, 'Key Vault refused %s%s because the version is disabled: %s' % (operation, where, message))
    if status == 403:
        action = _ACTION.search(text)
        policy = _ACCESS_POLICY.search(text)
        if action:
            needed = "the identity lacks the RBAC action '%s'. Key Vault said: %s" % (action.group(1), message)
        elif policy:  # Key Vault's own sentence names the missing access-policy permission: quoted once
            needed = '%s (vault access policy). Grant that permission to this identity.' % policy.group(1)
        else:
            needed = 'the operation needs %s (RBAC) or the matching access-policy permission. Key Vault said: %s' % (
                ACTIONS.get(operation, operation), message)
        return errors.DeployError(
            errors.FORBIDDEN, 'Forbidden during %s%s: %s' % (operation, where, needed),
            action=action.group(1) if action else ACTIONS.get(operation))
    if status == 404:
        if is_object_not_found(exc):
            # The vault answered for the object: it went away (or that version never existed) while we worked.
            return errors.DeployError(
                errors.CONFLICT, 'The object was not found during %s%s (deleted or changed meanwhile?): %s' % (operation, where, message))
        return errors.DeployError(
            errors.VAULT_NOT_FOUND,
            'Key Vault answered 404 during %s%s without naming a missing certificate or secret: the URL does not reach a vault. '
            'Check vault_url (and private DNS for private endpoints). It said: %s' % (operation, where, message))
    if status == 409:
        if 'ObjectIsDeletedButRecoverable' in codes or 'deleted but recoverable' in lowered:
            return errors.DeployError(
                errors.SOFT_DELETED,
                'The certificate name is soft-deleted%s: %s Recover it (on_soft_deleted: recover) or purge it first.' % (where, message))
        if 'ObjectIsBeingDeleted' in codes or 'being deleted' in lowered:
            return errors.DeployError(errors.BEING_DELETED, 'The certificate is being deleted%s; retry later. Key Vault said: %s' % (where, message))
        return errors.DeployError(errors.CONFLICT, 'Conflict during %s%s: %s' % (operation, where, message))
    wish = {'retry_after': _retry_after(exc)} if _retry_after(exc) is not None else {}
    if status == 429:
        # A 429 is Key Vault's refusal to process the request: whatever it was, it was not done (not_processed).
        return errors.DeployError(errors.THROTTLED, 'Key Vault throttled the %s request%s after retries: %s' % (operation, where, message),
                                  not_processed=True, **wish)
    if status >= 500:
        return errors.DeployError(errors.SERVICE_ERROR, 'Key Vault failed with HTTP %d during %s%s: %s' % (status, operation, where, message),
                                  **wish)
    if status == 400:
        if any('tag' in code.lower() for code in codes) or _TAGS.search(message):
            return errors.DeployError(errors.INVALID_CONFIG, 'Key Vault rejected the tags%s: %s' % (where, message))
        if operation in ('import', 'merge'):
            return errors.DeployError(errors.INVALID_MATERIAL, 'Key Vault rejected the certificate%s: %s' % (where, message))
        return errors.DeployError(errors.INVALID_CONFIG, 'Key Vault rejected the %s request%s: %s' % (operation, where, message))
    return errors.DeployError(errors.SERVICE_ERROR, 'Key Vault answered HTTP %s during %s%s: %s' % (status, operation, where, message))


def _retry_after(exc):
    """The seconds an error answer's Retry-After header asks for (a number of seconds only), or None."""
    headers = getattr(getattr(exc, 'response', None), 'headers', None)
    try:
        value = float(headers.get('Retry-After')) if headers is not None and headers.get('Retry-After') else None
    except (TypeError, ValueError, AttributeError):
        return None
    return value if value is not None and 0 <= value < float('inf') else None


def budget_exceeded(refused, operation, subject=''):
    """The error for a call that ran out of its time budget (retry.WaitRefused): ``throttled`` when a retry was
    asked to wait longer than the budget left (the wish is named), ``timeout`` when the budget was spent."""
    where = (' (%s)' % subject) if subject else ''
    if refused.wanted is None:
        return errors.DeployError(
            errors.TIMEOUT, 'The %s request to Key Vault%s gave up: %s (4 x timeout, retries and token requests '
            'included). Raise timeout or check the network.' % (operation, where, refused))
    return errors.DeployError(
        errors.THROTTLED, 'The %s request to Key Vault%s gave up: %s (4 x timeout). Nothing waited longer; run again '
        'later, or raise timeout.' % (operation, where, refused), retry_after=refused.wanted)


def _first_line(text):
    return text.strip().splitlines()[0] if text.strip() else ''
