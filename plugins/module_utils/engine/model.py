# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Value objects shared by the engine and its target adapters."""

from __future__ import annotations

# Outcomes of a deploy.  Stable strings: playbooks match on them.
CREATED = 'created'
ROTATED = 'rotated'
UNCHANGED = 'unchanged'
UPDATED = 'updated'
CONCURRENT_WRITER = 'concurrent_writer'
UNVERIFIED = 'unverified'
ROLLED_BACK = 'rolled_back'
ROLLBACK_FAILED = 'rollback_failed'
OUTCOMES = (CREATED, ROTATED, UNCHANGED, UPDATED, CONCURRENT_WRITER, UNVERIFIED, ROLLED_BACK, ROLLBACK_FAILED)

ROLLBACK_MODES = ('auto', 'required', 'disabled')
ON_SOFT_DELETED = ('fail', 'recover')
# Check mode when the target cannot be read: predict changed=true with a warning, or fail with the read's error.
CHECK_MODE_READ = ('best_effort', 'required')


class VersionState(object):
    """What a target reports about one stored version of a certificate.

    ``facts`` is the public description of the leaf (see
    ``material.certificate.certificate_facts``), ``ids`` the target's own
    identifiers (for Key Vault: id, secret id, versionless ids...), ``leaf``
    the parsed leaf certificate when the target returned it.
    """

    def __init__(self, version, thumbprint, tags=None, enabled=True, facts=None, ids=None,
                 created_on=None, content_type=None, leaf=None, exportable=None):
        self.version = version
        self.thumbprint = thumbprint.upper() if thumbprint else thumbprint
        self.tags = dict(tags or {})
        self.enabled = enabled
        self.facts = dict(facts or {})
        self.ids = dict(ids or {})
        self.created_on = created_on
        self.content_type = content_type
        self.exportable = exportable  # whether the target lets the key be exported again (None: not known)
        self.leaf = leaf

    def summary(self):
        """The short form used for ``previous`` in results."""
        return {
            'version': self.version,
            'thumbprint': self.thumbprint,
            'serial': self.facts.get('serial'),
            'expires': self.facts.get('expires'),
        }

    def describe(self):
        """The long form used for ``certificate`` in results."""
        out = dict(self.ids)
        out.update(self.facts)
        out.update({
            'version': self.version,
            'thumbprint': self.thumbprint,
            'tags': dict(self.tags),
            'enabled': self.enabled,
            'content_type': self.content_type,
            'exportable': self.exportable,
        })
        return out


class StoredChain(object):
    """The certificates a target stores for one version (leaf first, in the stored order) and their content type."""

    def __init__(self, certificates, content_type=None):
        self.certificates = list(certificates)
        self.content_type = content_type


class ExportedVersion(object):
    """One stored version exactly as its target exported it, private key included.

    ``payload`` is the exported value unchanged (for Key Vault: the backing
    secret's text), ``content_type`` its format ('pkcs12' or 'pem') and
    ``material`` the same thing parsed, used to check it (thumbprint, key rules)
    and to describe it.  Re-importing ``payload`` restores the version byte for
    byte; the engine never looks inside it.
    """

    def __init__(self, payload, content_type, material, version=None):
        self.payload = payload
        self.content_type = content_type
        self.material = material
        self.version = version

    @property
    def thumbprint(self):
        return self.material.thumbprint


class Snapshot(object):
    """Rollback material for the version that was current before an import.

    ``material`` is None when rollback is unavailable; ``reason`` then says why.
    ``source`` is 'backing_secret' (``material`` is an :class:`ExportedVersion`:
    the previous version's exact bytes, private key included) or 're_pair'
    (``material`` is a ``Material``: the old certificate with the new key, only
    when the public keys are equal).
    """

    def __init__(self, state, material=None, source=None, reason=None):
        self.state = state
        self.material = material
        self.source = source
        self.reason = reason

    @property
    def available(self):
        return self.material is not None


class DeployRequest(object):
    """Everything the engine needs to know about one deploy, already validated."""

    def __init__(self, material, certificate_id, user_tags=None, enabled=True, force=False,
                 take_ownership=False, rollback='auto', on_soft_deleted='fail', allow_expired=False, check_mode=False,
                 exported=None, min_days_remaining=None, expected_sans=None, check_mode_read='best_effort',
                 content_type='pkcs12', exportable=True, verify_stored_chain=True):
        # ``exported`` (an ExportedVersion) is set when the material was exported from another
        # target (copy_from): the target then imports those bytes rather than rebuilding them.
        self.material = exported.material if exported is not None else material
        self.exported = exported
        self.min_days_remaining = min_days_remaining
        self.expected_sans = list(expected_sans or [])
        self.certificate_id = certificate_id
        self.user_tags = dict(user_tags or {})
        self.enabled = enabled
        self.force = force
        self.take_ownership = take_ownership
        self.rollback = rollback
        self.on_soft_deleted = on_soft_deleted
        self.allow_expired = allow_expired
        self.check_mode = check_mode
        self.check_mode_read = check_mode_read
        # How the target stores it: 'pkcs12' or 'pem', and whether the key may be exported again.
        self.content_type = exported.content_type if exported is not None else content_type
        self.exportable = exportable
        # After an import, read back the stored chain and compare it with what was sent.
        self.verify_stored_chain = verify_stored_chain


