# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stable error vocabulary of the deploy engine.

Every foreseeable failure, whichever layer detects it, is raised as a
:class:`DeployError` carrying one of the codes below.  Playbooks and tests
match on these codes, so they are part of the collection's public contract.
Messages must tell the user what to do and must never contain key material.
"""

from __future__ import annotations

INVALID_CONFIG = 'invalid_config'
INVALID_MATERIAL = 'invalid_material'
KEY_MISMATCH = 'key_mismatch'
UNSUPPORTED_KEY = 'unsupported_key'
EXPIRED = 'expired'
NOT_OWNED = 'not_owned'
SOFT_DELETED = 'soft_deleted'
BEING_DELETED = 'being_deleted'
FORBIDDEN = 'forbidden'
AUTH_FAILED = 'auth_failed'
VAULT_NOT_FOUND = 'vault_not_found'
CONFLICT = 'conflict'
THROTTLED = 'throttled'
SERVICE_ERROR = 'service_error'
TIMEOUT = 'timeout'
UNREACHABLE = 'unreachable'
NETWORK_DENIED = 'network_denied'
ROLLBACK_FAILED = 'rollback_failed'
MISSING_DEPENDENCY = 'missing_dependency'

ALL_CODES = frozenset((
    INVALID_CONFIG, INVALID_MATERIAL, KEY_MISMATCH, UNSUPPORTED_KEY, EXPIRED,
    NOT_OWNED, SOFT_DELETED, BEING_DELETED, FORBIDDEN, AUTH_FAILED,
    VAULT_NOT_FOUND, CONFLICT, THROTTLED, SERVICE_ERROR, TIMEOUT,
    UNREACHABLE, NETWORK_DENIED, ROLLBACK_FAILED, MISSING_DEPENDENCY,
))

# Failures that mean "the target could not be read right now", as opposed to
# "the request is wrong".  Check mode turns these into a warning and a
# conservative prediction instead of a failure.
UNREACHABLE_CODES = frozenset((AUTH_FAILED, FORBIDDEN, THROTTLED, SERVICE_ERROR, TIMEOUT, MISSING_DEPENDENCY, VAULT_NOT_FOUND,
                               UNREACHABLE, NETWORK_DENIED))

# Failures after which repeating the same request may succeed.
TRANSIENT_CODES = frozenset((THROTTLED, SERVICE_ERROR, TIMEOUT))

# Failures of a read-back right after an import that are worth another read: the transient ones, plus a
# token or connection hiccup.  A refusal (forbidden, not found) is not retried.
READ_BACK_RETRY_CODES = TRANSIENT_CODES | frozenset((AUTH_FAILED, UNREACHABLE))


class DeployError(Exception):
    """A foreseeable failure with a stable ``code``.

    ``details`` holds extra, non-secret facts for the caller (for example the
    missing RBAC action, the Python package to install, or the partial result
    of a deploy that failed half-way).
    """

    def __init__(self, code, message, **details):
        if code not in ALL_CODES:
            raise ValueError('unknown error code %r' % (code,))
        super(DeployError, self).__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __str__(self):
        return self.message
