# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""tls_certificate_probe: its argument spec, and from module options to a probe run and back."""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from .. import errors
from ..probe import tls
from .argspec import ArgumentSpec

PROBE = ArgumentSpec(dict(
    host=dict(type='str', required=True),
    port=dict(type='int', default=443),
    server_name=dict(type='str'),
    expected_thumbprint=dict(type='str'),
    timeout=dict(type='int', default=0),
    interval=dict(type='int', default=10),
    connect_timeout=dict(type='int', default=10),
    validate_certs=dict(type='bool', default=True),
    ca_path=dict(type='path'),
    fail_on_mismatch=dict(type='bool', default=False),
))


def run_probe(module, fetch=None, clock=None, sleep=None):
    """Run the probe for an AnsibleModule built with the probe's argument spec; exits the module.

    ``fetch``, ``clock`` and ``sleep`` replace the network and time in unit tests.
    """
    params = module.params
    result = {'changed': False, 'host': params['host'], 'port': params['port']}
    try:
        options = tls.check_options(params['host'], params['port'], params.get('server_name'), params['timeout'],
                                    params['interval'], params['connect_timeout'])
        expected = tls.normalise_thumbprint(params.get('expected_thumbprint'))
        result.update(host=options['host'], server_name=options['server_name'], expected_thumbprint=expected)
        if params.get('ca_path') and not params['validate_certs']:
            module.warn('ca_path is not used because validate_certs is false.')
        if fetch is None:
            context = tls.client_context(params['validate_certs'], params.get('ca_path'))

            def fetch():
                return tls.probe_once(options, context)
        kwargs = {}
        if clock is not None:
            kwargs['clock'] = clock
        if sleep is not None:
            kwargs['sleep'] = sleep
        report = tls.wait_for_certificate(fetch, expected, options['timeout'], options['interval'], **kwargs)
    except errors.DeployError as exc:
        if exc.code == errors.MISSING_DEPENDENCY:
            module.fail_json(msg=missing_required_lib('cryptography'), error_code=exc.code, **result)
        module.fail_json(msg=exc.message, error_code=exc.code, **result)
        return
    result.update(report)
    result['verified'] = bool(params['validate_certs'])
    problem = tls.failure(report, expected, params['fail_on_mismatch'])
    if problem is not None:
        module.fail_json(msg=problem.message, error_code=problem.code, **result)
        return
    if report['served'] and report['served'].get('parse_errors'):
        module.warn('The certificate served by %s:%s could not be parsed in full (%s); its thumbprint is exact, the facts '
                    'listed in served.parse_errors are missing.' % (options['host'], options['port'],
                                                                    '; '.join(report['served']['parse_errors'])))
    if report['matched'] is False:
        served = report['served']
        if served is None:
            module.warn('No certificate was read from %s:%s: %s' % (options['host'], options['port'], report['error']['message']))
    module.exit_json(**result)
