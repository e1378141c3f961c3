# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certdeploy.cloud against azure.azcollection on one vault under a production name, then certdeploy's own fleets.

Started by benchmarks/run.sh (which installs both tools and mitmproxy under .cache/bench/). As root:

1. ``unshare --mount --net`` re-executes this file in a private mount + network namespace with only
   ``lo``; emulators.namespace.write_etc/bind_etc give it its own /etc/hosts (``certdeploy-bench.vault.azure.net``
   and one ``cdb-<kind>-<size>.vault.azure.net`` per fleet -> 127.0.0.1, ``cdb-throttled.vault.azure.net`` ->
   127.0.0.3 (the throttling proxy), ``login.microsoftonline.com`` -> 127.0.0.2, where nothing listens), and
   namespace.prove_mapping proves that, and that a public address is unreachable, before any request.
2. lowkey_prodname.start serves lowkey-vault as those vaults with a test-CA certificate and a real vault's
   challenge (resource https://vault.azure.net).
3. Groups (``--only`` picks some): ``peers``, each scenario as ``ansible-playbook`` of each tool, paired and in
   alternating order; ``fleets``, certdeploy's EC and RSA fleets in vaults of their own, with the in-process
   breakdown (inprocess.py) and profiles; ``huge``, a 10,000-certificate no-op after seeding (seed.py);
   ``throttled``, a rotation through the throttling proxy (ThrottleProxy). The bench_timer callback times every
   task, a wrapper records each run's peak RSS, the emulator's access log counts the requests.
4. The results go to a JSON file and docs/performance.md (``--quick``/``--only``: a labelled development run).
   Certificate sets come from certsets.py's cache.

No request leaves the namespace; AZURE_*, IDENTITY_*, MSI_*, IMDS_* of the caller are not passed on.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import importlib.util
import json
import os
import pstats
import re
import shutil
import signal
import socket
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

import certsets
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
GROUPS = ('peers', 'fleets', 'huge', 'throttled')
# The throttled vault's name leads to the throttling proxy (mitmdump), which forwards to lowkey-vault on VAULT_IP.
PROXY_IP = '127.0.0.3'

# The peer's 100-host fleet costs 4-6 minutes a run on 2 cores, so its no-op gets 3 paired runs and its rotation
# 1 (not 5), and its certificates are created by certdeploy's list module (setup, not measured).
# fleets: (key kind, size) of the fleets measured in vaults of their own, certdeploy only. breakdown: the fleets
# whose cost is also broken down in-process (per certificate, so the 100s suffice: the 1,000s would double the
# benchmark's longest runs for the same per-certificate figures).
# huge: the no-op of this many certificates in one task. throttled: the rotation through the throttling proxy, of
# EC keys: the throttled run measures the pacing, and an RSA rotation's own client cost (the breakdown) would mix
# into it; throttle_rate is chosen well below the unthrottled rotation's pace of the same fleet (the report checks).
FULL = {'runs': 5, 'fleet_noop_runs': 3, 'fleet_rotation_runs': 1, 'fleet': 100, 'big': 1000, 'big_noop_runs': 3,
        'fleets': [('ec', 100), ('ec', 1000), ('rsa', 100), ('rsa', 1000)], 'breakdown': [('ec', 100), ('rsa', 100)],
        'profile': ('rsa', 100), 'profile_noop': ('rsa', 1000), 'huge': 10000, 'huge_noop_runs': 2, 'throttled': 1000,
        'throttled_kind': 'ec', 'throttle_rate': 20}
QUICK = {'runs': 2, 'fleet_noop_runs': 1, 'fleet_rotation_runs': 1, 'fleet': 10, 'big': 50, 'big_noop_runs': 2,
         'fleets': [('ec', 10), ('ec', 50), ('rsa', 10), ('rsa', 50)], 'breakdown': [('ec', 10), ('rsa', 10)],
         'profile': ('rsa', 10), 'profile_noop': ('rsa', 50), 'huge': 200, 'huge_noop_runs': 1, 'throttled': 50,
         'throttled_kind': 'ec', 'throttle_rate': 10}


def log(message):
    print('[bench] %s' % message, file=sys.stderr, flush=True)


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
        no_proxy = ','.join(['localhost', '127.0.0.1', '::1'] + [urlsplit(url).hostname for url in sorted(self.emulator.vault_urls.values())])
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
        counts = {'token': 0, 'challenge': 0, 'authenticated': 0, 'server_us': 0}
        calls = []
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            port, method, path, status = parts[0], parts[1], parts[2], parts[3]
            if len(parts) > 4 and parts[4].isdigit():
                counts['server_us'] += int(parts[4])
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

    def run(self, tool, scenario, playbook, extra_vars, inventory=None, forks=None, expect_changed=None, items=1, meta=None,
            keep_calls=True):
        """One ansible-playbook run: wall seconds, per-task seconds, request counts, peak RSS; checks the outcome.

        The run goes through RUSAGE_WRAPPER, a fresh process whose RUSAGE_CHILDREN is then the largest process of
        this ansible-playbook run alone (the controller or the worker that ran the task); the controller's own
        peak comes from the bench_timer callback.
        """
        self.seq += 1
        tag = '%03d-%s-%s' % (self.seq, tool, scenario)
        timer = self.work / 'runs' / (tag + '.jsonl')
        timer.parent.mkdir(parents=True, exist_ok=True)
        vars_file = self.work / 'runs' / (tag + '.vars.json')
        vars_file.write_text(json.dumps(dict({'bench_vault_url': self.emulator.vault_url}, **extra_vars)), encoding='utf-8')
        os.chmod(str(vars_file), 0o600)
        rusage = self.work / 'runs' / (tag + '.rusage')
        argv = [sys.executable, '-c', RUSAGE_WRAPPER, str(rusage),
                '%s/bin/ansible-playbook' % self.config['venv_' + tool], str(PLAYBOOKS / playbook), '-e', '@' + str(vars_file)]
        argv += ['-i', inventory] if inventory else ['-i', 'localhost,', '-c', 'local']
        if forks:
            argv += ['--forks', str(forks)]
        env = dict(self.env(tool), BENCH_TIMER_FILE=str(timer))
        before = len(self._settled_access_lines())
        started = time.monotonic()
        with open(self.work / 'runs' / (tag + '.log'), 'wb') as output:
            rc = subprocess.call(argv, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.work),
                                 timeout=3600)
        wall = time.monotonic() - started
        lines = self._settled_access_lines()[before:]
        counts, calls = self.classify(lines)
        records = [json.loads(line) for line in timer.read_text(encoding='utf-8').splitlines()] if timer.exists() else []
        results = [r for r in records if r['event'] == 'result']
        stats = next((r for r in records if r['event'] == 'stats'), {})
        measured = json.loads(rusage.read_text(encoding='ascii')) if rusage.exists() else {}
        largest = measured.get('maxrss_kib')
        wall = measured.get('wall', wall)  # without the wrapper's own start
        fleet = next((r['fleet'] for r in results if r.get('fleet')), None)
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
            if fleet and fleet['changed'] != (fleet['certificates'] if expect_changed else 0):
                problems.append('%d of %d certificates changed, expected %s'
                                % (fleet['changed'], fleet['certificates'], 'all' if expect_changed else 'none'))
        record = {'tag': tag, 'tool': tool, 'scenario': scenario, 'wall': wall, 'task': task_seconds, 'items': items,
                  'counts': counts, 'calls': calls if keep_calls else calls[:40], 'problems': problems,
                  'module_run': all(r['module_run'] for r in results) if results else None,
                  'results': len(results), 'fleet': fleet, 'controller_maxrss_kib': stats.get('controller_maxrss_kib'),
                  'largest_maxrss_kib': largest}
        record.update(meta or {})
        self.runs.append(record)
        log('%-28s %-5s wall %6.2fs task %6s  token %d challenge %d authenticated %d  emulator %.2fs  rss %s MiB%s'
            % (scenario, tool, wall, '%.2fs' % task_seconds if task_seconds is not None else '-', counts['token'], counts['challenge'],
               counts['authenticated'], counts['server_us'] / 1e6, '%.0f' % (largest / 1024) if largest else '-',
               ('  PROBLEM: ' + '; '.join(problems)) if problems else ''))
        return record

    def versions(self, vault_url):
        """{certificate name: number of versions} of a vault (vault_versions.py, the SDK)."""
        out = self.work / 'runs' / ('versions-%s.json' % urlsplit(vault_url).hostname.split('.')[0])
        subprocess.run([sys.executable, str(HERE / 'vault_versions.py'), vault_url, str(out)], env=self.env('ours'), check=True,
                       stdin=subprocess.DEVNULL, cwd=str(self.work))
        return json.loads(out.read_text(encoding='utf-8'))

    def seed(self, scenario, vault_url, certificates, meta, threads=10):
        """Set-up: one import request per certificate, built by the collection's own code (seed.py); timed."""
        self.seq += 1
        base = self.work / 'runs' / ('%03d-seed-%s' % (self.seq, scenario))
        base.parent.mkdir(parents=True, exist_ok=True)
        args_file = Path(str(base) + '.args.json')
        args_file.write_text(json.dumps({'vault_url': vault_url, 'api_version': '7.6', 'credential_mode': 'managed_identity',
                                         'certificates': certificates}), encoding='utf-8')
        os.chmod(str(args_file), 0o600)
        out_file = Path(str(base) + '.out.json')
        env = dict(self.env('ours'), PYTHONPATH=self.config['collections_ours'])
        before = len(self._settled_access_lines())
        jvm_before = _jvm_cpu(self.emulator.pid)
        started = time.monotonic()
        with open(str(base) + '.log', 'wb') as output:
            rc = subprocess.call([sys.executable, str(HERE / 'seed.py'), str(args_file), str(out_file), '--threads', str(threads)],
                                 env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.work),
                                 timeout=3600)
        wall = time.monotonic() - started
        jvm = _jvm_cpu(self.emulator.pid)
        counts, _calls = self.classify(self._settled_access_lines()[before:])
        out = json.loads(out_file.read_text(encoding='utf-8')) if out_file.exists() else {}
        problems = []
        if rc != 0 or not out:
            tail = Path(str(base) + '.log').read_text(encoding='utf-8', errors='replace')[-500:]
            problems.append('seed.py exited %d: %s' % (rc, out.get('failures') or tail))
        record = dict({'tag': base.name, 'tool': 'ours', 'scenario': scenario, 'seed': True, 'process_wall': wall, 'counts': counts,
                       'items': len(certificates), 'problems': problems, 'out': out, 'threads': threads,
                       'jvm_cpu': (jvm - jvm_before) if jvm is not None and jvm_before is not None else None}, **meta)
        self.runs.append(record)
        log('%-28s seeded %d in %.1fs (%d threads, %d requests, emulator cpu %s)%s' % (
            scenario, len(certificates), out.get('seconds', wall), threads, counts['challenge'] + counts['authenticated'],
            '%.1fs' % record['jvm_cpu'] if record['jvm_cpu'] is not None else '-', ('  PROBLEM: ' + '; '.join(problems)) if problems else ''))
        return record

    def inprocess(self, scenario, vault_url, certificates, expect_changed, meta, profile=None, concurrency=None):
        """deploy_many's main() in one process with the client's time broken down (inprocess.py)."""
        self.seq += 1
        tag = '%03d-inprocess-%s' % (self.seq, scenario)
        base = self.work / 'runs' / tag
        base.parent.mkdir(parents=True, exist_ok=True)
        module_args = {'vault_url': vault_url, 'api_version': '7.6', 'credential_mode': 'managed_identity', 'certificates': certificates}
        if concurrency:
            module_args['max_concurrency'] = concurrency
        args_file = Path(str(base) + '.args.json')
        args_file.write_text(json.dumps(module_args), encoding='utf-8')
        os.chmod(str(args_file), 0o600)
        out_file = Path(str(base) + '.out.json')
        env = dict(self.env('ours'), PYTHONPATH=self.config['collections_ours'])
        argv = [sys.executable, str(HERE / 'inprocess.py'), str(args_file), str(out_file), '--lowkey-pid', str(self.emulator.pid)]
        if profile:
            argv += ['--profile', str(profile)]
        before = len(self._settled_access_lines())
        started = time.monotonic()
        with open(str(base) + '.log', 'wb') as output:
            rc = subprocess.call(argv, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.work),
                                 timeout=3600)
        wall = time.monotonic() - started
        counts, _calls = self.classify(self._settled_access_lines()[before:])
        problems = []
        out = json.loads(out_file.read_text(encoding='utf-8')) if out_file.exists() else None
        if out is None:
            problems.append('inprocess.py exited %d without a result: %s' % (rc, Path(str(base) + '.log').read_text(encoding='utf-8', errors='replace')[-500:]))
        else:
            result = out['result']
            if result['failed'] or result['error_codes']:
                problems.append('failed: %s %s' % (result['msg'], result['error_codes']))
            elif expect_changed is not None and result['changed'] != (result['certificates'] if expect_changed else 0):
                problems.append('%d of %d certificates changed' % (result['changed'], result['certificates']))
        record = dict({'tag': tag, 'tool': 'ours', 'scenario': scenario, 'inprocess': True, 'process_wall': wall, 'counts': counts,
                       'items': len(certificates), 'problems': problems, 'out': out, 'profile': str(profile) if profile else None},
                      **meta)
        self.runs.append(record)
        if out:
            log('%-28s in-process wall %6.2fs  cpu %.2fs  emulator cpu %s  requests %d  %s%s' % (
                scenario, out['wall'], out['cpu'], '%.2fs' % out['jvm_cpu'] if out['jvm_cpu'] is not None else '-',
                counts['challenge'] + counts['authenticated'],
                ' '.join('%s %.2fs' % (k, v) for k, v in sorted(out['parts_cpu'].items())),
                ('  PROBLEM: ' + '; '.join(problems)) if problems else ''))
        else:
            log('%-28s in-process PROBLEM: %s' % (scenario, '; '.join(problems)))
        return record


