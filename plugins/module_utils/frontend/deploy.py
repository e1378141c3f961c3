# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One certificate's deploy, from its options to an engine run and back: :func:`deploy_one`.

``deploy_one`` is the single deploy path. azure_kv_certificate_deploy runs it once (:func:`run_deploy`: it plus
metrics and exit); azure_kv_certificate_deploy_many runs it per element of its list (deploy_many.py). It never
exits and never raises a DeployError: a failure is part of the result it returns, with the keys the module
fails with.
"""

from __future__ import annotations

import datetime
import os

from .. import errors
from ..engine import metrics
from ..engine.deploy import DeployEngine
from ..engine.model import DeployRequest
from ..material import certificate as cert_material
from ..targets.azure_kv.target import KeyVaultTarget
from .ansible_module import NO_ROLLBACK, failure_result
from .keyvault_options import chain_order_warning, keyvault_settings


def read_file(path, option, limit):
    """Read a material file on the host the module runs on; unreadable paths are config errors.

    At most ``limit`` + 1 bytes are read: enough for the material rules to refuse a file over their size limit,
    and never an endless read (a device, a pipe) or a huge file loaded into memory.
    """
    try:
        with open(path, 'rb') as handle:
            return handle.read(limit + 1)
    except (IOError, OSError) as exc:
        raise errors.DeployError(errors.INVALID_CONFIG, '%s %s cannot be read: %s.' % (option, path, exc.strerror or exc))


def content_or_file(params, option):
    if params.get(option) is not None:
        return params[option]
    path = params.get(option + '_path')
    return read_file(path, option + '_path', cert_material.MAX_PEM_BYTES) if path else None


def load_material(params):
    """Build the Material from exactly one way of giving it: PEM parts, or a PFX. The chain comes ordered
    leaf -> intermediates -> root, without the root when chain_root is drop."""
    chain_root = params.get('chain_root') or 'keep'
    if params.get('pfx') is not None or params.get('pfx_path'):
        if params.get('pfx') is not None:
            return cert_material.load_pfx_material(params['pfx'], params.get('pfx_password'), chain_root)
        return cert_material.load_pfx_material(read_file(params['pfx_path'], 'pfx_path', cert_material.MAX_PFX_BYTES),
                                               params.get('pfx_password'), chain_root)
    certificate = content_or_file(params, 'certificate')
    key = content_or_file(params, 'private_key')
    if certificate is None or key is None:
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'Give the certificate (certificate or certificate_path) together with its private key '
            '(private_key or private_key_path), or a PFX (pfx or pfx_path).')
    return cert_material.load_pem_material(
        certificate, key, params.get('private_key_passphrase'), content_or_file(params, 'chain'), chain_root)


def read_copy_source(params, env, target_content_type, connect):
    """copy_from: export the source version (backing secret, key included) without it ever becoming a module argument.

    Returns ``(exported, material, copied_from)``: ``exported`` is imported byte for byte when its format is the
    target's content type; otherwise it is None and ``material`` is rebuilt in the target's format.
    ``connect(settings)`` builds the source's target (a caller deploying many certificates gives one on its
    vault's shared connection).
    """
    spec = params['copy_from']
    source_params = dict(params, vault_url=spec['vault_url'], certificate_name=spec['certificate_name'])
    source = None
    try:
        settings = keyvault_settings(source_params, env)
        source = connect(settings)
        state = source.read_version(spec.get('version'))
        exported = source.export_version(state)
    except errors.DeployError as exc:
        details = dict(exc.details)
        raise errors.DeployError(exc.code, 'copy_from source: %s' % exc.message, **details)
    finally:
        if source is not None:
            source.close()
    copied_from = {
        'vault_url': settings.address.url,
        'certificate_name': settings.certificate_name,
        'version': state.version,
        'thumbprint': state.thumbprint,
        'content_type': exported.content_type,
    }
    if exported.content_type != target_content_type:
        return None, exported.material, copied_from
    return exported, None, copied_from


def build_request(params, settings, material, exported, check_mode):
    """The DeployRequest of one certificate's options (the deploy argument spec's names)."""
    return DeployRequest(
        material=material,
        exported=exported,
        min_days_remaining=params.get('min_days_remaining'),
        expected_sans=params.get('expected_sans'),
        certificate_id=params.get('certificate_id') or settings.certificate_name,
        user_tags=params.get('tags'),
        enabled=params['enabled'],
        force=params['force'],
        take_ownership=params['take_ownership'],
        rollback=params['rollback'],
        on_soft_deleted=params['on_soft_deleted'],
        allow_expired=params['allow_expired'],
        check_mode=check_mode,
        check_mode_read=params.get('check_mode_read') or 'best_effort',
        content_type=settings.content_type,
        exportable=settings.exportable,
        verify_stored_chain=params.get('verify_stored_chain', True),
    )


def expiry_timestamp(result):
    """The certificate's expiry in a result, as a Unix timestamp (None when the result has none)."""
    expires = (result.get('certificate') or {}).get('expires')
    if not expires:
        return None
    try:
        return datetime.datetime.fromisoformat(expires).timestamp()
    except ValueError:
        return None


