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
- What a module process logs on its host (syslog or the journal) holds no ``no_log`` value at any depth: see
  :func:`loggable_params` and :class:`CertdeployModule`.

Imports no target adapter: the TLS probe's module payload carries none of the Key Vault code.
"""

from __future__ import annotations

import json

from ansible.module_utils.basic import PASSWORD_MATCH, AnsibleModule, heuristic_log_sanitize, missing_required_lib
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean

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


# What the start-up log shows in place of a no_log value, and of an option whose name looks like a password but
# that says nothing about no_log (AnsibleModule's own words for the two).
NOT_LOGGED = 'NOT_LOGGING_PARAMETER'
NOT_LOGGED_PASSWORD = 'NOT_LOGGING_PASSWORD'
# A line of a multi-line no_log value (a PEM key's base64 line) at least this long is masked in a log message on its own.
MIN_MASKED_LINE = 16


def loggable_params(argument_spec, params):
    """``params`` as they may be logged (pure): every no_log option's value, at any depth (a dict option's
    suboptions, each element of a list of dicts), replaced by ``NOT_LOGGING_PARAMETER``; an option whose name looks
    like a password and that does not set ``no_log`` by ``NOT_LOGGING_PASSWORD``. The rest is kept as it is.

    AnsibleModule masks only the top level this way. It logs a list or dict option as its Python text and then
    masks no_log values in it by substring, which a nested value escapes: in the text of a list, a PEM key's
    newlines are ``\\n`` and the key no longer matches itself."""
    aliases = {}
    for name, option in argument_spec.items():
        for alias in option.get('aliases') or ():
            aliases[alias] = name
    out = {}
    for name, value in params.items():
        option = argument_spec.get(aliases.get(name, name)) or {}
        no_log = option.get('no_log')
        if no_log is None and PASSWORD_MATCH.search(name):
            out[name] = NOT_LOGGED_PASSWORD
        elif boolean(no_log or False):
            out[name] = NOT_LOGGED
        elif option.get('options') and isinstance(value, dict):
            out[name] = loggable_params(option['options'], value)
        elif option.get('options') and isinstance(value, (list, tuple)):
            out[name] = [loggable_params(option['options'], element) if isinstance(element, dict) else element
                         for element in value]
        else:
            out[name] = value
    return out


def masked_forms(no_log_values):
    """Every text a no_log value can take in a log message (pure): itself, as it is written inside a Python repr
    and inside JSON (a list's or dict's text escapes newlines, quotes and backslashes), and each line of a
    multi-line value that is at least MIN_MASKED_LINE characters long."""
    forms = set()
    for value in no_log_values:
        value = to_native(value)
        if not value:
            continue
        forms.update((value, repr(value)[1:-1], json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]))
        lines = [line.strip() for line in value.splitlines()]
        if len(lines) > 1:
            forms.update(line for line in lines if len(line) >= MIN_MASKED_LINE)
    forms.discard('')
    return forms


class CertdeployModule(AnsibleModule):
    """AnsibleModule whose failures always carry an ``error_code`` and whose log holds no no_log value.

    ``FAILURE_DEFAULTS`` are added to every failure that lacks them, argument-spec failures included.

    A module process logs its arguments when it starts (AnsibleModule's ``_log_invocation``: syslog, or the journal
    with one field per argument). Two layers keep no_log values out of that log, at any depth:

    - the start-up message is built from :func:`loggable_params`: a nested no_log value is replaced before the
      option is turned into text, so the log keeps every option name and every value that is not secret;
    - every message and journal field that reaches :meth:`log` is masked again with :func:`masked_forms` of the
      module's no_log values, so a value that reaches the log in a form core's substring masking misses (escaped
      inside the text of a list, line by line) is still masked, whatever method of a given ansible-core logs it.

    Marking a list option itself ``no_log`` is not a way out: every string inside it (names, vault URLs, choices
    such as ``pkcs12``) would become a no_log value masked out of the whole result.
    """

    FAILURE_DEFAULTS = {}

    def __init__(self, *args, **kwargs):
        self._in_argspec = True
        super(CertdeployModule, self).__init__(*args, **kwargs)
        self._in_argspec = False

    def _log_invocation(self):
        # AnsibleModule's own, with loggable_params() in place of its top-level-only masking.
        log_args = {}
        for name, value in loggable_params(self.argument_spec, self.params).items():
            if isinstance(value, str) and value in (NOT_LOGGED, NOT_LOGGED_PASSWORD) and self.params[name] != value:
                if value == NOT_LOGGED_PASSWORD:
                    self.warn('Module did not set no_log for %s' % name)
                log_args[name] = value
                continue
            text = value if isinstance(value, (str, bytes)) else str(value)
            log_args[name] = heuristic_log_sanitize(text, self.no_log_values)
        words = ['%s=%s' % (to_native(name), to_native(value)) for name, value in log_args.items()]
        self.log('Invoked with %s' % ' '.join(words) if words else 'Invoked', log_args=log_args)

    def log(self, msg, log_args=None):
        forms = masked_forms(getattr(self, 'no_log_values', None) or ())
        if forms:
            msg = remove_values(msg, forms)
            if log_args:
                log_args = dict((name, remove_values(value if isinstance(value, str) else str(value), forms))
                                for name, value in log_args.items())
        super(CertdeployModule, self).log(msg, log_args=log_args)

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
