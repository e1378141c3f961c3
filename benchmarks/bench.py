# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certdeploy.cloud against azure.azcollection, both on one vault under a production name.

Started by benchmarks/run.sh (which installs both tools under .cache/bench/). As root:

1. ``unshare --mount --net`` re-executes this file in a private mount + network namespace with only
   ``lo``; emulators.namespace.write_etc/bind_etc give it its own /etc/hosts (``certdeploy-bench.vault.azure.net``
   -> 127.0.0.1, ``login.microsoftonline.com`` -> 127.0.0.2, where nothing listens), and
   namespace.prove_mapping proves that, and that a public address is unreachable, before any request.
2. lowkey_prodname.start serves lowkey-vault as https://certdeploy-bench.vault.azure.net with a test-CA
   certificate and a real vault's challenge (resource https://vault.azure.net).
3. Each scenario runs as ``ansible-playbook`` of each tool, paired and in alternating order; the
   bench_timer callback times every task, the emulator's access log counts the requests.
4. The results go to a JSON file and docs/performance.md (``--quick``: a labelled development run).

No request leaves the namespace; AZURE_*, IDENTITY_*, MSI_*, IMDS_* of the caller are not passed on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit
from pathlib import Path

# tests/integration is on the import path of run.sh's venv (scripts/lib/python.sh: expose_test_helpers);
# lowkey_prodname.py is beside this file.
from emulators import namespace
from emulators.common import PROXY_TRAP, EmulatorUnavailable, HarnessError
from emulators.lowkey import ensure_lowkey_jar
from emulators.prodnames import make_tls_material

import lowkey_prodname

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

VAULT_NAME = 'certdeploy-bench'
INSIDE_MARK = 'BENCH_INSIDE'
PLAYBOOKS = HERE / 'playbooks'
CALLBACKS = HERE / 'callback_plugins'
LIST_MODULE = REPO / 'plugins' / 'modules' / 'azure_kv_certificate_deploy_many.py'
ACTION_PLUGIN = REPO / 'plugins' / 'action' / 'azure_kv_certificate_deploy.py'
TOOLS = ('ours', 'peer')
LABEL = {'ours': 'certdeploy.cloud', 'peer': 'azure.azcollection'}

# The peer's 100-host fleet costs 4-6 minutes a run on 2 cores, so its no-op gets 3 paired runs and its rotation
# 1 (not 5), and its certificates are created by certdeploy's list module (setup, not measured), to keep the
# whole benchmark near 25 minutes; every other scenario gets 5 paired runs.
FULL = {'runs': 5, 'fleet_noop_runs': 3, 'fleet_rotation_runs': 1, 'fleet': 100, 'big': 1000}
QUICK = {'runs': 2, 'fleet_noop_runs': 1, 'fleet_rotation_runs': 1, 'fleet': 10, 'big': 50}


