# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The target-agnostic deploy engine.

validate → read current → decide → snapshot → apply → verify → (rollback) → report

The engine knows neither Ansible nor any cloud SDK: it drives a
:class:`~.target.Target` and reports a :class:`~.model.DeployResult`.  A
module, an action plugin or a plain script can run it.
"""

from __future__ import annotations

import math
import time

from .. import errors
from . import model, record as records, tags
from ..material import certificate as cert_material

NOTHING = 'none'
UPDATE = 'update'
IMPORT = 'import'

_DIFF_FACTS = ('thumbprint', 'serial', 'subject', 'sans', 'not_before', 'expires')


# The stored chain must be read before deciding (a version imported without a record, see decide()).
COMPARE_STORED = 'compare_stored'

# What a decision found different from the wanted state (result key ``differences``), besides record.CHAIN,
# record.CONTENT_TYPE and record.EXPORTABLE.
ABSENT = 'absent'
FORCE = 'force'
CERTIFICATE = 'certificate'
TAGS = 'tags'
ENABLED = 'enabled'
RECORD = 'record'  # the version lacks the record of what was imported; the stored chain equals the wanted one


class Decision(object):
    """What must happen (``action``), why (``differences``), the tags a write carries, and warnings to add."""

    def __init__(self, action, differences=(), tags=None, notes=()):
        self.action = action
        self.differences = list(differences)
        self.tags = tags
        self.notes = list(notes)


def _policy_differences(current, wanted):
    """What the target's own description of ``current`` (for Key Vault: the policy in the same read) shows
    different from the wanted record; a value the target does not report is not a difference."""
    out = []
    if current.content_type is not None and current.content_type != wanted.content_type:
        out.append(records.CONTENT_TYPE)
    if current.exportable is not None and bool(current.exportable) != wanted.exportable:
        out.append(records.EXPORTABLE)
    return out


def decide(current, request, wanted_tags, stored=None, order_kept=True):
    """Pure decision: what must happen to make ``current`` match ``request``; a :class:`Decision`.

    Compared: the leaf (thumbprint); then what was imported with it -- the ordered chain, the content type and
    the exportable flag -- from the record in the version's tags (``certdeploy-material``); then the tags and
    the enabled flag. Any difference in the first two imports a new version (the target binds the chain, the
    content type and exportability to a version); tags or enabled alone are updated in place.

    A version without a record (imported by an earlier release, or by hand) is compared once on what the
    target stores: its content type and exportable flag as the target describes them, then its stored chain,
    which the caller reads when this returns COMPARE_STORED and passes as ``stored`` (a ``model.StoredChain``,
    or the DeployError that reading it raised). Equal: a properties update writes the record. Different: an
    import. Unreadable: the chain is not compared (a warning says so) and no record is written -- a missing
    record alone never imports.
    """
    if current is None:
        return Decision(IMPORT, [ABSENT], wanted_tags)
    if not tags.is_managed(current.tags) and not request.take_ownership:
        raise errors.DeployError(
            errors.NOT_OWNED,
            'The certificate already exists (version %s) without the tag %s=%s, so this module does not own it. '
            'Nothing was changed. Set take_ownership: true to manage it from now on.'
            % (current.version, tags.MANAGED_BY, tags.MANAGED_BY_VALUE),
        )
    if current.tags.get(tags.SOURCE) == tags.SOURCE_REQUEST and tags.is_managed(current.tags) and not request.take_ownership:
        # The opposite of the request module's switch_from_import: an import would replace a key the vault made.
        raise errors.DeployError(
            errors.CONFLICT,
            'The certificate (version %s) is issued from requests (%s=%s): its key was made in the vault and never left it. '
            'An import would replace that key with one from outside. Nothing was changed. Keep renewing it with '
            'azure_kv_certificate_request and azure_kv_certificate_merge, or set take_ownership: true to deploy over it.'
            % (current.version, tags.SOURCE, tags.SOURCE_REQUEST))
    if request.force:
        return Decision(IMPORT, [FORCE], wanted_tags)
    if current.thumbprint != request.material.thumbprint:
        return Decision(IMPORT, [CERTIFICATE], wanted_tags)
    wanted = records.Record.parse(wanted_tags.get(tags.MATERIAL))
    recorded = records.Record.parse(current.tags.get(tags.MATERIAL))
    write_tags = wanted_tags
    notes = []
    if recorded is not None:
        differences = recorded.differences(wanted)
        if differences:
            return Decision(IMPORT, differences, wanted_tags)
        disagree = _policy_differences(current, recorded)
        if disagree:
            notes.append(
                'The target describes version %s with %s, while the record of its import says %s: the certificate\'s '
                'policy was changed after the import. The version itself is as recorded, so it was not imported again.'
                % (current.version, ', '.join('%s %s' % (k, _shown(getattr(current, k))) for k in disagree),
                   ', '.join('%s %s' % (k, _shown(getattr(recorded, k))) for k in disagree)))
    else:
        differences = _policy_differences(current, wanted)
        if differences:
            return Decision(IMPORT, differences, wanted_tags)
        if stored is None:
            return Decision(COMPARE_STORED)
        if isinstance(stored, errors.DeployError):
            notes.append(
                'Version %s carries no record of what was imported with it (an earlier release or another tool imported '
                'it), and its stored chain could not be read to compare it (%s: %s): the chain, its order and the content '
                'type were not compared, and no record was written. %sSet force: true once to import the wanted chain.'
                % (current.version, stored.code, stored.message,
                   'Allow reading the stored version (for Key Vault: its backing secret), or ' if stored.code == errors.FORBIDDEN
                   and not stored.details.get('disabled') else ''))
            write_tags = tags.without_record(wanted_tags)
        else:
            if stored.content_type is not None and stored.content_type != wanted.content_type:
                return Decision(IMPORT, [records.CONTENT_TYPE], wanted_tags)
            sent = [request.material.leaf] + list(request.material.chain)
            verdict, detail = cert_material.compare_stored(sent, stored.certificates, order_kept)
            if verdict != cert_material.STORED_EQUAL:  # another order too: the record must say what the version holds
                return Decision(IMPORT, [records.CHAIN], wanted_tags, notes=[
                    'Version %s carries no record of what was imported with it; its stored chain was read and differs from '
                    'the wanted one (%s), so the wanted chain is imported.' % (current.version, detail)])
    differences = []
    if tags.MATERIAL in write_tags and current.tags.get(tags.MATERIAL) != write_tags[tags.MATERIAL]:
        differences.append(RECORD)
    if tags.comparable(tags.without_record(current.tags)) != tags.comparable(tags.without_record(write_tags)):
        differences.append(TAGS)
    if bool(current.enabled) != bool(request.enabled):
        differences.append(ENABLED)
    return Decision(UPDATE if differences else NOTHING, differences, write_tags, notes)


def _shown(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return value


# The diff's "before" when check mode could not read the target: not {} (which would claim "nothing there").
BEFORE_UNKNOWN = 'unknown'


def storage_facts(material, content_type, exportable):
    """How a version is stored, as diffs show it: content type, exportable, and the chain's subjects in order."""
    return {'content_type': content_type, 'exportable': exportable,
            'chain': [cert_material.subject_text(cert) for cert in material.chain]}