# DeployResult.read_path: the current state came from the certificate's own read, or from a listing of the target.
READ_OWN = 'read'
READ_FROM_LIST = 'list'


class DeployResult(object):
    """The report of one engine run; ``as_dict`` is the module's return shape."""

    def __init__(self):
        self.changed = False
        self.outcome = None
        self.certificate = None
        self.previous = None
        self.rollback = {'attempted': False, 'succeeded': False, 'version': None, 'reason': None}
        self.diff = None
        self.warnings = []
        self.differences = None  # what differed from the wanted state (see engine.deploy.decide), once decided
        self.verification = None  # which checks ran after an import, and their verdicts
        self.read_path = None  # how the current state was learnt (READ_OWN, READ_FROM_LIST), once it was

    def as_dict(self):
        out = {'changed': self.changed, 'rollback': dict(self.rollback)}
        if self.read_path is not None:
            out['read_path'] = self.read_path
        if self.outcome is not None:
            out['outcome'] = self.outcome
        if self.differences is not None:
            out['differences'] = list(self.differences)
        if self.verification is not None:
            out['verification'] = dict(self.verification)
        if self.certificate is not None:
            out['certificate'] = self.certificate
        if self.previous is not None:
            out['previous'] = self.previous
        return out


# -- key-in-target certificates: a request the target makes a key for, and the merge of its signed certificate --

# Outcomes of a certificate request and of a merge (stable strings, like the deploy's).
REQUESTED = 'requested'
PENDING = 'pending'
MERGED = 'merged'
REQUEST_OUTCOMES = (REQUESTED, PENDING, UNCHANGED)
MERGE_OUTCOMES = (MERGED, UNCHANGED, UPDATED, CONCURRENT_WRITER, UNVERIFIED)
# Why a request was made.
FIRST_REQUEST = 'first_request'
RENEWAL_DUE = 'renewal_due'
RENEWAL_FORCED = 'renewal_forced'
POLICY_CHANGED = 'policy_changed'
REPLACED = 'replaced'

KEY_TYPES = ('RSA', 'EC')
RSA_SIZES = (2048, 3072, 4096)
CURVES = ('P-256', 'P-384', 'P-521')


class RequestPolicy(object):
    """The policy a target makes a key and a certificate request from, already validated (see frontend.request).

    ``key_usage`` and ``extended_key_usage`` are None when the caller leaves them to the target (they are then
    not compared); otherwise sorted lists.
    """

    FIELDS = ('subject', 'dns_names', 'key_type', 'key_size', 'curve', 'hsm', 'exportable', 'reuse_key', 'validity_months',
              'key_usage', 'extended_key_usage', 'content_type')

    def __init__(self, subject, dns_names=(), key_type='RSA', key_size=2048, curve=None, hsm=False, exportable=True,
                 reuse_key=False, validity_months=12, key_usage=None, extended_key_usage=None, content_type='pkcs12'):
        self.subject = subject
        self.dns_names = sorted(set(name.lower().rstrip('.') for name in dns_names))
        self.key_type = key_type
        self.key_size = key_size if key_type == 'RSA' else None
        self.curve = curve if key_type == 'EC' else None
        self.hsm = bool(hsm)
        self.exportable = bool(exportable)
        self.reuse_key = bool(reuse_key)
        self.validity_months = validity_months
        self.key_usage = sorted(set(key_usage)) if key_usage is not None else None
        self.extended_key_usage = sorted(set(extended_key_usage)) if extended_key_usage is not None else None
        self.content_type = content_type

    def as_dict(self):
        return dict((name, getattr(self, name)) for name in self.FIELDS)


class PendingRequest(object):
    """A target's pending certificate request: its CSR (DER bytes) and status as the target reports them."""

    IN_PROGRESS = 'inprogress'

    def __init__(self, csr, status, status_details=None, issuer=None, cancellation_requested=False, request_id=None, error=None):
        self.csr = csr
        self.status = status
        self.status_details = status_details
        self.issuer = issuer
        self.cancellation_requested = bool(cancellation_requested)
        self.request_id = request_id
        self.error = error

    @property
    def in_progress(self):
        """Waiting for a signed certificate: in progress, not cancelled, with a CSR to sign."""
        return (self.status or '').lower() == self.IN_PROGRESS and not self.cancellation_requested and bool(self.csr)


class CertificateRequest(object):
    """Everything the request engine needs to know about one request, already validated."""

    def __init__(self, policy, certificate_id, user_tags=None, take_ownership=False, replace=False, renew=False,
                 renew_days_before=30, switch_from_import=False, check_mode=False):
        self.policy = policy
        self.certificate_id = certificate_id
        self.user_tags = dict(user_tags or {})
        self.take_ownership = take_ownership
        self.replace = replace
        self.renew = renew
        self.renew_days_before = renew_days_before
        self.switch_from_import = switch_from_import
        self.check_mode = check_mode


class MergeRequest(object):
    """A signed certificate (``material.csr.SignedCertificate``) to merge into the pending request, validated."""

    def __init__(self, signed, certificate_id, user_tags=None, take_ownership=False, verify_stored_chain=True,
                 allow_expired=False, check_mode=False):
        self.signed = signed
        self.certificate_id = certificate_id
        self.user_tags = dict(user_tags or {})
        self.take_ownership = take_ownership
        self.verify_stored_chain = verify_stored_chain
        self.allow_expired = allow_expired
        self.check_mode = check_mode
