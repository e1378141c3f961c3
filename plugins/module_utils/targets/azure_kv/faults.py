# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Translate Azure SDK and transport failures into the engine's stable error codes."""

from __future__ import annotations

import re

from ...engine import errors

# RBAC data actions per operation (PRODUCT.md §8), named when Key Vault's own message does not.
ACTIONS = {
    'read': 'Microsoft.KeyVault/vaults/certificates/read',
    'import': 'Microsoft.KeyVault/vaults/certificates/import/action',
    'update': 'Microsoft.KeyVault/vaults/certificates/update/action',
    'recover': 'Microsoft.KeyVault/vaults/certificates/recover/action',
    'read_deleted': 'Microsoft.KeyVault/vaults/deletedCertificates/read',
    'get_secret': 'Microsoft.KeyVault/vaults/secrets/getSecret/action',
}

_ACTION = re.compile(r"Action:\s*'?([A-Za-z0-9./_-]+)'?")
_ACCESS_POLICY = re.compile(r"(The user, group or application .*? does not have [^.]*? permission on key vault '[^']*')")
_DNS = ('Name or service not known', 'nodename nor servname', 'getaddrinfo failed', 'Temporary failure in name resolution',
        'Failed to resolve', 'NameResolutionError', 'No address associated with hostname')
_TLS = ('CERTIFICATE_VERIFY_FAILED', 'SSLCertVerificationError', 'certificate verify failed', 'hostname mismatch')


def _text(exc):
    parts = [str(exc)]
    inner = getattr(exc, 'inner_exception', None)
    if inner is not None:
        parts.append(str(inner))
    return ' | '.join(p for p in parts if p)


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
        if name in ('ServiceRequestError', 'ServiceResponseError', 'ConnectionError'):
            return errors.DeployError(errors.SERVICE_ERROR, 'Could not talk to Key Vault during %s%s: %s' % (operation, where, _first_line(text)))
        return errors.DeployError(errors.SERVICE_ERROR, 'Unexpected failure during %s%s: %s: %s' % (operation, where, name, _first_line(text)))

    message = _service_message(exc)
    codes = _codes(exc)
    if status == 403 and ('SecretDisabled' in codes or 'disabled' in message.lower()):
        # Not a permission problem: Key Vault hands out no key of a disabled version.
        return errors.DeployError(
            errors.CONFLICT, 'Key Vault refused %s%s because the version is disabled: %s' % (operation, where, message))
    if status == 403:
        action = _ACTION.search(text)
        policy = _ACCESS_POLICY.search(text)
        if action:
            needed = "the identity lacks the RBAC action '%s'" % action.group(1)
        elif policy:
            needed = policy.group(1)
        else:
            needed = 'the operation needs %s (RBAC) or the matching access-policy permission' % ACTIONS.get(operation, operation)
        return errors.DeployError(
            errors.FORBIDDEN, 'Forbidden during %s%s: %s. Key Vault said: %s' % (operation, where, needed, message),
            action=action.group(1) if action else ACTIONS.get(operation))
    if status == 404:
        if operation in ('read', 'connect', 'read_deleted'):
            return errors.DeployError(errors.VAULT_NOT_FOUND, 'Key Vault answered 404 during %s%s: %s' % (operation, where, message))
        # The vault answered, so the object went away (or never had this part) while we worked.
        return errors.DeployError(errors.CONFLICT, 'Key Vault answered 404 during %s%s: %s' % (operation, where, message))
    if status == 409:
        lowered = message.lower()
        if 'ObjectIsDeletedButRecoverable' in codes or 'deleted but recoverable' in lowered:
            return errors.DeployError(
                errors.SOFT_DELETED,
                'The certificate name is soft-deleted%s: %s Recover it (on_soft_deleted: recover) or purge it first.' % (where, message))
        if 'ObjectIsBeingDeleted' in codes or 'being deleted' in lowered:
            return errors.DeployError(errors.BEING_DELETED, 'The certificate is being deleted%s; retry later. Key Vault said: %s' % (where, message))
        return errors.DeployError(errors.CONFLICT, 'Conflict during %s%s: %s' % (operation, where, message))
    if status == 429:
        return errors.DeployError(errors.THROTTLED, 'Key Vault throttled the %s request%s after retries: %s' % (operation, where, message))
    if status >= 500:
        return errors.DeployError(errors.SERVICE_ERROR, 'Key Vault failed with HTTP %d during %s%s: %s' % (status, operation, where, message))
    if status == 400:
        if 'tag' in message.lower():
            return errors.DeployError(errors.INVALID_CONFIG, 'Key Vault rejected the tags%s: %s' % (where, message))
        if operation == 'import':
            return errors.DeployError(errors.INVALID_MATERIAL, 'Key Vault rejected the certificate%s: %s' % (where, message))
        return errors.DeployError(errors.INVALID_CONFIG, 'Key Vault rejected the %s request%s: %s' % (operation, where, message))
    return errors.DeployError(errors.SERVICE_ERROR, 'Key Vault answered HTTP %s during %s%s: %s' % (status, operation, where, message))


def _first_line(text):
    return text.strip().splitlines()[0] if text.strip() else ''
