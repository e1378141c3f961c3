# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""azure_kv_certificate_deploy_many: many certificates, one or more vaults, one module run.

Each certificate is one engine run, exactly as azure_kv_certificate_deploy would do it, with the same
outcomes and error codes. What the run shares is the connection: one credential, one SDK client and so one
token per vault, reused by every certificate of that vault. A bounded pool of threads runs the certificates
(the SDK is synchronous); the first request to a vault goes alone, so the authentication challenge and the
token are paid once, whatever the pool size. A failure is that certificate's result and never stops or hides
the others; results come back in the order of the input list.

The pure parts (merging options, planning, aggregating results) are separate functions and unit-tested.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ..engine import errors, metrics
from ..engine.deploy import DeployEngine
from ..engine.model import OUTCOMES
from ..targets.azure_kv.target import KeyVaultTarget
from .ansible_module import CONNECTION_ARGS, NO_ROLLBACK, CertdeployModule, keyvault_settings
from .deploy import _expiry_timestamp, build_request, load_material, metric_labels, read_copy_source
from .deploy_args import CERTIFICATE_ARGS, MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF, RUN_ARGS

# The HTTP connection pool of one SDK client holds 10 connections; more threads would only wait for them.
MAX_CONCURRENCY = 10
DEFAULT_CONCURRENCY = 4

# Failures of a vault's first request that are about the vault or the identity, not about one certificate:
# the other certificates of that vault report the same failure without sending a request of their own.
# (forbidden is not one of them: a role assignment can be scoped to one certificate.)
VAULT_WIDE_CODES = frozenset((errors.AUTH_FAILED, errors.UNREACHABLE, errors.NETWORK_DENIED, errors.VAULT_NOT_FOUND,
                              errors.MISSING_DEPENDENCY))

# How many names a grouped warning or the failure message lists before it says "and N more".
LIST_LIMIT = 10

# -- argument spec -------------------------------------------------------------------------------------------

# Connection and identity options apply to every certificate; vault_url is the default of each element's own.
TOP_CONNECTION_ARGS = dict((name, dict(spec)) for name, spec in CONNECTION_ARGS.items() if name != 'certificate_name')
TOP_CONNECTION_ARGS['vault_url'] = dict(type='str')

ITEM_OPTIONS = dict(
    CERTIFICATE_ARGS,
    certificate_name=dict(type='str', required=True),
    vault_url=dict(type='str'),
)

ARGUMENT_SPEC = dict(
    TOP_CONNECTION_ARGS,
    certificates=dict(type='list', elements='dict', required=True, options=ITEM_OPTIONS,
                      mutually_exclusive=MUTUALLY_EXCLUSIVE, required_one_of=REQUIRED_ONE_OF),
    max_concurrency=dict(type='int', default=DEFAULT_CONCURRENCY),
    **RUN_ARGS
)


class BatchModule(CertdeployModule):
    """Failures carry an error_code; the rollback block belongs to each certificate's result, not to the run."""

    FAILURE_DEFAULTS = {}


# -- pure parts ----------------------------------------------------------------------------------------------

def item_params(params, item):
    """The options of one certificate as azure_kv_certificate_deploy would see them (pure).

    The element's own options, plus the run's connection and identity options; the element's vault_url wins
    over the run's.
    """
    merged = dict((name, params.get(name)) for name in TOP_CONNECTION_ARGS)
    merged.update(item)
    merged['vault_url'] = item.get('vault_url') or params.get('vault_url')
    merged['metrics_file'] = None  # written once per run, see run_batch
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


def failure_result(exc, vault_url, certificate_name, copied_from=None):
    """One certificate's result for a DeployError: the same keys azure_kv_certificate_deploy fails with (pure)."""
    result = {'vault_url': vault_url, 'certificate_name': certificate_name, 'changed': False,
              'rollback': dict(NO_ROLLBACK)}
    result.update(exc.details.get('result') or {})
    result.update({'failed': True, 'error_code': exc.code, 'msg': exc.message,
                   'warnings': list(exc.details.get('warnings') or [])})
    if exc.code == errors.MISSING_DEPENDENCY and exc.details.get('package'):
        result['msg'] = ('%s (install the Python package %s where the module runs)'
                         % (exc.message, exc.details['package']))
    if exc.details.get('action'):
        result['missing_action'] = exc.details['action']
    if copied_from:
        result['copied_from'] = copied_from
    return result


