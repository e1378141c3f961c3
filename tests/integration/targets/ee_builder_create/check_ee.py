#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check an ansible-builder 3 build context for the example execution environment, offline.

Usage: check_ee.py COLLECTION_ROOT EXAMPLE_DIR WORK_DIR

1. ``ansible-builder create`` renders examples/execution-environment/execution-environment.yml into
   WORK/context (no image is built, nothing is fetched).
2. The context must be what the example asks for: a Containerfile whose galaxy stage installs
   _build/requirements.yml (naming certdeploy.cloud), whose builder stage runs the context's own
   introspect.py, and whose ansible-core lower bound is the collection's requires_ansible.
3. Offline stand-in for the galaxy stage: the collection under test is built into a tarball and
   installed into WORK/usr/share/ansible/collections, then the introspect.py command of the
   Containerfile runs over it (the same flags, paths below WORK).
4. Every requirement of the collection's requirements.txt and bindep.txt, read now (comments and
   blank lines dropped), must be in the written requirement files, attributed to certdeploy.cloud,
   and nothing else attributed to it: what `ansible-builder build` would install.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

COLLECTION = 'certdeploy.cloud'
COLLECTIONS_PATH = '/usr/share/ansible/collections'


def fail(message):
    sys.exit('ee_builder_create: FAILED: %s' % message)


def requirement_lines(path):
    """The requirement lines of a pip or bindep file, as introspection reads them (comments stripped)."""
    lines = []
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            line = re.sub(r'\s*#.*$', '', line).strip()
            if line:
                lines.append(line)
    return lines


def attributed(path, collection):
    """Lines of a written requirements file that introspection attributes to the collection."""
    suffix = '  # from collection %s' % collection
    if not os.path.exists(path):
        fail('introspection wrote no %s' % path)
    with open(path, encoding='utf-8') as handle:
        return [line.rstrip('\n')[:-len(suffix)] for line in handle if line.rstrip('\n').endswith(suffix)]


def run(argv, **kwargs):
    print('ee_builder_create: $ %s' % ' '.join(shlex.quote(a) for a in argv), file=sys.stderr)
    return subprocess.run(argv, check=True, **kwargs)


def main(root, example, work):
    context = os.path.join(work, 'context')
    ee_dir = os.path.join(work, 'ee')
    shutil.copytree(example, ee_dir)
    run([sys.executable, '-m', 'ansible_builder', 'create', '-f', os.path.join(ee_dir, 'execution-environment.yml'),
         '-c', context, '--output-filename', 'Containerfile', '-v', '2'], stdout=sys.stderr)

    containerfile = open(os.path.join(context, 'Containerfile'), encoding='utf-8').read()
    with open(os.path.join(context, '_build', 'requirements.yml'), encoding='utf-8') as handle:
        galaxy = yaml.safe_load(handle)
    names = [entry['name'] if isinstance(entry, dict) else entry for entry in galaxy.get('collections', [])]
    if COLLECTION not in names:
        fail('_build/requirements.yml names %s, not %s' % (names, COLLECTION))
    if not re.search(r'^RUN .*ansible-galaxy collection install .*-r requirements\.yml --collections-path "%s"' % re.escape(COLLECTIONS_PATH),
                     containerfile, re.M):
        fail('the Containerfile does not install _build/requirements.yml into %s' % COLLECTIONS_PATH)
    introspect = re.findall(r'^RUN \$PYCMD /output/scripts/introspect\.py (introspect .*)$', containerfile, re.M)
    if len(introspect) != 1:
        fail('expected one introspect.py step in the Containerfile, found %d' % len(introspect))
    with open(os.path.join(root, 'meta', 'runtime.yml'), encoding='utf-8') as handle:
        requires = yaml.safe_load(handle)['requires_ansible']
    floor = Version(re.match(r'^>=\s*([0-9.]+)$', requires.strip()).group(1))
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile, re.M).group(1)
    core = [Requirement(ref) for ref in refs.split() if Requirement(ref).name == 'ansible-core']
    lower = [Version(spec.version) for spec in (core[0].specifier if len(core) == 1 else []) if spec.operator == '>=']
    if lower != [floor]:
        fail('the example installs %s; meta/runtime.yml requires ansible %s' % ([str(c) for c in core], requires))

    # The galaxy stage, offline: our collection from its tarball, where the Containerfile installs it.
    dist = os.path.join(work, 'dist')
    run(['ansible-galaxy', 'collection', 'build', root, '--output-path', dist], stdout=sys.stderr)
    tarball = os.path.join(dist, [n for n in os.listdir(dist) if n.endswith('.tar.gz')][0])
    collections = os.path.join(work, COLLECTIONS_PATH.lstrip('/'))
    # Only that path is configured: a copy found elsewhere (ansible-test's) must not make the install a no-op.
    run(['ansible-galaxy', 'collection', 'install', tarball, '-p', collections, '--offline'], stdout=sys.stderr,
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false'))
    if not os.path.isfile(os.path.join(collections, 'ansible_collections', *COLLECTION.split('.'), 'MANIFEST.json')):
        fail('%s was not installed into %s' % (COLLECTION, collections))

    # The builder stage's introspection, with its own flags; /tmp/src and the default path moved below WORK.
    args = shlex.split(introspect[0])[1:]
    moved = []
    for arg in args:
        flag, _sep, value = arg.partition('=')
        if flag in ('--write-pip', '--write-bindep', '--user-pip', '--user-bindep') and value.startswith('/'):
            arg = '%s=%s' % (flag, os.path.join(work, value.lstrip('/')))
        moved.append(arg)
    written = {flag: value for flag, _sep, value in (a.partition('=') for a in moved) if flag.startswith('--write-')}
    if set(written) != {'--write-pip', '--write-bindep'}:
        fail('the introspect step writes %s, expected the pip and bindep files' % sorted(written))
    for path in written.values():
        os.makedirs(os.path.dirname(path), exist_ok=True)
    run([sys.executable, os.path.join(context, '_build', 'scripts', 'introspect.py'), 'introspect'] + moved + [collections],
        stdout=sys.stderr)

    problems = []
    for label, ours, path in (('Python', 'requirements.txt', written['--write-pip']), ('system', 'bindep.txt', written['--write-bindep'])):
        expected = requirement_lines(os.path.join(root, ours))
        got = attributed(path, COLLECTION)
        if not expected:
            problems.append('%s has no requirement' % ours)
        if sorted(got) != sorted(expected):
            problems.append('%s requirements for the image: %s; the collection\'s %s: %s' % (label, got, ours, expected))
        else:
            print('ee_builder_create: %s requirements in the build (%s): %s' % (label, os.path.relpath(path, work), ', '.join(got)),
                  file=sys.stderr)
    if problems:
        fail('; '.join(problems))
    print('ee_builder_create: context %s: Containerfile, _build/requirements.yml (%s), _build/scripts/ (%s)'
          % (context, ', '.join(names), ', '.join(sorted(os.listdir(os.path.join(context, '_build', 'scripts'))))), file=sys.stderr)


if __name__ == '__main__':
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