def log(message):
    print('[bench] %s' % message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Material: made at run time, keys only in the work directory
# ---------------------------------------------------------------------------
def make_material(out, sets):
    """{set name: [cert dict]} of EC P-256 leaves issued by one intermediate.

    Files: crt, key, chain (PEM) for certdeploy; pfx_b64 (PKCS#12 of key, leaf and chain, base64, with a
    password made for this run) for the peer's cert_data. The peer gets a PFX because lowkey-vault 3.4.33
    takes the last certificate of an imported PEM bundle as the certificate: with a chain its x5t is the
    CA's, and the peer, which compares that thumbprint, would re-import on every identical run.
    """
    from testlib import testpki  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(str(out), 0o700)
    _root, _root_key, inter, inter_key = testpki.ca_pair('certdeploy bench root', 'certdeploy bench intermediate',
                                                         extensions=testpki.EXT_KEY_IDS)
    chain_pem = testpki.pem(inter)
    chain_file = out / 'chain.pem'
    chain_file.write_bytes(chain_pem)
    password = secrets.token_urlsafe(12)

    def write(path, data, mode):
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        return str(path)

    material = {}
    for set_name, count in sets.items():
        items = []
        for index in range(count):
            key = testpki.ec_key(ec.SECP256R1())
            host = '%s-%04d.bench.example' % (set_name, index)
            leaf = testpki.issue(key, host, inter, inter_key, days=90, extensions=testpki.EXT_KEY_IDS)
            base = out / ('%s-%04d' % (set_name, index))
            key_pem, leaf_pem = testpki.key_pem(key), testpki.pem(leaf)
            items.append({'crt': write(str(base) + '.crt', leaf_pem, 0o644), 'key': write(str(base) + '.key', key_pem, 0o600),
                          'chain': str(chain_file), 'thumbprint': testpki.thumbprint(leaf), 'pfx_password': password,
                          'pfx_b64': write(str(base) + '.pfx.b64', testpki.b64(testpki.pfx(host, key, leaf, [inter], password)).encode(), 0o600)})
        material[set_name] = items
    return material


# ---------------------------------------------------------------------------
# Running one playbook
# ---------------------------------------------------------------------------
class Runner:
    """Runs playbooks of either tool with the same environment, and measures each run."""

    def __init__(self, work, emulator, config):
        self.work = Path(work)
        self.emulator = emulator
        self.config = config
        self.seq = 0
        self.runs = []
        self.subscription = str(uuid.UUID(int=0x6265_6e63_6800_0000_0000_0000_0000_0001))

    def env(self, tool):
        base = {name: os.environ[name] for name in ('PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TERM') if os.environ.get(name)}
        venv = self.config['venv_' + tool]
        # The vault's production name is loopback in this namespace only; every other host meets the trap.
        no_proxy = 'localhost,127.0.0.1,::1,' + urlsplit(self.emulator.vault_url).hostname
        base.update({
            'PATH': '%s/bin:%s' % (venv, base.get('PATH', os.defpath)),
            'IDENTITY_ENDPOINT': self.emulator.identity_endpoint, 'IDENTITY_HEADER': self.emulator.identity_header,
            'REQUESTS_CA_BUNDLE': str(self.emulator.ca_file), 'SSL_CERT_FILE': str(self.emulator.ca_file),
            'NO_PROXY': no_proxy, 'no_proxy': no_proxy,
            # Any other host goes to a closed port (the namespace has no route anyway).
            'HTTPS_PROXY': PROXY_TRAP, 'https_proxy': PROXY_TRAP,
            'HTTP_PROXY': PROXY_TRAP, 'http_proxy': PROXY_TRAP,
            'IMDS_ENDPOINT': PROXY_TRAP, 'AZURE_POD_IDENTITY_AUTHORITY_HOST': PROXY_TRAP,
            'ANSIBLE_CALLBACK_PLUGINS': str(CALLBACKS), 'ANSIBLE_CALLBACKS_ENABLED': 'bench_timer',
            'ANSIBLE_PYTHON_INTERPRETER': '%s/bin/python' % venv,
            'ANSIBLE_LOCAL_TEMP': str(self.work / 'tmp' / tool), 'ANSIBLE_REMOTE_TEMP': str(self.work / 'tmp' / tool),
            'ANSIBLE_HOME': str(self.work / 'ansible-home' / tool),
            'ANSIBLE_COLLECTIONS_PATH': self.config['collections_' + tool],
            'ANSIBLE_NOCOLOR': '1', 'ANSIBLE_LOCALHOST_WARNING': 'false', 'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'false',
            'ANSIBLE_RETRY_FILES_ENABLED': 'false', 'ANSIBLE_HOST_KEY_CHECKING': 'false',
        })
        if tool == 'peer':
            # azure_rm_common wants a subscription; given, it never lists subscriptions (management plane).
            base['AZURE_SUBSCRIPTION_ID'] = self.subscription
        return base

    def _access_lines(self):
        try:
            with open(self.emulator.access_log, encoding='utf-8') as handle:
                return handle.read().splitlines()
        except FileNotFoundError:
            return []

    def _settled_access_lines(self):
        """The access log once it stopped growing (Tomcat logs a request just after its response)."""
        lines = self._access_lines()
        while True:
            time.sleep(0.3)
            again = self._access_lines()
            if len(again) == len(lines):
                return again
            lines = again

    def classify(self, lines):
        counts = {'token': 0, 'challenge': 0, 'authenticated': 0}
        calls = []
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            port, method, path, status = parts[0], parts[1], parts[2], parts[3]
            if port == str(self.emulator.token_port):
                kind = 'token'
            elif status == '401':
                kind = 'challenge'
            else:
                kind = 'authenticated'
            counts[kind] += 1
            calls.append('%s %s %s %s' % (kind[0].upper(), method, normalise_path(path), status))
        counts['vault'] = counts['challenge'] + counts['authenticated']
        return counts, calls

    def run(self, tool, scenario, playbook, extra_vars, inventory=None, forks=None, expect_changed=None, items=1):
        """One ansible-playbook run: wall seconds, per-task seconds, request counts; checks the outcome."""
        self.seq += 1
        tag = '%03d-%s-%s' % (self.seq, tool, scenario)
        timer = self.work / 'runs' / (tag + '.jsonl')
        timer.parent.mkdir(parents=True, exist_ok=True)
        vars_file = self.work / 'runs' / (tag + '.vars.json')
        vars_file.write_text(json.dumps(dict(extra_vars, bench_vault_url=self.emulator.vault_url)), encoding='utf-8')
        os.chmod(str(vars_file), 0o600)
        argv = ['%s/bin/ansible-playbook' % self.config['venv_' + tool], str(PLAYBOOKS / playbook), '-e', '@' + str(vars_file)]
        argv += ['-i', inventory] if inventory else ['-i', 'localhost,', '-c', 'local']
        if forks:
            argv += ['--forks', str(forks)]
        env = dict(self.env(tool), BENCH_TIMER_FILE=str(timer))
        before = len(self._settled_access_lines())
        started = time.monotonic()
        with open(self.work / 'runs' / (tag + '.log'), 'wb') as output:
            rc = subprocess.call(argv, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.work))
        wall = time.monotonic() - started
        lines = self._settled_access_lines()[before:]
        counts, calls = self.classify(lines)
        records = [json.loads(line) for line in timer.read_text(encoding='utf-8').splitlines()] if timer.exists() else []
        results = [r for r in records if r['event'] == 'result']
        task_seconds = max((r['seconds'] for r in results), default=None)
        problems = []
        if rc != 0:
            problems.append('ansible-playbook exited %d' % rc)
        failed = [r for r in results if r['failed']]
        if failed:
            problems.append('%d failed: %s' % (len(failed), failed[0].get('msg', '')))
        if expect_changed is not None and not failed:
            wrong = [r for r in results if r['changed'] != expect_changed]
            if wrong:
                problems.append('%d of %d results changed=%s, expected %s' % (len(wrong), len(results), not expect_changed, expect_changed))
        record = {'tag': tag, 'tool': tool, 'scenario': scenario, 'wall': wall, 'task': task_seconds, 'items': items,
                  'counts': counts, 'calls': calls, 'problems': problems, 'module_run': all(r['module_run'] for r in results) if results else None,
                  'results': len(results)}
        self.runs.append(record)
        log('%-28s %-5s wall %6.2fs task %6s  token %d challenge %d authenticated %d%s'
            % (scenario, tool, wall, '%.2fs' % task_seconds if task_seconds is not None else '-', counts['token'], counts['challenge'],
               counts['authenticated'], ('  PROBLEM: ' + '; '.join(problems)) if problems else ''))
        return record