def metric_labels(params, target=None, settings=None):
    """The labels of this run's samples: the target's own, or as much as the options tell before one exists.

    A run that fails on its material or its vault URL still counts as a failure of the certificate it meant to deploy.
    """
    if target is not None:
        return target.labels
    return {'target': 'azure_kv',
            'vault': settings.address.url if settings is not None else (params.get('vault_url') or ''),
            'name': (settings.certificate_name if settings is not None else None) or params.get('certificate_name') or ''}


class CertificateRun(object):
    """One certificate's deploy as deploy_one leaves it.

    ``result``: the module's return for it, with ``failed`` (bool) and a ``warnings`` list, and on failure
    ``msg`` and ``error_code``; ``labels``: its metric labels; ``error``: the DeployError of a failure, or None.
    """

    def __init__(self, result, labels, error=None):
        self.result = result
        self.labels = labels
        self.error = error


def failed_run(exc, params, settings=None, target=None, copied_from=None):
    """The CertificateRun of a DeployError: the keys the deploy module fails with, and the labels to count it by."""
    extra = {'copied_from': copied_from} if copied_from else {}
    return CertificateRun(failure_result(exc, changed=False, rollback=dict(NO_ROLLBACK), **extra),
                          metric_labels(params, target, settings), exc)


COPY_SOURCE_UNREADABLE = ('Check mode could not read the copy_from source (%s: %s); predicting changed=true. '
                          'The configuration was validated offline.')


def deploy_one(params, env, connect, check_mode=False, diff=False, settings=None, listed=None):
    """Deploy one certificate: ``params`` are its options (the deploy argument spec's names); returns a CertificateRun.

    ``connect(settings)`` builds the Target of a certificate (its own, or the copy_from source's); every target
    built is closed before this returns. ``settings`` are the KeyVaultSettings when the caller has already
    derived them from ``params``. Check mode predicts and never writes; with ``diff`` the result has the diff.
    ``listed`` is the certificate's state from a listing of its vault, when the caller listed it (see
    ``DeployEngine.run``).
    """
    target = None
    copied_from = None
    order_warning = None
    try:
        if settings is None:
            settings = keyvault_settings(params, env)
        exported = None
        if params.get('copy_from'):
            if (params.get('chain_root') or 'keep') != 'keep':
                raise errors.DeployError(
                    errors.INVALID_CONFIG, 'copy_from copies the source certificate with its chain as stored; chain_root: '
                    '%s does not apply to it. Remove chain_root (or change the source).' % params['chain_root'])
            try:
                exported, material, copied_from = read_copy_source(params, env, settings.content_type, connect)
            except errors.DeployError as exc:
                if not (check_mode and exc.code in errors.UNREACHABLE_CODES and params.get('check_mode_read') != 'required'):
                    raise
                return CertificateRun({'changed': True, 'rollback': dict(NO_ROLLBACK), 'failed': False,
                                       'warnings': [COPY_SOURCE_UNREADABLE % (exc.code, exc.message)]},
                                      metric_labels(params, None, settings))
        else:
            material = load_material(params)
        request = build_request(params, settings, material, exported, check_mode)
        order_warning = chain_order_warning(params, request.material)
        target = connect(settings)
        report = DeployEngine(target).run(request, listed=listed)
    except errors.DeployError as exc:
        run = failed_run(exc, params, settings, target, copied_from)
        if order_warning:
            run.result['warnings'] = [order_warning] + list(run.result.get('warnings') or [])
        return run
    finally:
        if target is not None:
            target.close()
    result = report.as_dict()
    result.update(failed=False, warnings=([order_warning] if order_warning else []) + list(report.warnings))
    if copied_from:
        result['copied_from'] = copied_from
    if diff and report.diff is not None:
        result['diff'] = report.diff
    return CertificateRun(result, target.labels)


def record_metrics(params, check_mode, runs):
    """Write each run to the ``metrics_file`` option's file (never in check mode); returns the warnings (a file
    that cannot be written is one, and no further run is tried)."""
    path = params.get('metrics_file')
    if not path or check_mode:
        return []
    for run in runs:
        try:
            metrics.write(path, run.labels, run.result, error_code=run.result.get('error_code'),
                          expires=expiry_timestamp(run.result))
        except (IOError, OSError) as exc:
            return ['metrics_file %s could not be written: %s' % (path, exc)]
    return []


def run_deploy(module, env=None):
    """azure_kv_certificate_deploy: deploy_one for the module's options, metrics, then exit or fail the module."""
    env = os.environ if env is None else env
    run = deploy_one(module.params, env, lambda settings: KeyVaultTarget(settings, env=env),
                     check_mode=module.check_mode, diff=module._diff)
    warnings = record_metrics(module.params, module.check_mode, [run])
    module.finish(dict(run.result, warnings=run.result['warnings'] + warnings), run.error)
