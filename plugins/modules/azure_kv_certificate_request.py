#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: azure_kv_certificate_request
short_description: Have Azure Key Vault make a certificate's key and return its certificate signing request (CSR)
version_added: 0.1.0
description:
  - Ensures a pending certificate request for O(certificate_name) from a policy. Key Vault makes the key itself
    (in an HSM with O(hsm=true)) and returns a PKCS#10 CSR; the private key never exists outside the vault. Have the CSR
    signed by any CA (your own, an ACME client) and merge the signed certificate with M(certdeploy.cloud.azure_kv_certificate_merge).
  - The request is made with issuer C(Unknown) (a CA outside Key Vault) and no automatic renewal. Key Vault emails the
    certificate contacts at 80% of the lifetime, and this module requests the renewal (O(renew_days_before)).
  - Idempotent. A pending request whose CSR (subject, DNS names, key type and size or curve) and stored policy (HSM,
    exportable, key reuse, validity, key usages, content type) match the options is returned as it is, with the same CSR and
    no new key (RV(outcome=pending)). A pending request with another policy fails with C(error_code=policy_mismatch)
    unless O(replace=true), which cancels and deletes it (its key is discarded) and requests anew.
  - Without a pending request, the latest issued version decides. When it matches the policy and has more than
    O(renew_days_before) days left nothing is written (RV(outcome=unchanged)). When it is due, when O(renew=true), when
    it differs from the policy, or when there is no version yet, a new pending version is requested
    (RV(outcome=requested), RV(reason)). The versionless ids consumers reference stay the same; the current version keeps
    serving until the signed certificate is merged.
  - After a request the module reads the pending request back and checks that its CSR is the one made and matches the policy.
  - Every request carries the provenance tags C(certdeploy-managed-by=certdeploy), C(certdeploy-certificate-id) and
    C(certdeploy-source=request). A name whose latest version lacks C(certdeploy-managed-by) is refused
    (C(error_code=not_owned)) unless O(take_ownership=true). A name whose certificate was imported by
    M(certdeploy.cloud.azure_kv_certificate_deploy) is refused (C(error_code=conflict)) unless O(switch_from_import=true).
author:
  - certdeploy.cloud maintainers (@certdeploy)
extends_documentation_fragment:
  - certdeploy.cloud.azure_kv
  - certdeploy.cloud.azure_kv.connection
attributes:
  check_mode:
    support: full
    description:
      - Validates the options offline, then reads the pending request, the latest version and the stored policy to predict
        RV(outcome). Never writes. A new request's CSR is known only once Key Vault makes its key, so check mode returns
        none for it.
  diff_mode:
    support: full
    description:
      - Returns the current certificate's thumbprint and the pending CSR's SHA-256 before and after.
  platform:
    support: full
    platforms: posix
    description:
      - Runs where the Azure SDK is installed, usually the controller or an execution environment (C(delegate_to=localhost)).
