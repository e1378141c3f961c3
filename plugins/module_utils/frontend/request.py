# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""azure_kv_certificate_request and azure_kv_certificate_merge: options -> request engine -> Ansible's return.

The options are validated here, offline and purely (:func:`build_policy`, :func:`build_certificate_request`,
:func:`build_merge_request`); the engines in engine/request.py do the rest. Like deploy_one, :func:`request_one`
and :func:`merge_one` never exit and never raise a DeployError: a failure is part of the CertificateRun they
return, so another entry point (an action plugin, a role) can run them too.
"""

from __future__ import annotations

import os
import re

from .. import errors
from ..engine import model
from ..engine import tags as tag_rules
from ..engine.request import MergeEngine, RequestEngine
from ..material import csr as csr_material
from ..targets.azure_kv.target import KeyVaultTarget
from .ansible_module import failure_result
from .deploy import CertificateRun, content_or_file, metric_labels, record_metrics
from .keyvault_options import keyvault_settings

MAX_VALIDITY_MONTHS = 1200
MAX_DNS_NAMES = 100
_OID = re.compile(r'^[0-2](\.(0|[1-9][0-9]*))+$')
# A DNS name in a SAN: labels of letters, digits and hyphens, a wildcard only as the whole first label.
_DNS = re.compile(r'^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$')


CHECK_MODE_UNREADABLE = ('Check mode could not read the vault (%s: %s); predicting changed=true. The options were validated '
                         'offline.')


def _invalid(message):
    return errors.DeployError(errors.INVALID_CONFIG, message)


def build_policy(params):
    """The RequestPolicy of the request module's options, validated offline (pure)."""
    csr_material.parse_subject(params['subject'])
    key_type = params.get('key_type') or 'RSA'
    key_size, curve = params.get('key_size'), params.get('curve')
    if key_type == 'RSA':
        if curve is not None:
            raise _invalid('curve applies to key_type: EC; an RSA key has a key_size (2048, 3072 or 4096).')
        key_size = 2048 if key_size is None else key_size
        if key_size not in model.RSA_SIZES:
            raise _invalid('key_size must be one of %s for an RSA key, not %s.' % (', '.join(str(s) for s in model.RSA_SIZES), key_size))
    else:
        if key_size is not None:
            raise _invalid('key_size applies to key_type: RSA; an EC key has a curve (P-256, P-384 or P-521).')
        curve = curve or 'P-256'
    if params.get('hsm') and params.get('exportable', True):
        raise _invalid('An HSM-backed key (hsm: true) never leaves the HSM: set exportable: false with it. Application '
                       'Gateway and App Service need an exportable key; see the operator guide for the consumers that '
                       'work without one.')
    months = params.get('validity_months', 12)
    if months is None or not 1 <= months <= MAX_VALIDITY_MONTHS:
        raise _invalid('validity_months must be between 1 and %d, not %s.' % (MAX_VALIDITY_MONTHS, months))
    dns_names = list(params.get('dns_names') or [])
    if len(dns_names) > MAX_DNS_NAMES:
        raise _invalid('dns_names has %d names; at most %d are accepted.' % (len(dns_names), MAX_DNS_NAMES))
    for name in dns_names:
        if not isinstance(name, str) or len(name) > 253 or not _DNS.match(name):
            raise _invalid('dns_names: %r is not a DNS name.' % (name,))
    ekus = params.get('extended_key_usage')
    for oid in ekus or []:
        if not _OID.match(str(oid)):
            raise _invalid('extended_key_usage: %r is not an OID such as 1.3.6.1.5.5.7.3.1 (server authentication).' % (oid,))
    return model.RequestPolicy(
        subject=params['subject'].strip(), dns_names=dns_names, key_type=key_type, key_size=key_size, curve=curve,
        hsm=params.get('hsm', False), exportable=params.get('exportable', True), reuse_key=params.get('reuse_key', False),
        validity_months=months, key_usage=params.get('key_usage'), extended_key_usage=ekus,
        content_type=params.get('content_type') or 'pkcs12')


