# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Certificate requests made by a vault, and what a signed certificate must have in common with them (pure).

When the key stays in the vault, the vault makes it and hands out a PKCS#10 certificate signing request (CSR);
a CA signs it, and the signed certificate is merged back. Nothing here ever sees a private key:

- :func:`load_csr` / :func:`csr_facts`: the CSR's subject, DNS names, key type and size or curve, and the
  SHA-256 digests by which a CSR and its public key are recognised;
- :func:`parse_subject` / :func:`subject_differs`: the X.500 subject as a vault's policy writes it
  (``CN=www.example.com, O=Example``) against the names a CSR or certificate carries;
- :func:`policy_differences`: what a CSR or a certificate has that a policy does not ask for;
- :func:`load_signed`: the signed certificate and its chain, ordered leaf -> root as a deploy orders it;
- :func:`same_public_key`: whether a certificate was signed over the CSR's key (the merge precondition).
"""

from __future__ import annotations

import hashlib
import re

from .. import errors
from . import certificate as cert_material

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtensionOID, NameOID
except ImportError:  # pragma: no cover - reported by cert_material.require_cryptography
    x509 = None

# The attribute names a vault's subject string uses, by OID, and the spellings accepted for each.
_ATTRIBUTES = (
    ('CN', 'COMMON_NAME', ('CN',)),
    ('O', 'ORGANIZATION_NAME', ('O',)),
    ('OU', 'ORGANIZATIONAL_UNIT_NAME', ('OU',)),
    ('L', 'LOCALITY_NAME', ('L',)),
    ('ST', 'STATE_OR_PROVINCE_NAME', ('ST', 'S')),
    ('C', 'COUNTRY_NAME', ('C',)),
    ('E', 'EMAIL_ADDRESS', ('E', 'EMAIL', 'EMAILADDRESS')),
    ('DC', 'DOMAIN_COMPONENT', ('DC',)),
    ('SERIALNUMBER', 'SERIAL_NUMBER', ('SERIALNUMBER',)),
)
_SPELLINGS = dict((spelling, short) for short, _oid, spellings in _ATTRIBUTES for spelling in spellings)
MAX_SUBJECT_LENGTH = 1024
# One "NAME=value" part of a subject string: a value is double-quoted as a whole, or unquoted with backslash-escaped characters.
_PART = re.compile(r'\s*([A-Za-z][A-Za-z0-9.]*)\s*=\s*("(?:[^"\\]|\\.)*"|(?:[^,;"\\]|\\.)*)\s*(?:[,;]|$)')


def _oid_names():
    return dict((getattr(NameOID, oid), short) for short, oid, _spellings in _ATTRIBUTES if hasattr(NameOID, oid))


def parse_subject(text):
    """A subject string (``CN=a, O=b``; ``;`` also separates) -> a sorted tuple of (attribute, value) pairs.

    Order does not count (vaults and CAs write the RDNs in either order); case of the attribute names does not
    either (``cn=`` is ``CN=``). Raises DeployError(INVALID_CONFIG) for an empty, unknown or unparseable part.
    """
    if not isinstance(text, str) or not text.strip():
        raise errors.DeployError(errors.INVALID_CONFIG, 'subject must be an X.500 name such as "CN=www.example.com".')
    if len(text) > MAX_SUBJECT_LENGTH:
        raise errors.DeployError(errors.INVALID_CONFIG, 'subject is longer than %d characters.' % MAX_SUBJECT_LENGTH)
    pairs = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _PART.match(text, position)
        if match is None or match.end() == position:
            raise errors.DeployError(
                errors.INVALID_CONFIG, 'subject %r cannot be read at %r: write it as NAME=value pairs separated by commas, '
                'e.g. "CN=www.example.com, O=Example".' % (text, text[position:position + 20]))
        name, value = match.group(1).upper(), match.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        value = re.sub(r'\\(.)', r'\1', value)
        short = _SPELLINGS.get(name)
        if short is None:
            raise errors.DeployError(
                errors.INVALID_CONFIG, 'subject %r names the attribute %s; use %s.'
                % (text, name, ', '.join(short for short, _oid, _spellings in _ATTRIBUTES)))
        if not value:
            raise errors.DeployError(errors.INVALID_CONFIG, 'subject %r gives %s an empty value.' % (text, name))
        pairs.append((short, value))
        position = match.end()
    return tuple(sorted(pairs))


def parse_subject_or_none(text):
    """parse_subject for a subject someone else wrote (a stored policy): None when it cannot be read."""
    try:
        return parse_subject(text)
    except errors.DeployError:
        return None


def name_pairs(name):
    """A cryptography ``x509.Name`` -> a sorted tuple of (attribute, value); unknown attributes by dotted OID."""
    names = _oid_names()
    return tuple(sorted((names.get(attribute.oid, attribute.oid.dotted_string), str(attribute.value)) for attribute in name))


def subject_text(pairs):
    """Sorted (attribute, value) pairs -> ``CN=a, O=b`` (CN first, for reading)."""
    ordered = sorted(pairs, key=lambda pair: (pair[0] != 'CN', pair))
    return ', '.join('%s=%s' % pair for pair in ordered)


def load_csr(data):
    """A CSR from DER bytes (as a vault returns it) or PEM text; DeployError(SERVICE_ERROR) when unreadable.

    A CSR always comes from the vault, never from the user: an unreadable one is the vault's (or the network's)
    fault, and nothing is signed or merged on its strength.
    """
    cert_material.require_cryptography()
    raw = cert_material.to_bytes(data or b'')
    try:
        if raw.lstrip().startswith(b'-----BEGIN'):
            csr = x509.load_pem_x509_csr(raw)
        else:
            csr = x509.load_der_x509_csr(raw)
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else 'malformed'
        raise errors.DeployError(errors.SERVICE_ERROR, 'The certificate signing request the vault returned cannot be read (%s).' % reason)
    return csr


def csr_pem(csr):
    return csr.public_bytes(serialization.Encoding.PEM).decode('ascii')


def _sha256(raw):
    return hashlib.sha256(raw).hexdigest()


def public_key_sha256(public_key):
    """SHA-256 (hex) of a public key's SubjectPublicKeyInfo DER: the same for a CSR and every certificate over its key."""
    return _sha256(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def describe_public_key(public_key):
    """('RSA', 2048, None) / ('EC', None, 'P-256'); (name, None, None) for a key type a vault cannot hold."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return 'RSA', public_key.key_size, None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return 'EC', None, cert_material.SUPPORTED_CURVES.get(public_key.curve.name, public_key.curve.name)
    return type(public_key).__name__.lstrip('_'), None, None


def _dns_names_of(extensions):
    try:
        ext = extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    return sorted(set(name.lower().rstrip('.') for name in ext.get_values_for_type(x509.DNSName)))


def _facts_of(subject, public_key, extensions):
    key_type, key_size, curve = describe_public_key(public_key)
    pairs = name_pairs(subject)
    return {
        'subject': subject_text(pairs),
        'subject_pairs': pairs,
        'dns_names': _dns_names_of(extensions),
        'key_type': key_type,
        'key_size': key_size,
        'curve': curve,
        'public_key_sha256': public_key_sha256(public_key),
    }


def csr_facts(csr):
    """What a CSR says: subject, DNS names, key type and size or curve, digests, and whether its signature verifies."""
    try:
        facts = _facts_of(csr.subject, csr.public_key(), csr.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise errors.DeployError(errors.SERVICE_ERROR, 'The certificate signing request the vault returned has a part that '
                                 'cannot be read (%s).' % str(exc).splitlines()[0])
    facts['csr_sha256'] = _sha256(csr.public_bytes(serialization.Encoding.DER))
    facts['signature_valid'] = bool(csr.is_signature_valid)
    return facts


def certificate_policy_facts(cert):
    """The same facts of a certificate (its subject, DNS names and key), to compare an issued version with a policy."""
    return _facts_of(cert.subject, cert.public_key(), cert.extensions)


def policy_differences(policy, facts, what):
    """How ``facts`` (of a CSR or a certificate: see csr_facts) differ from ``policy`` (engine.model.RequestPolicy).

    Compares what both always carry: subject, DNS names, key type, RSA size or EC curve. Returns a list of
    readable differences, empty when they agree.
    """
    out = []
    wanted = parse_subject(policy.subject)
    if tuple(facts['subject_pairs']) != wanted:
        out.append('subject: %s has "%s", the policy asks for "%s"' % (what, facts['subject'], subject_text(wanted)))
    asked = sorted(set(name.lower().rstrip('.') for name in policy.dns_names))
    if list(facts['dns_names']) != asked:
        out.append('dns_names: %s has %s, the policy asks for %s' % (what, facts['dns_names'] or 'none', asked or 'none'))
    if facts['key_type'] != policy.key_type:
        out.append('key_type: %s has an %s key, the policy asks for %s' % (what, facts['key_type'], policy.key_type))
    elif policy.key_type == 'RSA' and facts['key_size'] != policy.key_size:
        out.append('key_size: %s has %s bits, the policy asks for %s' % (what, facts['key_size'], policy.key_size))
    elif policy.key_type == 'EC' and facts['curve'] != policy.curve:
        out.append('curve: %s has %s, the policy asks for %s' % (what, facts['curve'], policy.curve))
    return out


def same_public_key(cert, csr):
    """True when the certificate carries the CSR's public key (False also when either key cannot be loaded)."""
    try:
        return public_key_sha256(cert.public_key()) == public_key_sha256(csr.public_key())
    except (ValueError, TypeError, cert_material.UnsupportedAlgorithm):
        return False


class SignedCertificate(object):
    """A signed certificate to merge: the leaf and its chain (leaf excluded), ordered leaf -> root."""

    def __init__(self, leaf, chain):
        self.leaf = leaf
        self.chain = list(chain)

    @property
    def certificates(self):
        return [self.leaf] + self.chain

    @property
    def thumbprint(self):
        return cert_material.thumbprint(self.leaf)


def load_signed(certificate, chain=None, chain_root='keep'):
    """The signed certificate (PEM; may be a bundle whose first certificate is the leaf) and its chain, ordered.

    The leaf is the first certificate of ``certificate``; the rest of that bundle and ``chain`` are ordered as the
    issuer path from the leaf (intermediates, then the root), duplicates dropped, unrelated certificates after it.
    """
    cert_material.require_cryptography()
    cert_blocks = cert_material.split_pem(certificate, 'certificate')
    chain_blocks = cert_material.split_pem(chain, 'chain') if chain else []
    cert_material.check_certificate_count(len(cert_blocks) + len(chain_blocks), 'certificate and chain' if chain else 'certificate')
    certs = cert_material._load_certificates(cert_blocks, 'certificate')
    cert_material.require_usable_certificates(certs, 'certificate')
    given_chain = cert_material._load_certificates(chain_blocks, 'chain') if chain else []
    cert_material.require_usable_certificates(given_chain, 'chain')
    leaf = certs[0]
    try:
        cert_material.certificate_facts(leaf)
    except cert_material.MalformedCertificate as exc:
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The certificate has a malformed %s: %s' % (exc.part, exc.reason))
    ordered, _unrelated = cert_material.order_chain(leaf, certs[1:] + given_chain)
    return SignedCertificate(leaf, cert_material.apply_chain_root(ordered, chain_root))