# Runs argv[2:] and writes to argv[1] its wall time and the peak RSS (KiB) of the largest process it waited for,
# directly or through its own children (the ansible-playbook controller and its workers); exits with its status.
RUSAGE_WRAPPER = '''
import json, resource, subprocess, sys, time
started = time.monotonic()
rc = subprocess.call(sys.argv[2:])
wall = time.monotonic() - started
with open(sys.argv[1], "w", encoding="ascii") as handle:
    json.dump({"wall": wall, "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, handle)
sys.exit(rc)
'''


def _jvm_cpu(pid):
    """CPU seconds (user + system) a process has used so far, from /proc; None when it cannot be read."""
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii') as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError, TypeError):
        return None


VERSION_RE = re.compile(r'/[0-9a-f]{32}(?=/|$)')


def normalise_path(path):
    path = VERSION_RE.sub('/{version}', path)
    return re.sub(r'/(certificates|secrets|deletedcertificates)/[^/]+', r'/\1/{name}', path)


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------
def fleet_vars(prefix, certs):
    return [{'certificate_name': '%s-%05d' % (prefix, i), 'certificate_path': c['crt'], 'private_key_path': c['key'],
             'chain_path': c['chain']} for i, c in enumerate(certs)]


def peer_inventory(work, certs, tag):
    path = Path(work) / ('inventory-%s.json' % tag)
    hosts = {'fleet-peer-%05d' % i: {'bench_name': 'fleet-peer-%05d' % i, 'bench_cert': c, 'ansible_connection': 'local'}
             for i, c in enumerate(certs)}
    path.write_text(json.dumps({'fleet': {'hosts': hosts}}), encoding='utf-8')
    os.chmod(str(path), 0o600)
    return str(path)


