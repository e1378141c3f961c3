# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Certificates whose key never leaves the target: ensure a pending request, and merge its signed certificate.

Target-agnostic, like the deploy engine: it talks to a ``Target`` (its read_pending, read_policy, create_request,
discard_request and merge methods) and knows nothing of Azure or Ansible.

:class:`RequestEngine` -- read -> decide -> (create) -> verify -> report:

- a pending request whose CSR and stored policy match the policy asked for is returned as it is (``pending``:
  no new key); another policy fails with ``policy_mismatch`` unless ``replace`` (discard it, request anew);
- without a pending request, the latest issued version decides: it matches the policy and has more than
  ``renew_days_before`` days left -> ``unchanged``; due, forced (``renew``), another policy, or no version at
  all -> a new request (``requested``, with its ``reason``);
- a new request is read back: the target must show a pending request with the CSR the create returned.

:class:`MergeEngine` -- validate -> read -> (merge) -> verify -> report: the signed certificate must carry the
pending CSR's public key (``key_mismatch`` before any write); a second merge of the same certificate is
``unchanged``; after a merge the latest version must be that certificate, and its stored chain is compared
with the one sent.

Ownership as in a deploy: a version without the provenance tags is not ours (``not_owned`` unless
``take_ownership``); a name whose certificate the deploy module imported is switched to requests only when asked.
Check mode reads and predicts, never writes.
"""

from __future__ import annotations

import datetime
import time

from .. import errors
from ..material import certificate as cert_material
from ..material import csr as csr_material
from . import model, tags as tag_rules
from .deploy import read_back

# What a policy read from the target is compared on, beyond what the CSR or the certificate itself shows.
STORED_FIELDS = ('hsm', 'exportable', 'reuse_key', 'validity_months', 'key_usage', 'extended_key_usage', 'content_type')


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def stored_policy_differences(policy, stored):
    """How a policy as the target stored it (dict; None when not served) differs from ``policy`` (RequestPolicy).

    Compares the fields a CSR cannot show (HSM, exportable, key reuse, validity, key usages, content type) and the
    issuer (a request is always made with issuer Unknown). Usages the caller left unset are not compared.
    """
    if stored is None:
        return []
    out = []
    issuer = stored.get('issuer')
    if issuer is not None and str(issuer).lower() != 'unknown':
        out.append('issuer: the stored policy names issuer %s; requests use Unknown (a CA the caller signs with)' % issuer)
    for name in STORED_FIELDS:
        wanted = getattr(policy, name)
        have = stored.get(name)
        if wanted is None or have is None:
            continue
        if isinstance(wanted, list):
            have = sorted(set(have))
        if have != wanted:
            out.append('%s: the stored policy has %s, the policy asks for %s' % (name, _shown(have), _shown(wanted)))
    return out


def issued_differences(policy, stored, issued):
    """How an issued version differs from ``policy``: its key (from the certificate: no CA changes it), and what it was
    requested with (the stored policy: subject, DNS names and the rest).

    The certificate's own subject and names are not compared with the policy: a CA may rewrite a subject (many keep
    the CN alone) or add names, and a version it issued from the same policy must not read as a changed policy on
    every run. Without a stored policy, the policy's DNS names must be among the certificate's.
    """
    out = []
    if issued.leaf is not None:
        facts = csr_material.certificate_policy_facts(issued.leaf)
        what = 'version %s' % issued.version
        out += [d for d in csr_material.policy_differences(policy, facts, what) if d.split(':')[0] in ('key_type', 'key_size', 'curve')]
        if stored is None:
            missing = sorted(set(policy.dns_names) - set(facts['dns_names']))
            if missing:
                out.append('dns_names: %s lacks %s, which the policy asks for' % (what, ', '.join(missing)))
    if stored is not None:
        if stored.get('subject') and csr_material.parse_subject_or_none(stored['subject']) != csr_material.parse_subject(policy.subject):
            out.append('subject: the stored policy has "%s", the policy asks for "%s"' % (stored['subject'], policy.subject))
        have = sorted(set(n.lower().rstrip('.') for n in stored.get('dns_names') or []))
        if have != policy.dns_names:
            out.append('dns_names: the stored policy has %s, the policy asks for %s' % (have or 'none', policy.dns_names or 'none'))
        out += stored_policy_differences(policy, stored)
    return out


def _shown(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, list):
        return '[%s]' % ', '.join(str(v) for v in value) if value else '[]'
    return str(value)


def _csr_result(pending):
    """The CSR facts a result carries for a pending request."""
    csr = csr_material.load_csr(pending.csr)
    facts = csr_material.csr_facts(csr)
    return csr, facts, {
        'csr': csr_material.csr_pem(csr),
        'csr_sha256': facts['csr_sha256'],
        'csr_public_key_sha256': facts['public_key_sha256'],
        'status': pending.status,
        'status_details': pending.status_details,
    }


class RequestResult(object):
    """The report of one request run; ``as_dict`` is the module's return shape."""

    def __init__(self):
        self.changed = False
        self.outcome = None
        self.reason = None
        self.needs_merge = False
        self.request = {'csr': None, 'csr_sha256': None, 'csr_public_key_sha256': None, 'status': None, 'status_details': None}
        self.policy = None
        self.certificate = None
        self.differences = []
        self.diff = None
        self.warnings = []

    def as_dict(self):
        out = {'changed': self.changed, 'outcome': self.outcome, 'reason': self.reason, 'needs_merge': self.needs_merge,
               'policy': self.policy, 'certificate': self.certificate, 'differences': list(self.differences)}
        out.update(self.request)
        return out