def state_diff(current, after_facts, after_tags, after_enabled, after_version, before_unknown=False, after_storage=None,
               before_chain=None):
    """Before/after facts for diff mode; public facts only, never key material.

    ``after_storage`` is :func:`storage_facts` of what is wanted. Before, the content type and exportable flag
    are the record's (else the target's description) and the chain is ``before_chain`` (its subjects when the
    stored chain was read, or the record shows it equals the wanted one), else None: not read.
    """
    before = BEFORE_UNKNOWN if before_unknown else {}
    if current is not None:
        before = dict((k, current.facts.get(k)) for k in _DIFF_FACTS)
        before.update({'version': current.version, 'thumbprint': current.thumbprint,
                       'enabled': current.enabled, 'tags': dict(current.tags)})
        if after_storage is not None:
            recorded = records.Record.parse(current.tags.get(tags.MATERIAL))
            before.update({
                'content_type': recorded.content_type if recorded else current.content_type,
                'exportable': recorded.exportable if recorded else current.exportable,
                'chain': before_chain,
            })
    after = dict((k, after_facts.get(k)) for k in _DIFF_FACTS)
    after.update({'version': after_version, 'enabled': after_enabled, 'tags': dict(after_tags)})
    after.update(after_storage or {})
    return {'before': before, 'after': after}


def _labels(target):
    labels = dict(getattr(target, 'labels', None) or {})
    return ' '.join('%s=%s' % (k, labels[k]) for k in sorted(labels) if k != 'target') or type(target).__name__


def _not_rolled_back(result, code, reason, message):
    """The DeployError of a rollback that is not attempted: ``reason`` recorded, outcome rollback_failed."""
    result.rollback['reason'] = reason
    result.outcome = model.ROLLBACK_FAILED
    return errors.DeployError(code, message, result=result.as_dict())


def _seconds(value):
    if not math.isfinite(value):
        return str(value)
    return '%d' % value if value == int(value) else '%.1f' % value


class _Unknown(object):
    """Marker: in check mode the current state could not be read."""


UNKNOWN = _Unknown()


def read_back(target, previous, attempts, delay, sleep, issued_only=False):
    """Read latest after a write, retrying up to ``attempts`` times (waiting ``delay`` x attempt) what may be transient.

    Retried: a failed read with a transient code (throttled, service error, timeout, a token or connection hiccup),
    a read that finds nothing (404 right after the write) -- or, with ``issued_only``, only a version without a
    certificate (a pending one) -- and a stale read that still returns ``previous``'s version. A refusal (forbidden,
    not found vault) is not retried. Returns ``(latest, None)`` or ``(None, why)``. Used by every engine that writes.
    """
    why = None
    for attempt in range(attempts):
        if attempt:
            sleep(delay * attempt)
        try:
            latest = target.read_latest(look_for_deleted=False)
        except errors.DeployError as exc:
            why = '%s: %s' % (exc.code, exc.message)
            if exc.code not in errors.READ_BACK_RETRY_CODES:
                break
            continue
        if latest is None or (issued_only and not latest.thumbprint):
            why = 'the certificate was not found' if latest is None else 'no issued version was found'
        elif previous is not None and latest.version == previous.version:
            why = 'the target still returned the previous version %s' % previous.version
        else:
            return latest, None
    return None, why


