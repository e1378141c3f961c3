# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One vault's connection: credential and ``CertificateClient``, built on first use, shared, closed once.

Every request to a vault goes through one ``CertificateClient`` (the backing-secret read included, as a
raw request on its pipeline), so Key Vault's authentication challenge is answered once and one token
serves every certificate of that vault.

- A :class:`VaultConnection` is what a ``KeyVaultTarget`` talks through. A target built without one makes
  a private connection and closes it with itself.
- A :class:`ConnectionPool` hands out targets that share their vault's connection, for a task that deploys
  many certificates: the vault's first request goes alone (it pays the challenge and the token), and a
  first failure that is about the vault or the identity is remembered, so the other certificates of that
  vault fail the same way without sending a request of their own.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading

from ... import errors
from ...material import certificate as cert_material
from . import credentials, faults, retry, sdk as azure_sdk
from .pacing import VaultPacer
from .retry import TOTAL_TIMEOUT_FACTOR

# azure-core's RetryPolicy honours Retry-After on 429/503; these bound how often one call may retry.
# A connection that cannot be made at all (refused, no route) is tried twice, not five times: waiting
# longer rarely helps, and `timeout` must bound a failing call. How long one call may take, waits and token
# requests included, is retry.call_time_bound(timeout): no Retry-After can stretch it.
RETRY = {'retry_total': 4, 'retry_backoff_factor': 0.8, 'retry_backoff_max': 30}
CONNECT_RETRIES = 1

# Failures of a vault's first request that are about the vault or the identity, not about one certificate.
# (forbidden is not one of them: a role assignment can be scoped to one certificate.)
VAULT_WIDE_CODES = frozenset((errors.AUTH_FAILED, errors.UNREACHABLE, errors.NETWORK_DENIED, errors.VAULT_NOT_FOUND,
                              errors.MISSING_DEPENDENCY))


def combined_ca_bundle(extra_path):
    """Write the default trust store plus ``extra_path`` to a temporary file; return its path.

    ``ca_path`` *adds* trust anchors: requests' ``verify=<file>`` would replace
    the public roots, which would break a vault behind a public CA.
    """
    try:
        with open(extra_path, 'rb') as handle:
            extra = handle.read(cert_material.MAX_PEM_BYTES + 1)  # bounded: the parse below refuses anything larger
    except (IOError, OSError) as exc:
        raise errors.DeployError(errors.INVALID_CONFIG, 'ca_path %s cannot be read: %s' % (extra_path, exc.strerror or exc))
    try:
        cert_material.parse_certificates(extra, 'ca_path file')
    except errors.DeployError as exc:
        raise errors.DeployError(errors.INVALID_CONFIG, 'ca_path %s: %s' % (extra_path, exc.message))
    default = b''
    try:
        import certifi  # requests' own trust store
        bundle = certifi.where()
    except ImportError:
        bundle = ssl.get_default_verify_paths().cafile
    if bundle and os.path.exists(bundle):
        with open(bundle, 'rb') as handle:
            default = handle.read()
    fd, path = tempfile.mkstemp(prefix='certdeploy-ca-', suffix='.pem')
    with os.fdopen(fd, 'wb') as handle:
        handle.write(default + b'\n' + extra + b'\n')
    return path