def read_latest_or_explain(target):
    """The latest version; a soft-deleted name fails with what to do about it here (these modules do not recover)."""
    try:
        return target.read_latest()
    except errors.DeployError as exc:
        if exc.code != errors.SOFT_DELETED:
            raise
        raise errors.DeployError(
            errors.SOFT_DELETED, 'The certificate name %s is soft-deleted. Recover it (for example az keyvault certificate '
            'recover, or azure_kv_certificate_deploy with on_soft_deleted: recover) or purge it, then run again.'
            % target.labels.get('name'), **dict((k, v) for k, v in exc.details.items() if k not in ('result', 'warnings')))


def latest_issued(target, latest):
    """The newest version that holds a certificate. ``latest`` when it does; when latest is a pending version (no
    certificate yet: a vault may show the pending version of a renewal as latest), the newest issued one among the
    name's versions (listed, then read), or None when there is none."""
    if latest is None or latest.thumbprint:
        return latest
    issued = [(state.created_on or 0, index, state) for index, state in enumerate(target.list_versions()) if state.thumbprint]
    if not issued:
        return None
    # Newest by creation time; versions created within the same second in the order the target lists them.
    newest = max(issued, key=lambda entry: entry[:2])[2]
    return target.read_version(newest.version)


def _days_left(state, now):
    """Whole days left (rounded down, as azure_kv_certificate_info counts them): what renewal is decided on and reported."""
    return cert_material.days_remaining(state.facts.get('expires'), now)


def _describe(state, now):
    out = state.describe()
    out['days_remaining'] = _days_left(state, now)
    return out


def check_ownership(state, take_ownership, what):
    """Refuse a version of the name without the provenance tags (not ours) unless ``take_ownership``; returns warnings."""
    if state is None or tag_rules.is_managed(state.tags):
        return []
    if not take_ownership:
        raise errors.DeployError(
            errors.NOT_OWNED,
            'The certificate %s exists and was not made by certdeploy (no %s tag on its latest version %s). Set '
            'take_ownership: true to take it over.' % (what, tag_rules.MANAGED_BY, state.version))
    return ['Took ownership of %s (latest version %s had no %s tag).' % (what, state.version, tag_rules.MANAGED_BY)]


# Who made a name that has no issued version yet (only a pending version, or nothing a read shows).
MAKER_OURS, MAKER_UNKNOWN, MAKER_FOREIGN = 'ours', 'unknown', 'foreign'


def pending_maker(latest, issued):
    """Who made a name without an issued version: ours (its pending version carries our tags), foreign (it carries
    tags, none of them ours), or unknown (no version is shown, or one without tags: a vault may serve none for a name
    that is only pending, or drop the tags a request was made with). None when there is an issued version: its own
    tags then decide (check_ownership)."""
    if issued is not None:
        return None
    if latest is not None and tag_rules.is_managed(latest.tags):
        return MAKER_OURS
    if latest is not None and latest.tags:
        return MAKER_FOREIGN
    return MAKER_UNKNOWN


def unknown_maker_note(name):
    return ('The pending request of %s shows no certdeploy tags (a vault may serve no certificate, or no tags, for a name '
            'that is only pending), so who made it cannot be read.' % name)


