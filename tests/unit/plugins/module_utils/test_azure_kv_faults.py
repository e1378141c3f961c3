# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

import pytest

# Unit-test requirements (tests/unit/requirements.txt): a missing package fails collection, it never skips.
import azure.core.exceptions as core
from azure import identity

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.targets.azure_kv import faults

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
    err = classify(identity.CredentialUnavailableError(message='ManagedIdentityCredential: no endpoint'), 'read')
    assert err.code == errors.AUTH_FAILED and 'ManagedIdentityCredential' in err.message


def test_transport_errors():
    dns = core.ServiceRequestError("HTTPSConnectionPool: Max retries exceeded (Caused by NameResolutionError: Failed to resolve 'kv')")
    assert classify(dns).code == errors.VAULT_NOT_FOUND
    assert classify(core.ServiceRequestTimeoutError('Read timed out.')).code == errors.TIMEOUT
    refused = core.ServiceRequestError('Connection refused')
    assert classify(refused).code == errors.UNREACHABLE
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


# -- error codes by what happened ------------------------------------------------------------------------

FIREWALL_403 = ("Client address is not authorized and caller is not a trusted service.\r\nClient address: 203.0.113.7\r\n"
                "Caller: appid=00000000-0000-0000-0000-000000000001;oid=00000000-0000-0000-0000-000000000002\r\n"
                "Vault: kv;location=westeurope")
PRIVATE_ONLY_403 = ("Public network access is disabled and request is not from a trusted service nor via an approved private "
                    "link.\r\nCaller: appid=00000000-0000-0000-0000-000000000001\r\nVault: kv;location=westeurope")


@pytest.mark.parametrize('message, inner', [(FIREWALL_403, 'ForbiddenByFirewall'), (PRIVATE_ONLY_403, 'ForbiddenByConnection'),
                                            (PRIVATE_ONLY_403, None)])
def test_vault_firewall_403_is_network_denied_not_a_disabled_version(message, inner):
    err = classify(http_error(403, 'Forbidden', message, inner), 'read')
    assert err.code == errors.NETWORK_DENIED
    assert 'firewall' in err.message and 'private endpoint' in err.message and 'not a permission problem' in err.message
    assert 'action' not in err.details


def test_access_policy_403_with_inner_forbidden_by_policy_is_still_forbidden():
    err = classify(http_error(403, 'Forbidden', POLICY_403, 'ForbiddenByPolicy'))
    assert err.code == errors.FORBIDDEN and err.message.count('does not have certificates import permission') == 1


@pytest.mark.parametrize('operation', ['import', 'update', 'read', 'get_secret'])
def test_404_is_classified_by_key_vaults_code_in_any_operation(operation):
    gone = classify(http_error(404, 'CertificateNotFound', 'A certificate with (name/id) www/v2 was not found in this key vault.'),
                    operation)
    assert gone.code == errors.CONFLICT and 'not found' in gone.message
    nowhere = classify(http_error(404, 'NotFound', 'The requested resource does not exist on this server.'), operation)
    assert nowhere.code == errors.VAULT_NOT_FOUND and 'vault_url' in nowhere.message


def test_400_is_about_tags_only_when_key_vault_says_tags():
    asn1 = classify(http_error(400, 'BadParameter', 'Property x5c has invalid value: ASN1 bad tag value met.'))
    assert asn1.code == errors.INVALID_MATERIAL
    for message in ('Too many tags. Maximum is 15.', 'Tag name is too long.', 'The number of tags exceeds the limit.'):
        assert classify(http_error(400, 'BadParameter', message)).code == errors.INVALID_CONFIG, message
    assert classify(http_error(400, 'TagsTooLarge', 'Request rejected.')).code == errors.INVALID_CONFIG


REFUSED = "HTTPSConnection(host='kv.vault.azure.net', port=443): Failed to establish a new connection: [Errno 111] Connection refused"


@pytest.mark.parametrize('text, cause', [
    (REFUSED, 'connection refused'),
    ("HTTPSConnection(host='10.1.2.3', port=443): Failed to establish a new connection: [Errno 113] No route to host", 'no route to host'),
    ("HTTPSConnection(host='10.1.2.3', port=443): Failed to establish a new connection: [Errno 101] Network is unreachable",
     'network is unreachable'),
    ("('Unable to connect to proxy', NewConnectionError(\"HTTPSConnection(host='proxy.corp', port=3128): Failed to establish a new "
     "connection: [Errno 111] Connection refused\"))", 'the proxy at proxy.corp:3128 refused the connection'),
])
def test_no_connection_is_unreachable_with_the_cause_once(text, cause):
    exc = core.ServiceRequestError(text)
    exc.inner_exception = ConnectionError(text)  # the SDK wraps the same text again
    err = classify(exc, 'read')
    assert err.code == errors.UNREACHABLE and cause in err.message
    assert err.message.count('Errno') == 0 and err.message.count(cause) == 1
    assert err.message.count('https://kv.vault.azure.net/certificates/www') == 1


def test_sign_in_endpoint_refused_is_unreachable():
    exc = identity.CredentialUnavailableError(
        message="ManagedIdentityCredential: HTTPConnection(host='169.254.169.254', port=80): Failed to establish a new connection: "
                "[Errno 111] Connection refused")
    err = classify(exc, 'read')
    assert err.code == errors.UNREACHABLE and 'sign-in endpoint 169.254.169.254:80' in err.message


def test_inner_text_is_not_repeated():
    exc = core.ServiceRequestError('Read aborted by peer')
    exc.inner_exception = ConnectionError('Read aborted by peer')
    err = classify(exc, 'read')
    assert err.code == errors.SERVICE_ERROR and err.message.count('Read aborted by peer') == 1
