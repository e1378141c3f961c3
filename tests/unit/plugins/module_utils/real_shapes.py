# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Key Vault response bodies in the shapes the service really returns, filled with material made at test time.

Every body starts as a deep copy of a recorded response in ``recordings/`` (each fixture names its public
source in ``source``; recordings/README.md sums them up).  The helpers only rewrite the fields that identify
the object (ids, x5t, cer, attributes' nbf/exp) or that a test varies on purpose (content type, exportable,
preserveCertOrder, tags, the backing secret's value); every other field, its spelling and its nesting stay
as recorded.

What the recordings show about a certificate's backing secret (``GET /secrets/{name}/{version}``) and
what is filled here:

- ``contentType`` is the certificate policy's ``secret_props.contentType``; ``managed`` is true; ``kid`` is
  the id of the certificate's KEY (``/keys/{name}/{version}``), same name and version as the certificate;
  ``attributes`` carries the certificate's ``nbf``/``exp``;
- ``application/x-pem-file``: a ``PRIVATE KEY`` block (unencrypted PKCS#8) FIRST, then the certificate;
  for a non-exportable certificate the certificate alone (recorded verbatim in
  net_backing_secret_non_exportable.json);
- ``application/x-pkcs12``: base64 (no line breaks) of a PKCS#12 without password.  Key Vault's own
  PKCS#12 encrypts its bags with 3DES under an empty password; cryptography cannot write an empty password,
  so :func:`pkcs12_value` writes an unencrypted one, which every PKCS#12 reader also opens without a password.

No public recording shows the backing secret of a certificate imported WITH a chain.  ``pem_value`` and
``pkcs12_value`` therefore place the chain after the leaf in the order they are given (the order a test
wants the vault to serve); that the service stores the chain, and in which order, is the claim under test
elsewhere, not something these shapes prove.
"""

from __future__ import annotations

import base64
import calendar
import copy
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import load

PEM = 'application/x-pem-file'
PKCS12 = 'application/x-pkcs12'
FILL = '<filled at test time: see real_shapes.py>'

# Recorded bodies the helpers start from: (fixture, interaction).
CERTIFICATE_TEMPLATES = {
    # PEM import at api-version 2025-07-01 with preserveCertOrder (the .NET SDK's live test).
    'pem_import': ('net_import_pem_preserve_cert_order.json', 'import_preserve_true'),
    # PEM import at api-version 7.6-preview.1: no preserveCertOrder field in the answer.
    'pem_import_7_6_preview_1': ('net_import_pem_7_6_preview_1.json', 'import'),
    # PKCS#12 import without a policy at 2025-07-01: the policy the service makes up (issuer Unknown).
    'pfx_import': ('test_import_certificate_password_encoded_no_policy.json', 'import'),
}
SECRET_TEMPLATES = {
    PEM: ('net_backing_secrets.json', 'get_secret_pem'),
    PKCS12: ('net_backing_secrets.json', 'get_secret_pkcs12'),
}


def recorded_body(fixture, key):
    """A deep copy of the response body stored under ``key`` in ``recordings/<fixture>``."""
    return copy.deepcopy(load(fixture)['interactions'][key]['response']['body'])


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def x5t(cert):
    """The bundle's ``x5t``: base64url (unpadded) SHA-1 of the DER certificate."""
    return base64.urlsafe_b64encode(hashlib.sha1(der(cert)).digest()).rstrip(b'=').decode('ascii')  # nosec - a thumbprint


def _epoch(cert, which):
    value = getattr(cert, which + '_utc', None) or getattr(cert, which)  # cryptography < 42 has no *_utc
    return calendar.timegm(value.utctimetuple())


def _ids(body, vault, name, version):
    vault = vault.rstrip('/')
    body['id'] = '%s/certificates/%s/%s' % (vault, name, version)
    body['kid'] = '%s/keys/%s/%s' % (vault, name, version)
    body['sid'] = '%s/secrets/%s/%s' % (vault, name, version)


def pem_value(key, leaf, chain=(), with_key=True):
    """The backing secret's value for ``application/x-pem-file``: the key (PKCS#8) first, then ``leaf`` and ``chain``."""
    parts = []
    if with_key:
        parts.append(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    parts.extend(c.public_bytes(serialization.Encoding.PEM) for c in [leaf] + list(chain))
    return b''.join(parts).decode('ascii')


def pkcs12_value(key, leaf, chain=()):
    """The backing secret's value for ``application/x-pkcs12``: base64 of a PKCS#12 opened without a password."""
    blob = pkcs12.serialize_key_and_certificates(None, key, leaf, list(chain) or None, serialization.NoEncryption())
    return base64.b64encode(blob).decode('ascii')


def certificate_bundle_with_policy(name, version, vault, leaf, content_type=PEM, exportable=True, preserve_order=None,
                                   tags=None, enabled=True, template='pem_import'):
    """A certificate bundle (import answer, GET /certificates/{name}[/{version}]) with its ``policy``.

    Starts from the recorded body ``CERTIFICATE_TEMPLATES[template]``; ``preserve_order=None`` drops the
    top-level ``preserveCertOrder`` field (as api-versions before 7.6 answer), True/False sets it.
    """
    fixture, key = CERTIFICATE_TEMPLATES[template]
    body = recorded_body(fixture, key)
    _ids(body, vault, name, version)
    body['x5t'] = x5t(leaf)
    body['cer'] = base64.b64encode(der(leaf)).decode('ascii')
    body['attributes'].update(enabled=enabled, nbf=_epoch(leaf, 'not_valid_before'), exp=_epoch(leaf, 'not_valid_after'))
    policy = body['policy']
    policy['id'] = '%s/certificates/%s/policy' % (vault.rstrip('/'), name)
    policy['key_props']['exportable'] = exportable
    policy['secret_props']['contentType'] = content_type
    policy['x509_props']['subject'] = leaf.subject.rfc4514_string()
    if preserve_order is None:
        body.pop('preserveCertOrder', None)
    else:
        body['preserveCertOrder'] = preserve_order
    if tags is not None:
        body['tags'] = dict(tags)
    return body


def secret_bundle_of_import(value, content_type, name, version, vault, leaf=None, enabled=True, tags=None):
    """The backing secret bundle (GET /secrets/{name}/{version}) of certificate version ``version``.

    Starts from the recorded body ``SECRET_TEMPLATES[content_type]``; ``value`` is what the secret holds
    (see :func:`pem_value`, :func:`pkcs12_value`).  ``leaf`` sets attributes' nbf/exp as the service does.
    """
    fixture, key = SECRET_TEMPLATES[content_type]
    body = recorded_body(fixture, key)
    vault = vault.rstrip('/')
    body['id'] = '%s/secrets/%s/%s' % (vault, name, version)
    body['kid'] = '%s/keys/%s/%s' % (vault, name, version)
    body['value'] = value
    body['contentType'] = content_type
    body['attributes']['enabled'] = enabled
    if leaf is not None:
        body['attributes'].update(nbf=_epoch(leaf, 'not_valid_before'), exp=_epoch(leaf, 'not_valid_after'))
    if tags is not None:
        body['tags'] = dict(tags)
    return body


def interaction(method, path, body, status=200):
    """A ReplayTransport queue item answering ``method path`` with ``body``."""
    return {'request': {'method': method, 'path': path},
            'response': {'status': status, 'headers': {'Content-Type': 'application/json; charset=utf-8'}, 'body': body}}
