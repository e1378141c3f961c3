# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mitmproxy addon: write one JSON line per request that passed the proxy, to count a module run's requests.

Each line: ``{"kind": "vault"|"token", "method", "path" (no query), "auth": whether an Authorization
header was sent, "status": the answer's status (null when the connection failed)}``.  The path loses a trailing slash. ``kind`` is
``token`` for requests to the upstream named by ``budget_token_port`` (the managed-identity endpoint).
The file named by ``budget_log`` is opened for appending on every line, so a test empties it between
runs.  The proxy shuts down when the ansible-playbook process named by ``budget_owner_pid`` is gone or
after ``budget_ttl`` seconds.
"""

from __future__ import annotations

import json
import threading
import time

from mitmproxy import ctx, http


def _start_time(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Count:
    def load(self, loader):
        loader.add_option('budget_log', str, '', 'file that receives one JSON line per request')
        loader.add_option('budget_token_port', int, 0, 'upstream port of the token endpoint')
        loader.add_option('budget_owner_pid', int, 0, 'stop when this process is gone')
        loader.add_option('budget_ttl', int, 1800, 'stop after this many seconds')

    def running(self):
        owner = ctx.options.budget_owner_pid
        started = _start_time(owner) if owner else None
        deadline = time.monotonic() + ctx.options.budget_ttl

        def watch():
            while time.monotonic() < deadline and (not owner or _start_time(owner) == started):
                time.sleep(0.5)
            ctx.master.shutdown()
        threading.Thread(target=watch, daemon=True).start()

    def _write(self, flow: http.HTTPFlow, status):
        line = {
            'kind': 'token' if flow.request.port == ctx.options.budget_token_port else 'vault',
            'method': flow.request.method,
            'path': flow.request.path.split('?', 1)[0].rstrip('/') or '/',
            'auth': 'authorization' in flow.request.headers,
            'status': status,
            'error': self._error_codes(flow) if status is not None and status >= 400 else None,
        }
        with open(ctx.options.budget_log, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps(line) + '\n')

    @staticmethod
    def _error_codes(flow):
        """Key Vault's error code and inner code of an error answer, e.g. 'Conflict/ObjectIsDeletedButRecoverable'."""
        try:
            error = json.loads(flow.response.content or b'{}').get('error') or {}
        except (ValueError, AttributeError):
            return 'not JSON'
        inner = error.get('innererror') or error.get('innerError') or {}
        return '%s/%s' % (error.get('code'), inner.get('code') if isinstance(inner, dict) else None)

    def response(self, flow: http.HTTPFlow):
        self._write(flow, flow.response.status_code)

    def error(self, flow: http.HTTPFlow):
        if flow.request is not None and flow.response is None:
            self._write(flow, None)


addons = [Count()]
