# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""azure_kv_certificate_deploy: from module options to an engine run and back."""

from __future__ import annotations

import datetime
import os

from ..engine import errors, metrics
from ..engine.deploy import DeployEngine
from ..engine.model import DeployRequest
from ..material import certificate as cert_material
from ..targets.azure_kv.target import KeyVaultTarget
from .ansible_module import NO_ROLLBACK, keyvault_settings


def read_file(path, option):
    """Read a material file on the host the module runs on; unreadable paths are config errors."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise errors.DeployError(errors.INVALID_CONFIG, '%s %s cannot be read: %s.' % (option, path, exc.strerror or exc))


def _content_or_file(params, option):
    if params.get(option) is not None:
        return params[option]
    path = params.get(option + '_path')
    return read_file(path, option + '_path') if path else None


def load_material(params):
    """Build the Material from exactly one way of giving it: PEM parts, or a PFX."""
    preserve = params.get('preserve_chain_order', False)
    if params.get('pfx') is not None or params.get('pfx_path'):
        if params.get('pfx') is not None:
            return cert_material.load_pfx_material(params['pfx'], params.get('pfx_password'), preserve)
        return cert_material.load_pfx_material(read_file(params['pfx_path'], 'pfx_path'), params.get('pfx_password'), preserve)
    certificate = _content_or_file(params, 'certificate')
    key = _content_or_file(params, 'private_key')
    if certificate is None or key is None:
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'Give the certificate (certificate or certificate_path) together with its private key '
            '(private_key or private_key_path), or a PFX (pfx or pfx_path).')
    return cert_material.load_pem_material(
        certificate, key, params.get('private_key_passphrase'), _content_or_file(params, 'chain'), preserve)


def read_copy_source(params, env, target_content_type, target_factory=None):
    """copy_from: export the source version (backing secret, key included) without it ever becoming a module argument.

    Returns ``(exported, material, copied_from)``: ``exported`` is imported byte for byte when its format is the
    target's content type; otherwise it is None and ``material`` is rebuilt in the target's format.
    ``target_factory(settings, env=env)`` builds the source's target (default: a KeyVaultTarget of its own), so a
    caller deploying many certificates can reuse one connection per vault.
    """
    spec = params['copy_from']
    source_params = dict(params, vault_url=spec['vault_url'], certificate_name=spec['certificate_name'])
    source = None
    try:
        settings = keyvault_settings(source_params, env)
        source = (target_factory or KeyVaultTarget)(settings, env=env)
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
    )


def _expiry_timestamp(result):
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


def _record_metrics(module, labels, result, error_code=None):
    path = module.params.get('metrics_file')
    if not path or module.check_mode:
        return
    try:
        metrics.write(path, labels, result, error_code=error_code, expires=_expiry_timestamp(result))
    except (IOError, OSError) as exc:
        module.warn('metrics_file %s could not be written: %s' % (path, exc))


def run_deploy(module, env=None):
    """Run one deploy for an AnsibleModule built with the deploy argument spec; exits the module."""
    params = module.params
    env = os.environ if env is None else env
    target = settings = None
    copied_from = None
    try:
        settings = keyvault_settings(params, env)
        exported = None
        if params.get('copy_from'):
            try:
                exported, material, copied_from = read_copy_source(params, env, settings.content_type)
            except errors.DeployError as exc:
                if not (module.check_mode and exc.code in errors.UNREACHABLE_CODES and params.get('check_mode_read') != 'required'):
                    raise
                module.warn('Check mode could not read the copy_from source (%s: %s); predicting changed=true. '
                            'The configuration was validated offline.' % (exc.code, exc.message))
                module.exit_json(changed=True, rollback=dict(NO_ROLLBACK))
                return
        else:
            material = load_material(params)
        request = build_request(params, settings, material, exported, module.check_mode)
        target = KeyVaultTarget(settings, env=env)
        report = DeployEngine(target).run(request)
    except errors.DeployError as exc:
        partial = exc.details.get('result') or {}
        _record_metrics(module, metric_labels(params, target, settings), partial, error_code=exc.code)
        if target is not None:
            target.close()
        module.fail_deploy(exc, **({'copied_from': copied_from} if copied_from else {}))
        return
    target.close()
    result = report.as_dict()
    if copied_from:
        result['copied_from'] = copied_from
    if module._diff and report.diff is not None:
        result['diff'] = report.diff
    for warning in report.warnings:
        module.warn(warning)
    _record_metrics(module, target.labels, result)
    module.exit_json(**result)
