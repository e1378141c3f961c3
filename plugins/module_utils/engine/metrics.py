# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Prometheus text-format metrics for node_exporter's textfile collector.

One file can serve many certificates and many runs: existing samples are read
back, the ones for this target are updated, and the whole file is replaced
atomically (temp file in the same directory, then rename) under an advisory
lock, so concurrent Ansible forks do not lose each other's counters.
"""

from __future__ import annotations

import os
import re
import tempfile
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX controllers
    fcntl = None

PREFIX = 'certdeploy_'
METRICS = (
    ('deploy_total', 'counter', 'Deploy runs by outcome.'),
    ('deploy_failures_total', 'counter', 'Failed deploy runs by error code.'),
    ('rollback_total', 'counter', 'Rollback attempts by result.'),
    ('certificate_expiry_timestamp_seconds', 'gauge', 'Expiry (notAfter) of the certificate the target holds, as Unix time.'),
    ('last_success_timestamp_seconds', 'gauge', 'Time of the last successful deploy run, as Unix time.'),
)
_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)\s*$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _escape(value):
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def _unescape(value):
    return re.sub(r'\\(.)', lambda m: '\n' if m.group(1) == 'n' else m.group(1), value)


def _read(path):
    samples = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return samples
    for line in lines:
        match = _SAMPLE.match(line)
        if not match or not match.group('name').startswith(PREFIX):
            continue
        labels = tuple(sorted((k, _unescape(v)) for k, v in _LABEL.findall(match.group('labels') or '')))
        try:
            samples[(match.group('name'), labels)] = float(match.group('value'))
        except ValueError:
            continue
    return samples


def _render(samples):
    lines = []
    for suffix, kind, help_text in METRICS:
        name = PREFIX + suffix
        rows = sorted((labels, value) for (metric, labels), value in samples.items() if metric == name)
        if not rows:
            continue
        lines.append('# HELP %s %s' % (name, help_text))
        lines.append('# TYPE %s %s' % (name, kind))
        for labels, value in rows:
            rendered = ','.join('%s="%s"' % (k, _escape(v)) for k, v in labels)
            lines.append('%s{%s} %s' % (name, rendered, repr(float(value)) if value != int(value) else '%d' % value))
    return '\n'.join(lines) + '\n'


def update_samples(samples, labels, result, error_code=None, expires=None, now=None):
    """Apply one run's report to ``samples`` (pure; used by :func:`write`)."""
    now = time.time() if now is None else now
    base = tuple(sorted(labels.items()))

    def bump(suffix, **extra):
        key = (PREFIX + suffix, tuple(sorted(base + tuple(extra.items()))))
        samples[key] = samples.get(key, 0) + 1

    outcome = result.get('outcome')
    if outcome:
        bump('deploy_total', outcome=outcome)
    if error_code:
        bump('deploy_failures_total', error_code=error_code)
    rollback = result.get('rollback') or {}
    if rollback.get('attempted'):
        bump('rollback_total', result='succeeded' if rollback.get('succeeded') else 'failed')
    if expires is not None:
        samples[(PREFIX + 'certificate_expiry_timestamp_seconds', base)] = float(expires)
    if not error_code:
        samples[(PREFIX + 'last_success_timestamp_seconds', base)] = float(int(now))
    return samples


def write(path, labels, result, error_code=None, expires=None):
    """Record one run in the textfile at ``path`` atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    lock = open(path + '.lock', 'a')
    try:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        samples = update_samples(_read(path), labels, result, error_code, expires)
        fd, tmp = tempfile.mkstemp(prefix='.certdeploy-metrics-', dir=directory)
        try:
            with os.fdopen(fd, 'w') as handle:
                handle.write(_render(samples))
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    finally:
        lock.close()
