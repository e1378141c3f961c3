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

- ``chain_keeping_test_double``: a TEST DOUBLE, not a fault. Neither emulator keeps the chain of an
  imported certificate (lowkey-vault keeps the leaf alone; emulators/README.md), so this action makes
  the proxy keep it, as Key Vault does, for the names its ``path`` matches (give it
  ``"path": "^/(certificates|secrets)/<prefix>"`` and ``"times": -1``). On an import POST it keeps what
  was sent -- a PFX decrypted with the sent password (key, leaf, further certificates in their order), a
  PEM bundle parsed block by block -- under the version in the vault's answer, with the policy's content
  type and exportable flag. On ``GET /secrets/{name}/{version}`` of such a version it answers with the
  vault's own secret bundle (id, kid, managed, attributes as the vault made them) whose ``value`` and
  ``contentType`` are replaced by what Key Vault serves for that import: for ``application/x-pkcs12`` the
  base64 of a PKCS#12 without password (key, leaf, then the chain), for ``application/x-pem-file`` the
  key (PKCS#8) first, then the leaf and the chain (the shapes of Key Vault's recorded backing secrets,
  tests/unit/plugins/module_utils/real_shapes.py); a non-exportable version is served without its key
  (recorded for PEM; assumed alike for PKCS#12). Other requests pass through. ``variant`` (applied when
  the import is kept, so every later read of that version serves the same) says what this vault keeps:
  ``faithful`` (default: everything, in the order sent), ``drop_chain`` (the leaf alone, as both
  emulators do), ``reorder`` (the chain after the leaf reversed), ``drop_intermediate`` (the first
  certificate after the leaf left out) or ``swap_for`` (the first certificate after the leaf replaced by
  the PEM certificate in the rule's ``swap_for``).
  TEST WORKAROUND, lowkey only: lowkey-vault takes the LAST certificate block of a PEM import as the
  certificate (the root, for a leaf-first bundle). For a PEM import with a chain, the double forwards a
  body whose blocks are the key, the chain, then the leaf (so lowkey stores the leaf), and keeps the
  bundle as sent for its secret answers. The module's own request is what the import log shows.

Every import request that reaches the proxy (rule or not) is logged, as the module sent it, to the JSON
lines file named by ``certdeploy_imports``: name, api-version, the body's keys, ``preserveCertOrder``
(null when absent), ``policy``, ``tags``, the value's kind (pem/pkcs12), whether a password was sent, the
certificates in the order sent (subject, SHA-1 thumbprint), and the vault's answer (status, version).
Never the value, the password or the key.

The direct imports go to the vault itself, not through this proxy: no rule sees them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import ssl
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
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
IMPORT_PATH = re.compile(r'/certificates/([^/]+)/import$')
SECRET_VERSION_PATH = re.compile(r'/secrets/([^/]+)/([^/]+)$')
PEM_BLOCK = re.compile(rb'-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?', re.DOTALL)
PEM_MIME = 'application/x-pem-file'
PKCS12_MIME = 'application/x-pkcs12'
DOUBLE = 'chain_keeping_test_double'
VARIANTS = ('faithful', 'drop_chain', 'reorder', 'drop_intermediate', 'swap_for')


class Sent(object):
    """What an import body carries, parsed: the key, the leaf, the other certificates in the order sent."""

    def __init__(self, kind, key, leaf, others, key_pem=None):
        self.kind, self.key, self.leaf, self.others, self.key_pem = kind, key, leaf, others, key_pem

    @property
    def certificates(self):
        return ([self.leaf] if self.leaf is not None else []) + list(self.others)


def _same_key(cert, key):
    if key is None:
        return False
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def parse_import_value(body):
    """The import body's value as a Sent: PEM (blocks in the order sent; the leaf is the certificate that
    matches the key) or PKCS#12 decrypted with ``pwd`` (none or empty when absent). The SDK sends both as
    base64 of the bytes (the PEM text included)."""
    raw = _value_bytes(body)
    if b'-----BEGIN' in raw:
        key, key_pem, certs = None, None, []
        for match in PEM_BLOCK.finditer(raw):
            label, block = match.group(1).decode(), match.group(0)
            if label == 'CERTIFICATE':
                certs.append(x509.load_pem_x509_certificate(block))
            elif label.endswith('PRIVATE KEY'):
                key_pem = block
                key = serialization.load_pem_private_key(block, None)
        leaf = next((c for c in certs if _same_key(c, key)), certs[0] if certs else None)
        return Sent('pem', key, leaf, [c for c in certs if c is not leaf], key_pem)
    password = body.get('pwd')
    for candidate in ([password.encode()] if password else [None, b'']):
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(raw, candidate)
            return Sent('pkcs12', key, cert, list(extra))
        except ValueError:
            continue
    raise ValueError('the PKCS#12 could not be decrypted')


def _value_bytes(body):
    value = str(body.get('value') or '')
    if '-----BEGIN' in value:
        return value.encode()
    return base64.b64decode(value)


def cert_facts(cert):
    return {'subject': cert.subject.rfc4514_string(), 'thumbprint': cert.fingerprint(hashes.SHA1()).hex().upper()}


class Faults:
    def __init__(self):
        self.digest = None
        self.rules = []
        self.counts = []
        self.kept = {}  # (name, version) -> what the chain-keeping test double keeps for that version
        self.imports_seen = 0

    def load(self, loader):
        loader.add_option('certdeploy_faults', str, '', 'JSON file with fault rules')
        loader.add_option('certdeploy_upstream_ca', str, '', 'CA file of the vault behind the proxy')
        loader.add_option('certdeploy_imports', str, '', 'JSON lines file: one line per import request seen')

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
        if body.get('pwd'):
            return
        raw = _value_bytes(body)
        if b'-----BEGIN' in raw:  # a PEM bundle (the SDK sends it base64-encoded too) needs no password
            return
        key, cert, extra = pkcs12.load_key_and_certificates(raw, None)
        body['value'] = base64.b64encode(pkcs12.serialize_key_and_certificates(
            b'', key, cert, extra, serialization.BestAvailableEncryption(COMPAT_PASSWORD.encode()))).decode()
        body['pwd'] = COMPAT_PASSWORD
        flow.request.content = json.dumps(body).encode()
        ctx.log.info('lowkey gap: re-encoded a password-less PFX import')

    async def request(self, flow: http.HTTPFlow):
        self._note_import(flow)
        rule = self._match(flow)
        flow.metadata['certdeploy_rule'] = rule
        if rule is not None and rule['action'] == DOUBLE:
            self._double_request(flow, rule)
        self._lowkey_pfx_gap(flow)
        if rule is None or rule['action'] == DOUBLE:
            return
        ctx.log.info('fault %s on %s %s' % (rule['action'], flow.request.method, flow.request.path))
        if rule['action'] == 'status':
            flow.response = self._made_response(rule)
        elif rule['action'] == 'delay':
            await asyncio.sleep(rule['seconds'])
        elif rule['action'] == 'concurrent_import_first':
            await asyncio.get_running_loop().run_in_executor(None, self._import_directly, flow, rule)

    async def response(self, flow: http.HTTPFlow):
        self._log_import(flow)
        rule = flow.metadata.get('certdeploy_rule')
        if not rule:
            return
        if rule['action'] == DOUBLE:
            self._double_response(flow)
        elif rule['action'] == 'cut':
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

    # -- the import log -------------------------------------------------------

    def _note_import(self, flow):
        """Parse an import request as the module sent it (before any rewriting here), for the log and the double."""
        path = flow.request.path.split('?')[0]
        found = IMPORT_PATH.search(path) if flow.request.method == 'POST' else None
        if not found:
            return
        entry = {'name': urllib.parse.unquote(found.group(1)), 'api_version': flow.request.query.get('api-version'),
                 'authorized': 'authorization' in flow.request.headers}
        try:
            body = json.loads(flow.request.content or b'{}')
        except ValueError:
            entry['error'] = 'the body is not JSON'
            flow.metadata['certdeploy_import'] = entry
            return
        entry.update({
            'body_keys': sorted(body),
            'preserveCertOrder': body.get('preserveCertOrder'),
            'policy': body.get('policy'),
            'tags': body.get('tags'),
            'password_sent': bool(body.get('pwd')),
        })
        try:
            sent = parse_import_value(body)
        except Exception as exc:  # a body this log cannot read is still logged
            entry['error'] = 'value not readable: %s' % exc
        else:
            entry['value_kind'] = sent.kind
            entry['key_sent'] = sent.key is not None
            entry['certificates'] = [cert_facts(c) for c in sent.certificates]
            flow.metadata['certdeploy_sent'] = sent
        flow.metadata['certdeploy_import'] = entry

    def _log_import(self, flow):
        entry = flow.metadata.pop('certdeploy_import', None)
        if entry is None or not entry.get('authorized'):
            return  # the SDK's token-less challenge probe is no import
        self.imports_seen += 1
        entry['seq'] = self.imports_seen
        entry['status'] = flow.response.status_code if flow.response is not None else None
        entry['version'] = self._version_in(flow)
        rule = flow.metadata.get('certdeploy_rule')
        entry['rule'] = rule['action'] if rule else None
        if rule and rule['action'] == DOUBLE:
            entry['variant'] = rule.get('variant', 'faithful')
        path = ctx.options.certdeploy_imports or os.path.join(os.path.dirname(ctx.options.certdeploy_faults), 'imports.jsonl')
        with open(path, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps(entry, sort_keys=True) + '\n')

    @staticmethod
    def _version_in(flow):
        if flow.response is None or flow.response.status_code != 200:
            return None
        try:
            ident = str(json.loads(flow.response.content).get('id') or '')
        except (ValueError, AttributeError):
            return None
        return ident.rstrip('/').rsplit('/', 1)[-1] or None

    # -- the chain-keeping test double -------------------------------------------

    def _double_request(self, flow, rule):
        """On an import: decide what this vault keeps, and bridge lowkey's PEM rule (TEST WORKAROUND, see above)."""
        sent = flow.metadata.get('certdeploy_sent')
        if sent is None or 'certdeploy_import' not in flow.metadata:
            return
        variant = rule.get('variant', 'faithful')
        if variant not in VARIANTS:
            raise ValueError('unknown variant %r of %s' % (variant, DOUBLE))
        chain = list(sent.others)
        if variant == 'drop_chain':
            chain = []
        elif variant == 'reorder':
            chain = chain[::-1]
        elif variant == 'drop_intermediate':
            chain = chain[1:]
        elif variant == 'swap_for':
            chain = [x509.load_pem_x509_certificate(rule['swap_for'].encode())] + chain[1:]
        body = json.loads(flow.request.content)
        policy = body.get('policy') or {}
        flow.metadata['certdeploy_keep'] = {
            'content_type': (policy.get('secret_props') or {}).get('contentType') or PKCS12_MIME,
            'exportable': (policy.get('key_props') or {}).get('exportable', True) is not False,
            'key': sent.key, 'leaf': sent.leaf, 'chain': chain}
        if sent.kind == 'pem' and sent.others:
            # TEST WORKAROUND for lowkey-vault, which takes the LAST certificate block as the certificate.
            reordered = (sent.key_pem or b'') + b''.join(
                c.public_bytes(serialization.Encoding.PEM) for c in list(sent.others) + [sent.leaf])
            body['value'] = base64.b64encode(reordered).decode('ascii')
            flow.request.content = json.dumps(body).encode()
            ctx.log.info('test double: PEM import forwarded with the leaf last (lowkey workaround)')

    def _double_response(self, flow):
        path = flow.request.path.split('?')[0]
        keep = flow.metadata.get('certdeploy_keep')
        if keep is not None:
            version = self._version_in(flow)
            name = urllib.parse.unquote(IMPORT_PATH.search(path).group(1)).lower()
            if version:
                self.kept[(name, version)] = keep
                ctx.log.info('test double: kept %s/%s with %d chain certificate(s)' % (name, version, len(keep['chain'])))
            return
        found = SECRET_VERSION_PATH.search(path) if flow.request.method == 'GET' else None
        if not found or flow.response is None or flow.response.status_code != 200:
            return
        keep = self.kept.get((urllib.parse.unquote(found.group(1)).lower(), urllib.parse.unquote(found.group(2))))
        if keep is None:
            return
        bundle = json.loads(flow.response.content)
        bundle['value'] = self._served_value(keep)
        bundle['contentType'] = keep['content_type']
        bundle['managed'] = True
        flow.response.content = json.dumps(bundle).encode()
        ctx.log.info('test double: served the kept chain of %s' % path)

    @staticmethod
    def _served_value(keep):
        """The backing secret's value as Key Vault serves it (the key only for an exportable certificate)."""
        key = keep['key'] if keep['exportable'] else None
        certs = [keep['leaf']] + list(keep['chain'])
        if keep['content_type'] == PEM_MIME:
            parts = []
            if key is not None:
                parts.append(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            parts.extend(c.public_bytes(serialization.Encoding.PEM) for c in certs)
            return b''.join(parts).decode('ascii')
        if key is not None:
            blob = pkcs12.serialize_key_and_certificates(None, key, certs[0], certs[1:] or None, serialization.NoEncryption())
        else:
            blob = pkcs12.serialize_key_and_certificates(None, None, None, certs, serialization.NoEncryption())
        return base64.b64encode(blob).decode('ascii')

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
