# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Certificate material: parsing, rules and serialisation.

Pure functions over ``cryptography``.  Nothing here touches the network, the
file system or Ansible; callers hand in bytes and get back a
:class:`Material` (leaf, private key, ordered chain) or a
:class:`~..errors.DeployError` that says what is wrong.  Key bytes are
only ever held in memory.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import re
import secrets

from .. import errors

try:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtensionOID
    HAS_CRYPTOGRAPHY = True
    # What reading a lazily parsed part of a certificate (a name, the extensions) raises when that part is malformed.
    _PART_ERRORS = (ValueError,) + tuple(getattr(x509, name) for name in ('DuplicateExtension', 'UnsupportedGeneralNameType')
                                         if hasattr(x509, name))
except ImportError:  # pragma: no cover - exercised by the sanity import test
    HAS_CRYPTOGRAPHY = False
    _PART_ERRORS = (ValueError,)

MIN_RSA_BITS = 2048
SUPPORTED_CURVES = {'secp256r1': 'P-256', 'secp384r1': 'P-384', 'secp521r1': 'P-521'}

# Input limits (stated in the deploy modules' documentation and docs/operator-guide.md). Generous for any real
# material -- a chain is a handful of certificates of one or two KiB each, a key a few KiB -- and small enough that
# no input costs more than a moment to parse and a wrong file (a log, an image, a device) is refused at once.
MAX_PEM_BYTES = 4 * 1024 * 1024  # each PEM input: certificate, chain, private key (and a ca_path file)
MAX_PFX_BYTES = 4 * 1024 * 1024  # a PFX, counted decoded (its base64 text is a third longer)
MAX_CERTIFICATES = 100  # certificates in the certificate and chain options together, or in one PFX

# The PEM scanner: one BEGIN or END line. Every repetition is bounded (a label is at most 64 characters) and
# there is no backreference, so one match attempt costs at most a constant, and split_pem's single finditer
# over the input is linear in its length whatever the number and arrangement of BEGIN and END lines.
_PEM_MARKER = re.compile(rb'-----(BEGIN|END) ([A-Z0-9 ]{1,64})-----')
_CERTIFICATE_LABELS = (b'CERTIFICATE', b'X509 CERTIFICATE', b'TRUSTED CERTIFICATE')


def require_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise errors.DeployError(
            errors.MISSING_DEPENDENCY,
            'The Python library cryptography is required to parse certificates; install it where the module runs.',
            package='cryptography',
        )


class Material(object):
    """A leaf certificate, its private key and the chain that signs it (leaf excluded)."""

    def __init__(self, leaf, key, chain):
        self.leaf = leaf
        self.key = key
        self.chain = list(chain)

    @property
    def thumbprint(self):
        return thumbprint(self.leaf)

    @property
    def key_description(self):
        return describe_key(self.key)


# --------------------------------------------------------------------------
# Facts about a certificate
# --------------------------------------------------------------------------

def leaf_der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def thumbprint(cert):
    """Uppercase hex SHA-1 of the DER certificate: what Key Vault calls x5t, in hex."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # nosec - SHA-1 is the x5t definition, not a security control


def x5t(cert):
    """Base64url (unpadded) SHA-1 of the DER certificate, as in JOSE ``x5t`` and Key Vault responses."""
    return base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).rstrip(b'=').decode('ascii')  # nosec


def thumbprint_from_x5t(value):
    """Key Vault returns x5t as raw bytes (SDK) or base64url text (REST); normalise both to uppercase hex."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex().upper()
    padded = value + '=' * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded.encode('ascii')).hex().upper()


def x5t_from_thumbprint(hex_thumbprint):
    return base64.urlsafe_b64encode(bytes.fromhex(hex_thumbprint)).rstrip(b'=').decode('ascii')


def _utc(cert, attribute):
    value = getattr(cert, attribute + '_utc', None)
    if value is None:  # cryptography < 42
        value = getattr(cert, attribute).replace(tzinfo=datetime.timezone.utc)
    return value


def not_before(cert):
    return _utc(cert, 'not_valid_before')


def not_after(cert):
    return _utc(cert, 'not_valid_after')


