# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stable error vocabulary of the collection: one set of codes for the deploy and the TLS probe.

Every foreseeable failure, whichever layer detects it (material, engine, probe, a target adapter, the
frontend), is raised as a :class:`DeployError` carrying one of the codes below.  Playbooks and tests
match on these codes, so they are part of the collection's public contract.  Messages must tell the
user what to do and must never contain key material.

This module is the bottom layer of module_utils: it imports nothing of the collection, and every other
layer may import it.
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
# A certificate request's own: a pending request exists with another policy than the one asked for.
POLICY_MISMATCH = 'policy_mismatch'
# The TLS probe's own two: the endpoint's handshake failed, or it serves another certificate than expected.
TLS_ERROR = 'tls_error'
MISMATCH = 'mismatch'

DEPLOY_CODES = frozenset((
    INVALID_CONFIG, INVALID_MATERIAL, KEY_MISMATCH, UNSUPPORTED_KEY, EXPIRED,
    NOT_OWNED, SOFT_DELETED, BEING_DELETED, FORBIDDEN, AUTH_FAILED,
    VAULT_NOT_FOUND, CONFLICT, THROTTLED, SERVICE_ERROR, TIMEOUT,
    UNREACHABLE, NETWORK_DENIED, ROLLBACK_FAILED, MISSING_DEPENDENCY,
))
# What azure_kv_certificate_request and azure_kv_certificate_merge fail with: a deploy's codes (those about
# rollbacks aside) and the request's own.
REQUEST_CODES = (DEPLOY_CODES - frozenset((ROLLBACK_FAILED,))) | frozenset((POLICY_MISMATCH,))
# What tls_certificate_probe fails with.
PROBE_CODES = frozenset((INVALID_CONFIG, UNREACHABLE, TLS_ERROR, MISMATCH, MISSING_DEPENDENCY))
ALL_CODES = DEPLOY_CODES | PROBE_CODES | REQUEST_CODES

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

    def fresh(self, note=None):
        """A new error with this one's code, message (plus ``note``) and facts, without the state of a run.

        A deploy adds its warnings and partial result to the error it raises; an error remembered to be
        raised again (for another certificate of the same vault) must not carry them along.
        """
        details = dict((k, v) for k, v in self.details.items() if k not in ('result', 'warnings'))
        return DeployError(self.code, self.message if note is None else '%s (%s)' % (self.message, note), **details)

    def as_dict(self):
        """``{'code': ..., 'message': ...}``: how a report (the probe's) carries a failure it did not raise."""
        return {'code': self.code, 'message': self.message}
