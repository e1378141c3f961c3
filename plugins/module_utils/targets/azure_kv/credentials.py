# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which azure-identity credential to build, from options and the environment.

Secrets are never module options: the client secret comes from
``AZURE_CLIENT_SECRET`` (or AWX's ``AZURE_SECRET``).  Resolution is pure and
unit-tested; :func:`build_credential` takes the ``azure.identity`` module as an
argument so tests can observe exactly what is constructed.
"""

from __future__ import annotations

from ... import errors
from . import faults, retry

MODES = ('default', 'managed_identity', 'client_secret', 'workload_identity')

# (azure-identity's name, AWX's Azure credential name) in order of precedence.
ENV_TENANT = ('AZURE_TENANT_ID', 'AZURE_TENANT')
ENV_CLIENT_ID = ('AZURE_CLIENT_ID',)
ENV_SECRET = ('AZURE_CLIENT_SECRET', 'AZURE_SECRET')
ENV_TOKEN_FILE = ('AZURE_FEDERATED_TOKEN_FILE',)


def _first(env, names):
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


class CredentialSettings(object):
    """Resolved identity settings.  ``repr`` never shows the secret."""

    def __init__(self, mode, authority_host, tenant_id=None, client_id=None, client_secret=None, token_file=None):
        self.mode = mode
        self.authority_host = authority_host
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_file = token_file

    @property
    def custom_authority(self):
        """True for a sign-in host outside the public clouds (cloud: custom), given as an https:// URL."""
        return bool(self.authority_host) and '://' in self.authority_host

    @property
    def has_client_secret(self):
        return bool(self.tenant_id and self.client_id and self.client_secret)

    def __repr__(self):
        return 'CredentialSettings(mode=%r, authority_host=%r, tenant_id=%r, client_id=%r, client_secret=%s, token_file=%r)' % (
            self.mode, self.authority_host, self.tenant_id, self.client_id,
            '<set>' if self.client_secret else None, self.token_file)


def resolve(mode, authority_host, tenant_id=None, client_id=None, env=None):
    """Combine options with environment fallbacks and check the mode has what it needs."""
    env = env or {}
    if mode not in MODES:
        raise errors.DeployError(errors.INVALID_CONFIG, 'credential_mode must be one of %s.' % ', '.join(MODES))
    settings = CredentialSettings(
        mode=mode,
        authority_host=authority_host,
        tenant_id=tenant_id or _first(env, ENV_TENANT),
        client_id=client_id or _first(env, ENV_CLIENT_ID),
        client_secret=_first(env, ENV_SECRET),
        token_file=_first(env, ENV_TOKEN_FILE),
    )
    missing = []
    if mode in ('client_secret', 'workload_identity'):
        if not settings.tenant_id:
            missing.append('tenant_id (option, or AZURE_TENANT_ID / AZURE_TENANT)')
        if not settings.client_id:
            missing.append('client_id (option, or AZURE_CLIENT_ID)')
    if mode == 'client_secret' and not settings.client_secret:
        missing.append('the client secret (environment AZURE_CLIENT_SECRET or AZURE_SECRET; never a module option)')
    if mode == 'workload_identity' and not settings.token_file:
        missing.append('the federated token file (environment AZURE_FEDERATED_TOKEN_FILE)')
    if missing:
        # auth_failed, not invalid_config: no identity can be had.  Check mode turns this
        # into a warning, so playbooks can be validated where no credentials exist.
        raise errors.DeployError(errors.AUTH_FAILED, 'credential_mode %s needs %s.' % (mode, '; '.join(missing)))
    return settings


def build_credential(settings, identity, **transport):
    """Construct the azure-identity credential for ``settings``.

    ``identity`` is the ``azure.identity`` module; ``transport`` carries
    pipeline options shared with the vault clients (``connection_verify``,
    timeouts).

    ``default`` uses a complete client-secret configuration from the
    environment when there is one (so AWX's variable names work), and
    azure-identity's DefaultAzureCredential chain otherwise.
    """
    mode = settings.mode
    if mode == 'client_secret' or (mode == 'default' and settings.has_client_secret):
        options = dict(transport, authority=settings.authority_host)
        if settings.custom_authority:
            # MSAL would first validate a custom authority against login.microsoftonline.com:
            # a request to a public host that private clouds and air-gapped networks cannot make.
            options['disable_instance_discovery'] = True
        return identity.ClientSecretCredential(settings.tenant_id, settings.client_id, settings.client_secret, **options)
    if mode == 'workload_identity':
        return identity.WorkloadIdentityCredential(
            tenant_id=settings.tenant_id, client_id=settings.client_id, token_file_path=settings.token_file,
            authority=settings.authority_host, **transport)
    if mode == 'managed_identity':
        if settings.client_id:
            return identity.ManagedIdentityCredential(client_id=settings.client_id, **transport)
        return identity.ManagedIdentityCredential(**transport)
    options = dict(transport)
    options['authority'] = settings.authority_host
    options['exclude_interactive_browser_credential'] = True
    if settings.client_id:
        options['managed_identity_client_id'] = settings.client_id
        options['workload_identity_client_id'] = settings.client_id
    if settings.tenant_id:
        options['workload_identity_tenant_id'] = settings.tenant_id
    return identity.DefaultAzureCredential(**options)


class _TokenGuard(object):
    """A credential whose failures to produce a token are always sign-in failures.

    A managed-identity endpoint that refuses connections, or a token request that
    times out, surfaces from inside the vault client as a transport error that
    names no vault operation. Wrapping the credential makes every such failure
    ``auth_failed``, whatever the transport said.
    """

    def __init__(self, credential):
        self._credential = credential

    def _fail(self, exc):
        if isinstance(exc, errors.DeployError):
            return exc
        if retry.refused_wait(exc) is not None:  # the token request ran out of the vault call's time budget
            return faults.budget_exceeded(retry.refused_wait(exc), 'token')
        text = ' '.join(str(exc).split())[:1000] or type(exc).__name__
        if faults.no_connection(text) is not None:
            return faults.sign_in_unreachable(type(self._credential).__name__, text)
        return errors.DeployError(errors.AUTH_FAILED, 'Could not get a token for Key Vault from %s: %s'
                                  % (type(self._credential).__name__, text))

    def get_token(self, *scopes, **kwargs):
        try:
            return self._credential.get_token(*scopes, **kwargs)
        except Exception as exc:
            raise self._fail(exc)

    def close(self):
        closer = getattr(self._credential, 'close', None)
        if closer is not None:
            closer()

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()


class _TokenInfoGuard(_TokenGuard):
    """The same, for credentials that also implement azure-core's get_token_info protocol."""

    def get_token_info(self, *scopes, **kwargs):
        try:
            return self._credential.get_token_info(*scopes, **kwargs)
        except Exception as exc:
            raise self._fail(exc)


def guarded(credential):
    """Wrap ``credential`` so that token failures become DeployError(auth_failed)."""
    if hasattr(credential, 'get_token_info'):
        return _TokenInfoGuard(credential)
    return _TokenGuard(credential)
