# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which path the action plugin takes (plugin_utils/in_process_action.py), how it asks an interpreter for its environment,
and how the task's environment is applied and taken back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.certdeploy.cloud.tests.unit.compat import controller_import

# Importing controller code marks the whole test process as an Ansible controller (ansible-core 2.19 and later),
# after which module_utils sends warnings to the controller's display instead of the module result; the module
# tests in this process need the module side's behaviour, so the flag is put back.
with controller_import():
    from ansible_collections.certdeploy.cloud.plugins.plugin_utils import in_process_action as inprocess

PY = sys.executable


class Probe(object):
    """Records the checks choose() makes; answers them as told."""

    def __init__(self, same=True, missing=None):
        self.same, self.missing, self.calls = same, missing, []

    def same_environment(self, interpreter):
        self.calls.append(('interpreter', interpreter))
        return self.same

    def sdk_missing(self):
        self.calls.append(('sdk',))
        return self.missing


def choose(probe, force=None, connection='ansible.builtin.local', become=False, async_val=0, interpreter=PY):
    return inprocess.choose(force=force, connection=connection, become=become, async_val=async_val, interpreter=interpreter,
                            controller_python=PY, same_environment=probe.same_environment, sdk_missing=probe.sdk_missing)


def test_local_controller_python_runs_in_process_without_starting_it():
    probe = Probe()
    assert choose(probe)[0] == inprocess.IN_PROCESS
    assert probe.calls == [('sdk',)]


@pytest.mark.parametrize('connection', ['local', 'ansible.builtin.local', 'ansible.legacy.local'])
def test_every_name_of_the_local_connection_is_local(connection):
    assert choose(Probe(), connection=connection)[0] == inprocess.IN_PROCESS


@pytest.mark.parametrize('connection', ['ssh', 'ansible.builtin.ssh', 'paramiko_ssh', 'community.docker.docker', 'certdeploy_relay', None])
def test_a_delegated_or_remote_host_runs_the_module(connection):
    probe = Probe()
    path, reason = choose(probe, connection=connection)
    assert path == inprocess.MODULE and 'not local' in reason
    assert probe.calls == []  # nothing is probed or imported for a remote host


def test_forced_off_by_the_variable():
    probe = Probe()
    path, reason = choose(probe, force=False)
    assert path == inprocess.MODULE and inprocess.FORCE_VAR in reason and probe.calls == []
    assert choose(Probe(), force=True)[0] == inprocess.IN_PROCESS


def test_become_and_async_run_the_module():
    assert choose(Probe(), become=True) == (inprocess.MODULE, 'become is set: the module runs as another user')
    assert choose(Probe(), async_val=30)[0] == inprocess.MODULE


@pytest.mark.parametrize('interpreter', ['', 'auto', 'auto_silent', 'auto_legacy', '  '])
def test_interpreter_left_to_discovery_is_the_controller(interpreter):
    probe = Probe(same=False)
    assert choose(probe, interpreter=interpreter)[0] == inprocess.IN_PROCESS
    assert ('interpreter', interpreter) not in probe.calls


def test_another_interpreter_path_in_the_same_environment_stays_in_process():
    probe = Probe(same=True)
    assert choose(probe, interpreter='/venv/bin/python3')[0] == inprocess.IN_PROCESS
    assert probe.calls == [('interpreter', '/venv/bin/python3'), ('sdk',)]


def test_an_interpreter_of_another_environment_runs_the_module():
    probe = Probe(same=False)
    path, reason = choose(probe, interpreter='/other/bin/python')
    assert path == inprocess.MODULE and '/other/bin/python' in reason
    assert ('sdk',) not in probe.calls  # the controller's SDK does not matter then


def test_sdk_missing_on_the_controller_runs_the_module():
    path, reason = choose(Probe(missing='the Python package azure-identity is not installed for the controller'))
    assert path == inprocess.MODULE and 'azure-identity' in reason


def test_this_python_can_run_the_modules():
    assert inprocess.sdk_problem() is None


def test_sdk_problem_names_the_missing_package(monkeypatch):
    real_find_spec = inprocess.importlib.util.find_spec

    def no_identity(name, *args, **kwargs):
        if name == 'azure.identity':
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(inprocess.importlib.util, 'find_spec', no_identity)
    assert inprocess.sdk_problem() == 'the Python package azure-identity is not installed for the controller'


def test_sdk_problem_names_missing_cryptography(monkeypatch):
    from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate
    monkeypatch.setattr(certificate, 'HAS_CRYPTOGRAPHY', False)
    assert 'cryptography' in inprocess.sdk_problem()


# -- asking an interpreter for its environment (real processes) ----------------

def test_the_running_interpreter_reports_this_environment():
    assert inprocess.interpreter_fingerprint(PY) == inprocess.fingerprint()


def test_a_missing_interpreter_cannot_say():
    assert inprocess.interpreter_fingerprint('/nonexistent/bin/python') is None
    assert inprocess.interpreter_fingerprint('%s -c "import sys; sys.exit(3)" --' % PY) is None