def order(index):
    """The two tools, in alternating order from one paired run to the next."""
    return TOOLS if index % 2 == 0 else tuple(reversed(TOOLS))


def has_option(name):
    """Whether deploy_many in this tree documents the option (the benchmark runs on older trees too)."""
    return bool(re.search(r'^  %s:$' % re.escape(name), LIST_MODULE.read_text(encoding='utf-8'), re.M)) if LIST_MODULE.exists() else False


def fleet_vault(kind, size):
    return 'cdb-%s-%d' % (kind, size)


def run_peers(runner, material, sizes, has_list):
    """certdeploy.cloud against azure.azcollection: single tasks and a fleet of `fleet` EC certificates."""
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
            return runner.run(tool, scenario, ours_fleet_book, {'bench_fleet': fleet_vars('fleet-ours', certs)}, expect_changed=expect,
                              items=len(certs))
        return runner.run(tool, scenario, 'peer_fleet.yml', {}, inventory=peer_inventory(runner.work, certs, scenario), forks=10,
                          expect_changed=expect, items=len(certs))

    fleet_run('ours', 'fleet_first_import', sets[0], True)
    # The peer's fleet certificates, under its own names, put there by certdeploy (one task instead of a
    # 100-host run): the same PKCS#12 content type the peer imports with, so its no-op sees its own policy.
    runner.run('ours', 'setup_peer_fleet', ours_fleet_book, {'bench_fleet': fleet_vars('fleet-peer', sets[0])}, expect_changed=True,
               items=len(sets[0]))
    for i in range(sizes['fleet_noop_runs']):
        for tool in order(i):
            fleet_run(tool, 'fleet_noop', sets[0], False)
    for i in range(sizes['fleet_rotation_runs']):
        for tool in order(i):
            fleet_run(tool, 'fleet_rotation', sets[(i + 1) % 2], True)


