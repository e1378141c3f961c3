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
configuration and the token POST.

The key-in-vault flow (issuer ``Unknown`` only): POST /certificates/{n}/create (a key made here, a CSR over the policy's
subject, dns SANs and usages; a disabled placeholder version), GET/PATCH (cancel)/DELETE /certificates/{n}/pending,
POST /certificates/{n}/pending/merge (the leaf's public key must be the pending key; a new version keeps the chain as
sent), GET /certificates/{n}/policy. Bodies follow the recorded shapes in recordings/ (net_pending_merge.json,
net_get_while_pending.json, cli_pending_certificate.json, test_async_request_cancellation_and_deletion.json,
js_merge_self_signed.json; recordings/README.md). Where no recording shows what the service does, the choice made is
marked ``UNKNOWN:`` in a comment and, where a test may want the other answer, is a switch on ``Vault``.

Errors use Key Vault's JSON error shape (``{"error": {"code", "message", "innererror"}}``) with its codes
(CertificateNotFound, ObjectIsDeletedButRecoverable, Forbidden/SecretDisabled, BadParameter, Unauthorized,
PendingCertificateNotFound, and Forbidden in a 409 for a create or import while a pending operation is in progress).

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
import calendar
import copy
import datetime
import functools
import hashlib
import json
import re

from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

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

