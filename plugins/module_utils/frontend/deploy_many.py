# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""azure_kv_certificate_deploy_many: many certificates, one or more vaults, one module run.

Each certificate is deployed by deploy.deploy_one, exactly as azure_kv_certificate_deploy deploys it, with the
same outcomes, error codes and result keys. What this module adds is only what is about many: the list and
its defaults (item_params), duplicates (prepare), the order of copy_from pairs (phases), concurrency and the
summary (aggregate). What the certificates share is the connection: one credential, one SDK client and so one
token per vault (the adapter's ConnectionPool), reused by every certificate of that vault. A bounded pool of
threads runs the certificates (the SDK is synchronous); the first request to a vault goes alone, so the
authentication challenge and the token are paid once, whatever the pool size. A failure is that certificate's
result and never stops or hides the others; results come back in the order of the input list.

Two things are about a vault rather than a certificate. Reading: before the certificates run, each vault's
certificates may be listed (``vault_read``; engine.fleet.ListingPlan decides how far, listing.list_into reads),
and a certificate found there is decided from its listed state when that is a no-op (DeployEngine.run(listed=)).
Pace: each vault's pacer (pacing.VaultPacer, on the shared connection) pauses the vault on 429 and bounds how many
of its certificates run at once (``Vault`` slots); a certificate that ended ``throttled`` with nothing written runs
again after the pause while ``throttle_retry_seconds`` allow (``Runner``). ``vaults`` in the result reports both.

The pure parts (merging options, planning, aggregating results) are separate functions and unit-tested.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from .. import errors
from ..engine import fleet
from ..engine.model import OUTCOMES
from ..targets.azure_kv import listing
from ..targets.azure_kv.connection import ConnectionPool
from ..targets.azure_kv.target import KeyVaultTarget
from .deploy import deploy_one, failed_run, record_metrics
from .keyvault_options import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, SHARED_CONNECTION, keyvault_settings

# How many names a grouped warning or the failure message lists before it says "and N more".
LIST_LIMIT = 10


# -- pure parts ----------------------------------------------------------------------------------------------

def item_params(params, item):
    """The options of one certificate as azure_kv_certificate_deploy would see them (pure).

    The element's own options, plus the run's connection and identity options; the element's vault_url wins
    over the run's.
    """
    merged = dict((name, params.get(name)) for name in SHARED_CONNECTION.names())
    merged.update(item)
    merged['vault_url'] = item.get('vault_url') or params.get('vault_url')
    merged['metrics_file'] = None  # written once per run, see run_deploy_many
    return merged


def check_concurrency(value):
    """The pool size, validated (pure)."""
    if value is None:
        return DEFAULT_CONCURRENCY
    if value < 1 or value > MAX_CONCURRENCY:
        raise errors.DeployError(errors.INVALID_CONFIG, 'max_concurrency must be between 1 and %d, not %d.'
                                 % (MAX_CONCURRENCY, value))
    return value


def find_duplicates(keys):
    """Indexes of the entries whose key occurs more than once, mapped to every index of that key (pure).

    ``keys`` is a list of (vault url, certificate name) or None (an entry that failed before it had one).
    Two entries for the same certificate would race each other, so both fail: which one should win is not
    something to guess.
    """
    where = {}
    for index, key in enumerate(keys):
        if key is not None:
            where.setdefault(key, []).append(index)
    return dict((index, indexes) for indexes in where.values() if len(indexes) > 1 for index in indexes)


def _names(results, limit=LIST_LIMIT):
    labels = ['%s in %s' % (r['certificate_name'], r['vault_url']) for r in results]
    if len(labels) > limit:
        labels = labels[:limit] + ['and %d more' % (len(labels) - limit)]
    return ', '.join(labels)


def grouped_warnings(results, limit=LIST_LIMIT):
    """Each distinct warning once, naming the certificates it concerns, in order of first appearance (pure)."""
    order, where = [], {}
    for result in results:
        for warning in result.get('warnings') or []:
            if warning not in where:
                order.append(warning)
                where[warning] = []
            where[warning].append(result)
    out = []
    for warning in order:
        concerned = where[warning]
        if len(concerned) == 1:
            out.append('%s in %s: %s' % (concerned[0]['certificate_name'], concerned[0]['vault_url'], warning))
        else:
            out.append('%d certificates (%s): %s' % (len(concerned), _names(concerned, limit), warning))
    return out


def aggregate(results, check_mode=False):
    """The run's return from the certificates' results, which stay in input order (pure).

    ``changed`` when any certificate changed (or would, in check mode); ``failed`` when any failed. The
    message counts both, and ``failed_certificates`` lists each failure with its error code.
    """
    failed = [(index, r) for index, r in enumerate(results) if r.get('failed')]
    summary = dict((outcome, 0) for outcome in OUTCOMES)
    summary.update({'total': len(results), 'changed': 0, 'failed': len(failed)})
    for result in results:
        if result.get('outcome') in summary and not result.get('failed'):
            summary[result['outcome']] += 1
        if result.get('changed'):
            summary['changed'] += 1
    out = {
        'changed': summary['changed'] > 0,
        'certificates': results,
        'summary': summary,
        'failed_certificates': [
            {'index': index, 'vault_url': r['vault_url'], 'certificate_name': r['certificate_name'],
             'error_code': r['error_code'], 'msg': r['msg']} for index, r in failed],
    }
    counts = ', '.join('%d %s' % (summary[o], o) for o in OUTCOMES if summary[o])
    prediction = ' (check mode: predicted)' if check_mode else ''
    if failed:
        out['failed'] = True
        out['error_code'] = failed[0][1]['error_code']
        out['msg'] = ('%d of %d certificates failed: %s. %s%s. Every certificate\'s result is in certificates.'
                      % (len(failed), len(results),
                         _names([dict(r, certificate_name='%s (%s)' % (r['certificate_name'], r['error_code']))
                                 for _index, r in failed]),
                         'The others: ' + counts if counts else 'No other certificate', prediction))
    else:
        out['msg'] = '%d certificates: %s%s.' % (len(results), counts or 'none', prediction)
    return out


def diff_list(results):
    """Diff mode: one before/after per certificate that has one, headed by its vault and name (pure)."""
    out = []
    for result in results:
        diff = result.get('diff')
        if diff is None:
            continue
        label = '%s/certificates/%s' % (result['vault_url'], result['certificate_name'])
        out.append({'before_header': label, 'after_header': label, 'before': diff['before'], 'after': diff['after']})
    return out


# -- the run -------------------------------------------------------------------------------------------------

class Item(object):
    """One element of the list on its way through the run: its options, settings, an error found before it ran
    (prepare), then its CertificateRun and its result (the run's, headed by vault and name)."""

    def __init__(self, index, params):
        self.index = index
        self.params = params
        self.settings = None
        self.error = None
        self.run = None
        self.result = None

    @property
    def vault_url(self):
        return self.settings.address.url if self.settings is not None else self.params.get('vault_url')

    @property
    def certificate_name(self):
        return self.params.get('certificate_name')


def object_key(vault_url, certificate_name):
    """The identity of one certificate object: vault URL and name, compared without case (as Key Vault does)."""
    return ((vault_url or '').rstrip('/').lower(), (certificate_name or '').lower())


def phases(items):
    """Split items into (first, second): an item whose copy_from source is another item's certificate runs second.

    Run together, such a copy could read the source before (or while) the other item rotates it and carry the old
    certificate into its vault; run after it, the copy takes what this run deployed.
    """
    targets = set(object_key(i.vault_url, i.certificate_name) for i in items if i.error is None)
    first, second = [], []
    for item in items:
        source = item.params.get('copy_from') or None
        waits = (item.error is None and source is not None
                 and object_key(source.get('vault_url') or item.vault_url, source.get('certificate_name')) in targets)
        (second if waits else first).append(item)
    return first, second


def prepare(params, env):
    """Validate each element offline: its settings, and that no certificate appears twice. Returns the Items."""
    items = [Item(index, item_params(params, element)) for index, element in enumerate(params['certificates'])]
    for item in items:
        try:
            if not item.params.get('vault_url'):
                raise errors.DeployError(errors.INVALID_CONFIG, 'certificates[%d] has no vault_url, and the module '
                                         'has no vault_url default.' % item.index)
            item.settings = keyvault_settings(item.params, env)
        except errors.DeployError as exc:
            item.error = exc
    # Key Vault object names are case-insensitive: Www-Contoso and www-contoso are one certificate.
    keys = [object_key(i.settings.address.url, i.settings.certificate_name) if i.settings is not None else None
            for i in items]
    for index, indexes in sorted(find_duplicates(keys).items()):
        items[index].error = errors.DeployError(
            errors.INVALID_CONFIG, '%s in %s is in the list more than once (certificates %s); give each certificate once.'
            % (keys[index][1], keys[index][0], ', '.join('[%d]' % i for i in indexes)))
    return items


def deploy_item(item, connect, env, check_mode, want_diff, listed=None):
    """One certificate, by deploy_one; sets ``item.run`` and ``item.result`` and never raises."""
    if item.error is not None:
        run = failed_run(item.error, item.params, item.settings)
    else:
        try:
            run = deploy_one(item.params, env, connect, check_mode, want_diff, settings=item.settings, listed=listed)
        except Exception as exc:  # one certificate's unforeseen failure must not hide the others' results
            run = failed_run(errors.DeployError(errors.SERVICE_ERROR, 'Unexpected %s while deploying this certificate: %s'
                                                % (type(exc).__name__, exc)), item.params, item.settings)
    item.run = run
    item.result = dict(vault_url=item.vault_url, certificate_name=item.certificate_name, **run.result)


def throttled_untouched(item):
    """Whether ``item`` failed ``throttled`` with nothing written: then running it again is safe (it reads first)."""
    run = item.run
    return (run is not None and run.error is not None and run.error.code == errors.THROTTLED
            and not run.result.get('changed'))


class Vault(object):
    """One vault of the task: its connection (shared by its certificates, with its pacer) and its listing plan."""

    def __init__(self, url, connection, items, mode):
        self.url = url
        self.connection = connection
        self.items = items
        self.plan = fleet.ListingPlan([item.settings.certificate_name for item in items], mode)
        self.retried = set()

    def report(self):
        decided = sum(1 for item in self.items if item.result is not None and item.result.get('read_path') == 'list')
        out = {'vault_url': self.url}
        out.update(self.plan.report())
        out.update(decided_from_list=decided, retried_certificates=len(self.retried))
        out.update(self.connection.pacer.report())
        return out


def vaults_of(items, pool, mode):
    """The Vault of every vault the items use (items that failed before they ran use none), in order of first use."""
    by_url = {}
    for item in items:
        if item.error is None:
            by_url.setdefault(item.settings.address.url, []).append(item)
    return [Vault(url, pool.connection(members[0].settings), members, mode) for url, members in by_url.items()]


class Runner(object):
    """Runs the items of a task: listing, phases, vault slots and the retries of throttled certificates.

    ``clock``/``sleep`` are time.monotonic/time.sleep; tests replace them.
    """

    def __init__(self, items, vaults, connect, env, check_mode, want_diff, concurrency, retry_seconds,
                 clock=None, sleep=None):
        self.items = items
        self.vaults = vaults
        self._vault_of = dict((id(item), vault) for vault in vaults for item in vault.items)
        self.connect = connect
        self.env = env
        self.check_mode = check_mode
        self.want_diff = want_diff
        self.concurrency = concurrency
        self.retry_seconds = retry_seconds
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._deadline = self._clock() + max(0, retry_seconds)
        self.retries = {}  # id(item) -> how many times it was run again after being throttled

    def _parallel(self, func, values):
        if self.concurrency <= 1 or len(values) <= 1:
            for value in values:
                func(value)
            return
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for _done in pool.map(func, values):
                pass

    def run(self):
        self._parallel(lambda vault: listing.list_into(vault.connection, vault.plan), self.vaults)
        for phase in phases(self.items):
            self._run(phase, use_listing=True)
            self._retry_throttled(phase)

    def _deploy(self, item, use_listing):
        vault = self._vault_of.get(id(item))
        if vault is None:
            deploy_item(item, self.connect, self.env, self.check_mode, self.want_diff)
            return
        listed = vault.plan.listed_state(item.settings.certificate_name) if use_listing else None
        with vault.connection.pacer.slot():
            deploy_item(item, self.connect, self.env, self.check_mode, self.want_diff, listed=listed)

    def _run(self, items, use_listing):
        self._parallel(lambda item: self._deploy(item, use_listing), items)

    def _wait_before_retry(self, pending, rounds):
        """Seconds to wait before the next round: the longest vault pause or wish among ``pending``, else a backoff."""
        wait = min(2.0 * rounds, 30.0)
        for item in pending:
            vault = self._vault_of.get(id(item))
            if vault is not None:
                wait = max(wait, vault.connection.pacer.pause_left())
            wish = item.run.error.details.get('retry_after')
            if isinstance(wish, (int, float)):
                wait = max(wait, float(wish))
        return wait

    def _retry_throttled(self, items):
        """Run the throttled certificates that wrote nothing again, until throttle_retry_seconds after the start."""
        rounds = 0
        while True:
            pending = [item for item in items if throttled_untouched(item)]
            if not pending:
                return
            rounds += 1
            wait = self._wait_before_retry(pending, rounds)
            if self._clock() + wait >= self._deadline:
                for item in pending:
                    self._give_up(item)
                return
            self._sleep(wait)
            for item in pending:
                self.retries[id(item)] = self.retries.get(id(item), 0) + 1
                vault = self._vault_of.get(id(item))
                if vault is not None:
                    vault.retried.add(id(item))
            self._run(pending, use_listing=False)

    def _give_up(self, item):
        tried = self.retries.get(id(item), 0)
        note = (' It was tried %d more time%s in this task; throttle_retry_seconds (%d) left no time for another try.'
                % (tried, '' if tried == 1 else 's', self.retry_seconds) if tried else
                ' throttle_retry_seconds (%d) left no time to try it again in this task.' % self.retry_seconds)
        item.result['msg'] = item.result.get('msg', '') + note
        item.run.result['msg'] = item.result['msg']


def run_items(items, connect, env, check_mode, want_diff, concurrency, vaults=(), retry_seconds=0,
              clock=None, sleep=None):
    """Deploy every item with at most ``concurrency`` at a time (and at most each vault's pacer's limit for that
    vault); results stay in input order.

    ``vaults`` (see vaults_of) are listed first, as their plans say; an item found in its vault's listing is
    deployed with its listed state. Items that copy from another item's certificate run after all the others
    (see phases()). Items throttled with nothing written run again while ``retry_seconds`` after the start allow.
    """
    Runner(items, list(vaults), connect, env, check_mode, want_diff, concurrency, retry_seconds, clock, sleep).run()


def run_deploy_many(module, env=None):
    """Run the list of a module built with keyvault_options.DEPLOY_MANY; exits the module."""
    params = module.params
    env = os.environ if env is None else env
    try:
        concurrency = check_concurrency(params.get('max_concurrency'))
    except errors.DeployError as exc:
        module.fail_deploy(exc)
        return
    retry_seconds = params.get('throttle_retry_seconds')
    if retry_seconds is not None and retry_seconds < 0:
        module.fail_deploy(errors.DeployError(errors.INVALID_CONFIG, 'throttle_retry_seconds must be 0 or more, not %d.'
                                              % retry_seconds))
        return
    items = prepare(params, env)
    pool = ConnectionPool(env, concurrency=concurrency)
    vaults = []
    try:
        vaults = vaults_of(items, pool, params.get('vault_read') or fleet.AUTO)
        run_items(items, lambda settings: KeyVaultTarget(settings, env=env, connection=pool.connection(settings)),
                  env, module.check_mode, module._diff, concurrency, vaults=vaults,
                  retry_seconds=retry_seconds or 0)
    finally:
        pool.close()
    for warning in record_metrics(params, module.check_mode, [item.run for item in items]):
        module.warn(warning)
    results = [item.result for item in items]
    for warning in grouped_warnings(results):
        module.warn(warning)
    out = aggregate(results, check_mode=module.check_mode)
    out['vaults'] = [vault.report() for vault in vaults]
    if module._diff:
        out['diff'] = diff_list(results)
    if out.get('failed'):
        msg = out.pop('msg')
        out.pop('failed')
        module.fail_json(msg=msg, **out)
        return
    module.exit_json(**out)