class VaultConnection(object):
    """The SDK and the ``CertificateClient`` of one vault, built on first use; safe to share between threads.

    ``client`` is a ready client (or anything with its methods) to use instead of building one: unit tests
    give a fake. ``sdk_loader`` loads the SDK modules (sdk.load, guarded: a missing package is
    missing_dependency). ``pacer`` is the vault's ``pacing.VaultPacer`` (a task's certificates of one vault share
    it through their shared connection); every request of the vault client goes through it.
    """

    def __init__(self, settings, env=None, sdk_loader=None, client=None, pacer=None):
        self.settings = settings
        self.pacer = pacer if pacer is not None else VaultPacer()
        self._env = env or {}
        self._sdk_loader = sdk_loader if sdk_loader is not None else azure_sdk.load
        self._sdk = None
        self._client = client
        self._ca_file = None
        self._where = settings.address.url
        self._lock = threading.Lock()
        self._first = threading.Lock()
        self._primed = False
        self._error = None

    @property
    def sdk(self):
        """The loaded SDK modules (after :meth:`client`)."""
        return self._sdk

    def client(self):
        """The vault's CertificateClient, built once; a failure to build it is raised again, fresh, on every call."""
        with self._lock:
            if self._error is not None:
                raise self._error.fresh()
            try:
                if self._sdk is None:
                    self._sdk = self._sdk_loader()
                if self._client is None:
                    self._client = self._build()
            except errors.DeployError as exc:
                self._error = exc.fresh()
                raise
            return self._client

    def _build(self):
        sdk = self._sdk
        settings = self.settings
        transport = {'connection_timeout': settings.timeout, 'read_timeout': settings.timeout,
                     'retry_connect': CONNECT_RETRIES}
        if settings.ca_path:
            self._ca_file = combined_ca_bundle(settings.ca_path)
            transport['connection_verify'] = self._ca_file
        resolved = credentials.resolve(settings.credential_mode, settings.authority_host,
                                       tenant_id=settings.tenant_id, client_id=settings.client_id, env=self._env)
        budget = settings.timeout * TOTAL_TIMEOUT_FACTOR
        try:
            # The token requests run inside a vault call, under its budget (their transport enforces it), and have
            # a total timeout of their own for good measure.
            credential = credentials.guarded(credentials.build_credential(
                resolved, sdk.identity, **dict(transport, timeout=budget, **self._bounded_transport(transport))))
        except (ValueError, TypeError) as exc:  # azure-identity validates tenant ids and hosts on construction
            raise errors.DeployError(errors.AUTH_FAILED, 'The %s credential cannot be built: %s' % (resolved.mode, exc))
        options = dict(transport, verify_challenge_resource=settings.verify_challenge_resource, timeout=budget,
                       retry_policy=retry.BoundedRetryPolicy(timeout=budget, retry_connect=CONNECT_RETRIES, **RETRY),
                       **self._bounded_transport(transport, pacer=self.pacer))
        if settings.api_version:
            options['api_version'] = settings.api_version
        try:
            return sdk.certificates.CertificateClient(settings.address.url, credential, **options)
        except (ValueError, NotImplementedError) as exc:
            raise faults.classify(exc, 'connect', self._where)

    def _bounded_transport(self, transport, pacer=None):
        """``{'transport': ...}``: azure-core's RequestsTransport behind retry.BoundedTransport (paced by ``pacer``:
        the vault client's, not the credential's); {} without the module."""
        module = self._sdk.core_transport
        if module is None:
            return {}
        options = dict((k, v) for k, v in transport.items() if k != 'retry_connect')
        return {'transport': retry.BoundedTransport(module.RequestsTransport(**options), pacer=pacer)}

    def first_request(self, call):
        """Run ``call`` (a read). The vault's first one runs alone; when it fails for a reason that is about
        the vault or the identity (VAULT_WIDE_CODES), every later call raises that failure without a request."""
        if self._primed:
            return self._checked(call)
        with self._first:
            if self._primed:
                return self._checked(call)
            try:
                return call()
            except errors.DeployError as exc:
                if exc.code in VAULT_WIDE_CODES:
                    self._error = exc.fresh('the first request to this vault failed, so this certificate sent none')
                raise
            finally:
                self._primed = True

    def _checked(self, call):
        if self._error is not None:
            raise self._error.fresh()
        return call()

    def close(self):
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
        if self._ca_file and os.path.exists(self._ca_file):
            os.unlink(self._ca_file)
            self._ca_file = None


class ConnectionPool(object):
    """The VaultConnection of each vault a task uses, by normalised vault URL; closes them all at the end.

    ``KeyVaultTarget(settings, env, connection=pool.connection(settings))`` is a target on the shared
    connection; closing that target leaves the connection open for the other certificates.

    ``connection_factory(settings, env, pacer=...)`` builds a vault's connection (default: VaultConnection); each
    vault gets its own ``pacing.VaultPacer``, starting at ``concurrency`` certificates at once.
    """

    def __init__(self, env=None, connection_factory=VaultConnection, concurrency=1):
        self._env = env or {}
        self._factory = connection_factory
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._by_vault = {}

    def connection(self, settings):
        """The shared connection of ``settings``' vault."""
        with self._lock:
            connection = self._by_vault.get(settings.address.url)
            if connection is None:
                connection = self._by_vault[settings.address.url] = self._factory(
                    settings, self._env, pacer=VaultPacer(self._concurrency))
            return connection

    def connections(self):
        """Every vault's connection, by vault URL, in the order they were first used."""
        with self._lock:
            return list(self._by_vault.items())

    def close(self):
        for connection in self._by_vault.values():
            connection.close()
