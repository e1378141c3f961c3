# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Azure Key Vault as a deploy target of the engine."""

from __future__ import annotations

import base64
from urllib.parse import quote

from ... import errors
from ...engine.model import ExportedVersion, StoredChain, VersionState
from ...engine.target import Target
from ...material import certificate as cert_material
from . import faults
from .connection import VaultConnection
from .requests import CONTENT_TYPES, RequestMethods
from .retry import TOTAL_TIMEOUT_FACTOR

_CONTENT_TYPE_NAMES = dict((v, k) for k, v in CONTENT_TYPES.items())


class KeyVaultSettings(object):
    """Everything the adapter needs, validated (see frontend for how options map here)."""

    def __init__(self, address, certificate_name, authority_host, credential_mode='default', tenant_id=None, client_id=None,
                 content_type='pkcs12', exportable=True, preserve_chain_order=True, api_version=None, ca_path=None,
                 verify_challenge_resource=True, timeout=60):
        self.address = address
        self.certificate_name = certificate_name
        self.authority_host = authority_host
        self.credential_mode = credential_mode
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.content_type = content_type
        self.exportable = exportable
        self.preserve_chain_order = preserve_chain_order  # send the SDK's preserve_order (API 7.6 and later)
        self.api_version = api_version
        self.ca_path = ca_path
        self.verify_challenge_resource = verify_challenge_resource
        self.timeout = timeout