def run_fleets(runner, fleets, sizes, profiles_dir):
    """certdeploy's fleets in vaults of their own, per key kind and size: first import, no-op, rotation.

    Each fleet's vault holds that fleet only (V = its size), so a no-op's request count can be set against
    ceil(V/25) + 3. Where the tree has deploy_many's vault_read, one more no-op reads each certificate
    (vault_read: each), the per-certificate path the list replaces. For the fleets in sizes['breakdown'] the same
    three operations then run in-process (inprocess.py) with the client's time broken down: a no-op of set B, a
    rotation back to set A, and a first import of set A under new names. sizes['profile'] also gets a rotation and a
    no-op under cProfile, one certificate at a time (max_concurrency 1: the profiler follows one thread).
    """
    vault_read = has_option('vault_read')
    for kind, size in sizes['fleets']:
        set_a, set_b = fleets[(kind, size)]
        vault_url = 'https://%s.vault.azure.net' % fleet_vault(kind, size)
        meta = {'kind': kind, 'size': size, 'vault_url': vault_url}
        names_a, names_b = fleet_vars('f', set_a), fleet_vars('f', set_b)
        common = {'bench_vault_url': vault_url}

        def fleet_run(op, items, expect, **extra):
            return runner.run('ours', '%s_%d_%s' % (kind, size, op), 'ours_fleet_many.yml', dict(common, bench_fleet=items, **extra),
                              expect_changed=expect, items=len(items), meta=dict(meta, op=op, vault_certificates=size),
                              keep_calls=False)
        fleet_run('first_import', names_a, True)
        for _i in range(sizes['big_noop_runs'] if size >= sizes['big'] else sizes['runs']):
            fleet_run('noop', names_a, False)
        if vault_read:
            fleet_run('noop_each', names_a, False, bench_vault_read='each')
        fleet_run('rotation', names_b, True)
        in_vault = size
        if (kind, size) in [tuple(x) for x in sizes['breakdown']]:
            bmeta = dict(meta, breakdown=True)
            runner.inprocess('%s_%d_noop_inprocess' % (kind, size), vault_url, names_b, False, dict(bmeta, op='noop', vault_certificates=size))
            runner.inprocess('%s_%d_rotation_inprocess' % (kind, size), vault_url, names_a, True,
                             dict(bmeta, op='rotation', vault_certificates=size))
            runner.inprocess('%s_%d_first_import_inprocess' % (kind, size), vault_url, fleet_vars('p', set_a), True,
                             dict(bmeta, op='first_import', vault_certificates=size))
            in_vault += size
        if (kind, size) == tuple(sizes.get('profile_noop') or ()):
            # The fleet holds set B after the playbook's rotation (set A again after the breakdown's rotation back).
            current = names_a if (kind, size) in [tuple(x) for x in sizes['breakdown']] else names_b
            runner.inprocess('%s_%d_noop_profiled' % (kind, size), vault_url, current, False,
                             dict(meta, profiled=True, op='noop', vault_certificates=in_vault),
                             profile=profiles_dir / ('%s-%d-noop.pstats' % (kind, size)), concurrency=1)
        if (kind, size) == tuple(sizes['profile']):
            pmeta = dict(meta, profiled=True)
            # The fleet holds set A after the breakdown's rotation back, set B after the playbook's rotation.
            other = names_b if (kind, size) in [tuple(x) for x in sizes['breakdown']] else names_a
            runner.inprocess('%s_%d_rotation_profiled' % (kind, size), vault_url, other, True,
                             dict(pmeta, op='rotation', vault_certificates=in_vault), profile=profiles_dir / ('%s-%d-rotation.pstats' % (kind, size)),
                             concurrency=1)
            runner.inprocess('%s_%d_noop_profiled' % (kind, size), vault_url, other, False,
                             dict(pmeta, op='noop', vault_certificates=in_vault), profile=profiles_dir / ('%s-%d-noop.pstats' % (kind, size)),
                             concurrency=1)


