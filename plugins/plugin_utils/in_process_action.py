# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The collection's action plugins: run a module inside the controller's worker when that is the same as running it.

For a task that would run the module on the controller anyway (connection ``local``, no become, no async, and a
Python interpreter that is the controller's own *environment*), the module's ``main()`` runs in the worker process
(module_utils/frontend/module_standin.py): no AnsiballZ payload is built or written to Ansible's temporary directory,
so key content given as an option value never reaches a file, and no second Python starts. Everything else --
remote or delegated hosts on another connection (a jump host in front of a private endpoint), become, async, a
``ansible_python_interpreter`` that is another environment, a controller without the Azure SDK, or the variable
``certdeploy_in_process: false`` -- runs the module as Ansible always does (``_execute_module``).

Both paths give the same result; the result's ``execution`` field says which one ran (``in_process`` or
``module``), and ``-vvv`` prints why.

"The same environment" is decided by asking the interpreter for its ``sys.prefix``, ``sys.exec_prefix`` and
version, never by comparing paths: ``venv/bin/python3`` and ``venv/bin/python`` are one environment, while a
symlink to ``venv/bin/python`` placed outside the venv starts the base interpreter without the venv's packages.

The task's ``environment:`` is applied to ``os.environ`` only for the duration of the in-process run (the Azure
SDK, OpenSSL and argument-spec fallbacks read the process environment themselves, as they do in a module process)
and restored exactly afterwards, so no variable a task sets is seen by another task of the worker.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

IN_PROCESS = 'in_process'
MODULE = 'module'

# The host/task variable that turns the in-process path off (any falsy value: false, no, 0).
FORCE_VAR = 'certdeploy_in_process'

LOCAL_CONNECTIONS = ('local', 'ansible.builtin.local', 'ansible.legacy.local')
AUTO_INTERPRETERS = ('', 'auto', 'auto_silent', 'auto_legacy', 'auto_legacy_silent')

# Printed by an interpreter asked who it is: its environment, not its path.
FINGERPRINT_CODE = ('import json, os, sys; print(json.dumps([os.path.realpath(sys.prefix), '
                    'os.path.realpath(sys.exec_prefix), sys.version]))')


def fingerprint():
    """This Python's environment, as an interpreter running FINGERPRINT_CODE reports it."""
    return [os.path.realpath(sys.prefix), os.path.realpath(sys.exec_prefix), sys.version]


