# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Key Vault's certificate requests for the request engine: the key is made in the vault, a CA signs its CSR.

- create: ``POST /certificates/{name}/create`` with a policy whose issuer is ``Unknown``: Key Vault makes the key
  (in an HSM for RSA-HSM/EC-HSM) and answers 202 with the pending operation and its CSR. It is sent once with
  retries off (azure-core would resend it on a 5xx, making a second key); a lost answer is settled by the engine.
- the pending operation: ``GET``, and to discard it ``PATCH {cancellation_requested: true}`` then ``DELETE``
  (``/certificates/{name}/pending``);
- the policy: ``GET /certificates/{name}/policy``;
- merge: ``POST /certificates/{name}/pending/merge`` with the signed certificate and its chain (``x5c``, leaf
  first) and the tags; Key Vault refuses a certificate over another public key.

The create body is written here rather than through the SDK's ``begin_create_certificate``: that call returns a
poller that, for any issuer but Unknown in the answer, polls every 5 s without end.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from ... import errors
from ...engine.model import PendingRequest
from ...material import certificate as cert_material
from . import faults

CONTENT_TYPES = {'pkcs12': 'application/x-pkcs12', 'pem': 'application/x-pem-file'}
_CONTENT_TYPE_NAMES = dict((v, k) for k, v in CONTENT_TYPES.items())
# When Key Vault emails the certificate contacts about a coming expiry: the request has no issuer that could renew.
EMAIL_AT_LIFETIME_PERCENTAGE = 80
# Failures of a write that mean Key Vault refused it before acting on it (a 400 among them: the request or the
# certificate was rejected).
REFUSED = frozenset((errors.AUTH_FAILED, errors.FORBIDDEN, errors.NETWORK_DENIED, errors.UNREACHABLE, errors.VAULT_NOT_FOUND,
                     errors.INVALID_CONFIG, errors.INVALID_MATERIAL, errors.MISSING_DEPENDENCY, errors.SOFT_DELETED,
                     errors.BEING_DELETED))


def policy_body(policy):
    """The REST certificate policy of a request (``model.RequestPolicy``): issuer Unknown, no automatic renewal."""
    key_props = {'exportable': policy.exportable, 'kty': policy.key_type + ('-HSM' if policy.hsm else ''),
                 'reuse_key': policy.reuse_key}
    if policy.key_type == 'RSA':
        key_props['key_size'] = policy.key_size
    else:
        key_props['crv'] = policy.curve
    x509_props = {'subject': policy.subject, 'validity_months': policy.validity_months}
    if policy.dns_names:
        x509_props['sans'] = {'dns_names': list(policy.dns_names)}
    if policy.key_usage is not None:
        x509_props['key_usage'] = list(policy.key_usage)
    if policy.extended_key_usage is not None:
        x509_props['ekus'] = list(policy.extended_key_usage)
    return {
        'key_props': key_props,
        'secret_props': {'contentType': CONTENT_TYPES[policy.content_type]},
        'x509_props': x509_props,
        'issuer': {'name': 'Unknown'},
        'lifetime_actions': [{'trigger': {'lifetime_percentage': EMAIL_AT_LIFETIME_PERCENTAGE},
                              'action': {'action_type': 'EmailContacts'}}],
    }


def _value(value):
    return getattr(value, 'value', value)


def policy_dict(policy):
    """An SDK CertificatePolicy -> the request engine's stored policy dict (RequestPolicy's field names + issuer)."""
    kty = _value(getattr(policy, 'key_type', None))
    kty = str(kty) if kty is not None else None
    key_type = kty.upper().replace('-HSM', '') if kty else None
    usages = getattr(policy, 'key_usage', None)
    ekus = getattr(policy, 'enhanced_key_usage', None)
    content_type = _value(getattr(policy, 'content_type', None))
    curve = _value(getattr(policy, 'key_curve_name', None))
    return {
        'issuer': getattr(policy, 'issuer_name', None),
        'subject': getattr(policy, 'subject', None),
        'dns_names': sorted(getattr(policy, 'san_dns_names', None) or []),
        'key_type': key_type,
        'key_size': getattr(policy, 'key_size', None) if key_type == 'RSA' else None,
        'curve': str(curve) if curve is not None and key_type == 'EC' else None,
        'hsm': kty.upper().endswith('-HSM') if kty else None,
        'exportable': getattr(policy, 'exportable', None),
        'reuse_key': getattr(policy, 'reuse_key', None),
        'validity_months': getattr(policy, 'validity_in_months', None),
        'key_usage': sorted(str(_value(u)) for u in usages) if usages is not None else None,
        'extended_key_usage': sorted(str(e) for e in ekus) if ekus is not None else None,
        'content_type': _CONTENT_TYPE_NAMES.get(content_type) if content_type else None,
    }


