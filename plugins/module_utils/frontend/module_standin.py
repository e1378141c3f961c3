# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The stand-in for AnsibleModule inside the controller's worker: run a module's ``main()`` in this process.

The collection's modules hold a spec and one call: ``run_x(create_module(SPEC))``. While :func:`run_main` runs
such a ``main()``, :func:`current_invocation` returns the task's :class:`Invocation`, and
``ansible_module.create_module`` builds an :class:`InProcessModule` from the very same spec instead of an
AnsibleModule, so the argument spec, its rules and the failure defaults stay in one place. The stand-in behaves
as AnsibleModule does towards the frontend:

- options are validated with ``ArgumentSpecValidator`` (defaults, types, choices, groups); a validation failure
  is ``invalid_config``, with AnsibleModule's message;
- ``exit_json``/``fail_json`` end the run (by raising :class:`ModuleExit`) with the result AnsibleModule would
  print: ``failed``/``msg`` on failure, warnings, the optional ``invocation``, and every ``no_log`` value removed
  from the whole result (booleans and None at the top level kept, as AnsibleModule keeps them);
- ``check_mode`` and ``_diff`` come from the caller (the task).

The other half of the in-process path -- deciding, per task, whether a module may run here at all -- is the
action plugins' base class, plugins/plugin_utils/in_process_action.py.

Nothing here reads or writes the process environment, files or the network; the frontend does what it always
does. Pure apart from calling ``main``.
"""

from __future__ import annotations

import contextvars
import logging

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError

from .. import errors

# Set while run_main() runs a module's main(): ansible_module.create_module then builds an InProcessModule.
_CURRENT = contextvars.ContextVar('certdeploy_in_process', default=None)

_VALIDATOR_ARGS = ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if', 'required_by')


class ModuleExit(Exception):
    """Raised by InProcessModule.exit_json/fail_json: the run is over and ``result`` is what the module returns."""

    def __init__(self, result):
        super(ModuleExit, self).__init__('module exited')
        self.result = result


class Invocation(object):
    """What one task asks of a module: its arguments and the task's check and diff modes."""

    def __init__(self, module_name, args, check_mode=False, diff=False, inject_invocation=True):
        self.module_name = module_name
        self.args = dict(args or {})
        self.check_mode = bool(check_mode)
        self.diff = bool(diff)
        self.inject_invocation = bool(inject_invocation)


class InProcessModule(object):
    """The part of AnsibleModule the collection's frontends use, for one in-process invocation.

    ``failure_defaults`` are the module class's ``FAILURE_DEFAULTS`` (e.g. the deploy module's rollback block),
    added to every failure that lacks them, argument-spec failures included.
    """

    def __init__(self, invocation, argument_spec, module_class=None, supports_check_mode=False, no_log=False, **kwargs):
        unknown = set(kwargs) - set(_VALIDATOR_ARGS) - {'bypass_checks', 'add_file_common_args'}
        if unknown or kwargs.get('add_file_common_args') or kwargs.get('bypass_checks'):
            # Not used by this collection; refusing them keeps the in-process path from silently differing.
            raise TypeError('InProcessModule does not support %s' % ', '.join(sorted(unknown) or ['file/bypass options']))
        self._name = invocation.module_name
        self._invocation = invocation
        self._module_class = module_class
        self._failure_defaults = dict(getattr(module_class, 'FAILURE_DEFAULTS', None) or {})
        self._warnings = []
        self._in_argspec = True
        self.argument_spec = argument_spec
        self.supports_check_mode = supports_check_mode
        self.no_log = no_log
        self.check_mode = invocation.check_mode
        self._diff = invocation.diff
        self.no_log_values = set()

        validator = ArgumentSpecValidator(argument_spec, **dict((k, kwargs.get(k)) for k in _VALIDATOR_ARGS))
        validation = validator.validate(invocation.args)
        self.params = dict(invocation.args)
        self.params.update(validation.validated_parameters)
        self.no_log_values.update(validation._no_log_values)
        for alias in validation._warnings:
            self.warn('Both option {option} and its alias {alias} are set.'.format(option=alias['option'], alias=alias['alias']))
        try:
            error = validation.errors[0]
        except IndexError:
            error = None
        if error is not None:
            msg = validation.errors.msg
            if isinstance(error, UnsupportedError):
                msg = 'Unsupported parameters for ({name}) {kind}: {msg}'.format(name=self._name, kind='module', msg=msg)
            self.fail_json(msg=msg)
        if self.check_mode and not self.supports_check_mode:
            self.exit_json(skipped=True, msg='remote module (%s) does not support check mode' % self._name)
        self._in_argspec = False

    def __getattr__(self, name):
        # The module class's own helpers (CertdeployModule.fail_deploy, a subclass's methods) work on the stand-in;
        # AnsibleModule's machinery (run_command, tmpdir, ...) does not exist in-process and stays an AttributeError.
        module_class = self.__dict__.get('_module_class')
        for klass in getattr(module_class, '__mro__', ()):
            if klass.__module__.split('.')[0] == 'ansible' or klass is object:
                break
            if name in vars(klass):
                return vars(klass)[name].__get__(self, type(self)) if hasattr(vars(klass)[name], '__get__') else vars(klass)[name]
        raise AttributeError('%s has no attribute %r in-process' % (type(self).__name__, name))

    # -- what the frontends call ---------------------------------------------

    def warn(self, warning):
        if warning not in self._warnings:  # AnsibleModule reports each warning once
            self._warnings.append(warning)

    def exit_json(self, **kwargs):
        raise ModuleExit(self._formatted(kwargs))

    def fail_json(self, msg, **kwargs):
        if self._in_argspec:
            kwargs.setdefault('error_code', errors.INVALID_CONFIG)
        for key, value in self._failure_defaults.items():
            kwargs.setdefault(key, dict(value))
        kwargs.pop('exception', None)  # a traceback is for module debugging; the in-process path has none to give
        kwargs.update(failed=True, msg=str(msg))
        raise ModuleExit(self._formatted(kwargs))

    def _formatted(self, kwargs):
        if self._invocation.inject_invocation and 'invocation' not in kwargs:
            kwargs['invocation'] = {'module_args': self.params}
        if self._warnings:
            kwargs['warnings'] = list(self._warnings)
        preserved = dict((k, v) for k, v in kwargs.items() if v is None or isinstance(v, bool))
        kwargs = remove_values(kwargs, self.no_log_values)
        kwargs.update(preserved)
        return kwargs


def current_invocation():
    """The Invocation whose ``main()`` run_main() is running in this context, or None (a module process)."""
    return _CURRENT.get()


def run_main(main, invocation):
    """Run a module's ``main()`` for ``invocation``; returns the result dict the module would have returned.

    A module that returns without exiting is reported as a failure, as Ansible reports a module that printed nothing.
    """
    token = _CURRENT.set(invocation)
    # The worker's root logger may write to Ansible's log_path at INFO; a module process has no such handler.
    # Keep the SDK's request traces (URLs, headers) out of it, as on the module path.
    azure_logger = logging.getLogger('azure')
    level = azure_logger.level
    azure_logger.setLevel(max(level, logging.WARNING))
    try:
        main()
    except ModuleExit as done:
        return done.result
    finally:
        azure_logger.setLevel(level)
        _CURRENT.reset(token)
    return {'failed': True, 'msg': 'Module %s returned without a result.' % invocation.module_name}
