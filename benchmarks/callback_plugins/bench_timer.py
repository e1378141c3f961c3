# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark callback: one JSON line per task and host result, into $BENCH_TIMER_FILE.

Each line holds the task name, the host, the seconds since the task started, changed/failed,
the number of loop items and whether the result came from module execution (``invocation`` is
added by AnsibleModule's exit_json). For a list of certificates (deploy_many) it adds counts only: how
many certificates, changed, per outcome, per read path and per error code, and the per-vault request
summary (``vaults``: counts and seconds). At the end of the playbook it writes the controller process's
peak resident set size (``getrusage``). No certificate, key or other result value is written: nothing
secret leaves here.
"""

from __future__ import annotations

DOCUMENTATION = '''
    name: bench_timer
    type: aggregate
    short_description: time each task for benchmarks/bench.py
    description:
      - Writes one JSON line per host result to the file named by BENCH_TIMER_FILE.
    requirements:
      - enable in callbacks_enabled
'''

import collections
import json
import os
import resource
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get('BENCH_TIMER_FILE')
        self._task = None
        self._started = None
        self._playbook_started = time.monotonic()

    def _write(self, record):
        if self._path:
            with open(self._path, 'a', encoding='utf-8') as handle:
                handle.write(json.dumps(record, sort_keys=True) + '\n')

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task = task.get_name()
        self._started = time.monotonic()
        self._write({'event': 'task_start', 'task': self._task, 'since_playbook': self._started - self._playbook_started})

    def _result(self, result, status):
        data = result._result  # pylint: disable=protected-access
        items = data.get('results') if isinstance(data.get('results'), list) else None
        self._write({'event': 'result', 'task': self._task, 'host': result._host.get_name(),  # pylint: disable=protected-access
                     'seconds': time.monotonic() - self._started, 'status': status,
                     'changed': bool(data.get('changed')), 'failed': status in ('failed', 'unreachable'),
                     'items': len(items) if items is not None else None,
                     'module_run': 'invocation' in data or bool(items and 'invocation' in items[0]),
                     'msg': str(data.get('msg', ''))[:300] if status != 'ok' else '',
                     'fleet': self._fleet(data)})

    @staticmethod
    def _fleet(data):
        certs = data.get('certificates')
        if not isinstance(certs, list) or not certs or not isinstance(certs[0], dict):
            return None

        def count(key):
            return dict(collections.Counter(str(c.get(key)) for c in certs if c.get(key) is not None))
        vaults = data.get('vaults') if isinstance(data.get('vaults'), list) else None
        return {'certificates': len(certs), 'changed': sum(1 for c in certs if c.get('changed')),
                'outcomes': count('outcome'), 'read_paths': count('read_path'), 'error_codes': count('error_code'),
                'vaults': vaults}

    def v2_playbook_on_stats(self, stats):
        self._write({'event': 'stats', 'controller_maxrss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                     'seconds': time.monotonic() - self._playbook_started})

    def v2_runner_on_ok(self, result):
        self._result(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, 'failed')

    def v2_runner_on_unreachable(self, result):
        self._result(result, 'unreachable')

    def v2_runner_on_skipped(self, result):
        self._result(result, 'skipped')
