#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the collection's tarball from a copy with decoys planted, and check what it holds.

Usage:
  tarball.py locate                      print the collection root under test (from ANSIBLE_COLLECTIONS_PATH)
  tarball.py build SOURCE WORK           copy SOURCE to WORK/src, plant decoys, build into WORK/dist,
                                         check the file list; prints the tarball's path
  tarball.py installed FRESH             check that FRESH holds exactly this collection, from the tarball

Decoys are what a working checkout really holds and a tarball must not: caches and virtual
environments, ansible-test output, byte code, earlier tarballs, run.sh's integration_config.yml
(emulator secrets), mutation-testing and benchmark output, and key material (a private key made now,
as .pem, .key and .pfx).  Every rule fails the run with the names of the offending members.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

NAMESPACE, NAME = 'certdeploy', 'cloud'
# A PEM private key with its body: a header alone (as in code that looks for one) is not key material.
PEM_KEY = re.compile(rb'-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/=\s]{64,}-----END')
# Paths no tarball may hold, whatever build_ignore says (checked on the member list).
FORBIDDEN = ('.cache/*', '*/.cache/*', 'tests/output*', '*__pycache__*', '*.pyc', '*.tar.gz', '.git/*', '*/.git/*',
             '*.pem', '*.key', '*.pfx', '*.p12', 'tests/integration/integration_config.yml', 'mutants/*',
             'benchmarks/results/*')
# What the tarball must hold (a build that drops everything passes no negative rule).
REQUIRED = ('MANIFEST.json', 'FILES.json', 'meta/runtime.yml', 'meta/execution-environment.yml', 'requirements.txt',
            'bindep.txt', 'plugins/modules/azure_kv_certificate_deploy.py', 'plugins/modules/azure_kv_certificate_info.py',
            'roles/azure_kv_certificate/tasks/main.yml', 'LICENSE', 'README.md')
# Source trees whose every file must be in the tarball.
SHIPPED_TREES = ('plugins/', 'roles/', 'meta/', 'docs/')


def fail(message):
    sys.exit('collection_tarball: FAILED: %s' % message)


def locate():
    for entry in filter(None, os.environ.get('ANSIBLE_COLLECTIONS_PATH', '').split(':')):
        root = os.path.join(entry, 'ansible_collections', NAMESPACE, NAME)
        if os.path.isfile(os.path.join(root, 'galaxy.yml')):
            return root
    fail('no %s.%s with a galaxy.yml on ANSIBLE_COLLECTIONS_PATH=%r' % (NAMESPACE, NAME, os.environ.get('ANSIBLE_COLLECTIONS_PATH')))