_REASONS = {200: 'OK', 201: 'Created', 202: 'Accepted', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict',
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

    placeholder = False  # a PendingVersion is the version a pending create made, without a certificate yet

    @property
    def thumbprint(self):
        return self.stored.thumb.hex().upper()

    @property
    def nbf(self):
        return self.stored.nbf

    @property
    def exp(self):
        return self.stored.exp

    def __repr__(self):
        return 'Version(%s, %s, %s, tags=%r, enabled=%s)' % (self.id[:8], self.author, self.thumbprint[:8], self.tags, self.enabled)


class PendingVersion(Version):
    """The version a create with issuer Unknown makes at once (recorded: GET latest while the only version is pending
    answers it with ``enabled: false``, nbf ten minutes before ``created``, exp ``validity_months`` after ``created``,
    and no kid, sid, x5t or cer; GET of it by id answers id and attributes only)."""

    placeholder = True

    def __init__(self, vid, tags, created, validity_months, content_type, exportable, author, seq):
        self.id = vid
        self.stored = None
        self.tags = dict(tags or {})
        self.enabled = False
        self.created = created
        self.updated = created
        self.content_type = content_type
        self.exportable = exportable
        self.author = author
        self.seq = seq
        self.sent = ()
        self._nbf = created - 600
        self._exp = add_months(created, validity_months)

    @property
    def thumbprint(self):
        return None

    @property
    def nbf(self):
        return self._nbf

    @property
    def exp(self):
        return self._exp

    def __repr__(self):
        return 'PendingVersion(%s, %s, tags=%r)' % (self.id[:8], self.author, self.tags)


def add_months(epoch, months):
    """``epoch`` plus ``months`` calendar months (recorded: 12 months after created 2024-08-02 is exp 2025-08-02)."""
    when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    month = when.month - 1 + months
    year, month = when.year + month // 12, month % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return int(calendar.timegm(when.replace(year=year, month=month, day=day).utctimetuple()))


class Certificate(object):
    def __init__(self, name):
        self.name = name
        self.versions = []       # creation order; the last is latest
        self.policy = None       # {'content_type', 'exportable', 'key_props'}
        self.policy_body = None  # the whole policy a create stored, in the service's shape (None after an import)
        self.pending = None      # the Pending operation of a create, or None
        self.deleted_on = None   # virtual seconds when soft-deleted, or None
        self.ready_at = None     # virtual seconds when a recovery completes

    def latest(self):
        return self.versions[-1] if self.versions else None

    def version(self, vid):
        for version in self.versions:
            if version.id == vid:
                return version
        return None


# -- the key-in-vault flow: policy, key and CSR of a create with issuer Unknown -----------------------------------

STATUS_DETAILS_UNKNOWN = 'Pending certificate created. Please Perform Merge to complete the request.'  # recorded
SERVER_AUTH, CLIENT_AUTH = '1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'
# Key Vault's key usage names -> cryptography's KeyUsage arguments. The service stores them sorted, case-insensitively,
# with crlSign spelled cRLSign (recorded in net_get_while_pending.json).
KEY_USAGES = {'digitalSignature': 'digital_signature', 'nonRepudiation': 'content_commitment',
              'keyEncipherment': 'key_encipherment', 'dataEncipherment': 'data_encipherment',
              'keyAgreement': 'key_agreement', 'keyCertSign': 'key_cert_sign', 'cRLSign': 'crl_sign',
              'encipherOnly': 'encipher_only', 'decipherOnly': 'decipher_only'}
CURVES = {'P-256': ec.SECP256R1, 'P-384': ec.SECP384R1, 'P-521': ec.SECP521R1}
_NAME_OIDS = {'CN': NameOID.COMMON_NAME, 'O': NameOID.ORGANIZATION_NAME, 'OU': NameOID.ORGANIZATIONAL_UNIT_NAME,
              'L': NameOID.LOCALITY_NAME, 'ST': NameOID.STATE_OR_PROVINCE_NAME, 'S': NameOID.STATE_OR_PROVINCE_NAME,
              'C': NameOID.COUNTRY_NAME, 'E': NameOID.EMAIL_ADDRESS, 'EMAIL': NameOID.EMAIL_ADDRESS}


class BadPolicy(Exception):
    """Key Vault answers 400 BadParameter to the create."""


def parse_subject(text):
    """Key Vault's X.500 subject string (``CN=a, O=b``) -> x509.Name. The string is in RFC 4514 order: recorded,
    ``C=US, ST=WA, L=Redmond, O=TestO, OU=TestOU, CN=www.mytestdomain.com`` gave a CSR whose DER starts with CN.
    Attribute names are case-insensitive (recorded: ``cn=MyCert``)."""
    parts = [p.strip() for p in (text or '').split(',') if p.strip()]
    if not parts:
        raise BadPolicy('Property x509_props.subject is required.')
    rdns = []
    for part in parts:
        kind, sep, value = part.partition('=')
        oid = _NAME_OIDS.get(kind.strip().upper())
        if not sep or oid is None or not value.strip():
            raise BadPolicy('The subject %r is not a valid X.500 name.' % text)
        rdns.append(x509.NameAttribute(oid, value.strip()))
    return x509.Name(list(reversed(rdns)))


def key_usage_name(name):
    for known in KEY_USAGES:
        if known.lower() == (name or '').lower():
            return known
    raise BadPolicy('Invalid key usage %r.' % name)


def stored_policy(vault_url, name, sent, now):
    """The policy as the service stores it from the create's ``policy`` (defaults as recorded for issuer Unknown)."""
    sent = sent or {}
    key_props = dict(sent.get('key_props') or {})
    kty = key_props.get('kty') or 'RSA'
    if kty not in ('RSA', 'RSA-HSM', 'EC', 'EC-HSM'):
        raise BadPolicy('Invalid key type %s.' % kty)
    out_key = {'exportable': key_props.get('exportable', True), 'kty': kty}
    if kty.startswith('RSA'):
        size = key_props.get('key_size') or 2048  # recorded default
        if size not in (2048, 3072, 4096):
            raise BadPolicy('Invalid key size %s.' % size)
        out_key['key_size'] = size
    else:
        # UNKNOWN: the default curve of an EC create is not in a recording; P-256 is the documented default.
        crv = key_props.get('crv') or 'P-256'
        if crv not in CURVES:
            raise BadPolicy('Invalid curve %s.' % crv)
        out_key['crv'] = crv
    out_key['reuse_key'] = bool(key_props.get('reuse_key', False))
    if kty.endswith('-HSM') and out_key['exportable']:
        # UNKNOWN: no recording of an exportable HSM create; the service documents HSM keys as not exportable.
        raise BadPolicy('An HSM-protected key (%s) cannot be exportable.' % kty)
    x509_props = dict(sent.get('x509_props') or {})
    parse_subject(x509_props.get('subject'))
    usages = x509_props.get('key_usage') or ['digitalSignature', 'keyEncipherment']  # recorded default
    out_x509 = {'subject': x509_props['subject']}
    if 'sans' in x509_props:
        out_x509['sans'] = dict(x509_props.get('sans') or {})
    out_x509.update(ekus=list(x509_props.get('ekus') or [SERVER_AUTH, CLIENT_AUTH]),  # recorded default
                    key_usage=sorted(set(key_usage_name(u) for u in usages), key=str.lower),
                    validity_months=x509_props.get('validity_months') or 12,  # recorded default
                    basic_constraints={'ca': False})
    content_type = (sent.get('secret_props') or {}).get('contentType') or PKCS12
    if content_type not in (PKCS12, PEM):
        raise BadPolicy('Unsupported content type %s.' % content_type)
    return {
        'id': '%s/certificates/%s/policy' % (vault_url, name),
        'key_props': out_key,
        'secret_props': {'contentType': content_type},
        'x509_props': out_x509,
        # recorded for issuer Unknown when the create names no lifetime action
        'lifetime_actions': sent.get('lifetime_actions') or [
            {'trigger': {'lifetime_percentage': 80}, 'action': {'action_type': 'EmailContacts'}}],
        'issuer': {'name': 'Unknown', 'cert_transparency': False},
        'attributes': {'enabled': True, 'created': now, 'updated': now},
    }


def new_key(key_props):
    if key_props['kty'].startswith('RSA'):
        return rsa.generate_private_key(public_exponent=65537, key_size=key_props['key_size'])
    return ec.generate_private_key(CURVES[key_props['crv']]())


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def build_csr(key, policy):
    """The CSR the service hands out, as recorded: the policy's subject; an extension request with keyUsage (critical),
    extendedKeyUsage, subjectAltName dNSName entries (when the policy has dns_names; documented in Key Vault's REST
    example GetCertificateOperation) and basicConstraints ca=false; signed with SHA-256."""
    props = policy['x509_props']
    usage = dict((arg, False) for arg in KEY_USAGES.values())
    for name in props['key_usage']:
        usage[KEY_USAGES[name]] = True
    builder = (x509.CertificateSigningRequestBuilder().subject_name(parse_subject(props['subject']))
               .add_extension(x509.KeyUsage(**usage), critical=True)
               .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in props['ekus']]), critical=False))
    dns = (props.get('sans') or {}).get('dns_names') or []
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def sign_csr(csr, issuer_cert, issuer_key, days=90, not_before=None):
    """A test CA's signature over ``csr`` (DER, PEM or a cryptography CSR): a leaf with the CSR's subject, public key and
    requested extensions. A helper for tests; the vault does not sign."""
    if isinstance(csr, bytes):
        csr = x509.load_pem_x509_csr(csr) if csr.startswith(b'-----') else x509.load_der_x509_csr(csr)
    start = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(issuer_cert.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days)))
    for extension in csr.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    return builder.sign(issuer_key, hashes.SHA256())


