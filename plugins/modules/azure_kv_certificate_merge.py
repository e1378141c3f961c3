#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: azure_kv_certificate_merge
short_description: Merge a signed certificate into the pending request Azure Key Vault made its key for
version_added: 0.1.0
description:
  - Completes a request made with M(certdeploy.cloud.azure_kv_certificate_request). The signed certificate and its
    chain are merged into the pending request and become the new version of O(certificate_name); its key is the one
    Key Vault made, which never left the vault.
  - Before any write, the certificate's public key must equal the pending CSR's (C(error_code=key_mismatch) otherwise),
    and the certificate must be valid now. The chain is de-duplicated and ordered leaf, intermediates, root, as
    M(certdeploy.cloud.azure_kv_certificate_deploy) orders it; O(chain_root=drop) leaves the root out.
  - After the merge the latest version is read back. It must hold the certificate sent (RV(outcome=merged)); a version by
    another writer is reported (C(error_code=conflict), RV(outcome=concurrent_writer)); a failed read is
    RV(outcome=unverified). The stored chain is compared with the one sent as far as the vault shows it (its backing secret).
  - Idempotent. When the latest version already holds this certificate nothing is merged (RV(outcome=unchanged)); when only
    its tags differ they are updated (RV(outcome=updated)).
  - Without a pending request (and when the latest version is another certificate) the module fails with C(error_code=conflict).
  - The merge carries the provenance tags C(certdeploy-managed-by=certdeploy), C(certdeploy-certificate-id) and
    C(certdeploy-source=request). A name whose latest version lacks C(certdeploy-managed-by) is refused
    (C(error_code=not_owned)) unless O(take_ownership=true).
author:
  - certdeploy.cloud maintainers (@certdeploy)
extends_documentation_fragment:
  - certdeploy.cloud.azure_kv
  - certdeploy.cloud.azure_kv.connection
attributes:
  check_mode:
    support: full
    description:
      - Validates the certificate offline, then reads the latest version and the pending request and checks the public key
        against the CSR, to predict RV(outcome). Never writes.
  diff_mode:
    support: full
    description:
      - Returns the latest version's thumbprint and tags before and after.
  platform:
    support: full
    platforms: posix
    description:
      - Runs where the Azure SDK is installed, usually the controller or an execution environment (C(delegate_to=localhost)).
options:
  certificate:
    description:
      - PEM text of the signed certificate. A bundle is accepted; its first certificate is the leaf, the others join the chain.
      - At most 4 MiB, and at most 100 certificates together with the chain.
    type: str
  certificate_path:
    description:
      - Path of a PEM file with the signed certificate, on the host the module runs on.
    type: path
  chain:
    description:
      - PEM text of the intermediate (and root) certificates, in any order.
    type: str
  chain_path:
    description:
      - Path of a PEM file with the chain.
    type: path
  chain_root:
    description:
      - V(keep) merges the chain as given; V(drop) leaves self-signed roots out (clients already trust their root).
    type: str
    choices: [keep, drop]
    default: keep
  verify_stored_chain:
    description:
      - After the merge, read the new version's backing secret and compare the stored certificates with those sent.
        A vault that keeps the leaf alone gives a warning. Needs C(Microsoft.KeyVault/vaults/secrets/getSecret/action);
        without it the check is skipped with a warning.
    type: bool
    default: true
  allow_expired:
    description:
      - Merge a certificate that has expired or is not valid yet.
    type: bool
    default: false
  tags:
    description:
      - Tags for the merged version. Keys starting with C(certdeploy-) are reserved.
    type: dict
    default: {}
  certificate_id:
    description:
      - Identifier written to the C(certdeploy-certificate-id) tag. Defaults to O(certificate_name).
    type: str
  take_ownership:
    description:
      - Allow merging into a name whose latest version was not made by certdeploy.
    type: bool
    default: false
  metrics_file:
    description:
      - Write Prometheus text-format metrics (label C(operation=merge)) to this path on the host the module runs on.
        Not written in check mode.
    type: path
notes:
  - Key Vault permissions (RBAC data actions) are read C(Microsoft.KeyVault/vaults/certificates/read) and merge
    C(.../certificates/create/action); tags-only updates C(.../certificates/update/action); the stored-chain check
    C(Microsoft.KeyVault/vaults/secrets/getSecret/action). With access policies, certificate permissions C(get), C(create)
    and C(update), and secret permission C(get) for the check.
  - Key Vault accepts the certificate and chain as a list of DER certificates (C(x5c)); the module sends them leaf first.
seealso:
  - module: certdeploy.cloud.azure_kv_certificate_request
'''

EXAMPLES = r'''
- name: Merge the signed certificate into the pending request
  certdeploy.cloud.azure_kv_certificate_merge:
    vault_url: https://contoso-tls.vault.azure.net
    certificate_name: www-contoso-com
    certificate: "{{ signed.certificate }}"
    chain: "{{ signed.chain }}"
  delegate_to: localhost
  register: merged
'''

RETURN = r'''
outcome:
  description:
    - V(merged) the certificate became the new version; V(unchanged) the latest version already held it; V(updated) it
      did and only its tags were updated; V(concurrent_writer) another writer's version is latest; V(unverified) merged
      but the read-back failed.
  returned: when known
  type: str
  sample: merged
certificate:
  description: Facts of the latest version after the run (id, version, thumbprint, subject, sans, expires, days_remaining, tags...).
  returned: when known
  type: dict
  contains:
    version:
      description: The merged version.
      type: str
      sample: a3918673397a8dc17daf7bc0441231a2
    thumbprint:
      description: SHA-1 thumbprint, upper-case hex.
      type: str
      sample: 97A99644CD488305E83D9C2F3480145941CB434A
previous:
  description: The version that was latest before the merge (version, thumbprint, serial, expires), or null.
  returned: always
  type: dict
verification:
  description:
    - C(public_key) the certificate's key against the CSR's; C(read_back) the latest version after the merge;
      C(stored_chain) the stored certificates against those sent (V(passed), V(leaf_only), V(reordered), V(skipped), V(disabled), V(failed)).
  returned: always
  type: dict
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
  description: Stable failure code, for example V(key_mismatch), V(conflict), V(not_owned), V(invalid_material), V(expired), V(forbidden).
  returned: on failure
  type: str
  sample: key_mismatch
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
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import MERGE
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.request import run_merge


def main():
    run_merge(create_module(MERGE))


if __name__ == '__main__':
    main()
