# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""module_utils' imports run one way, as docs/architecture.md draws them.

The imports are read from the source files (ast), not from a running interpreter, so a lazy import inside a
function counts as much as one at the top.  Layers, lowest first:

    errors  <-  material  <-  engine, probe  <-  targets/<adapter>  <-  frontend

A file may import its own layer's files and any lower layer, never a higher one; no two files may import each
other, directly or through others; the layers below targets import neither Ansible nor a cloud SDK; and the TLS
probe module's payload (every module_utils file it needs) holds nothing of the Key Vault adapter.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
MODULE_UTILS = os.path.join(ROOT, 'plugins', 'module_utils')
MODULES = os.path.join(ROOT, 'plugins', 'modules')
PREFIX = 'ansible_collections.certdeploy.cloud.plugins.module_utils'

LAYERS = {'errors': 0, 'material': 1, 'engine': 2, 'probe': 2, 'targets': 3, 'frontend': 4}
PURE = ('errors', 'material', 'engine', 'probe')


def _dotted(path):
    rel = os.path.relpath(path, MODULE_UTILS)[:-len('.py')].replace(os.sep, '.')
    if rel == '__init__':
        return ''
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _files():
    found = {}
    for folder, _dirs, names in os.walk(MODULE_UTILS):
        for name in names:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                found[_dotted(path)] = path
    return found


FILES = _files()


def imports_of(path, package):
    """(internal module names, external top-level names) that the file at ``path`` imports anywhere in it."""
    internal, external = set(), set()
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                _classify(alias.name, [], internal, external)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.') if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                module = '.'.join(base + ([node.module] if node.module else []))
                _add_internal(module, [a.name for a in node.names], internal)
            else:
                _classify(node.module, [a.name for a in node.names], internal, external)
    return internal, external


def _classify(module, names, internal, external):
    if module == PREFIX or module.startswith(PREFIX + '.'):
        _add_internal(module[len(PREFIX) + 1:], names, internal)
    else:
        external.add(module.split('.')[0])


def _add_internal(module, names, internal):
    # "from .. import errors" names a module; "from .deploy import deploy_one" names a function of one.
    for name in names or [None]:
        candidate = '.'.join(part for part in (module, name) if part)
        if candidate in FILES:
            internal.add(candidate)
        elif module in FILES:
            internal.add(module)
        elif module:
            raise AssertionError('import of an unknown module_utils module: %s' % candidate)


def _package(name):
    path = FILES[name]
    return name if path.endswith('__init__.py') else name.rpartition('.')[0]


GRAPH = {}
EXTERNAL = {}
for _name in FILES:
    GRAPH[_name], EXTERNAL[_name] = imports_of(FILES[_name], _package(_name))
    GRAPH[_name].discard(_name)


def layer(name):
    return LAYERS[name.split('.')[0]] if name else None


def test_every_file_is_in_a_layer():
    assert sorted(n for n in FILES if n and n.split('.')[0] not in LAYERS) == []


def upward_imports(graph):
    """Every (importer, imported) pair whose imported module sits in a higher layer."""
    return sorted((name, dep) for name, deps in graph.items() for dep in deps if name and dep and layer(dep) > layer(name))


def find_cycles(graph):
    """Every import cycle found by a depth-first walk, each as the list of its modules (first one repeated last)."""
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = 'open'
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 'open':
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 'done'

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_no_upward_import():
    assert upward_imports(GRAPH) == []


def test_no_import_cycle():
    assert find_cycles(GRAPH) == []


def test_the_rules_catch_an_upward_import_and_a_cycle(tmp_path):
    # What the two tests above would say of the layering this issue removed (material -> engine.errors -> material).
    before = {'material.certificate': {'engine.errors'}, 'engine.errors': set(), 'engine.deploy': {'material.certificate'},
              'targets.azure_kv.target': {'frontend.deploy'}, 'frontend.deploy': {'targets.azure_kv.target'}}
    assert upward_imports(before) == [('material.certificate', 'engine.errors'),
                                      ('targets.azure_kv.target', 'frontend.deploy')]
    assert find_cycles(before) == [['frontend.deploy', 'targets.azure_kv.target', 'frontend.deploy']]
    # The reader resolves relative imports of modules and of names in modules.
    path = tmp_path / 'sample.py'
    path.write_text('from ..frontend import deploy\nfrom .. import errors\nfrom .model import DeployRequest\n')
    assert imports_of(str(path), 'engine') == ({'frontend.deploy', 'errors', 'engine.model'}, set())


@pytest.mark.parametrize('name', sorted(n for n in FILES if n and n.split('.')[0] in PURE))
def test_lower_layers_import_neither_ansible_nor_a_cloud_sdk(name):
    assert EXTERNAL[name] & {'ansible', 'azure', 'ansible_collections'} == set()


def _payload(module_file):
    internal, _external = imports_of(module_file, None)
    seen, todo = set(), list(internal)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(GRAPH[name])
    return seen


def test_the_probe_module_payload_carries_no_key_vault_adapter():
    payload = _payload(os.path.join(MODULES, 'tls_certificate_probe.py'))
    assert 'probe.tls' in payload and 'frontend.ansible_module' in payload
    assert sorted(n for n in payload if n.startswith('targets')) == []


def test_the_deploy_module_payload_is_what_a_deploy_needs():
    # The check above is only worth something if the walk finds the adapter where it is used.
    payload = _payload(os.path.join(MODULES, 'azure_kv_certificate_deploy.py'))
    assert {'targets.azure_kv.target', 'targets.azure_kv.connection', 'engine.deploy', 'errors'} <= payload
    assert 'probe.tls' not in payload