class Pending(object):
    """The pending operation of a create (GET /certificates/{n}/pending): its key stays in the vault."""

    def __init__(self, key, csr_der, request_id, tags, placeholder):
        self.key = key
        self.csr_der = csr_der
        self.request_id = request_id
        self.tags = dict(tags or {})
        self.placeholder = placeholder     # the PendingVersion it made
        self.status = 'inProgress'
        self.cancellation_requested = False
        self.cancel_seen = False           # the cancel's own answer went out; the next read says cancelled
        self.target = None

    @property
    def csr_pem(self):
        return x509.load_der_x509_csr(self.csr_der).public_bytes(serialization.Encoding.PEM).decode('ascii')

    @property
    def public_key_der(self):
        return spki(self.key.public_key())


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
        return self.kind in ('import', 'update', 'delete', 'recover', 'create', 'merge', 'cancel', 'delete_pending')

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


# documented only (docs_pending_conflicts.json): a create or import while a pending operation is inProgress
PENDING_CONFLICT = error(409, 'Forbidden', 'A new key vault certificate can not be created or imported while a pending key '
                         'vault certificate\'s status is inProgress.')


def pending_not_found(name):
    return error(404, 'PendingCertificateNotFound', 'Pending certificate not found: %s' % name)  # recorded


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
        # UNKNOWN: no recording shows GET latest while a NEW version is pending beside a completed one. 'pending': the
        # pending (disabled, certificate-less) version is latest, as it is when it is the only version (recorded);
        # 'completed': the newest completed version is latest.
        self.latest_while_pending = 'pending'
        # UNKNOWN: whether the pending version stays in List Versions after a merge. Recorded (JS): the merged version's
        # id is not the pending version's; by default the pending version is gone once merged.
        self.keep_placeholder_after_merge = False
        self.next_key = None  # a private key the next create uses instead of making one (tests: speed, or a known key)
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
        cert.policy_body = None  # an import replaces the policy
        if cert.pending is not None:  # documented: a create or import overwrites a pending operation not in progress
            cert.pending = None
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
            if len(seg) == 3 and seg[2] == 'create' and method == 'POST':
                return self.create(name, data or {})
            if len(seg) == 3 and seg[2] == 'pending':
                if method == 'GET':
                    return self.get_pending(name)
                if method == 'PATCH':
                    return self.cancel_pending(name, data or {})
                if method == 'DELETE':
                    return self.delete_pending(name)
            if len(seg) == 4 and seg[2:] == ['pending', 'merge'] and method == 'POST':
                return self.merge(name, data or {})
            if len(seg) == 3 and seg[2] == 'policy' and method == 'GET':
                return self.get_policy(name)
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
        if cert.policy_body is not None:
            return copy.deepcopy(cert.policy_body)
        policy = cert.policy or {'content_type': PKCS12, 'exportable': True, 'key_props': {'kty': 'RSA', 'key_size': 2048}}
        key_props = dict(policy['key_props'], exportable=policy['exportable'], reuse_key=False)
        return {'id': '%s/certificates/%s/policy' % (VAULT_URL, cert.name), 'key_props': key_props,
                'secret_props': {'contentType': policy['content_type']}, 'issuer': {'name': 'Unknown'},
                'attributes': {'enabled': True, 'created': 1700000000, 'updated': 1700000000}}

    def _attributes(self, version):
        return {'enabled': version.enabled, 'nbf': version.nbf, 'exp': version.exp, 'created': version.created,
                'updated': version.updated, 'recoveryLevel': 'Recoverable+Purgeable', 'recoverableDays': 90}

    def bundle(self, cert, version, deleted=False):
        if version.placeholder:
            # recorded (net_get_while_pending.json): no kid, sid, x5t or cer; the policy and the pending link
            body = {'id': '%s/certificates/%s/%s' % (VAULT_URL, cert.name, version.id),
                    'attributes': self._attributes(version), 'policy': self._policy(cert)}
            if version.tags:
                body['tags'] = dict(version.tags)  # UNKNOWN: whether the create's tags show here (none recorded)
            if cert.pending is not None or cert.policy_body is not None:
                body['pending'] = {'id': '%s/certificates/%s/pending' % (VAULT_URL, cert.name)}
            if deleted:
                body.update(recoveryId='%s/deletedcertificates/%s' % (VAULT_URL, cert.name), deletedDate=cert.deleted_on,
                            scheduledPurgeDate=cert.deleted_on + 90 * 86400)
            return body
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
        if cert.policy_body is not None:  # recorded: a merged bundle keeps the pending link
            body['pending'] = {'id': '%s/certificates/%s/pending' % (VAULT_URL, cert.name)}
        if deleted:
            body.update(recoveryId='%s/deletedcertificates/%s' % (VAULT_URL, cert.name), deletedDate=cert.deleted_on,
                        scheduledPurgeDate=cert.deleted_on + 90 * 86400)
        return body

    def latest_of(self, cert):
        """The version GET latest answers (see ``latest_while_pending``)."""
        latest = cert.latest()
        if latest is not None and latest.placeholder and self.latest_while_pending == 'completed':
            done = [v for v in cert.versions if not v.placeholder]
            if done:
                return done[-1]
        return latest

    def get_latest(self, name):
        cert = self.live(name)
        if cert is None:
            return not_found(name)
        return Answer(200, self.bundle(cert, self.latest_of(cert)))

    def get_version(self, name, vid):
        cert = self.live(name)
        version = cert.version(vid) if cert is not None else None
        if version is None:
            return not_found('%s/%s' % (name, vid))
        if version.placeholder:  # recorded: id and attributes only
            return Answer(200, {'id': '%s/certificates/%s/%s' % (VAULT_URL, name, vid), 'attributes': self._attributes(version)})
        return Answer(200, self.bundle(cert, version))

    def list_versions(self, name, query):
        cert = self.live(name)
        if cert is None:
            return not_found(name)
        start = int(query.get('$skiptoken') or 0)
        size = min(int(query.get('maxresults') or PAGE_SIZE), PAGE_SIZE)
        # UNKNOWN: a pending version in List Versions (no recording); listed here without x5t, as its GET answers
        items = [dict({'id': '%s/certificates/%s/%s' % (VAULT_URL, name, v.id), 'attributes': self._attributes(v),
                       'tags': dict(v.tags)}, **({} if v.placeholder else {'x5t': b64url(v.stored.thumb)}))
                 for v in cert.versions[start:start + size]]
        more = start + size < len(cert.versions)
        link = ('%s/certificates/%s/versions?api-version=%s&$skiptoken=%d&maxresults=%d'
                % (VAULT_URL, name, query.get('api-version', ''), start + size, size)) if more else None
        return Answer(200, {'value': items, 'nextLink': link})

    def list_certificates(self, query):
        """Key Vault's List Certificates: live certificates by name, LIST_PAGE_SIZE a page; versionless ids, latest's facts."""
        live = [self.live(name) for name in sorted(self.certs)]
        pending_too = (query.get('includePending') or '').lower() == 'true'
        # recorded (cli_pending_certificate.json): a name whose only version is pending is listed only with
        # includePending=true, then with enabled false, subject "" and no x5t
        live = [cert for cert in live if cert is not None and (pending_too or any(not v.placeholder for v in cert.versions))]
        start = int(query.get('$skiptoken') or 0)
        size = min(int(query.get('maxresults') or LIST_PAGE_SIZE), LIST_PAGE_SIZE)
        items = []
        for cert in live[start:start + size]:
            latest = self.latest_of(cert)
            if latest.placeholder and not pending_too:
                latest = [v for v in cert.versions if not v.placeholder][-1]
            item = {'id': '%s/certificates/%s' % (VAULT_URL, cert.name), 'attributes': self._attributes(latest)}
            if latest.placeholder:
                item['subject'] = ''
            else:
                item['x5t'] = b64url(latest.stored.thumb)
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
        if cert is not None and cert.pending is not None and cert.pending.status == 'inProgress':
            return PENDING_CONFLICT
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

    # -- the key-in-vault flow -------------------------------------------------------------------------------------

    def operation(self, cert):
        """The pending operation's body (recorded shapes: create, GET, cancel, after a merge)."""
        pending = cert.pending
        if pending.cancellation_requested and pending.status == 'inProgress' and pending.cancel_seen:
            pending.status = 'cancelled'  # recorded (issuer Self): the read after the cancel's own answer; UNKNOWN for Unknown
        body = {'id': '%s/certificates/%s/pending' % (VAULT_URL, cert.name), 'issuer': {'name': 'Unknown'},
                'csr': b64(pending.csr_der), 'cancellation_requested': pending.cancellation_requested,
                'status': pending.status}
        if pending.status == 'inProgress':
            body['status_details'] = STATUS_DETAILS_UNKNOWN
        if pending.target:
            body['target'] = pending.target
        body['request_id'] = pending.request_id
        return body

    def add_pending(self, name, policy, tags=None, author='foreign', key=None):
        """Set-up and the other writer: a create with issuer Unknown (``policy`` as the create's JSON ``policy``).
        Returns the Pending; raises BadPolicy where the create would answer 400."""
        cert = self.certs.setdefault(name, Certificate(name))
        stored = stored_policy(VAULT_URL, name, policy, self.now())
        key_props = stored['key_props']
        previous = [v for v in cert.versions if not v.placeholder]
        if key is None and key_props['reuse_key'] and previous:
            # UNKNOWN: what a manual create of a new version does with reuse_key; the documented meaning ("the same key
            # pair will be used on certificate renewal") is applied: the current version's key
            key = previous[-1].stored.key
        if key is None:
            key, self.next_key = self.next_key, None
        if key is None:
            key = new_key(key_props)
        event = self._event(author, 'create', name)
        placeholder = PendingVersion(self._new_id(), tags, self.now(), stored['x509_props']['validity_months'],
                                     stored['secret_props']['contentType'], key_props['exportable'], author, event.seq)
        request_id = hashlib.md5(b'request-%d' % event.seq).hexdigest()  # nosec - an id
        cert.pending = Pending(key, build_csr(key, stored), request_id, tags, placeholder)
        cert.policy_body = stored
        cert.policy = {'content_type': stored['secret_props']['contentType'], 'exportable': key_props['exportable'],
                       'key_props': dict((k, v) for k, v in key_props.items() if k in ('kty', 'key_size', 'crv'))}
        cert.versions.append(placeholder)
        event.version = placeholder.id
        event.detail.update(tags=dict(placeholder.tags), request_id=request_id)
        return cert.pending

    def create(self, name, data, author='us'):
        cert = self.certs.get(name)
        if cert is not None and cert.deleted_on is not None:
            return error(409, 'Conflict', 'Certificate %s is currently in a deleted but recoverable state, and its name cannot '
                         'be reused; in this state, the certificate can only be recovered or purged.' % name,
                         inner='ObjectIsDeletedButRecoverable')
        if cert is not None and cert.pending is not None and cert.pending.status == 'inProgress':
            return PENDING_CONFLICT
        policy = data.get('policy') or {}
        issuer = (policy.get('issuer') or {}).get('name') or 'Unknown'  # documented: no issuer is a manual create
        if issuer != 'Unknown':
            return error(400, 'BadParameter', 'The model knows issuer Unknown only, not %r.' % issuer)
        try:
            self.add_pending(name, policy, tags=data.get('tags'), author=author)
        except BadPolicy as exc:
            return error(400, 'BadParameter', str(exc))
        cert = self.certs[name]
        return Answer(202, self.operation(cert), headers={
            'Location': '%s/certificates/%s/pending?api-version=7.6&request_id=%s' % (VAULT_URL, name, cert.pending.request_id),
            'Retry-After': '10'})

    def _pending(self, name):
        cert = self.certs.get(name)
        if cert is None or cert.deleted_on is not None or cert.pending is None:
            return None
        return cert

    def get_pending(self, name):
        cert = self._pending(name)
        if cert is None:
            return pending_not_found(name)
        answer = Answer(200, self.operation(cert))
        if cert.pending.status == 'inProgress':
            answer.headers['Retry-After'] = '10'
        return answer

    def cancel_pending(self, name, data):
        cert = self._pending(name)
        if cert is None:
            return pending_not_found(name)
        if cert.pending.status != 'inProgress':
            # documented: 400 when not inProgress; the body is not documented
            return error(400, 'BadParameter', 'The pending certificate %s is not in progress.' % name)
        if data.get('cancellation_requested'):
            cert.pending.cancellation_requested = True
            self._event('us', 'cancel', name, cert.pending.placeholder.id)
        body = self.operation(cert)  # recorded: this answer still says inProgress
        cert.pending.cancel_seen = cert.pending.cancellation_requested
        return Answer(200, body)

    def delete_pending(self, name):
        cert = self._pending(name)
        if cert is None:
            return pending_not_found(name)
        body = self.operation(cert)
        cert.pending = None  # recorded: the pending version stays (disabled, without a certificate)
        self._event('us', 'delete_pending', name)
        return Answer(200, body)

    def get_policy(self, name):
        cert = self.live(name)
        if cert is None:
            return not_found(name)
        # UNKNOWN: GET policy while only pending is not recorded; the policy is served, as GET latest carries it (recorded)
        return Answer(200, self._policy(cert))

    @staticmethod
    def _x5c(values):
        """x5c elements -> certificates: base64 DER (recorded), or base64 of PEM text (recorded, accepted)."""
        certs = []
        for value in values:
            raw = base64.b64decode(value, validate=True)
            if raw.lstrip().startswith(b'-----BEGIN'):
                certs.extend(x509.load_pem_x509_certificate(block) for block in
                             re.findall(rb'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----', raw, re.S))
            else:
                certs.append(x509.load_der_x509_certificate(raw))
        return certs

    def merge(self, name, data, author='us'):
        cert = self._pending(name)
        if cert is None:
            return pending_not_found(name)
        pending = cert.pending
        if pending.status != 'inProgress':
            # UNKNOWN: merge on a completed or cancelled operation is not recorded
            return error(400, 'BadParameter', 'The pending certificate %s is %s.' % (name, pending.status))
        try:
            certs = self._x5c(data.get('x5c') or [])
        except Exception as exc:
            return error(400, 'BadParameter', 'The x5c could not be parsed: %s' % type(exc).__name__)
        if not certs:
            return error(400, 'BadParameter', 'Property x5c is required.')
        leaf, chain = certs[0], certs[1:]
        if spki(leaf.public_key()) != pending.public_key_der:
            return error(400, 'BadParameter', 'The public key of the end-entity certificate in the specified X.509 certificate '
                         'content does not match the public part of the specified private key. Please check if certificate '
                         'is valid.')  # recorded (cli_pending_certificate.json)
        stored = Stored(pending.key, leaf, chain)  # the chain as sent, in the order sent
        # UNKNOWN: which tags a merged version carries when the merge sends none (no recording with tags either way);
        # the merge's tags when sent (documented: "tags to be applied to the merged certificate"), else the create's.
        tags = data.get('tags') if data.get('tags') is not None else pending.tags
        enabled = (data.get('attributes') or {}).get('enabled', True)
        event = self._event(author, 'merge', name)
        version = Version(self._new_id(), stored, tags, enabled, self.now(), pending.placeholder.content_type,
                          pending.placeholder.exportable, author, event.seq)
        event.version = version.id
        event.detail.update(thumbprint=version.thumbprint, tags=dict(version.tags), chain=len(chain))
        if not self.keep_placeholder_after_merge and pending.placeholder in cert.versions:
            cert.versions.remove(pending.placeholder)
        cert.versions.append(version)
        pending.status = 'completed'
        pending.target = '%s/certificates/%s' % (VAULT_URL, name)  # recorded: versionless
        return Answer(201, self.bundle(cert, version), headers={
            'Location': '%s/certificates/%s?api-version=7.6' % (VAULT_URL, name)})

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