VERSION_RE = re.compile(r'/[0-9a-f]{32}(?=/|$)')


def normalise_path(path):
    path = VERSION_RE.sub('/{version}', path)
    return re.sub(r'/(certificates|secrets|deletedcertificates)/[^/]+', r'/\1/{name}', path)


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------
def fleet_vars(tool, certs):
    return [{'certificate_name': 'fleet-%s-%04d' % (tool, i), 'certificate_path': c['crt'], 'private_key_path': c['key'],
             'chain_path': c['chain']} for i, c in enumerate(certs)]


def peer_inventory(work, certs, tag):
    path = Path(work) / ('inventory-%s.json' % tag)
    hosts = {'fleet-peer-%04d' % i: {'bench_name': 'fleet-peer-%04d' % i, 'bench_cert': c, 'ansible_connection': 'local'}
             for i, c in enumerate(certs)}
    path.write_text(json.dumps({'fleet': {'hosts': hosts}}), encoding='utf-8')
    os.chmod(str(path), 0o600)
    return str(path)


def order(index):
    """The two tools, in alternating order from one paired run to the next."""
    return TOOLS if index % 2 == 0 else tuple(reversed(TOOLS))


def run_scenarios(runner, material, sizes, has_list):
    runs = sizes['runs']
    fleet = sizes['fleet']
    a, b = material['single'][0], material['single'][1]
    deploy = {'ours': 'ours_deploy.yml', 'peer': 'peer_deploy.yml'}
    info = {'ours': 'ours_info.yml', 'peer': 'peer_info.yml'}

    log('floor: ansible-playbook + one ping task per tool environment')
    for i in range(runs):
        for tool in order(i):
            runner.run(tool, 'floor', 'floor.yml', {}, expect_changed=False)

    log('setup: one certificate per tool (also warms the page cache)')
    for tool in TOOLS:
        runner.run(tool, 'setup', deploy[tool], {'bench_name': 'single-' + tool, 'bench_cert': a}, expect_changed=True)

    for i in range(runs):
        for tool in order(i):
            runner.run(tool, 'first_import', deploy[tool], {'bench_name': 'first-%s-%d' % (tool, i), 'bench_cert': a}, expect_changed=True)
    for i in range(runs):
        for tool in order(i):
            runner.run(tool, 'noop', deploy[tool], {'bench_name': 'single-' + tool, 'bench_cert': a}, expect_changed=False)
    for i in range(runs):
        for tool in order(i):
            runner.run(tool, 'rotation', deploy[tool], {'bench_name': 'single-' + tool, 'bench_cert': b if i % 2 == 0 else a},
                       expect_changed=True)
    for i in range(runs):
        for tool in order(i):
            runner.run(tool, 'info', info[tool], {'bench_name': 'single-' + tool}, expect_changed=False)

    sets = (material['fleet_a'][:fleet], material['fleet_b'][:fleet])
    ours_fleet_book = 'ours_fleet_many.yml' if has_list else 'ours_fleet_loop.yml'

    def fleet_run(tool, scenario, certs, expect):
        if tool == 'ours':
            return runner.run(tool, scenario, ours_fleet_book, {'bench_fleet': fleet_vars('ours', certs)}, expect_changed=expect, items=len(certs))
        return runner.run(tool, scenario, 'peer_fleet.yml', {}, inventory=peer_inventory(runner.work, certs, scenario), forks=10,
                          expect_changed=expect, items=len(certs))

    fleet_run('ours', 'fleet_first_import', sets[0], True)
    # The peer's fleet certificates, under its own names, put there by certdeploy (one task instead of a
    # 100-host run): the same PKCS#12 content type the peer imports with, so its no-op sees its own policy.
    runner.run('ours', 'setup_peer_fleet', ours_fleet_book, {'bench_fleet': fleet_vars('peer', sets[0])}, expect_changed=True,
               items=len(sets[0]))
    for i in range(sizes['fleet_noop_runs']):
        for tool in order(i):
            fleet_run(tool, 'fleet_noop', sets[0], False)
    for i in range(sizes['fleet_rotation_runs']):
        for tool in order(i):
            fleet_run(tool, 'fleet_rotation', sets[(i + 1) % 2], True)

    if has_list:
        big = material['big'][:sizes['big']]
        items = [dict(item, certificate_name='big-%04d' % i) for i, item in enumerate(fleet_vars('ours', big))]
        runner.run('ours', 'big_first_import', 'ours_fleet_many.yml', {'bench_fleet': items}, expect_changed=True, items=len(big))
        for _i in range(runs):
            runner.run('ours', 'big_noop', 'ours_fleet_many.yml', {'bench_fleet': items}, expect_changed=False, items=len(big))
    else:
        log('big fleet: skipped, %s is not in the tree' % LIST_MODULE.relative_to(REPO))