def interpreter_fingerprint(interpreter, env=None, timeout=60):
    """Ask ``interpreter`` (a command line, like ``ansible_python_interpreter``) for its environment; None if it cannot say."""
    try:
        argv = shlex.split(interpreter)
        done = subprocess.run(argv + ['-c', FINGERPRINT_CODE], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        lines = done.stdout.decode('utf-8', 'replace').strip().splitlines()
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def sdk_problem():
    """None when this Python has what the Key Vault modules import; otherwise what is missing (the SDK or cryptography).

    Looks the packages up without importing them: a task that never reaches the vault (check mode offline, a
    refused input) does not pay for the SDK import, and the module path would find the same packages in this
    same environment.
    """
    try:
        from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate
        from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import sdk
    except ImportError as exc:
        return 'the collection cannot be imported here (%s)' % exc
    if not certificate.HAS_CRYPTOGRAPHY:
        return 'the Python package cryptography is not installed for the controller'
    for module, package in sorted(sdk.PACKAGES.items()):
        if not _installed(module):
            return 'the Python package %s is not installed for the controller' % package
    return None


def choose(force, connection, become, async_val, interpreter, controller_python, same_environment, sdk_missing):
    """Which path runs a task, and why: ``(IN_PROCESS or MODULE, reason)``.  Pure.

    ``force``: the value of ``certdeploy_in_process`` (None when unset). ``connection``: the load name of the
    task's connection (the delegated host's, when delegated). ``interpreter``: ``ansible_python_interpreter`` as
    templated ('' or auto* when left to discovery). ``same_environment(interpreter)`` and ``sdk_missing()`` are only
    called when the answer depends on them (each may start a process or import the SDK).
    """
    if force is not None and not force:
        return MODULE, '%s is false' % FORCE_VAR
    if connection not in LOCAL_CONNECTIONS:
        return MODULE, 'the connection is %s, not local: the module runs on that host' % connection
    if become:
        return MODULE, 'become is set: the module runs as another user'
    if async_val:
        return MODULE, 'the task is async'
    interpreter = (interpreter or '').strip()
    if interpreter not in AUTO_INTERPRETERS and interpreter != controller_python and not same_environment(interpreter):
        return MODULE, 'ansible_python_interpreter %s is another Python environment than the controller\'s' % interpreter
    missing = sdk_missing()
    if missing:
        return MODULE, missing
    return IN_PROCESS, 'local connection, controller\'s Python environment'


@contextlib.contextmanager
def environment(overrides):
    """Apply ``overrides`` (the task's environment) to os.environ while the block runs; restore it exactly after."""
    saved = dict(os.environ)
    try:
        for key, value in (overrides or {}).items():
            os.environ[str(key)] = str(value)
        yield
    finally:
        for key in list(os.environ):
            if key not in saved:
                del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def _round_trip(value, direction_name):
    """Round-trip through the JSON profile Ansible uses between controller and module (ansible-core 2.19 and later).

    Returns None where that profile does not exist (ansible-core 2.16-2.18)."""
    try:
        from ansible.module_utils.common.json import Direction, get_module_decoder, get_module_encoder
    except ImportError:
        return None
    direction = getattr(Direction, direction_name)
    encoder = get_module_encoder('legacy', direction)
    decoder = get_module_decoder('legacy', direction)
    return [json.loads(json.dumps(value, cls=encoder), cls=decoder)]


def to_module(args):
    """The task's arguments as a module process would receive them, so both paths see the same types."""
    done = _round_trip(args, 'CONTROLLER_TO_MODULE')
    if done is not None:
        return done[0]
    # ansible-core 2.16-2.18 send the arguments as JSON written with this encoder (executor/module_common.py).
    from ansible.module_utils.common.json import AnsibleJSONEncoder
    return json.loads(json.dumps(args, cls=AnsibleJSONEncoder, vault_to_text=True))


def from_module(result):
    """A module's result as the controller would hold it after running the module: never trusted as a template."""
    done = _round_trip(result, 'MODULE_TO_CONTROLLER')
    if done is not None:
        return done[0]
    # ansible-core 2.16-2.18 parse the module's JSON and mark all of it unsafe (ActionBase._execute_module).
    from ansible.utils.unsafe_proxy import wrap_var
    return wrap_var(json.loads(json.dumps(result)))


def module_import_name(resolved_action):
    """``ns.coll.name`` -> the Python module holding that module's ``main()``."""
    namespace, collection, name = resolved_action.split('.', 2)
    return 'ansible_collections.%s.%s.plugins.modules.%s' % (namespace, collection, name)


class InProcessAction(ActionBase):
    """Action plugin for a certdeploy.cloud module: in-process on the controller when equivalent, module otherwise."""

    _supports_check_mode = True
    _supports_async = True

    def _resolved_module(self):
        resolved = getattr(self._task, 'resolved_action', None) or ''
        if resolved.count('.') >= 2:
            return resolved
        # This plugin's own name: ansible_collections.<ns>.<coll>.plugins.action.<name>
        parts = type(self).__module__.split('.')
        return '.'.join([parts[1], parts[2], parts[-1]])

    def _host_vars(self, task_vars):
        """The variables of the host the module would run on: the delegated host's when delegated (as _execute_module)."""
        if self._task.delegate_to:
            return (task_vars.get('ansible_delegated_vars') or {}).get(self._task.delegate_to) or task_vars
        return task_vars

    def _interpreter(self, task_vars):
        task_vars = self._host_vars(task_vars)
        value = C.config.get_config_value('INTERPRETER_PYTHON', variables=task_vars)
        value = self._templar.template(value) if value else value
        value = str(value or '').strip()
        # An automatic interpreter is taken as the controller's own, whether or not an earlier task has
        # discovered one: the path must not depend on whether facts were gathered before this task.
        return value

    def _force(self, task_vars):
        # The task's own variables first (task vars, the inventory host's), then the delegated host's.
        for variables in (task_vars, self._host_vars(task_vars)):
            if FORCE_VAR in variables:
                from ansible.module_utils.parsing.convert_bool import boolean
                return boolean(self._templar.template(variables[FORCE_VAR]), strict=False)
        return None

    def _task_environment(self):
        raw = {}
        self._compute_environment_string(raw)
        return raw

    def decide(self, task_vars):
        connection = getattr(self._connection, '_load_name', None) or getattr(self._connection, 'transport', None)
        env = dict(os.environ, **dict((str(k), str(v)) for k, v in self._task_environment().items()))
        return choose(
            force=self._force(task_vars),
            connection=connection,
            become=bool(getattr(self._play_context, 'become', False)),
            async_val=self._task.async_val,
            interpreter=self._interpreter(task_vars),
            controller_python=sys.executable,
            same_environment=lambda interpreter: interpreter_fingerprint(interpreter, env=env) == fingerprint(),
            sdk_missing=sdk_problem,
        )

    def _inject_invocation(self, task_vars):
        # ansible-core 2.21 adds invocation only when asked (INJECT_INVOCATION); earlier versions always add it.
        if C.config.get_configuration_definition('INJECT_INVOCATION'):
            return bool(C.config.get_config_value('INJECT_INVOCATION', variables=task_vars))
        return True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(InProcessAction, self).run(tmp, task_vars)
        del tmp
        path, reason = self.decide(task_vars)
        display.vvv('certdeploy: %s runs %s: %s' % (self._task.action, 'in-process' if path == IN_PROCESS else 'as a module', reason),
                    host=self._play_context.remote_addr)
        if path == MODULE:
            wrap_async = self._task.async_val and not getattr(self._connection, 'has_native_async', False)
            result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            result['execution'] = MODULE
            return result
        result.update(self._run_in_process(task_vars))
        result['execution'] = IN_PROCESS
        return result

    def _run_in_process(self, task_vars):
        from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend import module_standin

        resolved = self._resolved_module()
        try:
            main = importlib.import_module(module_import_name(resolved)).main
        except (ImportError, AttributeError, ValueError) as exc:
            return {'failed': True, 'msg': 'The module %s cannot be loaded in-process: %s' % (resolved, exc)}
        invocation = module_standin.Invocation(
            module_name=self._task.action,
            args=to_module(dict(self._task.args)),
            check_mode=self._task.check_mode,
            diff=self._task.diff,
            inject_invocation=self._inject_invocation(task_vars),
        )
        with environment(self._task_environment()):
            module_result = module_standin.run_main(main, invocation)
        return from_module(module_result)


def action_for(plugin_name):
    """The ActionModule class for the action plugin file ``plugin_name`` (its ``__name__``): the two lines such a file needs."""
    return type('ActionModule', (InProcessAction,), {'__module__': plugin_name})