def run_huge(runner, items, sizes, profiles_dir, seed_concurrency=10):
    """The no-op of sizes['huge'] certificates in one task, in a vault of its own; the seeding is timed and reported."""
    size = len(items)
    vault_url = 'https://%s.vault.azure.net' % fleet_vault('huge', size)
    names = fleet_vars('h', items)
    meta = {'kind': 'rsa', 'size': size, 'vault_url': vault_url, 'vault_certificates': size}
    log('huge: seeding %d certificates (seed.py: one import each, %d threads)' % (size, seed_concurrency))
    runner.seed('huge_%d_seed' % size, vault_url, names, dict(meta, op='seed'), threads=seed_concurrency)
    for _i in range(sizes['huge_noop_runs']):
        runner.run('ours', 'huge_%d_noop' % size, 'ours_fleet_many.yml', {'bench_vault_url': vault_url, 'bench_fleet': names},
                   expect_changed=False, items=size, meta=dict(meta, op='noop'), keep_calls=False)
    runner.inprocess('huge_%d_noop_profiled' % size, vault_url, names, False, dict(meta, op='noop', profiled=True),
                     profile=profiles_dir / ('rsa-%d-noop.pstats' % size), concurrency=1)


class ThrottleProxy:
    """The throttling test proxy (tests/integration/faults/throttle_addon.py under mitmdump) as the throttled vault.

    Listens on PROXY_IP:443, where the namespace's /etc/hosts sends the throttled vault's production name, with
    the run's test-CA certificate for *.vault.azure.net (the client verifies it as it verifies the emulator's), and
    forwards to lowkey-vault on 127.0.0.1:443 keeping the Host header (lowkey-vault tells its vaults apart by it).
    One token bucket for that vault: ``rate`` requests a second, bursts of ``capacity`` (default: the rate); the
    rest are answered 429 with Retry-After by the addon. Started with a rate no client reaches, it passes
    everything (set-up and the check that counts versions); the measured run gets its own start and log.
    """

    PASS = 1000000

    def __init__(self, work, tls, mitmdump, addon):
        self.dir = Path(work) / 'throttle'
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(str(self.dir), 0o700)
        self.mitmdump, self.addon = mitmdump, addon
        self.cert = self.dir / 'vault-cert-and-key.pem'
        fd = os.open(str(self.cert), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(Path(tls['vault_key']).read_bytes() + Path(tls['vault_cert']).read_bytes())
        self.log_file = self.dir / 'requests.jsonl'
        self.record = None
        self.rate = self.capacity = None
        spec = importlib.util.spec_from_file_location('throttle_bucket', str(Path(addon).with_name('throttle_bucket.py')))
        self.bucket = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.bucket)

    def start(self, rate, capacity=None):
        from emulators.net import child_environment  # pylint: disable=import-outside-toplevel
        from emulators.processes import spawn, wait_until  # pylint: disable=import-outside-toplevel
        self.rate, self.capacity = rate, capacity or rate
        self.log_file.write_text('', encoding='utf-8')
        argv = [self.mitmdump, '--quiet', '--mode', 'reverse:https://%s:443@%s:443' % (namespace.VAULT_IP, PROXY_IP),
                '--set', 'confdir=%s' % self.dir, '--set', 'connection_strategy=lazy', '--set', 'ssl_insecure=true',
                '--set', 'keep_host_header=true', '--certs', '*=%s' % self.cert,
                '-s', str(self.addon), '--set', 'throttle_log=%s' % self.log_file, '--set', 'throttle_rate=%s' % rate,
                '--set', 'throttle_capacity=%s' % (capacity or ''), '--set', 'throttle_owner_pid=%d' % os.getpid()]
        self.record = spawn('mitmdump', argv, self.dir / 'mitmdump.log', env=child_environment(), cwd=str(self.dir))

        def listening():
            try:
                socket.create_connection((PROXY_IP, 443), 1).close()
                return True
            except OSError:
                return False
        wait_until(listening, 'the throttling proxy on %s:443' % PROXY_IP, 60, [self.record])

    def stop(self):
        from emulators.processes import terminate  # pylint: disable=import-outside-toplevel
        if self.record is not None:
            terminate([self.record])
            self.record = None

    def summary(self):
        rows = [json.loads(line) for line in self.log_file.read_text(encoding='utf-8').splitlines() if line.strip()]
        vault = [r for r in rows if r['kind'] == 'vault']
        admitted = sum(1 for r in vault if r['admitted'])
        out = {'requests': len(vault), 'admitted': admitted, 'throttled': len(vault) - admitted,
               'challenges': sum(1 for r in vault if not r['auth']),
               'span': (max(r['t'] for r in vault) - min(r['t'] for r in vault)) if vault else None,
               'statuses': dict(collections.Counter(str(r['status']) for r in vault)),
               'rate': self.rate, 'capacity': self.capacity,
               'minimum_seconds': self.bucket.minimum_seconds(admitted, self.rate, self.capacity)}
        return out