def days_remaining(expires, now):
    """Whole days from ``now`` until ``expires`` (ISO text or datetime), rounded down: negative once expired.
    None when ``expires`` is None or not a date."""
    if expires is None:
        return None
    if isinstance(expires, str):
        try:
            expires = datetime.datetime.fromisoformat(expires)
        except ValueError:
            return None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.timezone.utc)
    return (expires - now).days


def subject_alternative_names(cert):
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    names = []
    for name in ext:
        if isinstance(name, x509.DNSName):
            names.append('DNS:' + name.value)
        elif isinstance(name, x509.IPAddress):
            names.append('IP:' + str(name.value))
        elif isinstance(name, x509.RFC822Name):
            names.append('email:' + name.value)
        elif isinstance(name, x509.UniformResourceIdentifier):
            names.append('URI:' + name.value)
    return names


class MalformedCertificate(ValueError):
    """A part of a certificate that cryptography parses only when it is read is malformed.

    ``part`` is ``subject``, ``issuer`` or ``extension``.  A ValueError, so that a caller reading certificates
    it did not choose (a vault's) handles it with the ValueError it already expects of cryptography.
    """

    def __init__(self, part, reason):
        super(MalformedCertificate, self).__init__('the %s cannot be parsed (%s)' % (part, reason))
        self.part = part
        self.reason = reason


def certificate_facts(cert, lenient=False):
    """The public, non-secret description of a certificate used in results and diffs.

    cryptography parses the names and the extensions only when they are read, and a malformed one then raises
    (ValueError, DuplicateExtension, UnsupportedGeneralNameType).  Strict (the default), that is a
    :class:`MalformedCertificate`.  ``lenient`` (a certificate someone else serves) keeps every fact that can be
    read, exact ones (thumbprint, serial, validity) always: an unreadable name is None, unreadable extensions
    leave ``sans`` empty, and ``parse_errors`` lists what could not be read (absent when nothing).
    """
    facts = {
        'thumbprint': thumbprint(cert),
        'x5t': x5t(cert),
        'serial': '%X' % cert.serial_number,
        'not_before': not_before(cert).isoformat(),
        'expires': not_after(cert).isoformat(),
    }
    problems = []
    for key, part, unreadable in (('subject', 'subject', None), ('issuer', 'issuer', None), ('sans', 'extension', [])):
        try:
            facts[key] = subject_alternative_names(cert) if key == 'sans' else getattr(cert, key).rfc4514_string()
        except _PART_ERRORS as exc:
            problem = MalformedCertificate(part, _first_line(exc))
            if not lenient:
                raise problem
            problems.append(str(problem))
            facts[key] = unreadable
    if problems:
        facts['parse_errors'] = problems
    return facts


def describe_key(key):
    """('RSA', 2048) / ('EC', 'P-256'); raises for key types Key Vault cannot hold."""
    if isinstance(key, rsa.RSAPrivateKey):
        return 'RSA', key.key_size
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curve = SUPPORTED_CURVES.get(key.curve.name)
        if curve is None:
            raise errors.DeployError(
                errors.UNSUPPORTED_KEY,
                'The private key uses the elliptic curve %s; Key Vault certificates support P-256, P-384 and P-521.' % key.curve.name,
            )
        return 'EC', curve
    raise errors.DeployError(
        errors.UNSUPPORTED_KEY,
        'The private key is of type %s; Key Vault certificates need an RSA (2048 bits or more) '
        'or EC (P-256, P-384, P-521) key.' % _key_type_name(key),
    )


def _key_type_name(key):
    name = type(key).__name__.lstrip('_')
    for prefix in ('Ed25519', 'Ed448', 'X25519', 'X448', 'DSA', 'DH'):
        if name.startswith(prefix):
            return prefix
    return name


def public_key_matches(cert, key):
    """True when ``cert`` carries the public half of ``key``; False also when its public key cannot be loaded.

    ``key`` was loaded, so a certificate whose key cannot be (an algorithm cryptography does not implement,
    a malformed key) is not its certificate.
    """
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    try:
        cert_key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return False
    return cert_key.public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)


def public_key_problem(cert):
    """None when cryptography can load the public key of ``cert``; otherwise why not, naming the algorithm's OID.

    A certificate is parsed lazily: it loads with any SubjectPublicKeyInfo, and only ``public_key()`` raises,
    UnsupportedAlgorithm for an algorithm cryptography does not implement, ValueError for a malformed key.
    """
    try:
        cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        reason = _first_line(exc)
        try:
            oid = cert.public_key_algorithm_oid.dotted_string  # cryptography >= 43
        except (AttributeError, ValueError):
            oid = None
        return reason if oid is None or oid in reason else '%s; algorithm %s' % (reason, oid)
    return None