# ---------------------------------------------------------------------------
# Inside the namespace
# ---------------------------------------------------------------------------
def _inside(args):
    outer = (os.environ.pop(INSIDE_MARK, '') or ' ').split(' ', 1)
    if len(outer) != 2 or not all(outer):
        raise namespace.NamespaceError('_inside is only reached through `bench.py run`')
    config = json.loads(Path(args.config).read_text(encoding='utf-8'))
    work = Path(args.work_dir)
    names = namespace.NameMap(VAULT_NAME)
    namespace.require_private_namespaces(outer)
    namespace.run_checked([namespace.system_tool('ip'), 'link', 'set', 'lo', 'up'])
    private = namespace.write_etc(work, names)
    namespace.bind_etc(private, outer)
    proof = namespace.prove_mapping(names, outer, private)
    log('namespace proven: %s; %s do not resolve; only lo; public addresses ENETUNREACH'
        % (', '.join('%s -> %s' % item for item in proof['resolved'].items()), ', '.join(proof['unresolved'])))
    tls = make_tls_material(work / 'tls', names)

    def stop_on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    sizes = QUICK if args.quick else FULL
    has_list = LIST_MODULE.exists()
    started = time.monotonic()
    material = make_material(work / 'pki', {'single': 2, 'fleet_a': sizes['fleet'], 'fleet_b': sizes['fleet'],
                                            'big': sizes['big'] if has_list else 0})
    log('material: %d certificates in %.1fs' % (sum(len(v) for v in material.values()), time.monotonic() - started))
    if args.quick:
        log('QUICK MODE: development numbers (fewer runs, smaller fleets), not the published ones')
    started = time.monotonic()
    emulator = lowkey_prodname.start(work / 'lowkey', names, tls)
    try:
        log('lowkey-vault up in %.1fs as %s (access log %s)' % (time.monotonic() - started, emulator.vault_url, emulator.access_log))
        runner = Runner(work, emulator, config)
        began = time.monotonic()
        run_scenarios(runner, material, sizes, has_list)
        results = {'quick': args.quick, 'sizes': sizes, 'has_list_module': has_list, 'action_plugin_in_tree': ACTION_PLUGIN.exists(),
                   'proof': proof, 'vault_url': emulator.vault_url, 'emulator': emulator.versions, 'runs': runner.runs,
                   'seconds': time.monotonic() - began, 'config': config,
                   'finished': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}
        Path(args.results).write_text(json.dumps(results, indent=1, sort_keys=True) + '\n', encoding='utf-8')
    finally:
        emulator.stop()
        strays = namespace.namespace_processes(exclude=(os.getpid(),))
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if strays:
        log('FAILED: processes left in the namespace: %s' % strays)
        return 1
    return 0


