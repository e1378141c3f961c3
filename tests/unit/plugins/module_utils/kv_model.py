# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An in-memory model of one Key Vault and its sign-in host, answering HTTP as the service does.

Used by the simulation test (``test_simulation.py``, through ``kv_sim.SimTransport``). It holds

- certificates by name, each with versions: id, DER and thumbprint, tags, enabled, created/updated (integer
  seconds of the simulation's virtual clock), the secret's content type and value (PKCS#12 without password,
  or PEM; without the key when the policy made it non-exportable), and who wrote it (``us``: a request that came
  through the transport, ``foreign``: another writer the simulation lets act);
- the certificate-level policy (content type, exportable, key properties): an import replaces it;
- what each version stores with its leaf: the chain, in the order stored (``Stored.chain``), served in full by its
  backing secret; an import stores the chain it was sent, in the order sent, unless the simulation's ``store``
  fault tells the vault to store it otherwise (``Vault.store_next``: the leaf alone, the chain reordered, or an
  intermediate dropped), as a vault or an API version that does not keep chains would;
- soft-deleted certificates (their versions and tags kept) and recovery, which completes ``recovery_delay``
  virtual seconds after the recover request (until then the name reads as absent, as Key Vault's does);
- the tokens the sign-in host issued; a request without one gets Key Vault's 401 challenge, a request with
  an unknown one a 401 too.

Endpoints: GET /certificates/{n}/ (latest), GET /certificates/{n}/{v}, GET /certificates/{n}/versions (paged,
``nextLink``), POST /certificates/{n}/import, PATCH /certificates/{n}/{v}, GET /secrets/{n}/{v},
GET /deletedcertificates/{n}, POST /deletedcertificates/{n}/recover; on the sign-in host the OpenID
configuration and the token POST. Errors use Key Vault's JSON error shape (``{"error": {"code", "message",
"innererror"}}``) with its codes (CertificateNotFound, ObjectIsDeletedButRecoverable, Forbidden/SecretDisabled,
BadParameter, Unauthorized).

Every state change is an :class:`Event` in ``Vault.events`` with a sequence number, so invariants can ask what
was there when: which versions we wrote, what the collection last read (a version, or a backing secret), what
another writer did in between.

``material_record`` is the ``certdeploy-material`` tag value of what a version holds, computed here from the
format the product documents (``v1;<content type>;<exportable|non-exportable>;<sha256 over the SHA-256 of each
certificate's DER, leaf first>``), not with the product's code, so that the invariants compare the product's
record with an independent one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re

from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

VAULT_HOST = 'sim.vault.sim.test'
VAULT_URL = 'https://' + VAULT_HOST
AUTHORITY_HOST = 'login.sim.test'
AUTHORITY = 'https://' + AUTHORITY_HOST
TENANT = '11111111-2222-3333-4444-555555555555'
RESOURCE = 'https://vault.sim.test'
SCOPE = RESOURCE + '/.default'
PAGE_SIZE = 3  # list pages are small so that the nextLink is followed
LIST_PAGE_SIZE = 25  # Key Vault's largest page of List Certificates
MANAGED_BY = 'certdeploy-managed-by'
MANAGED_BY_VALUE = 'certdeploy'
ROLLBACK_OF = 'certdeploy-rollback-of'

MATERIAL = 'certdeploy-material'

PKCS12 = 'application/x-pkcs12'
PEM = 'application/x-pem-file'
CONTENT_TYPE_NAMES = {PKCS12: 'pkcs12', PEM: 'pem'}

# How the vault may store an import's chain otherwise (the ``store`` fault): see ``Stored.stored_as``.
STORE_CHAIN = ('leaf_only', 'reordered', 'drop_intermediate')

_REASONS = {200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict',
            429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable',
            504: 'Gateway Timeout'}


def b64(raw):
    return base64.b64encode(raw).decode('ascii')


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b'=').decode('ascii')


def sha1(raw):
    return hashlib.sha1(raw).digest()  # nosec - a certificate thumbprint, as Key Vault's x5t