def success_result(report_dict, warnings, vault_url, certificate_name, diff=None, copied_from=None):
    """One certificate's result after an engine run (pure)."""
    result = {'vault_url': vault_url, 'certificate_name': certificate_name}
    result.update(report_dict)
    result.update({'failed': False, 'warnings': list(warnings)})
    if diff is not None:
        result['diff'] = diff
    if copied_from:
        result['copied_from'] = copied_from
    return result


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


# -- one connection per vault --------------------------------------------------------------------------------

def fresh_error(exc, note=None):
    """A new DeployError with the code, message and facts of ``exc`` (pure).

    The engine adds the run's warnings and partial result to the error it raises, so one error object must
    not travel through the runs of two certificates.
    """
    details = dict((k, v) for k, v in exc.details.items() if k not in ('result', 'warnings'))
    return errors.DeployError(exc.code, exc.message if note is None else '%s (%s)' % (exc.message, note), **details)


class VaultConnection(object):
    """One vault's credential and SDK client, built on first use and shared by every certificate of the vault.

    The first read of the vault goes alone (``first_request``): it answers Key Vault's authentication
    challenge and fetches the token, which every later request reuses. When it fails for a reason that is
    about the vault or the identity (VAULT_WIDE_CODES), later certificates fail the same way without a request.
    """

    def __init__(self, settings, env, target_class=KeyVaultTarget):
        self._connector = target_class(settings, env=env)
        self._lock = threading.Lock()
        self._first = threading.Lock()
        self._primed = False
        self._shared = None
        self._error = None

    def clients(self):
        with self._lock:
            if self._error is not None:
                raise fresh_error(self._error)
            if self._shared is None:
                try:
                    self._shared = self._connector._connect()
                except errors.DeployError as exc:
                    self._error = fresh_error(exc)
                    raise
            return self._shared

    @property
    def sdk(self):
        return self._connector._sdk

    def first_request(self, call):
        """Run ``call`` (a read); the vault's first one runs alone, later ones as they come."""
        if self._primed:
            return self._checked(call)
        with self._first:
            if self._primed:
                return self._checked(call)
            try:
                return call()
            except errors.DeployError as exc:
                if exc.code in VAULT_WIDE_CODES:
                    self._error = fresh_error(exc, 'the first request to this vault failed, so this certificate sent none')
                raise
            finally:
                self._primed = True

    def _checked(self, call):
        if self._error is not None:
            raise fresh_error(self._error)
        return call()

    def close(self):
        self._connector.close()


class SharedConnectionTarget(KeyVaultTarget):
    """A KeyVaultTarget for one certificate that uses its vault's VaultConnection instead of a client of its own."""

    def __init__(self, settings, env, connection):
        super(SharedConnectionTarget, self).__init__(settings, env=env)
        self._connection = connection

    def _connect(self):
        shared = self._connection.clients()
        self._sdk = self._connection.sdk
        return shared

    def read_latest(self, *args, **kwargs):
        parent = super(SharedConnectionTarget, self).read_latest
        return self._connection.first_request(lambda: parent(*args, **kwargs))

    def close(self):
        """The connection belongs to the vault and is closed once, when the run ends."""


class Connections(object):
    """The VaultConnection of each vault of a run, by normalised vault URL."""

    def __init__(self, env, target_class=KeyVaultTarget):
        self._env = env
        self._target_class = target_class
        self._lock = threading.Lock()
        self._by_vault = {}

    def target(self, settings, env=None):
        """A target for ``settings`` on its vault's shared connection (the signature of a target factory)."""
        with self._lock:
            connection = self._by_vault.get(settings.address.url)
            if connection is None:
                connection = self._by_vault[settings.address.url] = VaultConnection(settings, self._env, self._target_class)
        return SharedConnectionTarget(settings, self._env, connection)

    def close(self):
        for connection in self._by_vault.values():
            connection.close()


# -- the run -------------------------------------------------------------------------------------------------

