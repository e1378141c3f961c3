# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The module object every frontend runs on, and the error contract at the Ansible boundary.

- :func:`create_module` builds it from an :class:`~.argspec.ArgumentSpec`: an AnsibleModule subclass in a
  module process, or -- inside the controller's worker, while an action plugin runs the module's ``main()``
  (module_standin.run_main) -- the in-process stand-in, validated with the same spec.
- Every failure carries an ``error_code``: argument-spec failures detected by AnsibleModule itself become
  ``invalid_config``, a DeployError becomes :func:`failure_result`, a missing library is reported with
  ``missing_required_lib``, and no foreseeable failure surfaces as a traceback.

Imports no target adapter: the TLS probe's module payload carries none of the Key Vault code.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from .. import errors
from . import module_standin

# The documented shape of a deploy's result holds on failures too: a rollback block, attempted or not.
NO_ROLLBACK = {'attempted': False, 'succeeded': False, 'version': None, 'reason': None}


def failure_result(exc, **result):
    """What a run fails with for the DeployError ``exc``, on top of ``result``: the partial result the error
    carries, ``failed``, ``error_code``, ``msg``, ``missing_action`` (a 403's RBAC action) and the warnings
    gathered before the failure (a list, for the caller to report)."""
    out = dict(result)
    out.update(exc.details.get('result') or {})
    msg = exc.message
    if exc.code == errors.MISSING_DEPENDENCY and exc.details.get('package'):
        msg = missing_required_lib(exc.details['package'])
    out.update(failed=True, error_code=exc.code, msg=msg, warnings=list(exc.details.get('warnings') or []))
    if exc.details.get('action'):
        out['missing_action'] = exc.details['action']
    return out


class CertdeployModule(AnsibleModule):
    """AnsibleModule whose failures always carry an ``error_code``.

    ``FAILURE_DEFAULTS`` are added to every failure that lacks them, argument-spec failures included.
    """

    FAILURE_DEFAULTS = {}

    def __init__(self, *args, **kwargs):
        self._in_argspec = True
        super(CertdeployModule, self).__init__(*args, **kwargs)
        self._in_argspec = False

    def fail_json(self, msg, **kwargs):
        if getattr(self, '_in_argspec', False):
            kwargs.setdefault('error_code', errors.INVALID_CONFIG)
        for key, value in self.FAILURE_DEFAULTS.items():
            kwargs.setdefault(key, dict(value))
        super(CertdeployModule, self).fail_json(msg=msg, **kwargs)

    def finish(self, result, error=None):
        """Exit with ``result`` (``failed``, ``msg`` and a ``warnings`` list as failure_result leaves them): the
        warnings are reported as the module's own, a failure fails, anything else exits. ``error`` is the
        DeployError of a failure: a missing library adds its traceback, as missing_required_lib expects."""
        result = dict(result)
        for warning in result.pop('warnings', None) or []:
            self.warn(warning)
        if not result.pop('failed', False):
            self.exit_json(**result)
            return
        if error is not None and error.code == errors.MISSING_DEPENDENCY and error.details.get('package'):
            result['exception'] = error.details.get('exception')
        self.fail_json(**result)

    def fail_deploy(self, exc, **result):
        """Fail with a DeployError: code, message and any partial result it carries."""
        self.finish(failure_result(exc, **result), exc)


class DeployModule(CertdeployModule):
    """azure_kv_certificate_deploy's module: a failure has the documented rollback block, attempted or not."""

    FAILURE_DEFAULTS = {'rollback': NO_ROLLBACK}


def create_module(spec, module_class=CertdeployModule):
    """The module object for ``spec`` (an ArgumentSpec): ``module_class`` in a module process; inside the
    controller's worker (module_standin.run_main is running this module's ``main()``) the stand-in, built from
    the same spec and taking ``module_class``'s failure defaults and helpers. Every module supports check mode."""
    invocation = module_standin.current_invocation()
    if invocation is not None:
        return module_standin.InProcessModule(invocation, module_class=module_class, supports_check_mode=True,
                                              **spec.module_kwargs())
    return module_class(supports_check_mode=True, **spec.module_kwargs())