options:
  subject:
    description:
      - The certificate's subject as an X.500 name, for example C(CN=www.example.com) or C(CN=www.example.com, O=Example).
      - Attributes C(CN), C(O), C(OU), C(L), C(ST) (or C(S)), C(C), C(E), C(DC) and C(SERIALNUMBER); compared without regard
        to order or to the case of attribute names.
    type: str
    required: true
  dns_names:
    description:
      - DNS names for the subject alternative name extension. At most 100. A wildcard is allowed as the whole first label.
    type: list
    elements: str
    default: []
  key_type:
    description:
      - Type of the key Key Vault makes.
    type: str
    choices: [RSA, EC]
    default: RSA
  key_size:
    description:
      - RSA key size in bits, V(2048), V(3072) or V(4096). Defaults to 2048 for RSA; not allowed with O(key_type=EC).
    type: int
  curve:
    description:
      - Elliptic curve of an EC key. Defaults to V(P-256) for EC; not allowed with O(key_type=RSA).
    type: str
    choices: [P-256, P-384, P-521]
  hsm:
    description:
      - Make the key in a hardware security module (Key Vault key type C(RSA-HSM) or C(EC-HSM); needs a vault of the
        Premium tier). An HSM key never leaves the HSM, so O(exportable=false) is required with it.
    type: bool
    default: false
  exportable:
    description:
      - Whether the private key may be exported with the certificate (its backing secret holds the key).
      - Application Gateway, App Service and Front Door (with your own certificate) read the backing secret and need an exportable key.
        Consumers that only use the key inside Key Vault (signing through the keys API, for example) work without one.
    type: bool
    default: true
  reuse_key:
    description:
      - Whether a renewal keeps the current key. By default every new version gets a new key.
    type: bool
    default: false
  validity_months:
    description:
      - The validity the policy states, in months (1 to 1200). The CA that signs decides the certificate's real validity.
    type: int
    default: 12
  key_usage:
    description:
      - Key usages the policy states, in Key Vault's names. Not set, Key Vault's default applies and it is not compared.
    type: list
    elements: str
    choices: [digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment, keyAgreement, keyCertSign, cRLSign, encipherOnly, decipherOnly]
  extended_key_usage:
    description:
      - Extended key usage OIDs the policy states, for example C(1.3.6.1.5.5.7.3.1) (server authentication). Not set,
        Key Vault's default applies and it is not compared.
    type: list
    elements: str
  content_type:
    description:
      - Format of the certificate's backing secret once merged.
    type: str
    choices: [pkcs12, pem]
    default: pkcs12
  replace:
    description:
      - When a pending request exists with another policy, cancel and delete it (its key is discarded) and request anew.
        Without it that case fails with C(error_code=policy_mismatch).
    type: bool
    default: false
  renew:
    description:
      - Request a new version now, even when the current one is not due. A pending request of the same policy is returned
        as it is; with O(replace=true) as well it is discarded and requested anew (a new key).
    type: bool
    default: false
  renew_days_before:
    description:
      - A new version is requested when the current one has this many days left or fewer.
    type: int
    default: 30
  switch_from_import:
    description:
      - Allow requesting a new version for a name whose certificate was imported by M(certdeploy.cloud.azure_kv_certificate_deploy).
        Its next versions then have their key made in the vault. Do not keep deploying the same name afterwards.
    type: bool
    default: false
  tags:
    description:
      - Tags for the request and the version it becomes. Keys starting with C(certdeploy-) are reserved.
    type: dict
    default: {}
  certificate_id:
    description:
      - Identifier written to the C(certdeploy-certificate-id) tag. Defaults to O(certificate_name).
    type: str
  take_ownership:
    description:
      - Allow requesting for a name whose latest version was not made by certdeploy, and replacing a pending request whose
        maker cannot be read.
    type: bool
    default: false
  metrics_file:
    description:
      - Write Prometheus text-format metrics (label C(operation=request)) to this path on the host the module runs on.
        Not written in check mode.
    type: path
notes:
  - Key Vault permissions (RBAC data actions) by step are read C(Microsoft.KeyVault/vaults/certificates/read) (the pending
    request, the certificate and its policy), request C(.../certificates/create/action), and to cancel and delete a
    pending request (O(replace=true), or one whose cancellation still reads in progress) C(.../certificates/update/action).
    With access policies, certificate permissions C(get), C(create) and C(update).
  - Key Vault keeps one pending request per name. Reading it back is how a rerun finds the same CSR.
seealso:
  - module: certdeploy.cloud.azure_kv_certificate_merge
  - module: certdeploy.cloud.azure_kv_certificate_deploy
'''

EXAMPLES = r'''
- name: Have the vault make the key and a CSR
  certdeploy.cloud.azure_kv_certificate_request:
    vault_url: https://contoso-tls.vault.azure.net
    certificate_name: www-contoso-com
    subject: CN=www.contoso.com
    dns_names: [www.contoso.com, contoso.com]
    key_type: EC
    curve: P-256
  delegate_to: localhost
  register: request