class Item(object):
    """One element of the list on its way through the run."""

    def __init__(self, index, params):
        self.index = index
        self.params = params
        self.settings = None
        self.error = None
        self.result = None
        self.labels = None

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


def deploy_item(item, connections, env, check_mode, want_diff):
    """One certificate, as azure_kv_certificate_deploy does it; sets ``item.result`` and never raises."""
    params = item.params
    copied_from = None
    target = None
    try:
        if item.error is not None:
            raise item.error
        exported = None
        if params.get('copy_from'):
            try:
                exported, material, copied_from = read_copy_source(params, env, item.settings.content_type,
                                                                   target_factory=connections.target)
            except errors.DeployError as exc:
                if not (check_mode and exc.code in errors.UNREACHABLE_CODES and params.get('check_mode_read') != 'required'):
                    raise
                item.result = success_result(
                    {'changed': True, 'rollback': dict(NO_ROLLBACK)},
                    ['Check mode could not read the copy_from source (%s: %s); predicting changed=true. '
                     'The configuration was validated offline.' % (exc.code, exc.message)],
                    item.vault_url, item.certificate_name)
                return
        else:
            material = load_material(params)
        request = build_request(params, item.settings, material, exported, check_mode)
        target = connections.target(item.settings)
        report = DeployEngine(target).run(request)
    except errors.DeployError as exc:
        item.labels = metric_labels(params, target, item.settings)
        item.result = failure_result(exc, item.vault_url, item.certificate_name, copied_from)
        return
    except Exception as exc:  # one certificate's unforeseen failure must not hide the others' results
        item.labels = metric_labels(params, target, item.settings)
        item.result = failure_result(
            errors.DeployError(errors.SERVICE_ERROR, 'Unexpected %s while deploying this certificate: %s'
                               % (type(exc).__name__, exc)), item.vault_url, item.certificate_name, copied_from)
        return
    item.labels = target.labels
    item.result = success_result(report.as_dict(), report.warnings, item.vault_url, item.certificate_name,
                                 diff=report.diff if want_diff else None, copied_from=copied_from)


def run_items(items, connections, env, check_mode, want_diff, concurrency):
    """Deploy every item with at most ``concurrency`` at a time; results stay in input order.

    Items that copy from another item's certificate run after all the others (see phases()).
    """
    for phase in phases(items):
        _run_phase(phase, connections, env, check_mode, want_diff, concurrency)


def _run_phase(items, connections, env, check_mode, want_diff, concurrency):
    if concurrency <= 1 or len(items) <= 1:
        for item in items:
            deploy_item(item, connections, env, check_mode, want_diff)
        return
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _done in pool.map(lambda item: deploy_item(item, connections, env, check_mode, want_diff), items):
            pass


def _record_metrics(module, items):
    path = module.params.get('metrics_file')
    if not path or module.check_mode:
        return
    for item in items:
        if item.labels is None:
            continue
        try:
            metrics.write(path, item.labels, item.result, error_code=item.result.get('error_code'),
                          expires=_expiry_timestamp(item.result))
        except (IOError, OSError) as exc:
            module.warn('metrics_file %s could not be written: %s' % (path, exc))
            return


def run_batch(module, env=None, target_class=KeyVaultTarget):
    """Run the list of an AnsibleModule built with ARGUMENT_SPEC; exits the module."""
    params = module.params
    env = os.environ if env is None else env
    try:
        concurrency = check_concurrency(params.get('max_concurrency'))
    except errors.DeployError as exc:
        module.fail_deploy(exc)
        return
    items = prepare(params, env)
    connections = Connections(env, target_class)
    try:
        run_items(items, connections, env, module.check_mode, module._diff, concurrency)
    finally:
        connections.close()
    _record_metrics(module, items)
    results = [item.result for item in items]
    for warning in grouped_warnings(results):
        module.warn(warning)
    out = aggregate(results, check_mode=module.check_mode)
    if module._diff:
        out['diff'] = diff_list(results)
    if out.get('failed'):
        msg = out.pop('msg')
        out.pop('failed')
        module.fail_json(msg=msg, **out)
        return
    module.exit_json(**out)