def describe_certificate(cert):
    """The subject of ``cert`` for a message (RFC 4514), or a note that it cannot be read."""
    try:
        return cert.subject.rfc4514_string() or 'an empty subject'
    except _PART_ERRORS:
        return 'a subject that cannot be parsed'


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------

def to_bytes(data):
    if isinstance(data, bytes):
        return data
    return data.encode('utf-8')


def _in_mib(size):
    """' (4 MiB)' for a whole number of MiB, else nothing."""
    return ' (%d MiB)' % (size // (1024 * 1024)) if size % (1024 * 1024) == 0 else ''


def check_size(data, limit, what, kind):
    """Refuse ``data`` (bytes) longer than ``limit`` bytes, saying the limit."""
    if len(data) > limit:
        raise errors.DeployError(
            errors.INVALID_MATERIAL,
            'The %s has more than %d bytes%s, the most a %s input may have; no real certificate, key or chain is that '
            'large: check that the right file or text is given.' % (what, limit, _in_mib(limit), kind),
        )


def check_certificate_count(count, what):
    """Refuse more than MAX_CERTIFICATES certificates in the material; ``what`` names it ("certificate and chain")."""
    if count > MAX_CERTIFICATES:
        raise errors.DeployError(
            errors.INVALID_MATERIAL,
            'The %s %s %d certificates; at most %d are accepted (a leaf and its chain are a handful): check that the '
            'right file or text is given.' % (what, 'hold' if ' and ' in what else 'holds', count, MAX_CERTIFICATES),
        )


def split_pem(data, what):
    """Return ``[(label, block_bytes)]`` for every PEM block in ``data`` (at most MAX_PEM_BYTES bytes).

    Text between blocks (for example ``subject=`` lines written by openssl) is
    allowed, and so is an END line outside a block; a BEGIN line without a line
    break after it, without its matching END line, or followed by another BEGIN
    or by the END of another label is an error.  One forward scan: linear time.
    """
    data = to_bytes(data)
    check_size(data, MAX_PEM_BYTES, what, 'PEM')
    blocks = []
    label = start = None  # the open block's label and where its BEGIN line starts
    mangled = False
    for marker in _PEM_MARKER.finditer(data):
        kind, name = marker.group(1), marker.group(2)
        if kind == b'BEGIN':
            after = marker.end()
            if label is not None or not (data.startswith(b'\n', after) or data.startswith(b'\r\n', after)):
                mangled = True
                break
            label, start = name, marker.start()
        elif label is not None:
            if name != label:
                mangled = True
                break
            blocks.append((label, data[start:marker.end()]))
            label = None
    if mangled or label is not None:
        raise errors.DeployError(
            errors.INVALID_MATERIAL,
            'The %s contains a PEM block without a matching END line (truncated or mangled); provide complete PEM blocks.' % what,
        )
    return blocks


def parse_certificates(data, what):
    """Parse every certificate block of a PEM bundle; any unparseable block is an error, never skipped."""
    require_cryptography()
    return _load_certificates(split_pem(data, what), what)


def _load_certificates(blocks, what):
    if not blocks:
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The %s contains no PEM block; expected "-----BEGIN CERTIFICATE-----".' % what)
    certs = []
    for index, (label, block) in enumerate(blocks, start=1):
        if label not in _CERTIFICATE_LABELS:
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'PEM block %d of the %s is a "%s", not a certificate; keep keys and certificates in their own options.'
                % (index, what, label.decode('ascii')),
            )
        if label == b'TRUSTED CERTIFICATE':
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'PEM block %d of the %s is an OpenSSL "TRUSTED CERTIFICATE"; convert it with "openssl x509" to a plain CERTIFICATE.' % (index, what),
            )
        try:
            certs.append(x509.load_pem_x509_certificate(block.replace(b'X509 CERTIFICATE', b'CERTIFICATE')))
        except ValueError as exc:
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'PEM block %d of the %s is not a valid X.509 certificate (%s).' % (index, what, exc),
            )
    return certs


