#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare the registered results of the same steps run through several paths, field by field.

Usage: compare.py RUNS_JSON REFERENCE_ID
RUNS_JSON maps a path id to {step: registered result}. Each path deployed its own certificate name
(inproc-<id>), so before comparing, that name becomes NAME, every Key Vault version id (32 hex digits) becomes
V1, V2, ... in order of first appearance, and ISO-8601 times become TIME. The ``execution`` marker is
compared separately by the caller. Prints JSON: {path id: [differences]} (empty lists when equal).
"""

from __future__ import annotations

import json
import re
import sys

VERSION = re.compile(r'\b[0-9a-f]{32}\b')
TIME = re.compile(r'\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?')
IGNORED = ('execution',)


def normalise(value, name, versions):
    if isinstance(value, dict):
        return dict((normalise(k, name, versions), normalise(v, name, versions)) for k, v in value.items() if k not in IGNORED)
    if isinstance(value, list):
        return [normalise(v, name, versions) for v in value]
    if isinstance(value, str):
        value = value.replace(name, 'NAME')
        value = VERSION.sub(lambda m: versions.setdefault(m.group(0), 'V%d' % (len(versions) + 1)), value)
        return TIME.sub('TIME', value)
    return value


def differences(left, right, where=''):
    if isinstance(left, dict) and isinstance(right, dict):
        found = []
        for key in sorted(set(left) | set(right)):
            if key not in right:
                found.append('%s/%s: only in the reference' % (where, key))
            elif key not in left:
                found.append('%s/%s: missing from the reference' % (where, key))
            else:
                found.extend(differences(left[key], right[key], '%s/%s' % (where, key)))
        return found
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        found = []
        for index, (a, b) in enumerate(zip(left, right)):
            found.extend(differences(a, b, '%s[%d]' % (where, index)))
        return found
    return [] if left == right else ['%s: %r != %r' % (where or '/', left, right)]


def main(runs_file, reference):
    with open(runs_file) as handle:
        runs = json.load(handle)
    normal = dict((path, normalise(steps, 'inproc-%s' % path, {})) for path, steps in runs.items())
    print(json.dumps(dict((path, differences(normal[reference], steps)) for path, steps in normal.items() if path != reference),
                     indent=1, sort_keys=True))


if __name__ == '__main__':
    main(*sys.argv[1:])