def _enter(args):
    if os.geteuid() != 0:
        raise EmulatorUnavailable('the benchmark builds a private mount + network namespace: it needs root')
    unshare = namespace.system_tool('unshare')
    ensure_lowkey_jar()  # resolve (build) outside, where the build may need its caches
    work = Path(args.work_dir).resolve()
    if work.exists():
        shutil.rmtree(str(work))
    work.mkdir(parents=True)
    os.chmod(str(work), 0o700)
    mnt, net = namespace.namespace_ids()
    env = dict(os.environ, **{INSIDE_MARK: '%s %s' % (mnt, net)})
    argv = [unshare, '--mount', '--net', '--propagation', 'private', '--', sys.executable, str(Path(__file__).resolve()), '_inside',
            '--work-dir', str(work), '--config', args.config, '--results', args.results] + (['--quick'] if args.quick else [])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(unshare, argv, env)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='action', required=True)
    for name, func in (('run', _enter), ('_inside', _inside)):
        cmd = sub.add_parser(name)
        cmd.add_argument('--work-dir', required=True)
        cmd.add_argument('--config', required=True, help='JSON written by run.sh: venvs, collection paths, install facts')
        cmd.add_argument('--results', required=True)
        cmd.add_argument('--quick', action='store_true')
        cmd.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EmulatorUnavailable as error:
        print('bench: unavailable: %s' % error, file=sys.stderr)
        return 3
    except HarnessError as error:
        print('bench: error: %s' % error, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