def is_managed(tags):
    return (tags or {}).get(MANAGED_BY) == MANAGED_BY_VALUE


def material_record(ders, content_type, exportable):
    """The ``certdeploy-material`` value of ``ders`` (DER certificates, leaf first, in order) stored as ``content_type``
    (a MIME type) with ``exportable``: what the product documents it writes."""
    outer = hashlib.sha256()
    for der in ders:
        outer.update(hashlib.sha256(der).digest())
    return 'v1;%s;%s;%s' % (CONTENT_TYPE_NAMES[content_type], 'exportable' if exportable else 'non-exportable',
                            outer.hexdigest())


def _is_self_issued(cert):
    return cert.issuer == cert.subject


# -- what a stored secret holds (memoised: building and parsing PKCS#12 dominates the run time) ------------------

_KEYS = {}  # DER -> the key object it came from: loading an RSA key again costs OpenSSL's full check (~40 ms)


@functools.lru_cache(maxsize=None)
def _export_value(key_der, leaf_der, chain_ders, content_type, with_key):
    """The value Key Vault's backing secret returns: base64 PKCS#12 without password, or PEM; the key only when exportable."""
    key = (_KEYS.get(key_der) or serialization.load_der_private_key(key_der, None)) if with_key else None
    leaf = x509.load_der_x509_certificate(leaf_der)
    chain = [x509.load_der_x509_certificate(d) for d in chain_ders]
    if content_type == PEM:
        parts = [leaf.public_bytes(serialization.Encoding.PEM)] + [c.public_bytes(serialization.Encoding.PEM) for c in chain]
        if key is not None:
            parts.append(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return b''.join(parts).decode('ascii')
    return b64(pkcs12.serialize_key_and_certificates(None, key, leaf, chain or None, serialization.NoEncryption()))


class Stored(object):
    """Parsed import payload: what a version keeps of it."""

    def __init__(self, key, leaf, chain):
        self.key = key
        self.leaf = leaf
        self.chain = chain
        self.der = leaf.public_bytes(serialization.Encoding.DER)
        self.thumb = sha1(self.der)
        self.key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        _KEYS.setdefault(self.key_der, key)
        self.chain_ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in chain)
        validity = (getattr(leaf, 'not_valid_before_utc', None), getattr(leaf, 'not_valid_after_utc', None))
        self.nbf = int(validity[0].timestamp()) if validity[0] else 0
        self.exp = int(validity[1].timestamp()) if validity[1] else 0

    @property
    def ders(self):
        """The stored certificates as DER, leaf first, in the stored order."""
        return (self.der,) + self.chain_ders

    def value(self, content_type, exportable):
        return _export_value(self.key_der, self.der, self.chain_ders, content_type, exportable)

    def with_chain(self, chain):
        """The same leaf and key stored with ``chain`` instead (memoised per chain)."""
        memo = self.__dict__.setdefault('_variants', {})
        ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in chain)
        if ders == self.chain_ders:
            return self
        if ders not in memo:
            memo[ders] = Stored(self.key, self.leaf, list(chain))
        return memo[ders]

    def stored_as(self, how):
        """What a vault that stores the chain otherwise keeps of this import (``how`` in STORE_CHAIN): the leaf alone;
        the chain reversed (when it has two or more certificates); the first intermediate (a certificate that is not
        self-issued) dropped. Where ``how`` changes nothing (no chain, one certificate to reorder, no intermediate),
        the import is stored as sent."""
        if how == 'leaf_only':
            return self.with_chain([])
        if how == 'reordered':
            return self.with_chain(list(reversed(self.chain)))
        if how == 'drop_intermediate':
            for index, cert in enumerate(self.chain):
                if not _is_self_issued(cert):
                    return self.with_chain(self.chain[:index] + self.chain[index + 1:])
            return self
        raise ValueError('unknown way of storing a chain: %r' % (how,))

    def key_props(self):
        if isinstance(self.key, rsa.RSAPrivateKey):
            return {'kty': 'RSA', 'key_size': self.key.key_size}
        return {'kty': 'EC', 'crv': {'secp256r1': 'P-256', 'secp384r1': 'P-384', 'secp521r1': 'P-521'}[self.key.curve.name]}