def load_der_certificate(der):
    """Parse a DER certificate as returned by a target (Key Vault's ``cer``); None when unparseable."""
    require_cryptography()
    try:
        return x509.load_der_x509_certificate(bytes(der))
    except ValueError:
        return None


def parse_private_key(data, passphrase=None):
    """Load a PEM private key (PKCS#8, PKCS#1 or SEC1; encrypted or not)."""
    require_cryptography()
    blocks = split_pem(data, 'private key')
    keys = [block for label, block in blocks if label.endswith(b'PRIVATE KEY')]
    if len(keys) != 1:
        raise errors.DeployError(
            errors.INVALID_MATERIAL,
            'The private key must hold exactly one PEM private key block (found %d); '
            'accepted are PKCS#8 ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") and SEC1 ("EC PRIVATE KEY").'
            % len(keys),
        )
    password = to_bytes(passphrase) if passphrase not in (None, '') else None
    try:
        # OpenSSL's RSA consistency check (primality of p and q, ...) costs tens of milliseconds per key
        # (33 ms for RSA-2048, 240 ms for RSA-4096 measured), which would dominate a fleet. check_private_key()
        # checks the key in about a millisecond before it is ever sent anywhere.
        key = serialization.load_pem_private_key(keys[0], password=password, unsafe_skip_rsa_key_validation=True)
    except TypeError as exc:
        if password is None:
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'The private key is encrypted; give its passphrase in private_key_passphrase.',
            )
        raise errors.DeployError(
            errors.INVALID_MATERIAL,
            'A passphrase was given but the private key is not encrypted; remove private_key_passphrase.'
            if 'not encrypted' in str(exc) else 'The private key could not be decrypted: %s' % _first_line(exc),
        )
    except ValueError as exc:
        if password is not None:
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'The private key could not be decrypted with the given passphrase; check private_key_passphrase.',
            )
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The private key could not be parsed: %s' % _first_line(exc))
    except errors.DeployError:
        raise
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for DSA/unknown encodings on some versions
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The private key could not be loaded: %s' % _first_line(exc))
    return key


def check_private_key(key):
    """Check that an RSA key's private numbers form one sound key; no-op for other key types.

    parse_private_key() loads RSA keys without OpenSSL's full check (its primality tests cost tens of milliseconds
    per RSA-2048 key, most of a fleet's client time); whoever sends the key anywhere (import, or a prediction of
    one) calls this first. What it checks instead, in about 2 ms: the numbers' identities (p x q is the modulus,
    e x d is 1 modulo p - 1 and q - 1, the CRT exponents and coefficient agree), then that the key signs: a
    signature made with the private numbers (the CRT path) verifies under the public key. Corrupted numbers fail
    the first; a composite factor with numbers made to agree fails the second. A key whose public half matches
    the certificate but whose private half is not sound raises INVALID_MATERIAL here, before any write; the
    message names which property failed, never a number.
    """
    if not isinstance(key, rsa.RSAPrivateKey):
        return
    problem = rsa_problem(key)
    if problem:
        raise errors.DeployError(
            errors.INVALID_MATERIAL,
            'The RSA private key is not consistent (its private numbers do not form a valid key): %s' % problem)