class RequestEngine(object):
    """Ensures a pending certificate request for one name of a target (see the module docstring)."""

    def __init__(self, target, now=_now):
        self.target = target
        self._now = now

    def run(self, request):
        result = RequestResult()
        try:
            self._run(request, result)
        except errors.DeployError as exc:
            exc.details.setdefault('result', result.as_dict())
            exc.details.setdefault('warnings', list(result.warnings))
            raise
        return result

    def _run(self, request, result):
        now = self._now()
        policy = request.policy
        latest = read_latest_or_explain(self.target)
        issued = latest_issued(self.target, latest)
        pending = self.target.read_pending()
        # An operation that is no longer waiting for a certificate (completed, failed, cancelled) is replaced by the next
        # request; one whose cancellation was asked for but that still reads in progress is deleted first (a request
        # meanwhile is refused with 409).
        stale = pending is not None and not pending.in_progress and (pending.status or '').lower() == model.PendingRequest.IN_PROGRESS
        if pending is not None and not pending.in_progress:
            pending = None
        where = 'name %s' % self.target.labels.get('name')
        result.warnings.extend(check_ownership(issued, request.take_ownership, where))
        maker = pending_maker(latest, issued)
        if maker == MAKER_FOREIGN:
            result.warnings.extend(check_ownership(latest, request.take_ownership, where))
        if issued is not None and tag_rules.imported_by_deploy(issued.tags) and not request.switch_from_import:
            raise errors.DeployError(
                errors.CONFLICT,
                'The certificate %s holds version %s imported by azure_kv_certificate_deploy (its key came from outside the '
                'vault). Set switch_from_import: true to make its next versions from requests (the key then stays in the '
                'vault), or keep deploying it.' % (self.target.labels.get('name'), issued.version))
        if issued is not None:
            result.certificate = _describe(issued, now)
        stored = self._read_policy(result)
        wanted_tags = tag_rules.request_tags(request.user_tags, request.certificate_id)

        if pending is not None:
            if maker == MAKER_UNKNOWN:
                result.warnings.append(unknown_maker_note(self.target.labels.get('name')) + ' It is used as it is.')
            csr, facts, shown = _csr_result(pending)
            differences = csr_material.policy_differences(policy, facts, 'the pending CSR')
            differences += stored_policy_differences(policy, stored)
            if not differences and request.renew and request.replace:
                # Asked for explicitly: a new key for the pending request itself (for example, its CSR went astray).
                if maker == MAKER_UNKNOWN and not request.take_ownership:
                    raise errors.DeployError(
                        errors.NOT_OWNED, 'renew and replace would discard the pending request of %s. %s Set take_ownership: '
                        'true to replace it anyway.' % (self.target.labels.get('name'), unknown_maker_note(self.target.labels.get('name'))))
                self._request(request, result, wanted_tags, model.REPLACED, issued, discard=True)
                return
            if not differences:
                result.outcome, result.needs_merge = model.PENDING, True
                result.request.update(shown)
                if stored is None:
                    result.warnings.append(self._unserved_policy_note())
                if not facts['signature_valid']:
                    result.warnings.append('The pending CSR\'s own signature does not verify; a CA may refuse it.')
                result.diff = {'before': self._diff_state(issued, shown), 'after': self._diff_state(issued, shown)}
                return
            result.differences = differences
            if not request.replace:
                result.request.update(shown)
                raise errors.DeployError(
                    errors.POLICY_MISMATCH,
                    'A pending request for %s exists with another policy: %s. Set replace: true to cancel it (its key is '
                    'discarded) and request anew, or change the options to match it.'
                    % (self.target.labels.get('name'), '; '.join(differences)))
            if maker == MAKER_UNKNOWN and not request.take_ownership:
                raise errors.DeployError(
                    errors.NOT_OWNED,
                    'The pending request for %s differs from the policy (%s). %s Set take_ownership: true to replace it '
                    'anyway.' % (self.target.labels.get('name'), '; '.join(differences),
                                 unknown_maker_note(self.target.labels.get('name'))))
            self._request(request, result, wanted_tags, model.REPLACED, issued, discard=True)
            return

        if issued is None:
            self._request(request, result, wanted_tags, model.FIRST_REQUEST, issued, discard=stale)
            return
        differences = issued_differences(policy, stored, issued)
        left = _days_left(issued, now)
        if differences:
            result.differences = differences
            reason = model.POLICY_CHANGED
        elif request.renew:
            reason = model.RENEWAL_FORCED
        elif left is not None and left <= request.renew_days_before:
            reason = model.RENEWAL_DUE
        else:
            result.outcome = model.UNCHANGED
            if stored is None:
                result.warnings.append(self._unserved_policy_note())
            result.diff = {'before': self._diff_state(issued, None), 'after': self._diff_state(issued, None)}
            return
        self._request(request, result, wanted_tags, reason, issued, discard=stale)

    def _read_policy(self, result):
        try:
            return self.target.read_policy()
        except errors.DeployError as exc:
            if exc.code in (errors.FORBIDDEN,) or exc.code in errors.TRANSIENT_CODES:
                result.warnings.append('The stored policy could not be read (%s: %s); only what the CSR or the certificate '
                                       'shows was compared.' % (exc.code, exc.message))
                return None
            raise

    def _unserved_policy_note(self):
        return ('The vault serves no stored policy for %s, so exportable, HSM, key reuse, validity, key usages and content '
                'type could not be compared; subject, DNS names and key were compared from the CSR or certificate.'
                % self.target.labels.get('name'))

    @staticmethod
    def _diff_state(issued, shown):
        return {'certificate': issued.thumbprint if issued is not None else None,
                'pending_csr_sha256': shown['csr_sha256'] if shown else None}

    def _request(self, request, result, wanted_tags, reason, issued, discard=False):
        result.reason = reason
        result.needs_merge = True
        if request.check_mode:
            result.changed = True
            result.outcome = model.REQUESTED
            result.warnings.append('Check mode: a new pending request would be made (%s); the CSR is known only once the '
                                   'vault makes the key.' % reason.replace('_', ' '))
            result.diff = {'before': self._diff_state(issued, None), 'after': {'certificate': issued.thumbprint if issued else None,
                                                                               'pending_csr_sha256': '(new key: known after the request)'}}
            return
        if discard:
            self.target.discard_request()
            result.changed = True  # the pending request is gone, whatever happens to the new one
        try:
            created = self.target.create_request(request.policy, wanted_tags)
        except errors.DeployError as exc:
            if not exc.details.get('may_have_written'):
                raise  # refused before Key Vault acted on it: nothing new was written
            result.changed = True  # it may have been written: a read decides
            created = self._settle(request.policy, exc)
        result.changed = True
        pending = self._read_back(created)
        _csr, facts, shown = _csr_result(pending)
        differences = csr_material.policy_differences(request.policy, facts, 'the new CSR')
        if differences:
            raise errors.DeployError(
                errors.SERVICE_ERROR, 'The vault made a request whose CSR differs from the policy it was sent: %s. It was '
                'left pending; check the vault.' % '; '.join(differences))
        result.outcome = model.REQUESTED
        result.request.update(shown)
        try:
            result.policy = self.target.read_policy()
        except errors.DeployError as exc:
            result.warnings.append('The stored policy could not be read after the request (%s: %s).' % (exc.code, exc.message))
        if result.policy is None:
            result.warnings.append(self._unserved_policy_note())
        result.diff = {'before': self._diff_state(issued, None), 'after': self._diff_state(issued, shown)}

    def _settle(self, policy, failure):
        """A create whose answer was lost: a pending request with the policy's CSR now is the one sent."""
        try:
            pending = self.target.read_pending()
        except errors.DeployError:
            raise failure
        if pending is None or not pending.in_progress:
            raise failure
        facts = csr_material.csr_facts(csr_material.load_csr(pending.csr))
        if csr_material.policy_differences(policy, facts, 'the pending CSR'):
            raise failure
        return pending

    def _read_back(self, created):
        """The target must now show a pending request, with the CSR the create returned (when it returned one)."""
        pending = self.target.read_pending()
        if pending is None or not pending.in_progress:
            raise errors.DeployError(
                errors.SERVICE_ERROR, 'The request was made, but reading it back shows no pending request (%s); run again.'
                % ('status %s' % pending.status if pending is not None else 'none'))
        if created is not None and created.csr and bytes(created.csr) != bytes(pending.csr):
            raise errors.DeployError(
                errors.CONFLICT, 'The request was made, but reading it back shows another CSR: another writer made a request '
                'for the same name meanwhile. Nothing was discarded; coordinate writers and run again.')
        return pending