class BadPayload(Exception):
    """Key Vault answers 400 BadParameter."""


@functools.lru_cache(maxsize=256)
def parse_payload(value, password, content_type):
    """Parse an import's ``value`` as Key Vault does (PKCS#12 base64 with ``pwd``, or PEM text) -> Stored."""
    if content_type == PEM:
        text = value.encode('utf-8') if isinstance(value, str) else value
        if b'-----BEGIN' not in text:  # the SDK sends every value base64-encoded, PEM included
            try:
                text = base64.b64decode(text, validate=True)
            except ValueError:
                raise BadPayload('The value is neither PEM nor base64 of PEM.')
        try:
            certs = [x509.load_pem_x509_certificate(block) for block in
                     re.findall(rb'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----', text, re.S)]
            if not certs:
                raise BadPayload('The PEM value holds no certificate.')
            blocks = re.findall(rb'-----BEGIN (?:[A-Z ]*)PRIVATE KEY-----.*?-----END (?:[A-Z ]*)PRIVATE KEY-----', text, re.S)
            if len(blocks) != 1:
                raise BadPayload('The PEM value must hold exactly one private key.')
            key = serialization.load_pem_private_key(blocks[0], None)
        except BadPayload:
            raise
        except Exception as exc:
            raise BadPayload('The PEM could not be parsed: %s' % exc)
    else:
        try:
            raw = base64.b64decode(value, validate=True)
            key, leaf, extra = pkcs12.load_key_and_certificates(raw, password.encode('utf-8') if password else None)
        except Exception as exc:
            raise BadPayload('Failed to decode the PFX (wrong password, or not PKCS#12): %s' % type(exc).__name__)
        if key is None or leaf is None:
            raise BadPayload('The PFX must hold a private key and its certificate.')
        certs = [leaf] + list(extra)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for index, cert in enumerate(certs):
        if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == spki:
            return Stored(key, cert, certs[:index] + certs[index + 1:])
    raise BadPayload('No certificate in the value matches the private key.')


# -- the state ------------------------------------------------------------------------------------------------

class Version(object):
    def __init__(self, vid, stored, tags, enabled, created, content_type, exportable, author, seq):
        self.id = vid
        self.stored = stored
        self.tags = dict(tags or {})
        self.enabled = enabled
        self.created = created
        self.updated = created
        self.content_type = content_type
        self.exportable = exportable
        self.author = author  # 'us' or 'foreign'
        self.seq = seq        # the event that created it
        self.sent = stored.ders  # what the import sent (DER, leaf first), when the vault stored something else

    @property
    def thumbprint(self):
        return self.stored.thumb.hex().upper()

    def __repr__(self):
        return 'Version(%s, %s, %s, tags=%r, enabled=%s)' % (self.id[:8], self.author, self.thumbprint[:8], self.tags, self.enabled)


class Certificate(object):
    def __init__(self, name):
        self.name = name
        self.versions = []       # creation order; the last is latest
        self.policy = None       # {'content_type', 'exportable', 'key_props'}
        self.deleted_on = None   # virtual seconds when soft-deleted, or None
        self.ready_at = None     # virtual seconds when a recovery completes

    def latest(self):
        return self.versions[-1] if self.versions else None

    def version(self, vid):
        for version in self.versions:
            if version.id == vid:
                return version
        return None


class Event(object):
    """One thing that happened to the vault, in order. ``kind``: import, update, delete, recover (writes, ``actor``
    us or foreign), or read_latest / read_versions (a read of ours whose answer reached the client)."""

    def __init__(self, seq, actor, kind, name, version=None, detail=None, at=None):
        self.seq = seq
        self.actor = actor
        self.kind = kind
        self.name = name
        self.version = version
        self.detail = dict(detail or {})
        self.at = at

    @property
    def write(self):
        return self.kind in ('import', 'update', 'delete', 'recover')

    def __repr__(self):
        return 'Event(#%d %s %s %s%s%s)' % (self.seq, self.actor, self.kind, self.name,
                                            ' v=%s' % self.version[:8] if self.version else '',
                                            ' %r' % self.detail if self.detail else '')