def test_an_interpreter_with_arguments_is_a_command_line():
    assert inprocess.interpreter_fingerprint('/usr/bin/env %s' % PY) == inprocess.fingerprint()


def test_a_new_venv_is_another_environment(tmp_path):
    subprocess.run([PY, '-m', 'venv', '--without-pip', str(tmp_path / 'venv')], check=True)
    other = inprocess.interpreter_fingerprint(str(tmp_path / 'venv' / 'bin' / 'python'))
    assert other is not None and other != inprocess.fingerprint()
    assert other[0] == os.path.realpath(str(tmp_path / 'venv'))


def test_a_symlink_is_judged_by_the_environment_it_starts_not_by_its_path(tmp_path):
    # A link to this interpreter placed outside its venv starts the base interpreter (no pyvenv.cfg beside it);
    # outside a venv it is the same installation. Either way the answer is the interpreter's own sys.prefix.
    link = tmp_path / 'python'
    link.symlink_to(PY)
    in_venv = sys.prefix != sys.base_prefix
    assert (inprocess.interpreter_fingerprint(str(link)) == inprocess.fingerprint()) is (not in_venv)
    # Another name inside the same bin directory is the same environment.
    sibling = os.path.join(os.path.dirname(PY), 'python3')
    if os.path.exists(sibling) and sibling != PY:
        assert inprocess.interpreter_fingerprint(sibling) == inprocess.fingerprint()


# -- the task's environment ----------------------------------------------------

def test_task_environment_applies_while_running_and_is_taken_back(monkeypatch):
    monkeypatch.setenv('CERTDEPLOY_UT_KEPT', 'before')
    monkeypatch.delenv('CERTDEPLOY_UT_NEW', raising=False)
    before = dict(os.environ)
    with inprocess.environment({'CERTDEPLOY_UT_KEPT': 'during', 'CERTDEPLOY_UT_NEW': 1}):
        assert os.environ['CERTDEPLOY_UT_KEPT'] == 'during'
        assert os.environ['CERTDEPLOY_UT_NEW'] == '1'  # values become strings, as in a shell environment
        os.environ['CERTDEPLOY_UT_BY_SDK'] = 'x'  # whatever the run itself sets goes too
    assert dict(os.environ) == before


def test_task_environment_is_taken_back_after_a_failure(monkeypatch):
    monkeypatch.delenv('CERTDEPLOY_UT_NEW', raising=False)
    before = dict(os.environ)
    with pytest.raises(RuntimeError):
        with inprocess.environment({'CERTDEPLOY_UT_NEW': 'secret'}):
            raise RuntimeError('boom')
    assert dict(os.environ) == before


def test_a_variable_removed_by_the_run_is_restored(monkeypatch):
    monkeypatch.setenv('CERTDEPLOY_UT_KEPT', 'value')
    with inprocess.environment({}):
        del os.environ['CERTDEPLOY_UT_KEPT']
    assert os.environ['CERTDEPLOY_UT_KEPT'] == 'value'


def test_a_module_result_is_never_a_template_to_the_controller():
    # A certificate's subject or a message may hold "{{ ... }}": the module path never lets the controller template
    # a module's result, and the in-process path must not either, on every ansible-core.
    # A tuple in: only a real trip through the module path's JSON gives back a list (the check that on 2.19 and later,
    # where an untagged string is never trusted anyway, the result was not handed over as it was).
    result = inprocess.from_module({'msg': '{{ lookup("pipe", "id") }}', 'certificate': {'sans': ('{{ x }}',)}})
    assert isinstance(result['certificate']['sans'], list)
    try:
        from ansible.template import is_trusted_as_template  # ansible-core 2.19 and later: only tagged text is
    except ImportError:  # 2.16-2.18: every string a module returns is marked unsafe
        from ansible.utils.unsafe_proxy import AnsibleUnsafe
        assert isinstance(result['msg'], AnsibleUnsafe) and isinstance(result['certificate']['sans'][0], AnsibleUnsafe)
    else:
        assert not is_trusted_as_template(result['msg']) and not is_trusted_as_template(result['certificate']['sans'][0])
    assert result == {'msg': '{{ lookup("pipe", "id") }}', 'certificate': {'sans': ['{{ x }}']}}


def test_task_arguments_reach_main_in_json_types():
    assert inprocess.to_module({'tags': {'a': 1}, 'expected_sans': ('a', 'b'), 'force': True, 'timeout': None}) == \
        {'tags': {'a': 1}, 'expected_sans': ['a', 'b'], 'force': True, 'timeout': None}


def test_module_import_name():
    assert inprocess.module_import_name('certdeploy.cloud.azure_kv_certificate_deploy') == \
        'ansible_collections.certdeploy.cloud.plugins.modules.azure_kv_certificate_deploy'


