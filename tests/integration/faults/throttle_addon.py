# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mitmproxy addon: a vault that throttles. At most ``rate`` requests a second per vault reach the vault behind.

mitmdump runs as a reverse proxy in front of a Key Vault emulator (throttle_proxy.py starts and stops it), one
listener per vault. Each vault -- the upstream a listener forwards to, scheme://host:port, which is also the Host
header the vault sees (lowkey-vault tells its vaults apart by that header) -- has its own token bucket
(throttle_bucket.py): ``rate`` tokens a second, at most ``capacity``, full at the first request. Every request
to a vault takes a token, the SDK's unauthenticated challenge request included; a request that finds none is
not forwarded but answered here, as Key Vault answers when a vault's limit is reached:

    HTTP 429, Retry-After: <whole seconds until a token is back, at least 1>
    {"error": {"code": "Throttled", "message": "Request was not processed because too many requests were
     received. Reason: VaultRequestTypeLimitReached"}}

(That body is Key Vault's own, as a real 429 answer shows it: vcsjones/AzureSignTool issue #219 quotes one in
full, error code ``Throttled`` with that message and reason; the unit tests' simulated vault,
tests/unit/plugins/module_utils/kv_sim.py, and the fault matrix target answer the same. Key Vault does not
count a refused request against the limit, so a 429 takes no token.)

Requests to the listeners whose upstream port is in ``throttle_token_ports`` (the managed-identity token
endpoint, when it is proxied) are never throttled.

A list answer's ``nextLink`` names the vault the emulator saw (the upstream); the proxy points it back at itself
(``https://localhost:<listener port>``), as a vault's own link names the vault the client called, so the client
reads every page through the proxy. Nothing else in an answer is changed.

Options (``--set name=value``):

- ``throttle_rate``: tokens a second per vault (a number, e.g. ``10`` or ``2.5``); required;
- ``throttle_capacity``: the bucket's size, the burst admitted at once (default: the rate; at least 1);
- ``throttle_log``: a JSON lines file, one line per request when it is answered (appended, so a test may empty it
  between runs): ``t`` (wall-clock time the request arrived, seconds since the epoch), ``vault`` (the upstream,
  scheme://host:port) or ``null`` for a token request, ``kind`` (``vault`` | ``token``), ``method``, ``path``
  (without the query), ``auth`` (an Authorization header was sent), ``admitted`` (forwarded; false: answered
  429 here), ``status`` (the status the client got; null when the connection to the vault failed);
- ``throttle_token_ports``: comma-separated upstream ports of token endpoints (never throttled, logged as ``token``);
- ``throttle_owner_pid``: shut down when this process is gone (0: no owner);
- ``throttle_ttl``: shut down after this many seconds (default 3600).
"""

from __future__ import annotations

import json
import threading
import time

from mitmproxy import ctx, http

import throttle_bucket  # beside this file: mitmproxy puts a script's directory on the import path while loading it

THROTTLED_BODY = {'error': {'code': 'Throttled', 'message': 'Request was not processed because too many requests were '
                                                            'received. Reason: VaultRequestTypeLimitReached'}}


def _start_time(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Throttle:
    def __init__(self):
        self.buckets = None
        self.token_ports = set()

    def load(self, loader):
        loader.add_option('throttle_rate', str, '', 'requests a second admitted per vault')
        loader.add_option('throttle_capacity', str, '', 'burst admitted at once per vault (default: the rate)')
        loader.add_option('throttle_log', str, '', 'JSON lines file: one line per request')
        loader.add_option('throttle_token_ports', str, '', 'comma-separated upstream ports never throttled (token endpoints)')
        loader.add_option('throttle_owner_pid', int, 0, 'stop when this process is gone')
        loader.add_option('throttle_ttl', int, 3600, 'stop after this many seconds')

    def configure(self, updated):
        if 'throttle_rate' in updated or 'throttle_capacity' in updated:
            rate = float(ctx.options.throttle_rate)
            capacity = float(ctx.options.throttle_capacity) if ctx.options.throttle_capacity else None
            self.buckets = throttle_bucket.Buckets(rate, capacity)
        if 'throttle_token_ports' in updated:
            self.token_ports = set(int(p) for p in ctx.options.throttle_token_ports.split(',') if p.strip())

    def running(self):
        owner = ctx.options.throttle_owner_pid
        started = _start_time(owner) if owner else None
        deadline = time.monotonic() + ctx.options.throttle_ttl

        def watch():
            while time.monotonic() < deadline and (not owner or _start_time(owner) == started):
                time.sleep(0.5)
            ctx.master.shutdown()
        threading.Thread(target=watch, daemon=True).start()

    def request(self, flow: http.HTTPFlow):
        # mitmproxy runs every hook on one event loop: taking a token is never raced.
        token = flow.request.port in self.token_ports
        vault = None if token else '%s://%s:%d' % (flow.request.scheme, flow.request.host, flow.request.port)
        entry = {'t': round(time.time(), 6), 'vault': vault, 'kind': 'token' if token else 'vault',
                 'method': flow.request.method, 'path': flow.request.path.split('?', 1)[0],
                 'auth': 'authorization' in flow.request.headers, 'admitted': True}
        flow.metadata['throttle_entry'] = entry
        if token:
            return
        admitted, wait = self.buckets.take(vault, time.monotonic())
        if not admitted:
            entry['admitted'] = False
            flow.response = http.Response.make(429, json.dumps(THROTTLED_BODY), {
                'Content-Type': 'application/json; charset=utf-8', 'Retry-After': str(wait)})

    def _write(self, flow, status):
        entry = flow.metadata.pop('throttle_entry', None)
        if entry is None:
            return
        entry['status'] = status
        with open(ctx.options.throttle_log, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps(entry, sort_keys=True) + '\n')

    def response(self, flow: http.HTTPFlow):
        if flow.metadata.get('throttle_entry', {}).get('admitted') and flow.response.status_code == 200:
            self._point_next_link_here(flow)
        self._write(flow, flow.response.status_code)

    @staticmethod
    def _point_next_link_here(flow):
        if b'nextLink' not in (flow.response.content or b''):
            return
        try:
            body = json.loads(flow.response.content)
        except ValueError:
            return
        link = body.get('nextLink') if isinstance(body, dict) else None
        upstream = '%s://%s:%d' % (flow.request.scheme, flow.request.host, flow.request.port)
        if isinstance(link, str) and link.startswith(upstream + '/'):
            body['nextLink'] = 'https://localhost:%d%s' % (flow.client_conn.sockname[1], link[len(upstream):])
            flow.response.content = json.dumps(body).encode()

    def error(self, flow: http.HTTPFlow):
        if flow.response is None:
            self._write(flow, None)


addons = [Throttle()]
