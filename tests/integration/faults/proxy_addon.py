# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mitmproxy addon: scriptable faults between the module and a Key Vault emulator.

mitmdump runs as a reverse proxy in front of the vault (see tests/integration/run.sh).
Tests write rules to the JSON file named by the ``certdeploy_faults`` option; the
file is re-read on every request, and a change resets the counters. A rule:

    {"method": "POST", "path": "/certificates/[^/]+/import$", "skip": 0, "times": 1,
     "action": "status", "status": 500, "body": {...}, "headers": {"Retry-After": "1"}}

matches authorised requests (the SDK's unauthenticated challenge probe is never
counted), lets ``skip`` matches through, then applies ``action`` to the next
``times`` matches (-1: all):

- ``status``: answer with ``status``/``body``/``headers`` without calling the vault;
- ``commit_then_status``: forward, let the vault commit, then answer with
  ``status``/``body``/``headers`` instead of the vault's answer (a write that landed and
  was reported failed, e.g. a 503 from a gateway, with ``Retry-After`` if ``headers`` say so);
- ``delay``: wait ``seconds`` before forwarding;
- ``cut``: forward, let the vault commit, then cut the connection before answering;
- ``rewrite_x5t``: forward, then show another certificate in the JSON answer: ``cer`` and ``x5t``
  both replaced by a throwaway certificate of this proxy's own, so the answer is consistent (a
  vault that stored, or a proxy that serves, something else; an answer whose ``x5t`` contradicts
  its ``cer`` is rejected by the module as garbage, which unit tests cover); with ``if_thumbprint``
  (hex SHA-1) only an answer that carries that certificate's ``x5t`` is rewritten, so a rule
  on reads garbles every read of one version (the read-back of ours) and no other;