def rsa_problem(key):
    """What is unsound in an RSA private key (see check_private_key), or None."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    p, q, d = numbers.p, numbers.q, numbers.d
    if p < 3 or q < 3 or p * q != public.n:
        return 'its prime factors do not multiply to the modulus'
    if (public.e * d) % (p - 1) != 1 or (public.e * d) % (q - 1) != 1:
        return 'its private exponent does not invert the public exponent'
    if numbers.dmp1 != d % (p - 1) or numbers.dmq1 != d % (q - 1):
        return 'its CRT exponents do not agree with the private exponent'
    if (numbers.iqmp * q) % p != 1:
        return 'its CRT coefficient is not the inverse of q modulo p'
    probe = b'certdeploy.cloud RSA key check'
    try:
        signature = key.sign(probe, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
    except Exception:  # InvalidSignature, or OpenSSL refusing the numbers: the key cannot sign
        return 'a signature made with it does not verify under its public key'
    return None


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def usability_problem(cert):
    """None when the parts leaf selection and chain ordering read can be read (public key, subject, issuer); else which."""
    problem = public_key_problem(cert)
    if problem is not None:
        return 'a public key that cannot be loaded (%s)' % problem
    for part in ('subject', 'issuer'):
        try:
            getattr(cert, part)
        except _PART_ERRORS as exc:
            return 'a%s %s that cannot be parsed (%s)' % ('n' if part == 'issuer' else '', part, _first_line(exc))
    return None


def require_usable_certificates(certs, what):
    """Refuse a certificate of the input whose public key, subject or issuer cannot be read, naming it.

    Leaf selection compares public keys and chain ordering names and signatures: such a certificate can be
    neither the leaf nor checked as an issuer, and Key Vault would be sent a chain nobody verified.
    """
    for index, cert in enumerate(certs, start=1):
        problem = usability_problem(cert)
        if problem is not None:
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'Certificate %d of the %s (%s) has %s, so it can be neither the leaf nor a checked issuer; remove it '
                'from the %s.' % (index, what, describe_certificate(cert), problem, what),
            )


def select_leaf(certs, key, what):
    """Split a bundle into (leaf, rest): the leaf is the first certificate whose public key is the key's."""
    for index, cert in enumerate(certs):
        if public_key_matches(cert, key):
            return cert, certs[:index] + certs[index + 1:]
    raise errors.DeployError(
        errors.KEY_MISMATCH,
        'The private key does not belong to the %s: none of its %d certificate(s) carries the key\'s public key. '
        'Check that the key and certificate come from the same request.' % (what, len(certs)),
    )


def order_chain(leaf, candidates, preserve_order=False):
    """De-duplicate the chain and order it leaf-first.

    Returns ``(chain, unrelated)``.  Duplicates (by DER) and copies of the leaf
    are dropped.  Unless ``preserve_order`` is set (for what a target already
    holds, kept as it is), the chain is rebuilt as the issuer path starting at
    the leaf -- intermediates, then the root -- followed by any certificates that
    are not on that path (``unrelated``, in the order given) so nothing the user
    sent is silently dropped.
    """
    seen = {leaf_der(leaf)}
    unique = []
    for cert in candidates:
        der = leaf_der(cert)
        if der not in seen:
            seen.add(der)
            unique.append(cert)
    if preserve_order:
        return unique, []

    path = []
    remaining = list(unique)
    current = leaf
    while remaining and not _is_self_issued(current):
        issuer = next((c for c in remaining if _issued_by(current, c)), None)
        if issuer is None:
            break
        path.append(issuer)
        remaining.remove(issuer)
        current = issuer
    return path + remaining, remaining


def _is_self_issued(cert):
    try:
        return cert.issuer == cert.subject
    except _PART_ERRORS:  # a name that cannot be parsed (a certificate a vault holds): not known to be self-issued
        return False


def _issued_by(cert, candidate):
    try:
        if cert.issuer != candidate.subject:
            return False
    except _PART_ERRORS:  # a name that cannot be parsed: no issuer this can be checked against
        return False
    try:
        cert.verify_directly_issued_by(candidate)
        return True
    except (AttributeError, TypeError):  # cryptography < 40: name match only
        return True
    except Exception:
        return False


# What to do with a root (a self-issued certificate) in the chain the user gives: store it, or leave it out.
CHAIN_ROOT = ('keep', 'drop')


def apply_chain_root(chain, chain_root='keep'):
    """The chain to store: as given for ``keep``; without its self-issued certificates (roots) for ``drop``.

    A client validates up to a root it already trusts, so a root sent along is never needed; ``drop`` saves
    its bytes on every handshake. The leaf is never dropped, even a self-signed one.
    """
    if chain_root not in CHAIN_ROOT:
        raise errors.DeployError(errors.INVALID_CONFIG, 'chain_root must be one of %s, not %r.' % (', '.join(CHAIN_ROOT), chain_root))
    if chain_root == 'keep':
        return list(chain)
    return [cert for cert in chain if not _is_self_issued(cert)]