- name: Sign it with your CA (any task that turns request.csr into a PEM certificate)
  ansible.builtin.debug:
    msg: "CSR SHA-256 {{ request.csr_sha256 }} needs signing: {{ request.needs_merge }}"
'''

RETURN = r'''
outcome:
  description:
    - V(requested) a new pending request was made (see RV(reason)); V(pending) a pending request with the same policy
      exists and was returned as it is; V(unchanged) the current certificate matches the policy and is not due.
  returned: when known
  type: str
  sample: requested
reason:
  description: Why a request was made, V(first_request), V(renewal_due), V(renewal_forced), V(policy_changed) or V(replaced); null otherwise.
  returned: always
  type: str
  sample: first_request
needs_merge:
  description: Whether a pending request awaits a signed certificate (RV(outcome) V(requested) or V(pending)).
  returned: always
  type: bool
  sample: true
csr:
  description: The pending request's CSR, PEM. Null when nothing is pending, and in check mode for a request not yet made.
  returned: always
  type: str
  sample: "-----BEGIN CERTIFICATE REQUEST-----\nMIIC...\n-----END CERTIFICATE REQUEST-----\n"
csr_sha256:
  description: SHA-256 (hex) of the CSR's DER. The same on every rerun that returns the same request.
  returned: always
  type: str
  sample: 7a9c31e60ef77f6361ebb073eec014cd4f01296b2659e8cec074e32ebd33be11
csr_public_key_sha256:
  description: SHA-256 (hex) of the CSR's public key (SubjectPublicKeyInfo DER); the signed certificate must carry the same key.
  returned: always
  type: str
  sample: 66556d502d2526739dd36287878153b3ee66f02611431fd4e74ed8806678bec0
status:
  description: Key Vault's status of the pending operation, for example C(inProgress).
  returned: always
  type: str
  sample: inProgress
status_details:
  description: Key Vault's status details of the pending operation.
  returned: always
  type: str
  sample: Pending certificate created. Please Perform Merge to complete the request.
policy:
  description:
    - The policy as Key Vault stored it, in this module's option names (plus C(issuer)). Null when the vault serves none
      (a warning then says what could only be compared from the CSR).
  returned: always
  type: dict
  sample: {issuer: Unknown, subject: CN=www.contoso.com, dns_names: [www.contoso.com], key_type: EC, key_size: null, curve: P-256,
           hsm: false, exportable: true, reuse_key: false, validity_months: 12, key_usage: null, extended_key_usage: null,
           content_type: pkcs12}
certificate:
  description: The current issued version (id, version, thumbprint, subject, sans, expires, days_remaining, tags...), or null.
  returned: always
  type: dict
differences:
  description: How the pending request or the current version differed from the policy (on V(policy_changed), V(replaced) and C(policy_mismatch)).
  returned: always
  type: list
  elements: str
versionless_id:
  description: Certificate id without version.
  returned: success
  type: str
  sample: https://contoso-tls.vault.azure.net/certificates/www-contoso-com
versionless_secret_id:
  description: Secret id without version, what Application Gateway and App Service reference.
  returned: success
  type: str
  sample: https://contoso-tls.vault.azure.net/secrets/www-contoso-com
error_code:
  description: Stable failure code, for example V(invalid_config), V(not_owned), V(policy_mismatch), V(conflict), V(forbidden).
  returned: on failure
  type: str
  sample: policy_mismatch
missing_action:
  description: The Key Vault RBAC action that was missing, on C(forbidden) failures.
  returned: when error_code is forbidden
  type: str
  sample: Microsoft.KeyVault/vaults/certificates/create/action
execution:
  description:
    - How the task ran. V(in_process) inside the controller's worker (a local connection in the controller's own
      Python environment, without become or async); V(module) as a normal module on the target host.
    - Set the variable C(certdeploy_in_process=false) (task, host or delegated host) to force V(module).
  returned: always
  type: str
  sample: in_process
'''

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.ansible_module import create_module
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import REQUEST
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.request import run_request


def main():
    run_request(create_module(REQUEST))


if __name__ == '__main__':
    main()