class KeyVaultTarget(RequestMethods, Target):
    """One certificate name in one vault, reached through a :class:`~.connection.VaultConnection`.

    Without ``connection`` the target makes a private one (from ``sdk_loader`` and, for unit tests, a ready
    ``clients``) and closes it with itself. With ``connection`` -- shared by the certificates of one vault, see
    ``connection.ConnectionPool`` -- the pool closes it. Either way the latest-version read goes through
    ``connection.first_request``: on a shared connection the vault's first request then pays for the
    challenge and the token alone; on a private one it is the target's own first request, and nothing waits.
    """

    def __init__(self, settings, env=None, sdk_loader=None, clients=None, connection=None):
        self.settings = settings
        self.name = settings.certificate_name
        self.labels = {'target': 'azure_kv', 'vault': settings.address.url, 'name': self.name}
        self._owns_connection = connection is None
        if connection is None:
            # A tuple is taken as (certificates, ...) for callers written when the adapter also held a secrets client.
            client = clients[0] if isinstance(clients, tuple) else clients
            connection = VaultConnection(settings, env=env, sdk_loader=sdk_loader, client=client)
        self.connection = connection
        self._where = '%s/certificates/%s' % (settings.address.url, self.name)

    # -- plumbing ------------------------------------------------------------

    def _client(self):
        return self.connection.client()

    @property
    def _sdk(self):
        return self.connection.sdk

    def _call(self, operation, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except errors.DeployError:
            raise
        except Exception as exc:  # every SDK/transport failure is classified, none escapes raw
            raise faults.classify(exc, operation, self._where)

    @staticmethod
    def _status(exc):
        return getattr(exc, 'status_code', None)

    def close(self):
        """Close the connection if it is this target's own; a shared one is closed by its pool."""
        if self._owns_connection:
            self.connection.close()

    # -- Target port ---------------------------------------------------------

    def predicted_ids(self):
        base = self.settings.address.url
        return {
            'versionless_id': '%s/certificates/%s' % (base, self.name),
            'versionless_secret_id': '%s/secrets/%s' % (base, self.name),
        }

    def read_latest(self, look_for_deleted=True):
        """The latest version, or None.  ``look_for_deleted=False`` spares the deleted-certificate read on a 404:
        a soft-deleted name then reads as absent, and importing into it answers 409 (soft_deleted)."""
        return self.connection.first_request(lambda: self._read_latest(look_for_deleted))

    def _read_latest(self, look_for_deleted):
        certs = self._client()
        try:
            bundle = certs.get_certificate(self.name)
        except Exception as exc:
            if not faults.is_object_not_found(exc):  # a 404 naming no certificate is a wrong vault URL, not a free name
                raise faults.classify(exc, 'read', self._where)
            if look_for_deleted:
                self._raise_if_soft_deleted(certs)
            return None
        return self.state_of(bundle)

    def _write_failure(self, exc, operation, certs):
        """The DeployError of a failed write (import, create). A 409 that does not say why is told apart by the name's
        deleted certificate (read_latest may have skipped that read): a soft-deleted name raises soft_deleted here."""
        failure = faults.classify(exc, operation, self._where)
        if failure.code == errors.CONFLICT and self._status(exc) == 409:
            try:
                self._raise_if_soft_deleted(certs)
            except errors.DeployError as exc_deleted:
                if exc_deleted.code == errors.SOFT_DELETED:
                    raise
        return failure

    def _raise_if_soft_deleted(self, certs):
        try:
            deleted = certs.get_deleted_certificate(self.name)
        except Exception as exc:
            if self._status(exc) in (404, 403, 400):
                # 400: soft delete is off on this vault.  403: cannot tell; an import would answer 409.
                return
            raise faults.classify(exc, 'read_deleted', self._where)
        raise errors.DeployError(
            errors.SOFT_DELETED,
            'The certificate name %s is soft-deleted (deleted on %s, purge scheduled %s). Recover it with '
            'on_soft_deleted: recover, or purge it, before deploying.'
            % (self.name, getattr(deleted, 'deleted_on', None), getattr(deleted, 'scheduled_purge_date', None)),
            deleted=self._state_or_none(deleted))  # its tags: whether recovering it is ours to do (no second read)

    def _state_or_none(self, bundle):
        try:
            return self.state_of(bundle)
        except (AttributeError, TypeError, ValueError, errors.DeployError):  # not a bundle this adapter can read: the engine reads again
            return None

    def read_deleted(self):
        certs = self._client()
        try:
            deleted = certs.get_deleted_certificate(self.name)
        except Exception as exc:
            if self._status(exc) == 404:
                return None
            raise faults.classify(exc, 'read_deleted', self._where)
        return self.state_of(deleted)

    # Versions listed before a rollback, at most: a name with more is not rolled back (it cannot be ruled out
    # that another writer's version is among the rest).
    MAX_LISTED_VERSIONS = 5000

    def list_versions(self):
        certs = self._client()

        def listed():
            out = []
            for props in certs.list_properties_of_certificate_versions(self.name):
                if len(out) >= self.MAX_LISTED_VERSIONS:
                    raise errors.DeployError(errors.CONFLICT, 'the certificate has more than %d versions' % self.MAX_LISTED_VERSIONS)
                out.append(VersionState(version=props.version, thumbprint=cert_material.thumbprint_from_x5t(props.x509_thumbprint),
                                        tags=props.tags or {}, enabled=props.enabled, created_on=props.created_on))
            return out
        return self._call('list_versions', listed)

    # Failures of a recover request that mean it was refused before Key Vault acted on it.
    _RECOVER_REFUSED = frozenset((errors.AUTH_FAILED, errors.FORBIDDEN, errors.NETWORK_DENIED, errors.UNREACHABLE,
                                  errors.VAULT_NOT_FOUND, errors.INVALID_CONFIG, errors.MISSING_DEPENDENCY))

    def recover_deleted(self):
        """Recover the name and wait until it reads again. A failure after the request may have reached Key Vault
        carries ``may_have_written=True`` (a recover answered 500 after it committed, resent by azure-core, answers
        404; a recovery whose wait times out was accepted)."""
        certs = self._client()
        try:
            poller = self._call('recover', certs.begin_recover_deleted_certificate, self.name)
            # The SDK's poller.result() returns at once; wait() polls the certificate until it is readable again.
            limit = self.settings.timeout * TOTAL_TIMEOUT_FACTOR
            self._call('recover', poller.wait, timeout=limit)
            if not poller.done():
                raise errors.DeployError(
                    errors.TIMEOUT, 'The recovery of %s was requested but the certificate was not readable again within %d s; '
                    'run again later.' % (self._where, limit))
        except errors.DeployError as exc:
            if exc.code not in self._RECOVER_REFUSED:
                exc.details['may_have_written'] = True
            raise

    def update_properties(self, state, tags, enabled):
        certs = self._client()
        # The SDK returns the whole KeyVaultCertificate; the version must be explicit (emulators and
        # the service differ on what "no version" means).
        bundle = self._call('update', certs.update_certificate_properties, self.name, state.version, enabled=enabled, tags=tags)
        updated = self.state_of(bundle)
        if updated.leaf is None:
            updated.leaf, updated.facts = state.leaf, dict(state.facts, **updated.facts)
        updated.content_type = updated.content_type or state.content_type
        return updated

    def read_version(self, version=None):
        """The VersionState of ``version`` (latest when None); DeployError when it does not exist."""
        if version is None:
            state = self.read_latest()
        else:
            certs = self._client()
            try:
                state = self.state_of(certs.get_certificate_version(self.name, version))
            except Exception as exc:
                if not faults.is_object_not_found(exc):
                    raise faults.classify(exc, 'read', self._where)
                state = None
        if state is None:
            raise errors.DeployError(
                errors.INVALID_CONFIG, 'The certificate %s%s does not exist.'
                % (self._where, '' if version is None else ' (version %s)' % version))
        return state

    def export_version(self, state):
        """Read the backing secret of ``state``: the stored bytes with the private key, as an ExportedVersion."""
        secret = self._call('get_secret', self._get_secret, state.version)
        mime = secret.get('contentType') or CONTENT_TYPES['pkcs12']
        kind = _CONTENT_TYPE_NAMES.get(mime)
        value = secret.get('value') or ''
        try:
            if kind is None:
                raise errors.DeployError(errors.INVALID_MATERIAL, 'its content type is %s, neither PKCS#12 nor PEM' % mime)
            material = cert_material.load_exported_secret(value, mime)
        except errors.DeployError as exc:
            raise errors.DeployError(
                exc.code, 'The backing secret of version %s holds no usable private key (%s); is the certificate '
                'exportable?' % (state.version, exc.message))
        if material.thumbprint != state.thumbprint:
            raise errors.DeployError(
                errors.SERVICE_ERROR,
                'The backing secret of version %s holds thumbprint %s, not the certificate\'s %s.'
                % (state.version, material.thumbprint, state.thumbprint))
        return ExportedVersion(value, kind, material, version=state.version)

    @property
    def keeps_chain_order(self):
        """Key Vault keeps the chain's order when the import asks it to (preserve_chain_order, API 7.6 and later);
        otherwise it may reorder it."""
        return bool(self.settings.preserve_chain_order)

    def read_stored_chain(self, state):
        """The certificates in the backing secret of ``state`` (leaf first, as stored) and its content type."""
        if state.enabled is False:
            # Key Vault serves no secret of a disabled version (403 "Operation get is not allowed on a disabled
            # secret"): not asked, and not a permission to grant.
            raise errors.DeployError(errors.FORBIDDEN, 'version %s is disabled (enabled: false), and Key Vault serves no '
                                     'backing secret of a disabled version' % state.version, disabled=True)
        secret = self._call('get_secret', self._get_secret, state.version)
        mime = secret.get('contentType') or CONTENT_TYPES['pkcs12']
        kind = _CONTENT_TYPE_NAMES.get(mime)
        if kind is None:
            raise errors.DeployError(errors.SERVICE_ERROR, 'The backing secret of version %s has content type %s, neither '
                                     'PKCS#12 nor PEM.' % (state.version, mime))
        try:
            certificates = cert_material.stored_certificates(secret.get('value') or '', mime)
        except errors.DeployError as exc:
            raise errors.DeployError(errors.INVALID_MATERIAL, 'The backing secret of version %s could not be read as %s: %s'
                                     % (state.version, kind, exc.message))
        if state.thumbprint and cert_material.thumbprint(certificates[0]) != state.thumbprint:
            # The certificate read showed this version's leaf; a secret answer with another one contradicts it (a
            # garbled answer, a proxy): a failed read, never taken for what the version stores.
            raise errors.DeployError(
                errors.SERVICE_ERROR, 'Key Vault\'s answer about the backing secret of version %s contradicts the certificate '
                '(its leaf has thumbprint %s, the certificate %s); it was not used.'
                % (state.version, cert_material.thumbprint(certificates[0]), state.thumbprint))
        return StoredChain(certificates, kind)

    def _get_secret(self, version):
        """GET /secrets/{name}/{version} through the certificate client's pipeline: its challenge, its token, its
        api-version, its retries and TLS settings.  Returns the secret bundle (JSON object); raises azure-core's
        exceptions for an error answer, as the SDK's own operations do."""
        certs = self._client()
        core = self._sdk.core_exceptions
        request = self._sdk.core_rest.HttpRequest(
            'GET', '/secrets/%s/%s' % (quote(self.name, safe=''), quote(version, safe='')),
            headers={'Accept': 'application/json'})
        response = certs.send_request(request)
        if response.status_code != 200:
            core.map_error(response.status_code, response, {
                401: core.ClientAuthenticationError, 404: core.ResourceNotFoundError, 409: core.ResourceExistsError})
            raise core.HttpResponseError(response=response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise errors.DeployError(errors.SERVICE_ERROR, 'Key Vault answered the read of the backing secret of version %s '
                                     'with something that is not a secret bundle.' % version)
        return body

    def import_material(self, material, tags, enabled, content_type=None, exportable=None):
        kind = content_type or self.settings.content_type
        if kind == 'pem':
            payload, password = cert_material.build_pem(material), None
        else:
            password = cert_material.new_transport_password()
            payload = cert_material.build_pkcs12(material, password)
        return self._import(payload, password, kind, material, tags, enabled, exportable)

    def import_exported(self, exported, tags, enabled, content_type=None, exportable=None):
        kind = content_type or exported.content_type
        if kind != exported.content_type:
            return self.import_material(exported.material, tags, enabled, content_type=kind, exportable=exportable)
        if kind == 'pem':
            payload = cert_material.to_bytes(exported.payload)
        else:
            try:
                payload = base64.b64decode(exported.payload, validate=True)
            except (TypeError, ValueError):
                raise errors.DeployError(errors.INVALID_MATERIAL, 'The exported PKCS#12 of version %s is not base64.' % exported.version)
        # Key Vault exports PKCS#12 without a password, and its import accepts that without one: the
        # bytes go back unchanged and no `pwd` is sent.
        return self._import(payload, None, kind, exported.material, tags, enabled, exportable)

    def _import(self, payload, password, kind, material, tags, enabled, exportable=None):
        certs = self._client()
        policy = self._policy(material, kind, self.settings.exportable if exportable is None else exportable)
        extra = {'preserve_order': True} if self.settings.preserve_chain_order else {}
        try:
            # retry_total=0: azure-core would resend the POST on 500/503/504 or any Retry-After, and a resend of an
            # import that committed adds a second version. The engine reads latest before it sends again.
            bundle = certs.import_certificate(self.name, payload, enabled=enabled, tags=tags, password=password,
                                              policy=policy, retry_total=0, **extra)
        except Exception as exc:  # every SDK/transport failure is classified, none escapes raw
            raise self._write_failure(exc, 'import', certs)
        finally:
            del payload
        state = self.state_of(bundle)
        if state.content_type is None:
            state.content_type = kind
        return state

    def _policy(self, material, kind, exportable):
        """The explicit import policy: issuer Unknown, content type, exportability, and no auto-renew."""
        kv = self._sdk.certificates
        key_kind, size = material.key_description
        key_options = {'key_type': kv.KeyType.rsa, 'key_size': size} if key_kind == 'RSA' else \
            {'key_type': kv.KeyType.ec, 'key_curve_name': kv.KeyCurveName(size)}
        return kv.CertificatePolicy(
            issuer_name='Unknown',
            content_type=kv.CertificateContentType.pem if kind == 'pem' else kv.CertificateContentType.pkcs12,
            exportable=exportable,
            reuse_key=False,
            lifetime_actions=[kv.LifetimeAction(action=kv.CertificatePolicyAction.email_contacts, lifetime_percentage=80)],
            **key_options)

    # -- mapping -------------------------------------------------------------

    def state_of(self, bundle):
        """The VersionState of an SDK certificate bundle (a KeyVaultCertificate or a DeletedCertificate)."""
        props = bundle.properties
        leaf = None
        facts = {}
        if getattr(bundle, 'cer', None):
            leaf = cert_material.load_der_certificate(bundle.cer)
            try:
                facts = cert_material.certificate_facts(leaf) if leaf is not None else {}
            except ValueError:  # a stored certificate with a malformed extension: report what Key Vault says
                facts = {}
        thumb = cert_material.thumbprint_from_x5t(props.x509_thumbprint) or facts.get('thumbprint')
        problem = _inconsistency(bundle, props.version, thumb, leaf)
        if problem:
            # A garbled answer (a proxy, a truncated body) is a failed read, never taken for what the vault holds:
            # the engine would otherwise import again, resend, roll back or report on a certificate that is not there.
            raise errors.DeployError(
                errors.SERVICE_ERROR, 'Key Vault\'s answer about %s contradicts itself (%s); it was not used.' % (self._where, problem))
        ids = {
            'id': bundle.id,
            'versionless_id': bundle.id.rsplit('/', 1)[0] if bundle.id else None,
            'secret_id': bundle.secret_id,
            'versionless_secret_id': bundle.secret_id.rsplit('/', 1)[0] if bundle.secret_id else None,
            'key_id': bundle.key_id,
        }
        policy = getattr(bundle, 'policy', None)
        content_type = getattr(policy, 'content_type', None) if policy is not None else None
        if content_type is not None:
            content_type = _CONTENT_TYPE_NAMES.get(getattr(content_type, 'value', content_type))
        if thumb and not facts.get('x5t'):
            facts['x5t'] = cert_material.x5t_from_thumbprint(thumb)
        exportable = getattr(policy, 'exportable', None) if policy is not None else None
        return VersionState(
            version=props.version, thumbprint=thumb, tags=props.tags or {}, enabled=props.enabled,
            facts=facts, ids=ids, created_on=props.created_on, content_type=content_type, leaf=leaf,
            exportable=exportable if isinstance(exportable, bool) else None)


def _inconsistency(bundle, version, thumbprint, leaf):
    """What contradicts itself in a certificate bundle (x5t against the DER's own SHA-1, the version in its id
    against those in its secret and key ids), or None."""
    if leaf is not None and thumbprint and cert_material.thumbprint(leaf) != thumbprint:
        return 'x5t says thumbprint %s, the certificate it carries has %s' % (thumbprint, cert_material.thumbprint(leaf))
    for name in ('secret_id', 'key_id'):
        other = getattr(bundle, name, None)
        if version and isinstance(other, str) and other.rstrip('/').count('/') >= 5:
            other_version = other.rstrip('/').rsplit('/', 1)[-1]
            if other_version != version:
                return 'its id names version %s, its %s version %s' % (version, name.replace('_', ' '), other_version)
    return None