class DeployEngine(object):
    """Runs one deploy of ``request`` against ``target``."""

    def __init__(self, target, verify_attempts=3, verify_delay=2.0, sleep=time.sleep,
                 import_attempts=3, resend_delay=2.0, resend_wait_max=30.0):
        self.target = target
        self.verify_attempts = verify_attempts
        self.verify_delay = verify_delay
        self.import_attempts = import_attempts
        self.resend_delay = resend_delay
        self.resend_wait_max = resend_wait_max
        self._sleep = sleep

    def sleep_bound(self):
        """The longest the engine itself may sleep in one deploy (the target's calls are bounded by the target).

        Three read-backs (after the import, of its stored chain, after a rollback), each ``verify_delay x
        (1 + 2 + ...)`` over its attempts, and two imports (the deploy's, a rollback's), each resent at most
        ``import_attempts - 1`` times after a wait of at most ``resend_wait_max``.
        """
        read_back = sum(self.verify_delay * attempt for attempt in range(1, self.verify_attempts))
        return 3 * read_back + 2 * max(0, self.import_attempts - 1) * self.resend_wait_max

    # -- phases ------------------------------------------------------------

    def validate(self, request):
        """Offline checks that need no target: key and validity rules, tag rules."""
        warnings = cert_material.check_rules(request.material, allow_expired=request.allow_expired)
        cert_material.check_expectations(request.material, request.min_days_remaining, request.expected_sans)
        request.user_tags = tags.normalise_user_tags(request.user_tags)
        return warnings

    def run(self, request, listed=None):
        """Run all phases; a DeployError raised on the way carries the warnings gathered so far.

        ``listed`` is what a listing of the target's certificates said about this name (a VersionState without a
        version or certificate: thumbprint, tags, enabled), when the caller listed them. If :func:`decide` finds
        nothing to do from it -- the same leaf, the record of the same chain, content type and exportable flag,
        the wanted tags and enabled flag, and owned -- that is the result, without a read of its own
        (``read_path: list``). Anything else (absent from the list, different, not owned, no record) is decided
        on the target's own read, as without ``listed``.
        """
        result = model.DeployResult()
        try:
            if listed is not None:
                decided = self._from_listing(request, listed, result)
                if decided is not None:
                    return decided
            try:
                return self._run(request, result)
            except errors.DeployError as exc:
                # A real run does not ask whether an absent name is soft-deleted (that costs a request
                # on every first deploy); the import tells (SOFT_DELETED): recover, then start over once.
                if not (exc.code == errors.SOFT_DELETED and request.on_soft_deleted == 'recover'
                        and not request.check_mode and not result.changed):
                    raise
                self._recover(request, result, exc.details.get('deleted'))
                return self._run(request, result)
        except errors.DeployError as exc:
            exc.details.setdefault('warnings', list(result.warnings))
            if result.changed and 'result' not in exc.details:
                exc.details['result'] = result.as_dict()
            raise

    def _from_listing(self, request, listed, result):
        """The no-op result decided from a listed state, or None when the listing does not settle it."""
        for warning in self.validate(request):
            if warning not in result.warnings:
                result.warnings.append(warning)
        if request.force:
            return None
        wanted_record = records.Record.of_material(request.material, request.content_type, request.exportable)
        wanted_tags = tags.desired_tags(request.user_tags, request.certificate_id, wanted_record)
        recorded = records.Record.parse(listed.tags.get(tags.MATERIAL))
        if recorded is None or not tags.is_managed(listed.tags):
            return None  # no record: only the version's own read can compare it; not owned: the read tells whose it is
        try:
            decision = decide(listed, request, wanted_tags, order_kept=self.target.keeps_chain_order)
        except errors.DeployError:
            return None
        if decision.action != NOTHING:
            return None
        local_facts = cert_material.certificate_facts(request.material.leaf)
        wanted_storage = storage_facts(request.material, request.content_type, request.exportable)
        # The listed leaf is the local one (same thumbprint), so its facts are the local certificate's, and the
        # record says how it was imported. A listing names no version: the ids are the versionless ones.
        current = model.VersionState(
            version=listed.version, thumbprint=listed.thumbprint, tags=listed.tags, enabled=listed.enabled,
            facts=local_facts, ids=dict(self.target.predicted_ids(), **listed.ids), created_on=listed.created_on,
            content_type=recorded.content_type, exportable=recorded.exportable)
        result.read_path = model.READ_FROM_LIST
        result.differences = []
        result.outcome = model.UNCHANGED
        result.certificate = current.describe()
        result.previous = current.summary()
        result.diff = state_diff(current, local_facts, decision.tags, request.enabled, current.version,
                                 after_storage=wanted_storage, before_chain=wanted_storage['chain'])
        return result

    def _recover(self, request, result, deleted=None):
        """Recover the soft-deleted name. Recovering brings a certificate back to life: only one this collection owns
        (or is told to take over). ``deleted`` is the deleted certificate when the target already read it."""
        if deleted is None:
            deleted = self.target.read_deleted()
        if deleted is not None and not tags.is_managed(deleted.tags) and not request.take_ownership:
            raise errors.DeployError(
                errors.NOT_OWNED,
                'The certificate is soft-deleted (version %s) and does not carry the tag %s=%s, so this module does not own '
                'it: it was not recovered. Nothing was changed. Recover or purge it yourself, or set take_ownership: true '
                'to recover and manage it.' % (deleted.version, tags.MANAGED_BY, tags.MANAGED_BY_VALUE))
        try:
            self.target.recover_deleted()
        except errors.DeployError as exc:
            if exc.details.get('may_have_written'):  # the request went out: the name may be live again
                result.changed = True
                result.warnings.append('The recovery of the soft-deleted certificate was requested and may have taken '
                                       'effect; check the target.')
            raise
        result.changed = True
        result.warnings.append('The soft-deleted certificate was recovered (on_soft_deleted: recover).')

    def _run(self, request, result):
        for warning in self.validate(request):  # once, also when the run starts over after a recovery
            if warning not in result.warnings:
                result.warnings.append(warning)
        wanted_record = records.Record.of_material(request.material, request.content_type, request.exportable)
        wanted_tags = tags.desired_tags(request.user_tags, request.certificate_id, wanted_record)
        local_facts = cert_material.certificate_facts(request.material.leaf)
        wanted_storage = storage_facts(request.material, request.content_type, request.exportable)

        current = self._read_current(request, result)
        if current is not UNKNOWN:
            result.read_path = model.READ_OWN
        if current is UNKNOWN:
            cert_material.check_private_key(request.material.key)  # predicted to be imported
            result.changed = True
            result.certificate = self._predicted(None, local_facts, wanted_tags, request)
            result.diff = state_diff(None, local_facts, wanted_tags, request.enabled, None, before_unknown=True,
                                     after_storage=wanted_storage)
            return result

        decision, stored = self._decide(current, request, wanted_tags)
        action = decision.action
        result.differences = decision.differences
        for note in decision.notes:
            result.warnings.append(note)
        if current is not None:
            result.previous = current.summary()
        new_version = current.version if action in (NOTHING, UPDATE) else None
        before_chain = None
        if stored is not None and not isinstance(stored, errors.DeployError):
            before_chain = [cert_material.subject_text(cert) for cert in stored.certificates[1:]]
        elif current is not None and records.CHAIN not in decision.differences and tags.MATERIAL in current.tags \
                and current.tags.get(tags.MATERIAL) == wanted_tags.get(tags.MATERIAL):
            before_chain = wanted_storage['chain']  # the record shows the stored chain is the wanted one
        result.diff = state_diff(current, local_facts, decision.tags, request.enabled, new_version,
                                 after_storage=wanted_storage, before_chain=before_chain)

        if action == NOTHING:
            # After a recovery the vault was written although the recovered version is the one wanted: updated.
            result.outcome = model.UPDATED if result.changed else model.UNCHANGED
            result.certificate = current.describe()
            return result

        if action != UPDATE:
            # The key is about to be sent (or, in check mode, predicted to be): check it in full now.  A no-op or
            # a properties update needs only the key-to-certificate match, done when the material was loaded.
            cert_material.check_private_key(request.material.key)

        if request.check_mode:
            result.changed = True
            result.outcome = {UPDATE: model.UPDATED}.get(action, model.ROTATED if current else model.CREATED)
            result.certificate = self._predicted(current if action == UPDATE else None, local_facts, decision.tags, request)
            if RECORD in decision.differences:
                result.warnings.append(self._record_note(current, check_mode=True))
            return result

        if action == UPDATE:
            try:
                state = self.target.update_properties(current, decision.tags, request.enabled)
            except errors.DeployError as exc:
                if exc.code != errors.FORBIDDEN:
                    if exc.code in errors.TRANSIENT_CODES:  # the update may have been applied before the failure reached us
                        result.changed = True
                    raise
                if decision.differences == [RECORD]:
                    # Only the record was to be written: a missing record never imports by itself.
                    result.outcome = model.UPDATED if result.changed else model.UNCHANGED
                    result.certificate = current.describe()
                    result.warnings.append(
                        'Version %s carries no record of what was imported with it; its stored chain equals the wanted one, '
                        'but writing the record (tag %s) was forbidden (%s). Nothing was changed; the next run compares '
                        'the stored chain again. Allow property updates to record it.' % (current.version, tags.MATERIAL, exc.message))
                    return result
                result.warnings.append(
                    'Updating tags/enabled on version %s was forbidden (%s); importing a new version with the '
                    'wanted tags instead. Allow property updates to avoid the extra version.' % (current.version, exc.message))
                cert_material.check_private_key(request.material.key)  # the key is sent after all
            else:
                result.changed = True
                result.outcome = model.UPDATED
                result.certificate = state.describe()
                if RECORD in decision.differences:
                    result.warnings.append(self._record_note(current))
                return result

        snapshot = self._snapshot(current, request, result)
        if snapshot.source == 'backing_secret' and result.diff is not None and result.diff['before'].get('chain') is None:
            result.diff['before']['chain'] = [cert_material.subject_text(c) for c in snapshot.material.material.chain]
        imported = self._import(current, request, wanted_tags, result)
        result.changed = True
        self._verify(current, imported, snapshot, request, result)
        return result

    def _decide(self, current, request, wanted_tags):
        """decide(), reading the stored chain first when it asks for it; returns ``(decision, stored)``."""
        order_kept = self.target.keeps_chain_order
        decision = decide(current, request, wanted_tags, order_kept=order_kept)
        if decision.action != COMPARE_STORED:
            return decision, None
        try:
            stored = self.target.read_stored_chain(current)
        except errors.DeployError as exc:
            stored = exc
        return decide(current, request, wanted_tags, stored, order_kept), stored

    @staticmethod
    def _record_note(current, check_mode=False):
        return ('Version %s carried no record of what was imported with it (an earlier release imported it). Its stored '
                'chain, content type and exportable flag were read and equal the wanted ones, so %s (tag %s), and later '
                'runs decide from it.' % (current.version, 'a real run would only write the record' if check_mode
                                          else 'only the record was written', tags.MATERIAL))

    # -- read ----------------------------------------------------------------

    def _read_current(self, request, result):
        # A soft-deleted name is told apart from a free one up front only in check mode, where the
        # prediction depends on it; a real run learns it from the import (SOFT_DELETED), see run().
        try:
            return self.target.read_latest(look_for_deleted=request.check_mode)
        except errors.DeployError as exc:
            if exc.code == errors.SOFT_DELETED and request.on_soft_deleted == 'recover':
                if request.check_mode:
                    result.warnings.append('The certificate is soft-deleted; it would be recovered first and then compared.')
                    return UNKNOWN
                self._recover(request, result, exc.details.get('deleted'))
                return self.target.read_latest(look_for_deleted=False)
            if request.check_mode and exc.code in errors.UNREACHABLE_CODES:
                if request.check_mode_read == 'required':
                    raise errors.DeployError(
                        exc.code, '%s (check mode could not read the current certificate, and check_mode_read is required)'
                        % exc.message, **exc.details)
                result.warnings.append(
                    'Check mode could not read the current certificate (%s: %s); predicting changed=true. '
                    'The configuration and material were validated offline.' % (exc.code, exc.message))
                return UNKNOWN
            raise

    # -- snapshot ------------------------------------------------------------

    def _snapshot(self, current, request, result):
        if current is None:
            return model.Snapshot(None, reason='there was no previous version')
        if request.rollback == 'disabled':
            return model.Snapshot(current, reason='rollback is disabled')
        try:
            return model.Snapshot(current, self.target.export_version(current), 'backing_secret')
        except errors.DeployError as exc:
            cause = exc
        leaf = current.leaf
        if leaf is not None and cert_material.public_key_matches(leaf, request.material.key):
            chain, unrelated = cert_material.order_chain(leaf, request.material.chain)
            material = cert_material.Material(leaf, request.material.key, [c for c in chain if c not in unrelated])
            result.warnings.append(
                'The previous private key could not be read (%s); rollback would re-pair the previous certificate '
                'with the new key, which is valid because both share one public key.' % cause.message)
            return model.Snapshot(current, material, 're_pair')
        reason = ('the previous private key could not be read (%s: %s) and %s' % (
            cause.code, cause.message,
            'the previous certificate has a different public key, so it cannot be re-paired' if leaf is not None
            else 'the target did not return the previous certificate, so it cannot be re-paired'))
        result.rollback['reason'] = reason
        if request.rollback == 'required':
            raise errors.DeployError(
                errors.FORBIDDEN if cause.code == errors.FORBIDDEN else errors.ROLLBACK_FAILED,
                'rollback is required but no rollback material exists: %s. Nothing was written. Allow reading the '
                'previous version\'s private key, or set rollback: auto.' % reason,
                result=result.as_dict(), action=cause.details.get('action'),
            )
        result.warnings.append('Rollback is unavailable for this deploy: %s.' % reason)
        return model.Snapshot(current, reason=reason)

    # -- apply ---------------------------------------------------------------

    def _import(self, current, request, wanted_tags, result):
        def send():
            if request.exported is not None:
                return self.target.import_exported(request.exported, wanted_tags, request.enabled, exportable=request.exportable)
            return self.target.import_material(request.material, wanted_tags, request.enabled,
                                               content_type=request.content_type, exportable=request.exportable)
        return self._send_import(send, request.material.thumbprint, current, result, 'import')

    def _send_import(self, send, thumbprint, below, result, what):
        """Send an import; never again before a read showed it did not commit.

        A failed import may have been committed before the failure reached us (a connection cut, a gateway
        timeout, a 503 after the write): an import resent blindly would add a second version. So after a
        transient failure latest is read: holding ``thumbprint`` in a version other than ``below``'s, the import
        did commit; otherwise it is sent again, at most ``import_attempts`` times in all, after the wait the
        failure asked for (``retry_after``) or a short backoff -- a wish longer than ``resend_wait_max`` is not
        waited for. The target sends an import once per call (no retries of its own). A refusal the target states
        for what it did not process (``not_processed``: Key Vault's 429) needs no read: it is sent again after the wait.
        """
        attempt = 0
        maybe_sent = False  # an earlier attempt failed in a way that leaves open whether the target processed it
        while True:
            attempt += 1
            try:
                return send()
            except errors.DeployError as exc:
                if exc.code not in errors.TRANSIENT_CODES:
                    if maybe_sent:  # that earlier attempt may still have been committed
                        result.changed = True
                    raise
                failure = exc
                # A refusal the target states (Key Vault's 429) was not processed; anything else may have been.
                maybe_sent = maybe_sent or not exc.details.get('not_processed')
            if maybe_sent:
                latest = self._settle(failure, thumbprint, below, result, what)
                if latest is not None:
                    return latest
            if attempt >= self.import_attempts:
                raise failure
            wait = failure.details.get('retry_after')
            wait = self.resend_delay * attempt if wait is None else wait
            if wait > self.resend_wait_max:
                message = ('%s The target asked to wait %s s before the %s is sent again, longer than the %d s this module '
                           'waits; nothing more was sent. Run again later.'
                           % (failure.message, _seconds(wait), what, self.resend_wait_max))
                raise errors.DeployError(errors.THROTTLED, message, retry_after=wait, **(
                    {} if maybe_sent else {'not_processed': True}))
            self._sleep(wait)

    def _settle(self, failure, thumbprint, below, result, what):
        """After an import failed in a way that leaves open whether it was committed: read latest. Returns the
        version that holds the import (it did commit), or None (it did not: it may be sent again); raises when that
        cannot be told or another writer acted meanwhile."""
        try:
            latest = self.target.read_latest(look_for_deleted=False)
        except errors.DeployError as exc_read:
            # It may have been written: report a change (and, for the deploy's own import, an unverified outcome).
            result.changed = True
            if result.outcome is None:
                result.outcome = model.UNVERIFIED
            raise errors.DeployError(
                failure.code, '%s Reading the certificate afterwards failed too (%s), so whether the %s was committed '
                'is unknown; it was not sent again. Check the target, then run again.' % (failure.message, exc_read.message, what),
                **dict((k, v) for k, v in failure.details.items() if k in ('retry_after', 'action')))
        if latest is not None and latest.thumbprint == thumbprint and (below is None or latest.version != below.version):
            result.warnings.append(
                'The %s reported "%s" but the target holds the certificate (thumbprint %s) as version %s; it was not '
                'sent again.' % (what, failure.message, thumbprint, latest.version))
            return latest
        if (latest is None) != (below is None) or (latest is not None and (
                latest.version != below.version or tags.comparable(latest.tags) != tags.comparable(below.tags)
                or bool(latest.enabled) != bool(below.enabled))):
            # Latest is not the version from before as it was (another version, other tags or enabled, or the
            # certificate is gone), nor this import: another writer acted meanwhile. A resend would write over that
            # (a version it may have taken over, too), and this import may have committed before it.
            result.changed = True
            if result.outcome is None:
                result.outcome = model.CONCURRENT_WRITER
            if latest is None:
                now = 'the certificate can no longer be read (deleted?)'
            elif below is None or latest.version != below.version:
                now = 'version %s (thumbprint %s) became the latest' % (latest.version, latest.thumbprint)
            else:
                now = 'the tags or the enabled flag of version %s changed' % latest.version
            raise errors.DeployError(
                errors.CONFLICT, '%s Meanwhile %s: another writer acted concurrently, so the %s was not sent again, and '
                'whether it was committed before that is unknown. Coordinate writers and run again.' % (failure.message, now, what))
        return None

    # -- verify and rollback ------------------------------------------------

    def _read_back(self, current):
        """Read latest after an import, retrying within ``verify_attempts`` what may be transient (see read_back)."""
        return read_back(self.target, current, self.verify_attempts, self.verify_delay, self._sleep)

    def _verify(self, current, imported, snapshot, request, result):
        """Decide from what the target holds (a read), never from the import response alone.

        - latest holds the sent thumbprint in a new version: deployed (a garbled response only warns);
        - latest is the version the import response named, holding something else: the target stored a faulty
          version of ours, and it is rolled back;
        - latest is another version with another certificate: another writer deployed meanwhile; nothing is rolled
          back over it.
        """
        local = request.material.thumbprint
        result.certificate = imported.describe()
        result.verification = {'read_back': 'failed', 'stored_chain': 'not_run'}
        garbled = imported.thumbprint != local
        # Read latest before anything else, even when the import response already shows a mismatch:
        # a version by another writer may have landed meanwhile, and it must never be rolled back over.
        latest, why = self._read_back(current)
        if latest is None:
            result.outcome = model.UNVERIFIED
            if garbled:
                result.warnings.append(
                    'The import response for version %s showed thumbprint %s, not the %s that was sent, and reading the '
                    'certificate back failed (%s). No rollback was attempted: without a read it cannot be told whether '
                    'another writer has deployed since. Check the target now.' % (imported.version, imported.thumbprint, local, why))
            else:
                result.warnings.append(
                    'Version %s was imported and the import response matched, but reading it back failed (%s); '
                    'no rollback was attempted. Check the target before relying on it.' % (imported.version, why))
            return
        if latest.thumbprint == local:
            if garbled or latest.version != imported.version:
                result.warnings.append(
                    'The import response showed version %s with thumbprint %s, but reading back shows the sent certificate '
                    '(thumbprint %s) as latest, version %s: deployed; the response was wrong.'
                    % (imported.version, imported.thumbprint, local, latest.version))
            result.certificate = latest.describe()
            result.verification['read_back'] = 'passed'
            problem = self._check_stored(latest, request, result)
            if problem:  # the version holds our leaf with another chain or format: roll back (raises)
                self._rollback(snapshot, latest, request, result, problem)
            result.outcome = model.ROTATED if current is not None else model.CREATED
            return
        if latest.version == imported.version:  # our own version holds something else: roll back (raises)
            self._rollback(snapshot, latest, request, result,
                           'Reading version %s back returned thumbprint %s, not the %s that was sent.' % (latest.version, latest.thumbprint, local))
        result.outcome = model.CONCURRENT_WRITER
        result.verification['read_back'] = 'concurrent_writer'
        raise errors.DeployError(
            errors.CONFLICT,
            'Version %s was imported, but version %s (thumbprint %s) became the latest meanwhile: another writer deployed '
            'concurrently. It was not rolled back over%s. Coordinate writers and run again.'
            % (imported.version, latest.version, latest.thumbprint,
               ' (the import response showed thumbprint %s, not %s)' % (imported.thumbprint, local) if garbled else ''),
            result=result.as_dict(),
        )

    def _check_stored(self, latest, request, result):
        """Compare the stored chain of ``latest`` (our new version) with what was sent; sets
        ``result.verification['stored_chain']``. Returns why the version must be rolled back, or None.

        passed: equal. leaf_only: the target kept the leaf alone although a chain was sent (a warning, no rollback:
        some targets never keep a chain). reordered: another order where the target did not promise to keep it
        (a warning). skipped: it could not be read -- forbidden, or failing after retries (a warning, never a
        rollback). failed: another leaf, certificates missing, added or swapped, another promised order, or
        another content type: the rollback contract applies. disabled: ``verify_stored_chain`` is off.
        """
        check = result.verification
        if not request.verify_stored_chain:
            check['stored_chain'] = 'disabled'
            return None
        stored, failure = self._read_with_retries(lambda: self.target.read_stored_chain(latest))
        if stored is None:
            check['stored_chain'] = 'skipped'
            if failure.details.get('disabled'):
                advice = 'Set verify_stored_chain: false for disabled deploys.'
            elif failure.code == errors.FORBIDDEN:
                advice = ('Allow reading the stored version with its key (for Key Vault: its backing secret) to check it, '
                          'or set verify_stored_chain: false.')
            else:
                advice = 'Check it on the target.'
            result.warnings.append('The stored chain of version %s was not checked: reading it failed (%s: %s). The leaf '
                                   'was verified. %s' % (latest.version, failure.code, failure.message, advice))
            return None
        if stored.content_type is not None and stored.content_type != request.content_type:
            check['stored_chain'] = 'failed'
            return 'Reading the stored chain of version %s back shows content type %s, not the %s that was sent.' % (
                latest.version, stored.content_type, request.content_type)
        sent = [request.material.leaf] + list(request.material.chain)
        verdict, detail = cert_material.compare_stored(sent, stored.certificates, self.target.keeps_chain_order)
        if verdict == cert_material.STORED_EQUAL:
            check['stored_chain'] = 'passed'
        elif verdict == cert_material.STORED_LEAF_ONLY:
            check['stored_chain'] = 'leaf_only'
            result.warnings.append(
                'The target %s stored version %s with the leaf alone: %s. Clients that do not already hold the '
                'intermediates cannot build the chain. It was not rolled back (some targets never keep a chain); '
                'check that this target serves chains.' % (_labels(self.target), latest.version, detail))
        elif verdict == cert_material.STORED_REORDERED:
            check['stored_chain'] = 'reordered'
            result.warnings.append(
                'Version %s: %s. The target was not asked to keep the order (preserve_chain_order is off or the API '
                'version predates it).' % (latest.version, detail))
        else:
            check['stored_chain'] = 'failed'
            return 'Reading the stored chain of version %s back: %s.' % (latest.version, detail)
        return None

    def _read_with_retries(self, read):
        """``read()`` retried like a read-back on transient failures; ``(value, None)`` or ``(None, last DeployError)``."""
        failure = errors.DeployError(errors.SERVICE_ERROR, 'not read')
        for attempt in range(self.verify_attempts):
            if attempt:
                self._sleep(self.verify_delay * attempt)
            try:
                return read(), None
            except errors.DeployError as exc:
                failure = exc
                if exc.code not in errors.READ_BACK_RETRY_CODES:
                    break
        return None, failure

    def _newer_versions(self, snapshot_state, ours):
        """Versions other than ``ours`` created no earlier than the snapshot's (a second's resolution: a version of
        the same second counts, erring on the side of not rolling back); raises DeployError when unlistable."""
        since = snapshot_state.created_on
        return [v for v in self.target.list_versions()
                if v.version not in (snapshot_state.version, ours.version)
                and (since is None or v.created_on is None or v.created_on >= since)]

    def _rollback(self, snapshot, imported, request, result, cause):
        rb = result.rollback
        if request.rollback == 'disabled':
            rb['reason'] = 'rollback is disabled'
            result.outcome = model.ROLLBACK_FAILED
            result.certificate = imported.describe()
            raise errors.DeployError(
                errors.SERVICE_ERROR,
                '%s Rollback is disabled, so nothing was restored: the faulty version %s (thumbprint %s) is latest. Manual '
                'step: deploy a correct certificate (or re-import the previous one) as a new version; do not disable '
                'versions, consumers follow the versionless id.' % (cause, imported.version, imported.thumbprint),
                result=result.as_dict())
        if not snapshot.available:
            raise _not_rolled_back(
                result, errors.ROLLBACK_FAILED, snapshot.reason,
                '%s Rollback was not possible because %s. Manual step: import the previous certificate again '
                '(or deploy a correct one); do not disable versions, consumers follow the versionless id.' % (cause, snapshot.reason))
        previous = snapshot.state
        if not tags.is_managed(imported.tags):
            # Another writer took the version over (removed our tag) since the import: it is theirs now.
            reason = 'version %s no longer carries %s=%s: another writer took it over' % (
                imported.version, tags.MANAGED_BY, tags.MANAGED_BY_VALUE)
            raise _not_rolled_back(
                result, errors.CONFLICT, reason,
                '%s It was not rolled back: %s, and this module writes nothing over a certificate it does not own. Manual '
                'step: decide which certificate is wanted and deploy it; do not disable versions.' % (cause, reason))
        # Never re-import the snapshot over a version another writer created after it was taken.
        try:
            newer = self._newer_versions(previous, imported)
        except errors.DeployError as exc:
            reason = 'the versions could not be listed to rule out another writer (%s: %s)' % (exc.code, exc.message)
            raise _not_rolled_back(
                result, errors.ROLLBACK_FAILED, reason,
                '%s It was not rolled back: %s, and a rollback must not bury another writer\'s version. Manual step: check '
                'the versions, then re-import the previous certificate (version %s, thumbprint %s) if it is still wanted.'
                % (cause, reason, previous.version, previous.thumbprint))
        if newer:
            reason = 'version %s was created after the snapshot (version %s) by another writer' % (
                ', '.join(v.version for v in newer), previous.version)
            raise _not_rolled_back(
                result, errors.CONFLICT, reason,
                '%s It was not rolled back: %s, and re-importing the snapshot would bury it. Manual step: decide which '
                'certificate is wanted and deploy it; do not disable versions.' % (cause, reason))
        rb['attempted'] = True
        rollback_tags = tags.rollback_tags(previous.tags, imported.version)
        if snapshot.source != 'backing_secret':
            # The previous certificate re-paired with the new key and chain: record what is sent now.
            rollback_tags[tags.MATERIAL] = records.Record.of_material(
                snapshot.material, previous.content_type or request.content_type,
                request.exportable if previous.exportable is None else previous.exportable).value()

        # The previous version as it was: its own enabled and exportable flags, not this run's options.
        def send():
            if snapshot.source == 'backing_secret':  # the previous version's own bytes, in their own format
                return self.target.import_exported(snapshot.material, rollback_tags, previous.enabled,
                                                   exportable=previous.exportable)
            return self.target.import_material(snapshot.material, rollback_tags, previous.enabled,
                                               content_type=previous.content_type, exportable=previous.exportable)
        try:
            self._send_import(send, previous.thumbprint, imported, result, 'rollback import')
        except errors.DeployError as exc:
            rb['reason'] = '%s: %s' % (exc.code, exc.message)
            result.outcome = model.ROLLBACK_FAILED
            raise errors.DeployError(
                errors.ROLLBACK_FAILED,
                '%s Rolling back failed too (%s). Manual step: re-import the previous certificate (version %s, '
                'thumbprint %s) as a new version; do not disable versions.' % (cause, exc.message, previous.version, previous.thumbprint),
                result=result.as_dict())
        # Rolled back only when a read shows the previous certificate latest again.
        latest, why = self._read_back(imported)
        if latest is None or latest.thumbprint != previous.thumbprint:
            rb['reason'] = 'the rollback import was sent, but reading back %s' % (
                'failed (%s)' % why if latest is None else 'shows version %s with thumbprint %s as latest' % (latest.version, latest.thumbprint))
            result.outcome = model.ROLLBACK_FAILED
            if latest is not None:
                result.certificate = latest.describe()
            raise errors.DeployError(
                errors.ROLLBACK_FAILED,
                '%s Rolling back is unconfirmed: %s. Manual step: check the target; re-import the previous certificate '
                '(version %s, thumbprint %s) if it is not latest; do not disable versions.'
                % (cause, rb['reason'], previous.version, previous.thumbprint), result=result.as_dict())
        rb.update({'succeeded': True, 'version': latest.version, 'reason': cause})
        result.outcome = model.ROLLED_BACK
        result.certificate = latest.describe()
        raise errors.DeployError(
            errors.SERVICE_ERROR,
            '%s Rolled back: the previous certificate (thumbprint %s) was re-imported as version %s, and reading back '
            'confirms it is latest.' % (cause, previous.thumbprint, latest.version),
            result=result.as_dict())

    # -- report helpers -----------------------------------------------------

    def _predicted(self, current, local_facts, wanted_tags, request):
        out = dict(self.target.predicted_ids())
        if current is not None:
            out.update(current.ids)
        out.update(local_facts)
        out.update({
            'version': current.version if current is not None else None,
            'tags': dict(wanted_tags),
            'enabled': request.enabled,
        })
        return out