def load_pem_material(certificate, private_key, passphrase=None, chain=None, chain_root='keep'):
    """Build :class:`Material` from PEM inputs (certificate may be a bundle), its chain ordered leaf -> root."""
    require_cryptography()
    key = parse_private_key(private_key, passphrase)
    describe_key(key)
    cert_blocks = split_pem(certificate, 'certificate')
    chain_blocks = split_pem(chain, 'chain') if chain else []
    check_certificate_count(sum(1 for label, _block in cert_blocks + chain_blocks if label in _CERTIFICATE_LABELS),
                            'certificate and chain' if chain else 'certificate')
    certs = _load_certificates(cert_blocks, 'certificate')
    require_usable_certificates(certs, 'certificate')
    leaf, extra = select_leaf(certs, key, 'certificate')
    given_chain = _load_certificates(chain_blocks, 'chain') if chain else []
    require_usable_certificates(given_chain, 'chain')
    chain_certs = extra + given_chain
    ordered, _unrelated = order_chain(leaf, chain_certs)
    return Material(leaf, key, apply_chain_root(ordered, chain_root))


def load_pfx_material(pfx, password=None, chain_root='keep'):
    """Build :class:`Material` from PKCS#12 bytes (or base64 text of them), its chain ordered leaf -> root."""
    material = _load_pfx(pfx, password, False, given=True)
    material.chain = apply_chain_root(material.chain, chain_root)
    return material


def _load_pfx(pfx, password, preserve_chain_order, given):
    """``given``: the user's input, held to every rule; else what a target already holds (see load_exported_secret),
    whose chain order is kept as stored when ``preserve_chain_order`` is set."""
    require_cryptography()
    data = pfx
    if isinstance(pfx, str):
        try:
            data = base64.b64decode(''.join(pfx.split()), validate=True)
        except (binascii.Error, ValueError):
            raise errors.DeployError(errors.INVALID_MATERIAL, 'pfx must be the base64 text of a PKCS#12 file; it is not valid base64.')
    check_size(data, MAX_PFX_BYTES, 'PFX', 'PFX')
    pw = to_bytes(password) if password not in (None, '') else None
    try:
        bundle = pkcs12.load_pkcs12(data, pw)
    except ValueError:
        if pw is None:
            # Some tools write PFX files with an empty (not absent) password.
            try:
                bundle = pkcs12.load_pkcs12(data, b'')
            except ValueError:
                raise errors.DeployError(
                    errors.INVALID_MATERIAL,
                    'The PFX could not be opened: it is not PKCS#12 data, or it is encrypted and pfx_password is missing.',
                )
        else:
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'The PFX could not be opened with the given pfx_password (wrong password, or not PKCS#12 data).',
            )
    except Exception as exc:
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The PFX could not be read: %s' % _first_line(exc))
    if bundle.key is None:
        raise errors.DeployError(
            errors.INVALID_MATERIAL,
            'The PFX holds no private key; Key Vault imports need the certificate together with its private key.',
        )
    describe_key(bundle.key)
    certs = ([bundle.cert.certificate] if bundle.cert else []) + [c.certificate for c in bundle.additional_certs]
    if not certs:
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The PFX holds a private key but no certificate.')
    if given:
        check_certificate_count(len(certs), 'PFX')
        require_usable_certificates(certs, 'PFX')
    leaf, extra = select_leaf(certs, bundle.key, 'PFX')
    ordered, _unrelated = order_chain(leaf, extra, preserve_chain_order)
    return Material(leaf, bundle.key, ordered)


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------

def check_rules(material, now=None, allow_expired=False):
    """Key strength, validity period and readable extensions.  Returns a list of warnings; raises on violations."""
    warnings = []
    try:
        certificate_facts(material.leaf)
    except MalformedCertificate as exc:
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The certificate has a malformed %s: %s' % (exc.part, exc.reason))
    kind, size = describe_key(material.key)
    if kind == 'RSA' and size < MIN_RSA_BITS:
        raise errors.DeployError(
            errors.UNSUPPORTED_KEY,
            'The RSA key has %d bits; at least %d are required.' % (size, MIN_RSA_BITS),
        )
    now = now or datetime.datetime.now(datetime.timezone.utc)
    expires = not_after(material.leaf)
    starts = not_before(material.leaf)
    if expires <= now:
        if not allow_expired:
            raise errors.DeployError(
                errors.EXPIRED,
                'The certificate expired on %s; deploy a renewed certificate (or set allow_expired: true to deploy it anyway).'
                % expires.isoformat(),
            )
        warnings.append('The certificate expired on %s and is deployed because allow_expired is true.' % expires.isoformat())
    elif starts > now:
        if not allow_expired:
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'The certificate is not valid before %s; clients would reject it until then. '
                'Deploy it after that time (or set allow_expired: true).' % starts.isoformat(),
            )
        warnings.append('The certificate is not valid before %s and is deployed because allow_expired is true.' % starts.isoformat())
    return warnings


