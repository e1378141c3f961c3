# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One deploy_many task run in this process, with the client's own time broken down (bench.py's breakdown).

    python inprocess.py ARGS_JSON OUT_JSON [--profile PSTATS] [--lowkey-pid PID]

Runs ``azure_kv_certificate_deploy_many``'s ``main()`` through the same stand-in the action plugin uses
(plugins/module_utils/frontend/module_standin.py: ``run_main`` with an ``Invocation``), so the code path is the
task's, minus Ansible's own task machinery. ARGS_JSON holds the module arguments. Before the run every module
the task imports is imported (import cost is the playbook table's business, not a per-certificate one).

Timers (always on): the collection's functions below are wrapped, wherever the collection holds them (every
module of ``ansible_collections.certdeploy.cloud`` that imported the name gets the wrapper), and each call adds
the CPU time of its thread (``time.thread_time``) and its wall time to its part:

- ``parse``: reading the material into objects (``load_pem_material``, ``load_pfx_material``; the key's PEM
  parse is inside, with OpenSSL's RSA consistency check deferred);
- ``key check``: ``check_private_key`` (that deferred RSA check, before a key is sent);
- ``PFX build``: ``build_pkcs12`` and ``build_pem`` (the import payload);
- ``stored check``: ``stored_certificates`` and ``compare_stored`` (reading back the vault's backing secret);
- ``requests``: azure-core's ``RequestsTransport.send`` (TLS, HTTP, the wait for the answer): its thread CPU is
  the client's share of a request, its wall time includes the vault's.

The process's whole CPU time (``os.times``, user + system, all threads) and the task's wall time are measured
around ``main()``; what the named parts leave is the SDK's pipeline and policies, the engine and the thread pool.
With ``--lowkey-pid`` the emulator's CPU seconds over the same interval are read from /proc (utime + stime of
the JVM). With ``--profile`` the run is also profiled with cProfile and the stats written to PSTATS. Python
3.12's cProfile is one profiler per process (sys.monitoring) and keeps one call stack, which threads would
interleave, so a profiled run must be given ``max_concurrency: 1``: deploy_many then deploys in the calling
thread, one certificate after the other, and the profile's times add up. The profiler's own overhead inflates
every figure, so bench.py takes its timed figures from runs without it.

Nothing secret is written: the output holds times, counts, outcomes and read paths.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import importlib
import json
import os
import pkgutil
import sys
import threading
import time

PACKAGE = 'ansible_collections.certdeploy.cloud'
MODULE = PACKAGE + '.plugins.modules.azure_kv_certificate_deploy_many'
CERTIFICATE = PACKAGE + '.plugins.module_utils.material.certificate'
PARTS = {
    'parse': ('load_pem_material', 'load_pfx_material'),
    'key_check': ('check_private_key',),
    'pfx_build': ('build_pkcs12', 'build_pem'),
    'stored_check': ('stored_certificates', 'compare_stored'),
}
WARM = ('azure.identity', 'azure.keyvault.certificates', 'azure.core.exceptions', 'azure.core.rest',
        'azure.core.pipeline.transport')


class Timers:
    def __init__(self):
        self.lock = threading.Lock()
        self.cpu = collections.Counter()
        self.wall = collections.Counter()
        self.calls = collections.Counter()
        self.depth = threading.local()

    def wrap(self, part, func):
        timers = self

        def timed(*args, **kwargs):
            # A part called from inside the same part (build_pem from build_pkcs12, say) is counted once.
            inside = getattr(timers.depth, part, 0)
            setattr(timers.depth, part, inside + 1)
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                setattr(timers.depth, part, inside)
                if not inside:
                    spent_cpu, spent_wall = time.thread_time() - cpu, time.perf_counter() - wall
                    with timers.lock:
                        timers.cpu[part] += spent_cpu
                        timers.wall[part] += spent_wall
                        timers.calls[part] += 1
        timed.__wrapped__ = func
        timed.__name__ = getattr(func, '__name__', part)
        return timed


def import_collection():
    """Import every module of the collection's module_utils, so each name that will ever be called is in sys.modules."""
    utils = importlib.import_module(PACKAGE + '.plugins.module_utils')
    for info in pkgutil.walk_packages(utils.__path__, utils.__name__ + '.'):
        importlib.import_module(info.name)


def install_timers(timers):
    """Wrap PARTS in every collection module that holds them, and azure-core's transport; returns what was wrapped."""
    import_collection()
    certificate = importlib.import_module(CERTIFICATE)
    wrapped = {}
    for part, names in PARTS.items():
        for name in names:
            original = getattr(certificate, name, None)
            if original is None:
                continue
            replacement = timers.wrap(part, original)
            for module_name, module in list(sys.modules.items()):
                if module is None or not module_name.startswith(PACKAGE):
                    continue
                for attribute, value in list(vars(module).items()):
                    if value is original:
                        setattr(module, attribute, replacement)
                        wrapped.setdefault(name, []).append('%s.%s' % (module_name[len(PACKAGE) + 1:], attribute))
    from azure.core.pipeline.transport import RequestsTransport  # pylint: disable=import-outside-toplevel
    RequestsTransport.send = timers.wrap('requests', RequestsTransport.send)
    wrapped['RequestsTransport.send'] = ['azure.core.pipeline.transport']
    return wrapped


def jvm_cpu(pid):
    if not pid:
        return None
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii') as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError):
        return None


def summarise(result):
    certs = result.get('certificates') or []
    return {'failed': bool(result.get('failed')), 'msg': str(result.get('msg', ''))[:300] if result.get('failed') else '',
            'changed': sum(1 for c in certs if c.get('changed')), 'certificates': len(certs),
            'outcomes': dict(collections.Counter(str(c.get('outcome')) for c in certs)),
            'read_paths': dict(collections.Counter(str(c.get('read_path')) for c in certs if 'read_path' in c)),
            'error_codes': dict(collections.Counter(str(c.get('error_code')) for c in certs if c.get('error_code'))),
            'vaults': result.get('vaults')}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('args_json')
    parser.add_argument('out_json')
    parser.add_argument('--profile')
    parser.add_argument('--lowkey-pid', type=int)
    options = parser.parse_args()
    with open(options.args_json, encoding='utf-8') as handle:
        module_args = json.load(handle)
    for name in WARM:
        importlib.import_module(name)
    module = importlib.import_module(MODULE)
    standin = importlib.import_module(PACKAGE + '.plugins.module_utils.frontend.module_standin')
    timers = Timers()
    wrapped = install_timers(timers)
    invocation = standin.Invocation(module_name='certdeploy.cloud.azure_kv_certificate_deploy_many', args=module_args,
                                    inject_invocation=False)
    if options.profile and module_args.get('max_concurrency') != 1:
        parser.error('--profile needs max_concurrency 1 in the module arguments (one thread: see the docstring)')
    profile = cProfile.Profile() if options.profile else None
    jvm_before = jvm_cpu(options.lowkey_pid)
    cpu_before, wall_before = os.times(), time.perf_counter()
    if profile:
        profile.enable()
    result = standin.run_main(module.main, invocation)
    if profile:
        profile.disable()
        profile.dump_stats(options.profile)
    wall = time.perf_counter() - wall_before
    cpu_after = os.times()
    jvm_after = jvm_cpu(options.lowkey_pid)
    out = {'wall': wall, 'cpu_user': cpu_after.user - cpu_before.user, 'cpu_system': cpu_after.system - cpu_before.system,
           'cpu': (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system),
           'parts_cpu': dict(timers.cpu), 'parts_wall': dict(timers.wall), 'parts_calls': dict(timers.calls),
           'wrapped': wrapped, 'jvm_cpu': (jvm_after - jvm_before) if jvm_before is not None and jvm_after is not None else None,
           'profiled': bool(profile), 'result': summarise(result)}
    with open(options.out_json, 'w', encoding='utf-8') as handle:
        json.dump(out, handle, indent=1, sort_keys=True)
    return 1 if result.get('failed') else 0


if __name__ == '__main__':
    sys.exit(main())