class Answer(object):
    """An HTTP answer of the model: status, headers, JSON body (or None)."""

    def __init__(self, status, body=None, headers=None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    @property
    def reason(self):
        return _REASONS.get(self.status, 'Status %d' % self.status)

    def payload(self):
        data = b'' if self.body is None else json.dumps(self.body).encode('utf-8')
        headers = dict(self.headers)
        if self.body is not None:
            headers.setdefault('Content-Type', 'application/json; charset=utf-8')
        headers['Content-Length'] = str(len(data))
        return headers, data


def error(status, code, message, inner=None, headers=None):
    body = {'error': {'code': code, 'message': message}}
    if inner:
        body['error']['innererror'] = {'code': inner}
    return Answer(status, body, headers)


def not_found(name, what='Certificate'):
    return error(404, 'CertificateNotFound', 'A certificate with (name/id) %s was not found in this key vault. If you recently '
                 'deleted this certificate you may be able to recover it using the correct recovery command.' % name
                 if what == 'Certificate' else '%s not found: %s' % (what, name))


CHALLENGE = error(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token.', headers={
    'WWW-Authenticate': 'Bearer authorization="%s/%s", resource="%s"' % (AUTHORITY, TENANT, RESOURCE)})


class Vault(object):
    """The vault and its sign-in host. ``clock`` is the simulation's virtual clock (``now()`` in seconds)."""

    def __init__(self, clock, recovery_delay=0):
        self.clock = clock
        self.recovery_delay = recovery_delay
        self.certs = {}
        self.events = []
        self.tokens = set()
        self.corrupt_next = None
        self.store_next = None  # the simulation's 'store' fault: how the next import's chain is stored (STORE_CHAIN)
        self._ids = 0
        self._seq = 0

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def _event(self, actor, kind, name, version=None, **detail):
        self._seq += 1
        event = Event(self._seq, actor, kind, name, version, detail, at=self.clock.now())
        self.events.append(event)
        return event

    def _new_id(self):
        self._ids += 1
        return hashlib.md5(b'version-%d' % self._ids).hexdigest()  # nosec - an id, not a digest of anything secret

    def now(self):
        return int(self.clock.now())

    def live(self, name):
        """The certificate when it is readable (not deleted, not still recovering), else None."""
        cert = self.certs.get(name)
        if cert is None or cert.deleted_on is not None or not cert.versions:
            return None
        if cert.ready_at is not None and self.clock.now() < cert.ready_at:
            return None
        return cert

    def deleted(self, name):
        cert = self.certs.get(name)
        return cert if cert is not None and cert.deleted_on is not None else None

    # -- direct state changes (set-up and the other writer) ------------------------------------------------------

    def add_version(self, name, stored, tags, enabled=True, content_type=PKCS12, exportable=True, author='foreign'):
        cert = self.certs.setdefault(name, Certificate(name))
        event = self._event(author, 'import', name)
        version = Version(self._new_id(), stored, tags, enabled, self.now(), content_type, exportable, author, event.seq)
        event.version = version.id
        event.detail.update(thumbprint=version.thumbprint, tags=dict(version.tags))
        cert.versions.append(version)
        cert.policy = {'content_type': content_type, 'exportable': exportable, 'key_props': stored.key_props()}
        return version

    def update_version(self, name, version, tags=None, enabled=None, author='foreign'):
        if tags is not None:
            version.tags = dict(tags)
        if enabled is not None:
            version.enabled = enabled
        version.updated = self.now()
        self._event(author, 'update', name, version.id, tags=dict(version.tags), enabled=version.enabled)

    def delete(self, name, author='foreign'):
        cert = self.live(name)
        if cert is None:
            return False
        cert.deleted_on = self.now()
        cert.ready_at = None
        self._event(author, 'delete', name, cert.latest().id, tags=dict(cert.latest().tags))
        return True

    # -- HTTP ------------------------------------------------------------------------------------------------------

    def handle(self, method, url, headers, body):
        """Answer one request; a write is committed here (a fault may still hide the answer from the client)."""
        parts = urlsplit(url)
        if parts.hostname == AUTHORITY_HOST:
            return self._sign_in(method, parts, body)
        if parts.hostname != VAULT_HOST:
            return error(404, 'NotFound', 'no such host in the simulation: %s' % parts.hostname)
        auth = headers.get('Authorization') or headers.get('authorization')
        if not auth:
            return CHALLENGE
        if not auth.startswith('Bearer ') or auth[len('Bearer '):] not in self.tokens:
            return error(401, 'Unauthorized', 'AKV10022: Invalid audience or token.',
                         headers=CHALLENGE.headers)
        query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
        segments = [s for s in parts.path.split('/') if s]
        data = json.loads(body.decode('utf-8')) if isinstance(body, bytes) and body else None
        return self._route(method, segments, query, data)

    def _sign_in(self, method, parts, body):
        if method == 'GET' and parts.path.endswith('/.well-known/openid-configuration'):
            tenant = parts.path.strip('/').split('/')[0]
            base = '%s/%s' % (AUTHORITY, tenant)
            return Answer(200, {'token_endpoint': base + '/oauth2/v2.0/token', 'issuer': base + '/v2.0',
                                'authorization_endpoint': base + '/oauth2/v2.0/authorize',
                                'device_authorization_endpoint': base + '/oauth2/v2.0/devicecode'})
        if method == 'POST' and parts.path.endswith('/oauth2/v2.0/token'):
            if isinstance(body, dict):  # azure-core carries form fields as a dict
                form = dict(body)
            else:
                form = dict((k, v[0]) for k, v in parse_qs((body or b'').decode('utf-8')).items())
            if form.get('scope') != SCOPE:
                return Answer(400, {'error': 'invalid_scope', 'error_description': 'AADSTS70011: invalid scope %s' % form.get('scope')})
            token = 'sim-token-%d' % (len(self.tokens) + 1)
            self.tokens.add(token)
            return Answer(200, {'token_type': 'Bearer', 'expires_in': 3600, 'ext_expires_in': 3600, 'access_token': token})
        return Answer(404, {'error': 'not_found'})

    def _route(self, method, seg, query, data):
        if seg == ['certificates'] and method == 'GET':
            return self.list_certificates(query)
        if len(seg) >= 2 and seg[0] == 'certificates':
            name = seg[1]
            if len(seg) == 2 and method == 'GET':
                return self.get_latest(name)
            if len(seg) == 3 and seg[2] == 'import' and method == 'POST':
                return self.import_(name, data or {})
            if len(seg) == 3 and seg[2] == 'versions' and method == 'GET':
                return self.list_versions(name, query)
            if len(seg) == 3 and method == 'GET':
                return self.get_version(name, seg[2])
            if len(seg) == 3 and method == 'PATCH':
                return self.patch(name, seg[2], data or {})
        if len(seg) == 3 and seg[0] == 'secrets' and method == 'GET':
            return self.get_secret(seg[1], seg[2])
        if len(seg) == 2 and seg[0] == 'deletedcertificates' and method == 'GET':
            return self.get_deleted(seg[1])
        if len(seg) == 3 and seg[0] == 'deletedcertificates' and seg[2] == 'recover' and method == 'POST':
            return self.recover(seg[1])
        return error(400, 'BadParameter', 'The request %s /%s is not one the simulation knows.' % (method, '/'.join(seg)))

    # -- the bodies ------------------------------------------------------------------------------------------------

    def _policy(self, cert):
        policy = cert.policy or {'content_type': PKCS12, 'exportable': True, 'key_props': {'kty': 'RSA', 'key_size': 2048}}
        key_props = dict(policy['key_props'], exportable=policy['exportable'], reuse_key=False)
        return {'id': '%s/certificates/%s/policy' % (VAULT_URL, cert.name), 'key_props': key_props,
                'secret_props': {'contentType': policy['content_type']}, 'issuer': {'name': 'Unknown'},
                'attributes': {'enabled': True, 'created': 1700000000, 'updated': 1700000000}}

    def _attributes(self, version):
        return {'enabled': version.enabled, 'nbf': version.stored.nbf, 'exp': version.stored.exp, 'created': version.created,
                'updated': version.updated, 'recoveryLevel': 'Recoverable+Purgeable', 'recoverableDays': 90}

    def bundle(self, cert, version, deleted=False):
        body = {
            'id': '%s/certificates/%s/%s' % (VAULT_URL, cert.name, version.id),
            'kid': '%s/keys/%s/%s' % (VAULT_URL, cert.name, version.id),
            'sid': '%s/secrets/%s/%s' % (VAULT_URL, cert.name, version.id),
            'x5t': b64url(version.stored.thumb),
            'cer': b64(version.stored.der),
            'attributes': self._attributes(version),
            'policy': self._policy(cert),
        }
        if version.tags:
            body['tags'] = dict(version.tags)
        if deleted:
            body.update(recoveryId='%s/deletedcertificates/%s' % (VAULT_URL, cert.name), deletedDate=cert.deleted_on,
                        scheduledPurgeDate=cert.deleted_on + 90 * 86400)
        return body

    def get_latest(self, name):
        cert = self.live(name)
        if cert is None:
            return not_found(name)
        return Answer(200, self.bundle(cert, cert.latest()))

    def get_version(self, name, vid):
        cert = self.live(name)
        version = cert.version(vid) if cert is not None else None
        if version is None:
            return not_found('%s/%s' % (name, vid))
        return Answer(200, self.bundle(cert, version))

    def list_versions(self, name, query):
        cert = self.live(name)
        if cert is None:
            return not_found(name)
        start = int(query.get('$skiptoken') or 0)
        size = min(int(query.get('maxresults') or PAGE_SIZE), PAGE_SIZE)
        items = [{'id': '%s/certificates/%s/%s' % (VAULT_URL, name, v.id), 'x5t': b64url(v.stored.thumb),
                  'attributes': self._attributes(v), 'tags': dict(v.tags)} for v in cert.versions[start:start + size]]
        more = start + size < len(cert.versions)
        link = ('%s/certificates/%s/versions?api-version=%s&$skiptoken=%d&maxresults=%d'
                % (VAULT_URL, name, query.get('api-version', ''), start + size, size)) if more else None
        return Answer(200, {'value': items, 'nextLink': link})

    def list_certificates(self, query):
        """Key Vault's List Certificates: live certificates by name, LIST_PAGE_SIZE a page; versionless ids, latest's facts."""
        live = [self.live(name) for name in sorted(self.certs)]
        live = [cert for cert in live if cert is not None]
        start = int(query.get('$skiptoken') or 0)
        size = min(int(query.get('maxresults') or LIST_PAGE_SIZE), LIST_PAGE_SIZE)
        items = []
        for cert in live[start:start + size]:
            latest = cert.latest()
            item = {'id': '%s/certificates/%s' % (VAULT_URL, cert.name), 'x5t': b64url(latest.stored.thumb),
                    'attributes': self._attributes(latest)}
            if latest.tags:
                item['tags'] = dict(latest.tags)
            items.append(item)
        more = start + size < len(live)
        link = ('%s/certificates?api-version=%s&$skiptoken=%d&maxresults=%d'
                % (VAULT_URL, query.get('api-version', ''), start + size, size)) if more else None
        return Answer(200, {'value': items, 'nextLink': link})

    def get_secret(self, name, vid):
        cert = self.live(name)
        version = cert.version(vid) if cert is not None else None
        if version is None:
            return error(404, 'SecretNotFound', 'A secret with (name/id) %s/%s was not found in this key vault.' % (name, vid))
        if not version.enabled:
            return error(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', inner='SecretDisabled')
        return Answer(200, {
            'value': version.stored.value(version.content_type, version.exportable),
            'contentType': version.content_type,
            'id': '%s/secrets/%s/%s' % (VAULT_URL, name, vid),
            'kid': '%s/keys/%s/%s' % (VAULT_URL, name, vid),
            'managed': True,
            'attributes': {'enabled': version.enabled, 'created': version.created, 'updated': version.updated},
        })

    def get_deleted(self, name):
        cert = self.deleted(name)
        if cert is None:
            return error(404, 'CertificateNotFound', 'Deleted Certificate not found: %s' % name)
        return Answer(200, self.bundle(cert, cert.latest(), deleted=True))

    def recover(self, name):
        cert = self.deleted(name)
        if cert is None:
            return error(404, 'CertificateNotFound', 'Deleted Certificate not found: %s' % name)
        cert.deleted_on = None
        cert.ready_at = self.clock.now() + self.recovery_delay
        latest = cert.latest()
        self._event('us', 'recover', name, latest.id, tags=dict(latest.tags))
        return Answer(200, self.bundle(cert, latest))

    def import_(self, name, data, author='us'):
        cert = self.certs.get(name)
        if cert is not None and cert.deleted_on is not None:
            return error(409, 'Conflict', 'Certificate %s is currently in a deleted but recoverable state, and its name cannot '
                         'be reused; in this state, the certificate can only be recovered or purged.' % name,
                         inner='ObjectIsDeletedButRecoverable')
        if cert is not None and cert.versions and self.live(name) is None:
            return error(409, 'Conflict', 'Certificate %s is currently being recovered.' % name)
        policy = data.get('policy') or {}
        content_type = (policy.get('secret_props') or {}).get('contentType') or PKCS12
        if content_type not in (PKCS12, PEM):
            return error(400, 'BadParameter', 'Unsupported content type %s.' % content_type)
        try:
            stored = parse_payload(data.get('value') or '', data.get('pwd'), content_type)
        except BadPayload as exc:
            return error(400, 'BadParameter', str(exc))
        key_props = policy.get('key_props') or {}
        actual = stored.key_props()
        if key_props.get('kty') and key_props['kty'].split('-')[0] != actual['kty']:
            return error(400, 'BadParameter', 'The key type in the policy (%s) does not match the certificate key (%s).'
                         % (key_props['kty'], actual['kty']))
        sent = stored
        if self.corrupt_next is not None:  # the simulation's 'corrupt' fault: another certificate is stored
            stored, self.corrupt_next = self.corrupt_next, None
        if self.store_next is not None:  # the simulation's 'store' fault: the chain is stored otherwise
            stored, self.store_next = stored.stored_as(self.store_next), None
        exportable = key_props.get('exportable', True)
        enabled = (data.get('attributes') or {}).get('enabled', True)
        version = self.add_version(name, stored, data.get('tags') or {}, enabled=enabled, content_type=content_type,
                                   exportable=exportable, author=author)
        version.sent = sent.ders
        self.events[-1].detail.update(rollback_of=(data.get('tags') or {}).get(ROLLBACK_OF),
                                      preserve_order=data.get('preserveCertOrder'))
        return Answer(200, self.bundle(self.certs[name], version))

    def patch(self, name, vid, data):
        cert = self.live(name)
        version = cert.version(vid) if cert is not None else None
        if version is None:
            return not_found('%s/%s' % (name, vid))
        tags = data.get('tags')
        enabled = (data.get('attributes') or {}).get('enabled')
        self.update_version(name, version, tags=tags, enabled=enabled, author='us')
        return Answer(200, self.bundle(cert, version))

    # -- reads, as the invariants see them ---------------------------------------------------------------------

    def note_read(self, kind, name, answer):
        """A read of ours whose answer reached the client (200 or 404)."""
        version = None
        if answer.status == 200 and kind == 'read_latest':
            version = answer.body['id'].rsplit('/', 1)[-1] if isinstance(answer.body, dict) and answer.body.get('id') else None
        self._event('us', kind, name, version, status=answer.status)

    def note_secret_read(self, name, vid, status, truthful):
        """A read of ours of the backing secret of version ``vid``, as the client got it: ``status``, and whether the
        answer was the vault's own (``truthful``: a 200 that no fault replaced or garbled)."""
        self._event('us', 'read_secret', name, vid, status=status, truthful=truthful)