def plant_decoys(src):
    """Write the decoys into the copy; returns {relative path: why it must be left out}."""
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pfx = pkcs12.serialize_key_and_certificates(b'decoy', key, None, None, serialization.NoEncryption())
    decoys = {
        '.cache/venv/core221-py313/pyvenv.cfg': (b'home = /usr/bin\n', 'cache'),
        '.cache/emulators/lowkey/state.json': (b'{}\n', 'cache'),
        'tests/output/junit/decoy.xml': (b'<testsuites/>\n', 'ansible-test output'),
        'tests/output/.tmp/decoy.txt': (b'tmp\n', 'ansible-test output'),
        'plugins/module_utils/engine/__pycache__/deploy.cpython-313.pyc': (b'\0\0', 'byte code'),
        'tests/unit/__pycache__/conftest.cpython-313-pytest-8.pyc': (b'\0\0', 'byte code'),
        'tests/integration/integration_config.yml': (b'{"akv_client_secret": "decoy-secret"}\n', "run.sh's emulator secrets"),
        '%s-%s-0.0.1.tar.gz' % (NAMESPACE, NAME): (b'\x1f\x8b', 'earlier build'),
        'examples/old-build.tar.gz': (b'\x1f\x8b', 'earlier build'),
        'mutants/plugins/module_utils/engine/deploy.py': (b'# mutant\n', 'mutation-testing output'),
        'benchmarks/results/latest.json': (b'{}\n', 'benchmark output'),
        'examples/files/www.example.key': (key_pem, 'private key'),
        'roles/azure_kv_certificate/files/www.example.pem': (key_pem, 'private key'),
        'examples/files/www.example.pfx': (pfx, 'PFX with its key'),
    }
    for rel, (data, _why) in decoys.items():
        path = os.path.join(src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as handle:
            handle.write(data)
    return {rel: why for rel, (_data, why) in decoys.items()}


def build(source, work):
    src = os.path.join(work, 'src', 'ansible_collections', NAMESPACE, NAME)
    dist = os.path.join(work, 'dist')
    # The source's own caches and results stay behind; the decoys stand in for them, so their names are known.

    def leave_behind(directory, names):
        rel = os.path.relpath(directory, source)
        return [name for name in names if name in ('.cache', '__pycache__') or name.endswith('.tar.gz')
                or (rel == 'tests' and name == 'output')]
    shutil.copytree(source, src, symlinks=True, ignore=leave_behind)
    decoys = plant_decoys(src)
    os.makedirs(dist)
    subprocess.run(['ansible-galaxy', 'collection', 'build', src, '--output-path', dist], check=True,
                   stdout=sys.stderr)
    built = [name for name in os.listdir(dist) if name.endswith('.tar.gz')]
    if len(built) != 1:
        fail('expected one tarball in %s, found %s' % (dist, built))
    tarball = os.path.join(dist, built[0])
    with tarfile.open(tarball) as archive:
        members = {m.name.rstrip('/'): m for m in archive.getmembers()}
        files = sorted(name for name, m in members.items() if m.isfile())
        leaked_keys = [name for name in files if PEM_KEY.search(archive.extractfile(members[name]).read())]
        manifest_files = json.load(archive.extractfile(members['FILES.json']))['files']
    problems = []
    for rel, why in sorted(decoys.items()):
        if rel in members:
            problems.append('%s (%s) is in the tarball' % (rel, why))
    for pattern in FORBIDDEN:
        hits = [name for name in members if fnmatch.fnmatch(name, pattern)]
        if hits:
            problems.append('members matching %s: %s' % (pattern, ', '.join(sorted(hits))))
    if leaked_keys:
        problems.append('members holding a PEM private key: %s' % ', '.join(leaked_keys))
    missing = [rel for rel in REQUIRED if rel not in members]
    for tree in SHIPPED_TREES:
        for root, dirs, names in os.walk(os.path.join(src, tree)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            for name in names:
                rel = os.path.relpath(os.path.join(root, name), src)
                if rel not in members and rel not in decoys:
                    missing.append(rel)
    if missing:
        problems.append('missing from the tarball: %s' % ', '.join(sorted(missing)))
    listed = sorted(entry['name'] for entry in manifest_files if entry['ftype'] == 'file')
    if listed != sorted(name for name in files if name not in ('MANIFEST.json', 'FILES.json')):
        problems.append('FILES.json does not list exactly the files of the tarball')
    if problems:
        fail('; '.join(problems))
    print('collection_tarball: %s: %d files; none of the %d decoys, no cache, test output, byte code, tarball or key'
          % (os.path.basename(tarball), len(files), len(decoys)), file=sys.stderr)
    print(tarball)


def installed(fresh):
    root = os.path.join(fresh, 'ansible_collections')
    found = sorted('%s.%s' % (ns, name) for ns in os.listdir(root) if not ns.endswith('.info')
                   for name in os.listdir(os.path.join(root, ns)))
    if found != ['%s.%s' % (NAMESPACE, NAME)]:
        fail('the fresh path holds %s, expected only %s.%s' % (found, NAMESPACE, NAME))
    with open(os.path.join(root, NAMESPACE, NAME, 'MANIFEST.json'), encoding='utf-8') as handle:
        manifest = json.load(handle)['collection_info']
    if (manifest['namespace'], manifest['name']) != (NAMESPACE, NAME) or manifest['dependencies']:
        fail('unexpected MANIFEST.json collection_info: %r' % manifest)
    for stray in ('tests/output', '.cache', 'galaxy.yml'):
        if os.path.exists(os.path.join(root, NAMESPACE, NAME, stray)):
            fail('%s exists in the installed collection' % stray)
    print('collection_tarball: installed %s.%s %s into %s' % (NAMESPACE, NAME, manifest['version'], fresh), file=sys.stderr)


def main(argv):
    if argv[:1] == ['locate'] and len(argv) == 1:
        print(locate())
    elif argv[:1] == ['build'] and len(argv) == 3:
        build(argv[1], argv[2])
    elif argv[:1] == ['installed'] and len(argv) == 2:
        installed(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv[1:])