def _ownership(params, settings):
    return params.get('certificate_id') or settings.certificate_name, tag_rules.normalise_user_tags(params.get('tags'))


def build_certificate_request(params, settings, check_mode):
    days = params.get('renew_days_before')
    days = 30 if days is None else days
    if days < 0:
        raise _invalid('renew_days_before must be 0 or more, not %d.' % days)
    certificate_id, user_tags = _ownership(params, settings)
    return model.CertificateRequest(
        policy=build_policy(params), certificate_id=certificate_id, user_tags=user_tags,
        take_ownership=params.get('take_ownership', False), replace=params.get('replace', False),
        renew=params.get('renew', False), renew_days_before=days, switch_from_import=params.get('switch_from_import', False),
        check_mode=check_mode)


def build_merge_request(params, settings, check_mode):
    certificate = content_or_file(params, 'certificate')
    if certificate is None:
        raise _invalid('Give the signed certificate (certificate or certificate_path).')
    signed = csr_material.load_signed(certificate, content_or_file(params, 'chain'), params.get('chain_root') or 'keep')
    certificate_id, user_tags = _ownership(params, settings)
    return model.MergeRequest(
        signed=signed, certificate_id=certificate_id, user_tags=user_tags, take_ownership=params.get('take_ownership', False),
        verify_stored_chain=params.get('verify_stored_chain', True), allow_expired=params.get('allow_expired', False),
        check_mode=check_mode)


def _labels(params, operation, target=None, settings=None):
    return dict(metric_labels(params, target, settings), operation=operation)


def _run(params, env, connect, operation, check_mode, diff, settings=None):
    target = None
    try:
        if settings is None:
            settings = keyvault_settings(params, env)
        if operation == 'request':
            wanted = build_certificate_request(params, settings, check_mode)
        else:
            wanted = build_merge_request(params, settings, check_mode)
        target = connect(settings)
        engine = RequestEngine(target) if operation == 'request' else MergeEngine(target)
        report = engine.run(wanted)
        ids = target.predicted_ids()
    except errors.DeployError as exc:
        if check_mode and target is not None and exc.code in errors.UNREACHABLE_CODES:
            # Check mode validated everything offline; the vault could not be read to predict more.
            return CertificateRun({'changed': True, 'failed': False, 'warnings': [CHECK_MODE_UNREADABLE % (exc.code, exc.message)]},
                                  _labels(params, operation, target, settings))
        return CertificateRun(failure_result(exc, changed=False), _labels(params, operation, target, settings), exc)
    finally:
        if target is not None:
            target.close()
    result = report.as_dict()
    result.update(ids)
    result.update(failed=False, warnings=list(report.warnings))
    if diff and report.diff is not None:
        result['diff'] = report.diff
    return CertificateRun(result, _labels(params, operation, target, settings))


def request_one(params, env, connect, check_mode=False, diff=False, settings=None):
    """Ensure the pending request of one certificate: a CertificateRun (see frontend.deploy)."""
    return _run(params, env, connect, 'request', check_mode, diff, settings)


def merge_one(params, env, connect, check_mode=False, diff=False, settings=None):
    """Merge the signed certificate of one pending request: a CertificateRun (see frontend.deploy)."""
    return _run(params, env, connect, 'merge', check_mode, diff, settings)


def _finish(module, run):
    warnings = record_metrics(module.params, module.check_mode, [run])
    module.finish(dict(run.result, warnings=run.result['warnings'] + warnings), run.error)


def run_request(module, env=None):
    """azure_kv_certificate_request: request_one for the module's options, metrics, then exit or fail the module."""
    env = os.environ if env is None else env
    _finish(module, request_one(module.params, env, lambda settings: KeyVaultTarget(settings, env=env),
                                check_mode=module.check_mode, diff=module._diff))


def run_merge(module, env=None):
    """azure_kv_certificate_merge: merge_one for the module's options, metrics, then exit or fail the module."""
    env = os.environ if env is None else env
    _finish(module, merge_one(module.params, env, lambda settings: KeyVaultTarget(settings, env=env),
                              check_mode=module.check_mode, diff=module._diff))