def _normalise_san(value):
    """'www.Example.com', 'DNS:www.example.com', '10.0.0.1' or 'IP:10.0.0.1' -> ('DNS'|'IP', value)."""
    text = str(value).strip()
    kind, sep, rest = text.partition(':')
    if sep and kind.upper() in ('DNS', 'IP'):
        kind, text = kind.upper(), rest.strip()
    else:
        kind = None
    try:
        return 'IP', str(ipaddress.ip_address(text))
    except ValueError:
        if kind == 'IP':
            raise errors.DeployError(errors.INVALID_CONFIG, 'expected_sans: %r is not an IP address.' % value)
    return 'DNS', text.rstrip('.').lower()


def _dns_covered(name, san):
    if san == name:
        return True
    # A wildcard covers exactly one left-most label (RFC 6125 6.4.3): *.example.com covers www.example.com only.
    return san.startswith('*.') and '.' in name and name.split('.', 1)[1] == san[2:] and not name.startswith('*.')


def check_expectations(material, min_days_remaining=None, expected_sans=None, now=None):
    """Caller-stated expectations of the certificate: enough validity left, and the names it must serve."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if min_days_remaining is not None:
        if min_days_remaining < 0:
            raise errors.DeployError(errors.INVALID_CONFIG, 'min_days_remaining must be 0 or more, not %d.' % min_days_remaining)
        expires = not_after(material.leaf)
        left = expires - now
        if left < datetime.timedelta(days=min_days_remaining):
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'The certificate expires on %s, in %d days; min_days_remaining requires at least %d. '
                'Renew it before deploying.' % (expires.isoformat(), max(left.days, 0), min_days_remaining))
    if expected_sans:
        present = [_normalise_san(san) for san in subject_alternative_names(material.leaf)
                   if san.startswith(('DNS:', 'IP:'))]
        missing = []
        for wanted in expected_sans:
            kind, value = _normalise_san(wanted)
            if not any(k == kind and (v == value or (kind == 'DNS' and _dns_covered(value, v))) for k, v in present):
                missing.append(wanted)
        if missing:
            raise errors.DeployError(
                errors.INVALID_MATERIAL,
                'The certificate does not cover %s (expected_sans); its names are: %s. Deploy the right certificate '
                'or correct expected_sans.' % (', '.join(missing), ', '.join(subject_alternative_names(material.leaf)) or 'none'))


# --------------------------------------------------------------------------
# Serialisation (in memory only)
# --------------------------------------------------------------------------

def new_transport_password():
    """A random, single-use password protecting a PFX on its way to the target."""
    return secrets.token_urlsafe(24)


def build_pkcs12(material, password, friendly_name=None):
    """Serialise to PKCS#12 bytes in memory: AES-256-CBC + SHA-256 MAC under ``password``."""
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(to_bytes(password))
    )
    name = to_bytes(friendly_name) if friendly_name else None
    return pkcs12.serialize_key_and_certificates(name, material.key, material.leaf, material.chain or None, encryption)


