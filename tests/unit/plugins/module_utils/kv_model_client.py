# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The real azure-keyvault-certificates ``CertificateClient`` talking to ``kv_model.Vault`` in process.

``ModelTransport`` is an azure-core ``HttpTransport`` that hands every request to ``Vault.handle`` and records
(method, path, status); ``model_client(vault)`` builds a ``CertificateClient`` on it whose credential's token the vault
knows, so the SDK's challenge authentication runs as against Key Vault (first request without a token, the 401
challenge, then the token). Nothing sleeps: the transport's ``sleep`` only records.
"""

from __future__ import annotations

import time

import azure.keyvault.certificates as kv_certificates
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse

from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils import kv_model
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.replay_transport import _RawResponse

TOKEN = 'model-token'


class ModelTransport(HttpTransport):
    def __init__(self, vault):
        super(ModelTransport, self).__init__()
        self.vault = vault
        self.log = []  # (method, path, status)
        self.slept = []

    def send(self, request, **kwargs):
        body = request.content
        if isinstance(body, str):
            body = body.encode('utf-8')
        answer = self.vault.handle(request.method, request.url, dict(request.headers), body or b'')
        path = request.url.split('?')[0].split(kv_model.VAULT_HOST, 1)[-1].rstrip('/') or '/'
        self.log.append((request.method, path, answer.status))
        headers, data = answer.payload()
        raw = _RawResponse(answer.status, headers, data)
        raw.reason = answer.reason
        response = RestHttpClientTransportResponse(request=request, internal_response=raw)
        response.read()
        return response

    def open(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass

    def sleep(self, duration):
        self.slept.append(duration)


class ModelCredential(object):
    def __init__(self, vault):
        vault.tokens.add(TOKEN)

    def get_token(self, *scopes, **kwargs):
        return AccessToken(TOKEN, int(time.time()) + 3600)


def model_client(vault, **options):
    """(CertificateClient, ModelTransport) for ``vault``."""
    transport = ModelTransport(vault)
    client = kv_certificates.CertificateClient(kv_model.VAULT_URL, ModelCredential(vault), transport=transport,
                                               verify_challenge_resource=False, **options)
    return client, transport