def test_every_action_plugin_runs_the_main_of_its_module():
    # The in-process path runs the module's own main(), so it validates with the module's own spec
    # (modules/test_specs_in_step.py checks what that main() builds on either path).
    import importlib
    action_dir = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'plugins', 'action')
    actions = sorted(f[:-3] for f in os.listdir(action_dir) if f.endswith('.py') and f != '__init__.py')
    assert actions == ['azure_kv_certificate_deploy', 'azure_kv_certificate_deploy_many', 'azure_kv_certificate_info',
                       'azure_kv_certificate_merge', 'azure_kv_certificate_request']
    for action in actions:
        with controller_import():
            plugin = importlib.import_module('ansible_collections.certdeploy.cloud.plugins.action.' + action)
        assert issubclass(plugin.ActionModule, inprocess.InProcessAction)
        module = importlib.import_module(inprocess.module_import_name('certdeploy.cloud.' + action))
        assert callable(module.main) and 'create_module(' in open(module.__file__).read()


def test_action_for_names_the_plugin_it_serves():
    cls = inprocess.action_for('ansible_collections.certdeploy.cloud.plugins.action.azure_kv_certificate_info')
    assert issubclass(cls, inprocess.InProcessAction) and cls.__name__ == 'ActionModule'
    assert cls.__module__.endswith('.azure_kv_certificate_info')


# -- the action plugin's reading of the task (connection, become, interpreter variables) ----------------------

class _Shell(object):
    tmpdir = None

    def env_prefix(self, **env):
        return ' '.join('%s=%s' % item for item in env.items())


class _Connection(object):
    def __init__(self, load_name):
        self._load_name = load_name
        self._shell = _Shell()


class _Task(object):
    def __init__(self, environment=None, async_val=0):
        self.environment = environment
        self.async_val = async_val
        self.args = {}
        self.delegate_to = None
        self.action = 'certdeploy.cloud.azure_kv_certificate_deploy'


class _PlayContext(object):
    def __init__(self, become=False):
        self.become = become
        self.remote_addr = 'localhost'


class _Templar(object):
    def template(self, value):
        return value


def action(connection='ansible.builtin.local', become=False, environment=None):
    cls = inprocess.action_for('ansible_collections.certdeploy.cloud.plugins.action.azure_kv_certificate_deploy')
    return cls(_Task(environment), _Connection(connection), _PlayContext(become), None, _Templar(), None)


def test_decide_reads_the_task(monkeypatch):
    monkeypatch.setattr(inprocess, 'sdk_problem', lambda: None)
    assert action().decide({'ansible_python_interpreter': PY})[0] == inprocess.IN_PROCESS
    assert action().decide({})[0] == inprocess.IN_PROCESS  # implicit localhost: interpreter discovery is the controller's
    assert action(connection='ansible.builtin.ssh').decide({'ansible_python_interpreter': PY})[0] == inprocess.MODULE
    assert action(become=True).decide({'ansible_python_interpreter': PY})[0] == inprocess.MODULE
    assert action().decide({'ansible_python_interpreter': PY, 'certdeploy_in_process': 'no'})[0] == inprocess.MODULE
    assert action().decide({'ansible_python_interpreter': PY, 'certdeploy_in_process': 'yes'})[0] == inprocess.IN_PROCESS


def test_decide_asks_a_different_interpreter(monkeypatch, tmp_path):
    monkeypatch.setattr(inprocess, 'sdk_problem', lambda: None)
    subprocess.run([PY, '-m', 'venv', '--without-pip', str(tmp_path / 'venv')], check=True)
    other = str(tmp_path / 'venv' / 'bin' / 'python')
    path, reason = action().decide({'ansible_python_interpreter': other})
    assert path == inprocess.MODULE and other in reason
    # An automatic interpreter is the controller's, discovered by an earlier task or not: the path must not
    # depend on whether facts were gathered first.
    for facts in ({'ansible_python_interpreter': 'auto'},
                  {'ansible_python_interpreter': 'auto', 'ansible_facts': {'discovered_interpreter_python': other}}):
        assert action().decide(facts)[0] == inprocess.IN_PROCESS


def test_decide_reads_the_delegated_hosts_interpreter(monkeypatch, tmp_path):
    monkeypatch.setattr(inprocess, 'sdk_problem', lambda: None)
    subprocess.run([PY, '-m', 'venv', '--without-pip', str(tmp_path / 'venv')], check=True)
    other = str(tmp_path / 'venv' / 'bin' / 'python')
    delegated = action()
    delegated._task.delegate_to = 'buildhost'
    task_vars = {'ansible_python_interpreter': PY, 'ansible_delegated_vars': {'buildhost': {'ansible_python_interpreter': other}}}
    assert delegated.decide(task_vars)[0] == inprocess.MODULE
    assert action().decide(task_vars)[0] == inprocess.IN_PROCESS


def test_decide_sees_the_controller_without_the_sdk(monkeypatch):
    monkeypatch.setattr(inprocess, 'sdk_problem', lambda: 'the Python package azure-core is not installed for the controller')
    assert action().decide({'ansible_python_interpreter': PY}) == (
        inprocess.MODULE, 'the Python package azure-core is not installed for the controller')


def test_the_task_environment_is_read_with_the_templar():
    env = action(environment=[{'AZURE_CLIENT_ID': 'a'}, {'AZURE_CLIENT_ID': 'b', 'X': 1}])._task_environment()
    assert env == {'AZURE_CLIENT_ID': 'b', 'X': 1}