def _csr_bytes(value):
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    try:
        return base64.b64decode(str(value), validate=True)
    except (TypeError, ValueError):
        raise errors.DeployError(errors.SERVICE_ERROR, 'Key Vault answered with a CSR that is not base64.')


def pending_of_operation(operation):
    """An SDK CertificateOperation -> PendingRequest."""
    error = getattr(operation, 'error', None)
    return PendingRequest(
        csr=_csr_bytes(getattr(operation, 'csr', None)), status=getattr(operation, 'status', None),
        status_details=getattr(operation, 'status_details', None), issuer=getattr(operation, 'issuer_name', None),
        cancellation_requested=getattr(operation, 'cancellation_requested', False),
        request_id=getattr(operation, 'request_id', None),
        error=getattr(error, 'message', None) if error is not None else None)


def pending_of_body(body):
    """A REST CertificateOperation body (JSON object) -> PendingRequest."""
    if not isinstance(body, dict):
        raise errors.DeployError(errors.SERVICE_ERROR, 'Key Vault answered the request with something that is not a certificate operation.')
    issuer = body.get('issuer') if isinstance(body.get('issuer'), dict) else {}
    error = body.get('error') if isinstance(body.get('error'), dict) else {}
    return PendingRequest(
        csr=_csr_bytes(body.get('csr')), status=body.get('status'), status_details=body.get('status_details'),
        issuer=issuer.get('name'), cancellation_requested=body.get('cancellation_requested', False),
        request_id=body.get('request_id'), error=error.get('message'))


class RequestMethods(object):
    """The request-engine part of the Target port for ``KeyVaultTarget`` (mixed into it)."""

    def read_pending(self):
        certs = self._client()
        try:
            operation = certs.get_certificate_operation(self.name)
        except Exception as exc:
            if faults.is_object_not_found(exc):
                return None
            raise faults.classify(exc, 'read_pending', self._where)
        return pending_of_operation(operation)

    def read_policy(self):
        certs = self._client()
        try:
            policy = certs.get_certificate_policy(self.name)
        except Exception as exc:
            if faults.is_object_not_found(exc):
                return None
            raise faults.classify(exc, 'read_policy', self._where)
        return policy_dict(policy)

    def create_request(self, policy, tags):
        body = {'policy': policy_body(policy), 'attributes': {'enabled': True}, 'tags': dict(tags)}
        certs = self._client()  # loads the SDK on first use
        core = self._sdk.core_exceptions
        request = self._sdk.core_rest.HttpRequest(
            'POST', '/certificates/%s/create' % quote(self.name, safe=''), json=body, headers={'Accept': 'application/json'})
        try:
            # retry_total=0: a resent create makes a second key; the engine settles a lost answer by reading.
            response = certs.send_request(request, retry_total=0)
            if response.status_code not in (200, 201, 202):
                core.map_error(response.status_code, response, {
                    401: core.ClientAuthenticationError, 404: core.ResourceNotFoundError, 409: core.ResourceExistsError})
                raise core.HttpResponseError(response=response)
            try:
                answer = response.json()
            except ValueError:
                answer = None
            return pending_of_body(answer)
        except errors.DeployError as exc:
            exc.details['may_have_written'] = True
            raise
        except Exception as exc:  # every SDK/transport failure is classified, none escapes raw
            failure = self._write_failure(exc, 'create', certs)
            if failure.code not in REFUSED and not failure.details.get('not_processed'):
                failure.details['may_have_written'] = True
            raise failure

    def discard_request(self):
        certs = self._client()
        try:
            certs.cancel_certificate_operation(self.name)
        except Exception as exc:
            # 400: not in progress any more (cancelled, failed); 404: gone. The delete below settles both.
            if self._status(exc) not in (400, 404):
                raise faults.classify(exc, 'discard', self._where)
        try:
            certs.delete_certificate_operation(self.name)
        except Exception as exc:
            if not faults.is_object_not_found(exc):
                raise faults.classify(exc, 'discard', self._where)

    def merge(self, signed, tags):
        certs = self._client()
        try:
            bundle = certs.merge_certificate(self.name, signed_ders(signed), enabled=True, tags=dict(tags), retry_total=0)
        except Exception as exc:  # every SDK/transport failure is classified, none escapes raw
            failure = faults.classify(exc, 'merge', self._where)
            if self._status(exc) == 400 and 'public key' in str(exc).lower():
                raise errors.DeployError(
                    errors.KEY_MISMATCH, 'Key Vault refused the merge: the certificate was not signed over the pending '
                    'request\'s key (%s).' % failure.message)
            if failure.code not in REFUSED and not failure.details.get('not_processed'):
                failure.details['may_have_written'] = True
            raise failure
        return self.state_of(bundle)


def signed_ders(signed):
    """The DER of the signed certificate and its chain, leaf first (the ``x5c`` of a merge)."""
    return [cert_material.leaf_der(cert) for cert in signed.certificates]
