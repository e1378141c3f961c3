#!/usr/bin/env python
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""List the regular files that received private key bytes in an strace log.

Usage: key_writes.py TRACE KEY_PEM_FILE
The trace comes from `strace -f -y -s 1000000 -e trace=write,pwrite64,writev,pwritev`.
Every base64 line of the key's PEM body is a needle; a write to a regular file
(a path, not a pipe, socket or /dev, /proc node) containing any needle counts.
Prints a JSON list of those files.
"""

from __future__ import annotations

import json
import re
import sys

CALL = re.compile(r'^(?:\[pid\s+)?\d*\]?\s*(?:write|pwrite64|writev|pwritev)\(\d+<(?P<path>[^>]+)>')


def main(trace, key_file):
    with open(key_file) as handle:
        needles = [line for line in handle.read().splitlines()[1:-1] if len(line) >= 40 and ':' not in line]
    hits = set()
    with open(trace, errors='replace') as handle:
        for line in handle:
            match = CALL.match(line.strip())
            if not match:
                continue
            path = match.group('path')
            if not path.startswith('/') or path.startswith(('/dev/', '/proc/')):
                continue
            if any(needle in line for needle in needles):
                hits.add(path)
    print(json.dumps(sorted(hits)))


if __name__ == '__main__':
    main(*sys.argv[1:])