- ``concurrent_import``: forward, then import ``pfx_b64`` as ``name`` directly into the
  vault (another writer) before answering; with ``rewrite_x5t: true`` the answer's ``x5t``
  is garbled as well (our version landed, another writer's after it, our response is wrong);
- ``concurrent_import_first``: import ``pfx_b64`` as ``name`` directly into the vault
  (another writer) *before* forwarding, so the other writer's version lands between what we
  read and our write; with ``rewrite_x5t: true`` our answer's ``x5t`` is garbled as well.
  A second rule (``rewrite_x5t`` with ``if_thumbprint`` on reads) garbles the read-back too.

The direct imports go to the vault itself, not through this proxy: no rule sees them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import ssl
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from mitmproxy import ctx, http

COMPAT_PASSWORD = 'lowkey-compat'


def _throwaway_certificate():
    """A self-signed certificate made when the proxy starts: what a rewritten answer shows instead of ours."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'certdeploy fault proxy: not the certificate sent')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


_OTHER_DER = _throwaway_certificate()
IMPORT_PATH = re.compile(r'/certificates/[^/]+/import$')


class Faults:
    def __init__(self):
        self.digest = None
        self.rules = []
        self.counts = []

    def load(self, loader):
        loader.add_option('certdeploy_faults', str, '', 'JSON file with fault rules')
        loader.add_option('certdeploy_upstream_ca', str, '', 'CA file of the vault behind the proxy')

    def _rules(self):
        path = ctx.options.certdeploy_faults
        try:
            with open(path, 'rb') as handle:
                raw = handle.read()
        except OSError:
            raw = b'[]'
        digest = hashlib.sha256(raw).hexdigest()
        if digest != self.digest:
            self.digest, self.rules = digest, json.loads(raw or b'[]')
            self.counts = [0] * len(self.rules)
        return self.rules

    def _match(self, flow):
        if 'authorization' not in flow.request.headers:
            return None
        for index, rule in enumerate(self._rules()):
            if rule.get('method', flow.request.method) != flow.request.method:
                continue
            if not re.search(rule['path'], flow.request.path.split('?')[0]):
                continue
            self.counts[index] += 1
            seen = self.counts[index] - rule.get('skip', 0)
            times = rule.get('times', 1)
            if seen >= 1 and (times < 0 or seen <= times):
                return rule
        return None

    @staticmethod
    def _lowkey_pfx_gap(flow):
        """Emulator gaps, bridged here and never in the module.

        The module re-imports an exported PFX (a rollback snapshot, a copy_from source) byte for byte
        and, as Key Vault accepts for a password-less PFX (the SDK's recorded
        test_import_certificate_not_password_encoded_no_policy), without ``pwd``.  lowkey-vault refuses
        a PKCS#12 import without ``pwd`` ("Password must not be null") and cannot read back the PFX it
        exports itself ("Failed to extract key from PKCS12").  So a password-less PFX is re-encoded
        here -- same key, same certificates -- with a password lowkey reads.  Unit tests check that the
        module sends the exported bytes unchanged; this only lets the emulator accept them.
        """
        if flow.request.method != 'POST' or not IMPORT_PATH.search(flow.request.path.split('?')[0]):
            return
        try:
            body = json.loads(flow.request.content or b'{}')
        except ValueError:
            return
        value = str(body.get('value', ''))
        if body.get('pwd') or '-----BEGIN' in value:
            return
        key, cert, extra = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
        body['value'] = base64.b64encode(pkcs12.serialize_key_and_certificates(
            b'', key, cert, extra, serialization.BestAvailableEncryption(COMPAT_PASSWORD.encode()))).decode()
        body['pwd'] = COMPAT_PASSWORD
        flow.request.content = json.dumps(body).encode()
        ctx.log.info('lowkey gap: re-encoded a password-less PFX import')

    async def request(self, flow: http.HTTPFlow):
        self._lowkey_pfx_gap(flow)
        rule = self._match(flow)
        flow.metadata['certdeploy_rule'] = rule
        if rule is None:
            return
        ctx.log.info('fault %s on %s %s' % (rule['action'], flow.request.method, flow.request.path))
        if rule['action'] == 'status':
            flow.response = self._made_response(rule)
        elif rule['action'] == 'delay':
            await asyncio.sleep(rule['seconds'])
        elif rule['action'] == 'concurrent_import_first':
            await asyncio.get_running_loop().run_in_executor(None, self._import_directly, flow, rule)

    async def response(self, flow: http.HTTPFlow):
        rule = flow.metadata.get('certdeploy_rule')
        if not rule:
            return
        if rule['action'] == 'cut':
            flow.kill()
        elif rule['action'] == 'commit_then_status':
            ctx.log.info('vault answered %d; answering %d instead' % (flow.response.status_code, rule['status']))
            flow.response = self._made_response(rule)
        elif rule['action'] == 'rewrite_x5t':
            self._rewrite_x5t(flow, rule.get('if_thumbprint'))
        elif rule['action'] == 'concurrent_import':
            await asyncio.get_running_loop().run_in_executor(None, self._import_directly, flow, rule)
            if rule.get('rewrite_x5t'):
                self._rewrite_x5t(flow)
        elif rule['action'] == 'concurrent_import_first' and rule.get('rewrite_x5t'):
            self._rewrite_x5t(flow)

    @staticmethod
    def _made_response(rule):
        body = rule.get('body', {'error': {'code': 'Injected', 'message': 'injected fault'}})
        headers = dict({'Content-Type': 'application/json; charset=utf-8'}, **rule.get('headers', {}))
        return http.Response.make(rule['status'], json.dumps(body), headers)

    @staticmethod
    def _rewrite_x5t(flow, if_thumbprint=None):
        data = json.loads(flow.response.content)
        x5t = str(data.get('x5t') or '')
        if if_thumbprint:
            try:
                seen = base64.urlsafe_b64decode(x5t + '=' * (-len(x5t) % 4)).hex().upper()
            except ValueError:
                seen = None
            if seen != if_thumbprint.replace(':', '').upper():
                return
        data['cer'] = base64.b64encode(_OTHER_DER).decode()
        data['x5t'] = base64.urlsafe_b64encode(hashlib.sha1(_OTHER_DER).digest()).rstrip(b'=').decode()
        flow.response.content = json.dumps(data).encode()
        ctx.log.info('rewrote cer and x5t %s in the answer to %s %s' % (x5t, flow.request.method, flow.request.path))

    def _import_directly(self, flow, rule):
        upstream = '%s://%s:%d' % (flow.request.scheme, flow.request.host, flow.request.port)
        url = '%s/certificates/%s/import?api-version=%s' % (upstream, rule['name'], flow.request.query.get('api-version', '7.6'))
        body = json.dumps({'value': rule['pfx_b64'], 'pwd': rule.get('password', ''),
                           'policy': {'secret_props': {'contentType': 'application/x-pkcs12'}},
                           'tags': {'writer': 'concurrent'}}).encode()
        request = urllib.request.Request(url, data=body, method='POST', headers={
            'Content-Type': 'application/json', 'Authorization': flow.request.headers['authorization']})
        context = ssl.create_default_context(cafile=ctx.options.certdeploy_upstream_ca or None)
        context.verify_flags &= ~getattr(ssl, 'VERIFY_X509_STRICT', 0)
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            answer.read()


addons = [Faults()]