class MergeResult(object):
    """The report of one merge run; ``as_dict`` is the module's return shape."""

    def __init__(self):
        self.changed = False
        self.outcome = None
        self.certificate = None
        self.previous = None
        self.verification = {'public_key': 'not_run', 'read_back': 'not_run', 'stored_chain': 'not_run'}
        self.diff = None
        self.warnings = []

    def as_dict(self):
        return {'changed': self.changed, 'outcome': self.outcome, 'certificate': self.certificate, 'previous': self.previous,
                'verification': dict(self.verification)}


class MergeEngine(object):
    """Merges a signed certificate into the pending request of one name of a target (see the module docstring)."""

    def __init__(self, target, verify_attempts=3, verify_delay=2.0, sleep=time.sleep, now=_now):
        self.target = target
        self.verify_attempts = verify_attempts
        self.verify_delay = verify_delay
        self._sleep = sleep
        self._now = now

    def validate(self, request):
        """Offline: the certificate must be usable now (not expired, not yet valid only with allow_expired)."""
        leaf = request.signed.leaf
        now = self._now()
        if cert_material.not_after(leaf) <= now and not request.allow_expired:
            raise errors.DeployError(errors.EXPIRED, 'The signed certificate expired on %s; have the CSR signed again.'
                                     % cert_material.not_after(leaf).isoformat())
        if cert_material.not_before(leaf) > now and not request.allow_expired:
            raise errors.DeployError(errors.INVALID_MATERIAL, 'The signed certificate is not valid before %s (set allow_expired: '
                                     'true to merge it anyway).' % cert_material.not_before(leaf).isoformat())

    def run(self, request):
        result = MergeResult()
        try:
            self.validate(request)
            self._run(request, result)
        except errors.DeployError as exc:
            exc.details.setdefault('result', result.as_dict())
            exc.details.setdefault('warnings', list(result.warnings))
            raise
        return result

    def _run(self, request, result):
        signed = request.signed
        thumb = signed.thumbprint
        now = self._now()
        wanted_tags = tag_rules.request_tags(request.user_tags, request.certificate_id)
        latest = read_latest_or_explain(self.target)
        issued = latest_issued(self.target, latest)
        where = 'name %s' % self.target.labels.get('name')
        if issued is not None and issued.thumbprint == thumb:
            result.warnings.extend(check_ownership(issued, request.take_ownership, where))
            result.outcome = model.UNCHANGED
            result.certificate = _describe(issued, now)
            result.verification['public_key'] = 'passed'
            before = {'certificate': issued.thumbprint, 'tags': dict(issued.tags)}
            if tag_rules.comparable(issued.tags) != tag_rules.comparable(wanted_tags) or issued.enabled is False:
                if not request.check_mode:
                    updated = self.target.update_properties(issued, wanted_tags, True)
                    result.certificate = _describe(updated, now)
                result.changed, result.outcome = True, model.UPDATED
            result.diff = {'before': before, 'after': {'certificate': thumb, 'tags': dict(wanted_tags)}}
            return
        pending = self.target.read_pending()
        if pending is None or not pending.in_progress:
            mine = issued is not None and issued.leaf is not None and \
                csr_material.public_key_sha256(issued.leaf.public_key()) == csr_material.public_key_sha256(signed.leaf.public_key())
            raise errors.DeployError(
                errors.CONFLICT,
                'There is no pending certificate request for %s to merge the certificate into (%s).%s Request one first '
                '(azure_kv_certificate_request), have its CSR signed, and merge that certificate.'
                % (self.target.labels.get('name'), 'status %s' % pending.status if pending is not None else 'none',
                   ' Its latest version %s has the same key with another certificate (thumbprint %s).' % (issued.version, issued.thumbprint)
                   if mine else ''))
        result.warnings.extend(check_ownership(issued, request.take_ownership, where))
        maker = pending_maker(latest, issued)
        if maker == MAKER_FOREIGN:
            result.warnings.extend(check_ownership(latest, request.take_ownership, where))
        elif maker == MAKER_UNKNOWN:
            result.warnings.append(unknown_maker_note(self.target.labels.get('name')) + ' The merge makes it ours: the '
                                   'certificate carries the key the vault made for it.')
        csr = csr_material.load_csr(pending.csr)
        csr_facts = csr_material.csr_facts(csr)
        if request.csr_sha256 and csr_facts['csr_sha256'] != request.csr_sha256:
            raise errors.DeployError(
                errors.CONFLICT, 'The pending request of %s is not the one whose CSR was signed (CSR SHA-256 %s, pending %s): '
                'it was replaced or renewed meanwhile. Nothing was merged. Have the pending CSR signed.'
                % (self.target.labels.get('name'), request.csr_sha256, csr_facts['csr_sha256']))
        if not csr_material.same_public_key(signed.leaf, csr):
            result.verification['public_key'] = 'failed'
            raise errors.DeployError(
                errors.KEY_MISMATCH,
                'The certificate (%s, thumbprint %s) was not signed over the pending request\'s key: its public key differs '
                'from the CSR\'s (CSR SHA-256 %s). Nothing was merged. Have the current CSR signed.'
                % (cert_material.describe_certificate(signed.leaf), thumb, csr_facts['csr_sha256']))
        result.verification['public_key'] = 'passed'
        missing = sorted(set(csr_facts['dns_names']) -
                         set(csr_material.certificate_policy_facts(signed.leaf)['dns_names']))
        if missing:
            result.warnings.append('The certificate does not carry DNS names the CSR asked for: %s. Clients connecting with '
                                   'those names will refuse it.' % ', '.join(missing))
        result.previous = issued.summary() if issued is not None else None
        result.diff = {'before': {'certificate': issued.thumbprint if issued is not None else None, 'tags': dict(issued.tags) if issued else {}},
                       'after': {'certificate': thumb, 'tags': dict(wanted_tags)}}
        if request.check_mode:
            result.outcome, result.changed = model.MERGED, True
            return
        try:
            merged = self.target.merge(signed, wanted_tags)
        except errors.DeployError as exc:
            if not exc.details.get('may_have_written'):
                raise  # refused: nothing was merged
            result.changed = True  # it may have been: the read below decides
            merged = None
            result.warnings.append('The merge answer was lost (%s: %s); the vault is read to tell whether it was merged.'
                                   % (exc.code, exc.message))
            failure = exc
        else:
            failure = None
            result.changed = True
        self._verify(request, result, issued, merged, failure)

    def _verify(self, request, result, issued, merged, failure):
        thumb = request.signed.thumbprint
        latest, why = self._read_back(issued)
        if latest is None:
            if failure is not None:
                raise failure
            result.outcome = model.UNVERIFIED
            result.certificate = _describe(merged, self._now()) if merged is not None else None
            result.verification['read_back'] = 'failed'
            result.warnings.append('The certificate was merged, but reading it back failed (%s). Check the vault before '
                                   'relying on it.' % why)
            return
        if latest.thumbprint != thumb:
            if failure is not None:
                result.changed = False  # the read shows it was not merged
                raise failure
            result.outcome = model.CONCURRENT_WRITER
            result.verification['read_back'] = 'concurrent_writer'
            raise errors.DeployError(
                errors.CONFLICT, 'The certificate was merged, but version %s (thumbprint %s) is the latest: another writer '
                'changed the name meanwhile.' % (latest.version, latest.thumbprint), result=result.as_dict())
        result.verification['read_back'] = 'passed'
        result.outcome = model.MERGED
        result.certificate = _describe(latest, self._now())
        self._check_stored(request, result, latest)

    def _read_back(self, issued):
        return read_back(self.target, issued, self.verify_attempts, self.verify_delay, self._sleep, issued_only=True)

    def _check_stored(self, request, result, latest):
        """The chain as far as the vault shows it (its backing secret): equal, leaf only (a warning), or different."""
        sent = request.signed.certificates
        if not request.verify_stored_chain:
            result.verification['stored_chain'] = 'disabled'
            return
        try:
            stored = self.target.read_stored_chain(latest)
        except errors.DeployError as exc:
            result.verification['stored_chain'] = 'skipped'
            result.warnings.append('The stored chain of version %s was not checked: reading it failed (%s: %s). The leaf was '
                                   'verified.' % (latest.version, exc.code, exc.message))
            return
        # A merge cannot ask the vault to keep the chain's order (its body has no such flag): another order is a warning.
        verdict, detail = cert_material.compare_stored(sent, stored.certificates, order_kept=False)
        if verdict == cert_material.STORED_EQUAL:
            result.verification['stored_chain'] = 'passed'
        elif verdict == cert_material.STORED_LEAF_ONLY:
            result.verification['stored_chain'] = 'leaf_only'
            result.warnings.append('Version %s was stored with the leaf alone: %s. Clients that do not hold the intermediates '
                                   'cannot build the chain.' % (latest.version, detail))
        elif verdict == cert_material.STORED_REORDERED:
            result.verification['stored_chain'] = 'reordered'
            result.warnings.append('Version %s: %s.' % (latest.version, detail))
        else:
            result.verification['stored_chain'] = 'failed'
            raise errors.DeployError(
                errors.SERVICE_ERROR, 'Version %s was merged, but its stored chain differs from the one sent: %s. A merged '
                'version cannot be rolled back (its key exists only in the vault); merge again with the right chain after '
                'a new request, or check the vault.' % (latest.version, detail), result=result.as_dict())