def run_throttled(runner, proxy, sets, sizes, rate):
    """A rotation of sizes['throttled'] certificates through the throttling proxy at ``rate`` requests a second.

    Set-up (not measured): set A imported through the proxy passing everything. Measured: deploy_many rotating
    every certificate to set B, as ansible-playbook, default options. Checked: nothing failed, every certificate
    changed, and every certificate has exactly two versions afterwards (rotated exactly once: counted with the
    SDK through the proxy passing everything again).
    """
    set_a, set_b = sets
    size = len(set_a)
    vault_url = 'https://cdb-throttled.vault.azure.net'
    meta = {'kind': sizes['throttled_kind'], 'size': size, 'vault_url': vault_url, 'vault_certificates': size}
    proxy.start(ThrottleProxy.PASS)
    try:
        runner.seed('throttled_%d_seed' % size, vault_url, fleet_vars('t', set_a), dict(meta, op='seed'))
    finally:
        proxy.stop()
    proxy.start(rate)
    try:
        record = runner.run('ours', 'throttled_%d_rotation' % size, 'ours_fleet_many.yml',
                            {'bench_vault_url': vault_url, 'bench_fleet': fleet_vars('t', set_b)}, expect_changed=True, items=size,
                            meta=dict(meta, op='rotation'), keep_calls=False)
    finally:
        proxy.stop()
    record['throttle'] = proxy.summary()
    proxy.start(ThrottleProxy.PASS)
    try:
        versions = runner.versions(vault_url)
    finally:
        proxy.stop()
    histogram = dict(collections.Counter(str(n) for n in versions.values()))
    record['throttle'].update(versions=histogram, certificates_seen=len(versions),
                              exactly_once=len(versions) == size and set(versions.values()) == {2})
    if not record['throttle']['exactly_once']:
        record['problems'].append('versions per certificate after one rotation: %s (expected %d certificates with 2 each)'
                                  % (histogram, size))
    minimum = record['throttle']['minimum_seconds']
    log('throttled: %(requests)d vault requests, %(admitted)d admitted, %(throttled)d answered 429; ' % record['throttle']
        + 'task %.1fs against a minimum of %.1fs (%s); versions %s' % (
            record['task'] or 0, minimum, ('%.2fx' % (record['task'] / minimum)) if record['task'] and minimum else '-', histogram))
    return record