def build_pem(material):
    """Serialise to a PEM bundle: leaf, chain, then the key as unencrypted PKCS#8 (what Key Vault requires)."""
    parts = [material.leaf.public_bytes(serialization.Encoding.PEM)]
    parts.extend(c.public_bytes(serialization.Encoding.PEM) for c in material.chain)
    parts.append(material.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return b''.join(parts)


def load_exported_secret(value, content_type):
    """Parse the value of a certificate's backing secret (as exported by Key Vault) into Material.

    ``value`` is PEM text for ``application/x-pem-file`` and base64 PKCS#12
    without a password otherwise.  Raises DeployError when the secret holds no
    private key (for example a non-exportable certificate).  What the vault holds
    is re-imported byte for byte on a rollback, so a chain certificate whose
    public key cannot be loaded is kept here, not refused as in the user's input.
    """
    if content_type == 'application/x-pem-file':
        text = to_bytes(value)
        cert_blocks = [(label, block) for label, block in split_pem(text, 'exported secret') if label in _CERTIFICATE_LABELS]
        key = parse_private_key(text)
        leaf, rest = select_leaf(_load_certificates(cert_blocks, 'exported secret'), key, 'exported secret')
        return Material(leaf, key, rest)
    return _load_pfx(value if isinstance(value, str) else value.decode('ascii'), None, True, given=False)


# --------------------------------------------------------------------------
# What a target stores: its certificates, compared with what was sent
# --------------------------------------------------------------------------

def chain_digest(certs):
    """SHA-256 (hex) over the ordered certificates: one value for the exact chain, leaf first, and its order."""
    outer = hashlib.sha256()
    for cert in certs:
        outer.update(hashlib.sha256(leaf_der(cert)).digest())
    return outer.hexdigest()


def subject_text(cert):
    """A certificate's subject as RFC 4514 text (what diffs and messages show); its thumbprint when unreadable."""
    try:
        return cert.subject.rfc4514_string()
    except _PART_ERRORS:
        return 'thumbprint %s' % thumbprint(cert)


def stored_certificates(value, content_type):
    """The certificates a target's backing secret holds, in the order stored (a key is not needed, nor checked).

    ``value`` is PEM text for ``application/x-pem-file`` and base64 PKCS#12 (no password, as Key Vault exports
    it) otherwise. In a PKCS#12 the certificate that carries the key comes first, the others in their stored
    order. Raises DeployError(INVALID_MATERIAL) when no certificate can be read.
    """
    require_cryptography()
    if content_type == 'application/x-pem-file':
        blocks = [(label, block) for label, block in split_pem(to_bytes(value), 'stored secret') if label in _CERTIFICATE_LABELS]
        return _load_certificates(blocks, 'stored secret')
    try:
        data = base64.b64decode(''.join(value.split()) if isinstance(value, str) else value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The stored secret is not the base64 text of a PKCS#12 file.')
    check_size(data, MAX_PFX_BYTES, 'stored secret', 'PFX')
    bundle = None
    for password in (None, b''):
        try:
            bundle = pkcs12.load_pkcs12(data, password)
            break
        except ValueError:
            continue
        except Exception as exc:
            raise errors.DeployError(errors.INVALID_MATERIAL, 'The stored PKCS#12 could not be read: %s' % _first_line(exc))
    if bundle is None:
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The stored secret is not a PKCS#12 file readable without a password.')
    certs = ([bundle.cert.certificate] if bundle.cert else []) + [c.certificate for c in bundle.additional_certs]
    if not certs:
        raise errors.DeployError(errors.INVALID_MATERIAL, 'The stored PKCS#12 holds no certificate.')
    return certs


# Verdicts of compare_stored.
STORED_EQUAL = 'equal'
STORED_LEAF_ONLY = 'leaf_only'
STORED_REORDERED = 'reordered'
STORED_DIFFERS = 'differs'


def compare_stored(sent, stored, order_kept=True):
    """Compare what a target stores with what was sent (both leaf first). Returns ``(verdict, detail)``:

    - ``equal``: the same certificates in the same order (in any order when ``order_kept`` is false);
    - ``leaf_only``: the target kept the leaf alone although a chain was sent (a target that drops chains);
    - ``reordered``: the same certificates in another order, where the target did not promise to keep it;
    - ``differs``: anything else -- another leaf, a certificate missing, added or swapped, or another order
      where the target promised to keep it. ``detail`` then says what, by subjects.
    """
    sent_der = [leaf_der(c) for c in sent]
    stored_der = [leaf_der(c) for c in stored]
    if stored_der == sent_der:
        return STORED_EQUAL, None
    if len(sent_der) > 1 and stored_der == sent_der[:1]:
        return STORED_LEAF_ONLY, 'the target stored the leaf alone; the %d chain certificate(s) sent were dropped' % (len(sent_der) - 1)
    shown = 'sent [%s], stored [%s]' % ('; '.join(subject_text(c) for c in sent), '; '.join(subject_text(c) for c in stored))
    if sorted(stored_der) == sorted(sent_der) and stored_der[:1] == sent_der[:1]:
        if not order_kept:
            return STORED_REORDERED, 'the chain was stored in another order: %s' % shown
        return STORED_DIFFERS, 'the chain was stored in another order although keeping it was asked for: %s' % shown
    return STORED_DIFFERS, 'the stored certificates differ from those sent: %s' % shown
