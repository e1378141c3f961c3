# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest

from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import faults

core = pytest.importorskip('azure.core.exceptions')

RBAC_403 = ("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions "
            "were changed recently, please observe propagation time.\r\nCaller: appid=00000000-0000-0000-0000-000000000001;"
            "oid=00000000-0000-0000-0000-000000000002;iss=https://sts.windows.net/tenant/\r\n"
            "Action: 'Microsoft.KeyVault/vaults/certificates/import/action'\r\nResource: '/subscriptions/x/resourcegroups/rg/"
            "providers/microsoft.keyvault/vaults/kv/certificates/www'\r\nAssignment: (not found)\r\nVault: kv;location=westeurope\r\n")
POLICY_403 = ("The user, group or application 'appid=abc;oid=def;iss=https://sts.windows.net/t/' does not have certificates "
              "import permission on key vault 'kv;location=westeurope'. For help resolving this issue, please see "
              "https://go.microsoft.com/fwlink/?linkid=2125287")


class FakeResponse(object):
    def __init__(self, status, code, message, inner=None):
        self.status_code = status
        self.reason = 'reason'
        self.headers = {'Content-Type': 'application/json'}
        self.content_type = 'application/json'
        body = {'error': {'code': code, 'message': message}}
        if inner:
            body['error']['innererror'] = {'code': inner}
        self._body = json.dumps(body)
        self.request = None

    def text(self, encoding=None):
        return self._body

    def body(self):
        return self._body.encode()


def http_error(status, code, message, inner=None, cls=None):
    cls = cls or core.HttpResponseError
    return cls(response=FakeResponse(status, code, message, inner))


def classify(exc, operation='import'):
    return faults.classify(exc, operation, 'https://kv.vault.azure.net/certificates/www')


def test_rbac_forbidden_quotes_the_action_verbatim():
    err = classify(http_error(403, 'Forbidden', RBAC_403))
    assert err.code == errors.FORBIDDEN
    assert "'Microsoft.KeyVault/vaults/certificates/import/action'" in err.message
    assert err.details['action'] == 'Microsoft.KeyVault/vaults/certificates/import/action'


def test_access_policy_forbidden_quotes_the_sentence():
    err = classify(http_error(403, 'Forbidden', POLICY_403))
    assert err.code == errors.FORBIDDEN
    assert "does not have certificates import permission on key vault 'kv;location=westeurope'" in err.message


def test_forbidden_without_detail_names_the_expected_action():
    err = classify(http_error(403, 'Forbidden', 'Access denied'), 'get_secret')
    assert 'Microsoft.KeyVault/vaults/secrets/getSecret/action' in err.message


def test_soft_deleted_conflict():
    msg = ('Certificate www is currently in a deleted but recoverable state, and its name cannot be reused; in this state, '
           'the certificate can only be recovered or purged.')
    err = classify(http_error(409, 'Conflict', msg, 'ObjectIsDeletedButRecoverable', core.ResourceExistsError))
    assert err.code == errors.SOFT_DELETED and 'on_soft_deleted: recover' in err.message


def test_being_deleted_conflict():
    err = classify(http_error(409, 'Conflict', 'Certificate is currently being deleted.', 'ObjectIsBeingDeleted'))
    assert err.code == errors.BEING_DELETED


def test_other_conflict():
    assert classify(http_error(409, 'Conflict', 'There was a conflict while processing the request.')).code == errors.CONFLICT


@pytest.mark.parametrize('status,code', [(401, errors.AUTH_FAILED), (429, errors.THROTTLED), (500, errors.SERVICE_ERROR),
                                         (503, errors.SERVICE_ERROR)])
def test_status_codes(status, code):
    assert classify(http_error(status, 'X', 'message')).code == code


def test_404_means_a_missing_vault_only_when_reading():
    assert classify(http_error(404, 'NotFound', 'x'), 'read').code == errors.VAULT_NOT_FOUND
    assert classify(http_error(404, 'SecretNotFound', 'x'), 'get_secret').code == errors.CONFLICT


def test_disabled_version_is_not_a_permission_problem():
    err = classify(http_error(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled'), 'get_secret')
    assert err.code == errors.CONFLICT and 'disabled' in err.message and 'action' not in err.details


def test_bad_request_on_import_is_material_and_on_tags_is_config():
    assert classify(http_error(400, 'BadParameter', 'Private key is not specified in the specified X.509 PEM certificate content.')).code \
        == errors.INVALID_MATERIAL
    assert classify(http_error(400, 'BadParameter', 'Too many tags. Maximum is 15.')).code == errors.INVALID_CONFIG


def test_credential_unavailable_is_auth_failed():
    identity = pytest.importorskip('azure.identity')
    err = classify(identity.CredentialUnavailableError(message='ManagedIdentityCredential: no endpoint'), 'read')
    assert err.code == errors.AUTH_FAILED and 'ManagedIdentityCredential' in err.message


def test_transport_errors():
    dns = core.ServiceRequestError("HTTPSConnectionPool: Max retries exceeded (Caused by NameResolutionError: Failed to resolve 'kv')")
    assert classify(dns).code == errors.VAULT_NOT_FOUND
    assert classify(core.ServiceRequestTimeoutError('Read timed out.')).code == errors.TIMEOUT
    refused = core.ServiceRequestError('Connection refused')
    assert classify(refused).code == errors.SERVICE_ERROR
    tls = core.ServiceRequestError('SSLError(SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed"))')
    err = classify(tls)
    assert err.code == errors.INVALID_CONFIG and 'ca_path' in err.message


def test_challenge_resource_mismatch():
    exc = ValueError("The challenge resource 'evil.example.com' does not match the requested domain. Pass "
                     "`verify_challenge_resource=False` to your client's constructor to disable this verification.")
    err = classify(exc, 'read')
    assert err.code == errors.AUTH_FAILED and 'verify_challenge_resource: false' in err.message


def test_unsupported_api_version():
    err = classify(NotImplementedError("This package doesn't support API version '1.0'. Supported versions: 7.5"), 'connect')
    assert err.code == errors.INVALID_CONFIG


def test_deploy_errors_pass_through():
    original = errors.DeployError(errors.EXPIRED, 'x')
    assert faults.classify(original, 'read') is original
