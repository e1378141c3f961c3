# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The facts a benchmark report states: machine, versions, install sizes, import cost of each module.

Prints one JSON object (run.sh stores it as the benchmark's config). Runs outside the namespace, offline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path

# What one module process of each tool imports before it sends its first request.
IMPORT_PROBE = r'''
import sys, time
started = time.perf_counter()
import importlib
importlib.import_module(sys.argv[1])
for name in sys.argv[2:]:
    importlib.import_module(name)
print('%.3f %d' % (time.perf_counter() - started, len(sys.modules)))
'''
PROBES = {
    # The module's own imports, then what its lazy SDK loader (targets/azure_kv/sdk.py) imports.
    'ours': ['ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.deploy',
             'azure.identity', 'azure.keyvault.certificates', 'azure.core.exceptions', 'azure.core.rest'],
    'peer': ['ansible_collections.azure.azcollection.plugins.modules.azure_rm_keyvaultcertificate'],
}


def tree_size(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def cpu_model():
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def mem_total():
    try:
        with open('/proc/meminfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('MemTotal:'):
                    return '%.1f GiB' % (int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return 'unknown'


def output(argv, env=None):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env).stdout.strip()


def pip_versions(venv, names):
    listed = json.loads(output([os.path.join(venv, 'bin', 'python'), '-m', 'pip', 'list', '--format', 'json', '--disable-pip-version-check']))
    found = {item['name'].lower(): item['version'] for item in listed}
    return {name: found.get(name) for name in names}, len(listed)


def import_cost(venv, modules, collections, runs=5):
    """Median seconds and module count of importing what one module process needs (cold interpreter each time)."""
    env = dict(os.environ, PYTHONPATH=collections, ANSIBLE_HOME='/nonexistent')
    python = os.path.join(venv, 'bin', 'python')
    samples = []
    for _i in range(runs):
        seconds, count = output([python, '-c', IMPORT_PROBE] + modules, env=env).split()[-2:]
        samples.append((float(seconds), int(count)))
    samples.sort()
    return {'seconds': samples[len(samples) // 2][0], 'modules': samples[len(samples) // 2][1]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--root', required=True)
    parser.add_argument('--peer', required=True)
    parser.add_argument('--ours', required=True)
    parser.add_argument('--collections-ours', required=True)
    parser.add_argument('--collections-peer', required=True)
    parser.add_argument('--ansible-version', required=True)
    parser.add_argument('--mitmdump', default='', help='mitmdump of the throttling proxy (empty: not installed)')
    parser.add_argument('--throttle-addon', default='', help="the throttling proxy's mitmproxy addon")
    args = parser.parse_args()
    site_peer = output([os.path.join(args.peer, 'bin', 'python'), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'])
    names = ['ansible', 'ansible-core', 'azure-core', 'azure-identity', 'azure-keyvault-certificates', 'azure-keyvault-secrets',
             'cryptography', 'msal']
    peer_versions, peer_count = pip_versions(args.peer, names)
    ours_versions, ours_count = pip_versions(args.ours, names)
    with open(os.path.join(site_peer, 'ansible_collections', 'azure', 'azcollection', 'MANIFEST.json'), encoding='utf-8') as handle:
        azcollection = json.load(handle)['collection_info']['version']
    with open(os.path.join(args.root, 'galaxy.yml'), encoding='utf-8') as handle:
        ours_version = next((line.split(':', 1)[1].strip() for line in handle if line.startswith('version:')), 'unknown')
    commit = subprocess.run(['git', '-C', args.root, 'rev-parse', '--short', 'HEAD'], stdout=subprocess.PIPE, universal_newlines=True,
                            check=False).stdout.strip()
    dirty = subprocess.run(['git', '-C', args.root, 'status', '--porcelain', '--untracked-files=no'], stdout=subprocess.PIPE,
                           universal_newlines=True, check=False).stdout.strip()

    def install_seconds(venv):
        path = Path(venv) / '.bench-install-seconds'
        return int(path.read_text(encoding='utf-8')) if path.exists() else None

    facts = {
        'venv_peer': args.peer, 'venv_ours': args.ours,
        'collections_ours': args.collections_ours, 'collections_peer': args.collections_peer,
        'mitmdump': args.mitmdump or None, 'throttle_addon': args.throttle_addon or None,
        'mitmproxy': output([args.mitmdump, '--version']).splitlines()[0].split()[-1] if args.mitmdump else None,
        'machine': {'nproc': os.cpu_count(), 'cpu': cpu_model(), 'memory': mem_total(), 'kernel': platform.release(),
                    'python': output([os.path.join(args.ours, 'bin', 'python'), '-c', 'import platform; print(platform.python_version())']),
                    'loadavg_at_start': open('/proc/loadavg', encoding='utf-8').read().split()[:3]},
        'peer': {'ansible': args.ansible_version, 'azure.azcollection': azcollection, 'packages': peer_count,
                 'install_bytes': tree_size(args.peer), 'install_seconds': install_seconds(args.peer), 'versions': peer_versions,
                 'import': import_cost(args.peer, PROBES['peer'], site_peer)},
        'ours': {'certdeploy.cloud': ours_version, 'commit': commit + ('+uncommitted changes' if dirty else ''), 'packages': ours_count,
                 'install_bytes': tree_size(args.ours), 'install_seconds': install_seconds(args.ours), 'versions': ours_versions,
                 'import': import_cost(args.ours, PROBES['ours'], args.collections_ours)},
    }
    print(json.dumps(facts, indent=1, sort_keys=True))


if __name__ == '__main__':
    main()