# ---------------------------------------------------------------------------
# Inside the namespace
# ---------------------------------------------------------------------------
def _inside(args):
    outer = (os.environ.pop(INSIDE_MARK, '') or ' ').split(' ', 1)
    if len(outer) != 2 or not all(outer):
        raise namespace.NamespaceError('_inside is only reached through `bench.py run`')
    config = json.loads(Path(args.config).read_text(encoding='utf-8'))
    work = Path(args.work_dir)
    sizes = dict(QUICK if args.quick else FULL)
    if os.environ.get('CERTDEPLOY_BENCH_FLEETS'):
        # Development: only these fleets (kind:size,...), e.g. rsa:1000; breakdown and profile only where listed.
        wanted = [(k, int(n)) for k, n in (item.split(':') for item in os.environ['CERTDEPLOY_BENCH_FLEETS'].split(','))]
        sizes['fleets'] = wanted
        sizes['breakdown'] = [f for f in sizes['breakdown'] if tuple(f) in wanted]
    groups = [g for g in (args.only.split(',') if args.only else GROUPS) if g]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise HarnessError('unknown groups %s (known: %s)' % (sorted(unknown), ', '.join(GROUPS)))
    if 'huge' in groups and not sizes['huge']:
        groups.remove('huge')
    if 'throttled' in groups and not config.get('mitmdump'):
        log('throttled: skipped, mitmdump is not installed (run.sh installs it)')
        groups.remove('throttled')
    names = namespace.NameMap(VAULT_NAME)
    vault_hosts = []
    if 'fleets' in groups:
        vault_hosts += [fleet_vault(kind, size) + '.vault.azure.net' for kind, size in sizes['fleets']]
    if 'huge' in groups:
        vault_hosts.append(fleet_vault('huge', sizes['huge']) + '.vault.azure.net')
    for host in vault_hosts:
        names.mapping[host] = namespace.VAULT_IP
    if 'throttled' in groups:
        names.mapping['cdb-throttled.vault.azure.net'] = PROXY_IP
        vault_hosts.append('cdb-throttled.vault.azure.net')
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
    has_list = LIST_MODULE.exists()
    cache = Path(args.material_cache)
    started = time.monotonic()
    made = {}

    def certs(kind, set_name, count, pfx=False):
        items, facts = certsets.certificate_set(cache, kind, set_name, count, pfx=pfx, log=log)
        made['%s-%s-%d' % (kind, set_name, count)] = facts
        return items
    material = {}
    if 'peers' in groups:
        material = {'single': certs('ec', 'single', 2, pfx=True), 'fleet_a': certs('ec', 'fleet-a', sizes['fleet'], pfx=True),
                    'fleet_b': certs('ec', 'fleet-b', sizes['fleet'], pfx=True)}
    fleets = {}
    if 'fleets' in groups and has_list:
        for kind, size in sizes['fleets']:
            fleets[(kind, size)] = (certs(kind, 'a', size), certs(kind, 'b', size))
    huge = certs('rsa', 'huge', sizes['huge']) if 'huge' in groups and has_list else None
    throttled = None
    if 'throttled' in groups and has_list:
        kind, size = sizes['throttled_kind'], sizes['throttled']
        throttled = (certs(kind, 'a', size), certs(kind, 'b', size)) if (kind, size) in fleets else (certs(kind, 'ta', size), certs(kind, 'tb', size))
    log('material: %s in %.1fs' % (', '.join('%s %s' % (k, 'cached' if v['cached'] else 'made') for k, v in sorted(made.items())),
                                   time.monotonic() - started))
    if args.quick:
        log('QUICK MODE: development numbers (fewer runs, smaller fleets), not the published ones')
    started = time.monotonic()
    emulator = lowkey_prodname.start(work / 'lowkey', names, tls,
                                     vault_hosts=[h for h in vault_hosts if names.mapping[h] == namespace.VAULT_IP] +
                                     (['cdb-throttled.vault.azure.net'] if throttled else []))
    proxy = None
    try:
        log('lowkey-vault up in %.1fs as %s (access log %s)' % (time.monotonic() - started, emulator.vault_url, emulator.access_log))
        runner = Runner(work, emulator, config)
        began = time.monotonic()
        timings = {}
        if 'peers' in groups:
            step = time.monotonic()
            run_peers(runner, material, sizes, has_list)
            timings['peers'] = time.monotonic() - step
        profiles_dir = work / 'profiles'
        profiles_dir.mkdir(exist_ok=True)
        if fleets:
            step = time.monotonic()
            run_fleets(runner, fleets, sizes, profiles_dir)
            timings['fleets'] = time.monotonic() - step
        if huge:
            step = time.monotonic()
            run_huge(runner, huge, sizes, profiles_dir)
            timings['huge'] = time.monotonic() - step
        if throttled:
            step = time.monotonic()
            proxy = ThrottleProxy(work, tls, config['mitmdump'], config['throttle_addon'])
            run_throttled(runner, proxy, throttled, sizes, sizes['throttle_rate'])
            timings['throttled'] = time.monotonic() - step
        profiles = profile_lines(profiles_dir)
        results = {'quick': args.quick, 'sizes': sizes, 'groups': groups, 'has_list_module': has_list,
                   'action_plugin_in_tree': ACTION_PLUGIN.exists(), 'vault_read_option': has_option('vault_read'),
                   'proof': proof, 'vault_url': emulator.vault_url, 'emulator': dict(emulator.versions, java_opts=emulator.java_opts),
                   'runs': runner.runs, 'seconds': time.monotonic() - began, 'timings': timings, 'material': made,
                   'profiles': profiles, 'config': config,
                   'finished': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}
        Path(args.results).write_text(json.dumps(results, indent=1, sort_keys=True) + '\n', encoding='utf-8')
    finally:
        if proxy is not None:
            proxy.stop()
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


PRODUCT = 'ansible_collections/certdeploy/cloud/plugins/'


def profile_lines(directory, limit=40):
    """The top functions of each cProfile run by own (tottime) and cumulative time, the collection's marked.

    Each row also names its direct callers (the three that spent the most in it), so a library call that costs the
    time (an OpenSSL parse, say) shows the line of the collection that made it.
    """
    def name(key):
        filename, line, function = key
        return '%s:%d %s' % (filename.split(PRODUCT, 1)[1] if PRODUCT in filename else _short(filename), line, function)
    out = {}
    for path in sorted(Path(directory).glob('*.pstats')):
        stats = pstats.Stats(str(path))
        rows = []
        for key, (calls, _primitive, tottime, cumtime, callers) in stats.stats.items():
            filename, line, function = key
            top_callers = sorted(callers.items(), key=lambda item: -item[1][3])[:3]
            rows.append({'file': filename.split(PRODUCT, 1)[1] if PRODUCT in filename else _short(filename), 'line': line,
                         'function': function, 'calls': calls, 'tottime': tottime, 'cumtime': cumtime, 'product': PRODUCT in filename,
                         'callers': ['%s (%.3f s)' % (name(k), v[3]) for k, v in top_callers]})
        out[path.stem] = {
            'total': stats.total_tt,
            'tottime': sorted(rows, key=lambda r: -r['tottime'])[:limit],
            'product_cumtime': sorted((r for r in rows if r['product']), key=lambda r: -r['cumtime'])[:limit],
            'product_tottime': sorted((r for r in rows if r['product']), key=lambda r: -r['tottime'])[:limit],
        }
    return out


def _short(filename):
    for marker in ('site-packages/', 'lib/python3'):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


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
            '--work-dir', str(work), '--config', args.config, '--results', args.results, '--material-cache', args.material_cache,
            '--only', args.only or ''] + (['--quick'] if args.quick else [])
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
        cmd.add_argument('--material-cache', required=True, help='where certsets.py keeps the certificate sets between runs')
        cmd.add_argument('--only', help='comma-separated groups to run (%s); default: all' % ', '.join(GROUPS))
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
