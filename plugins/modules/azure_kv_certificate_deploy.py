#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: azure_kv_certificate_deploy
short_description: Deploy a TLS certificate and its private key into Azure Key Vault, idempotently and with rollback
version_added: 0.1.0
description:
  - Imports a certificate (leaf, private key and chain) into Azure Key Vault as a new version of O(certificate_name),
    so that consumers that follow the versionless secret id (Application Gateway, Front Door, App Service) rotate to it.
  - Idempotent. When the latest version already holds the same certificate (same thumbprint) with the same tags and
    enabled flag nothing is written (RV(outcome=unchanged)). When only tags or the enabled flag differ, the latest
    version's properties are updated instead of importing (RV(outcome=updated)).
  - Every write carries the provenance tags C(certdeploy-managed-by=certdeploy) and
    C(certdeploy-certificate-id=<certificate_id>). Key Vault tags are per version and not inherited, so the full set is
    sent each time. A certificate that exists without C(certdeploy-managed-by) is not touched unless O(take_ownership=true).
  - Before importing over an existing version the module takes a snapshot for rollback by reading the previous version's
    private key from its backing secret. After importing it verifies the stored thumbprint. If Key Vault stored something
    else, the snapshot (the previous backing secret, byte for byte, in its own content type) is re-imported as a new
    version (Key Vault cannot restore versions; versions are never disabled as a rollback).
  - The certificate is validated offline first. The key must match the certificate. RSA keys need 2048 bits or more;
    EC keys must use P-256, P-384 or P-521; Ed25519 and DSA keys are rejected. Expired certificates are refused.
    Chain blocks must all parse, every certificate's public key must load (one with an algorithm the C(cryptography)
    library does not implement fails with C(error_code=invalid_material), naming it), and the chain is de-duplicated
    and ordered leaf-first.
  - The PKCS#12 or PEM payload is built in memory and never written to disk by the module.
author:
  - certdeploy.cloud maintainers (@certdeploy)
extends_documentation_fragment:
  - certdeploy.cloud.azure_kv
  - certdeploy.cloud.azure_kv.connection
attributes:
  check_mode:
    support: full
    description:
      - Validates options and material offline, then, if credentials resolve, reads the current version to predict
        C(changed) and RV(outcome). Never writes. If the read is impossible, a warning says why and C(changed=true) is predicted.
  diff_mode:
    support: full
    description:
      - Returns the before and after facts (version, thumbprint, serial, subject, SANs, validity, tags, enabled).
        Key material is never part of the diff.
  platform:
    support: full
    platforms: posix
    description:
      - Runs where the Azure SDK is installed, usually the controller or an execution environment (C(delegate_to=localhost)).
options:
  certificate:
    description:
      - PEM text of the leaf certificate. A PEM bundle is accepted; the first certificate whose public key matches the
        private key is the leaf and the others are added to the chain.
      - Mutually exclusive with O(certificate_path), O(pfx) and O(pfx_path).
      - At most 4 MiB (4194304 bytes), and at most 100 certificates together with O(chain); more fails with
        C(error_code=invalid_material) before any block is parsed.
    type: str
  certificate_path:
    description:
      - Path of a PEM file holding the leaf certificate (or a bundle, see O(certificate)), on the host the module runs on.
      - The limits of O(certificate) apply; no more of the file than 4 MiB and one byte is read.
    type: path
  private_key:
    description:
      - PEM text of the private key, PKCS#8, PKCS#1 or SEC1, encrypted or not.
      - Prefer O(private_key_path). Key content given as a module argument is part of the module's arguments
        and travels with them. See the notes.
      - At most 4 MiB (4194304 bytes); more fails with C(error_code=invalid_material).
    type: str
  private_key_path:
    description:
      - Path of the PEM private key file on the host the module runs on.
      - At most 4 MiB, as O(private_key); no more of the file than 4 MiB and one byte is read.
    type: path
  private_key_passphrase:
    description:
      - Passphrase of an encrypted private key.
    type: str
  chain:
    description:
      - PEM text of the intermediate certificates (and optionally the root). Duplicates and copies of the leaf are dropped.
      - At most 4 MiB (4194304 bytes), and at most 100 certificates together with O(certificate) (duplicates
        counted); more fails with C(error_code=invalid_material) before any block is parsed.
    type: str
  chain_path:
    description:
      - Path of a PEM file with the chain.
      - The limits of O(chain) apply; no more of the file than 4 MiB and one byte is read.
    type: path
  pfx:
    description:
      - Base64 text of a PKCS#12 (PFX) file holding exactly one private key, its certificate and optionally the chain.
      - Mutually exclusive with O(pfx_path) and the PEM options.
      - At most 4 MiB (4194304 bytes) once decoded, holding at most 100 certificates; more fails with
        C(error_code=invalid_material).
    type: str
  pfx_path:
    description:
      - Path of a PKCS#12 (PFX) file on the host the module runs on.
      - The limits of O(pfx) apply; no more of the file than 4 MiB and one byte is read.
    type: path
  pfx_password:
    description:
      - Password of the PFX.
    type: str
  copy_from:
    description:
      - Copy the certificate, private key included, from another vault instead of giving the material as options,
        for example from a central vault to regional vaults.
      - The module reads the source version's backing secret itself, so the private key never becomes an Ansible
        variable or a module argument. When its format is O(content_type) the secret's bytes are imported unchanged;
        otherwise they are converted in memory.
      - The copy is deployed like any other material. It is idempotent, tagged with this module's provenance tags
        (the source's tags are not copied) and validated (expiry, key rules, O(min_days_remaining), O(expected_sans)).
      - The same identity and connection options are used for both vaults; it needs
        C(Microsoft.KeyVault/vaults/certificates/read) on the source certificate and
        C(Microsoft.KeyVault/vaults/secrets/getSecret/action) on its backing secret (the secret of the same name, or
        the source vault; a role assigned on the certificate alone does not cover it), and the source certificate
        must be exportable. Leave O(cloud) unset to infer each vault's cloud
        from its URL; vaults in different clouds need an identity that can sign in to both.
      - Mutually exclusive with the PEM and PFX options.
    type: dict
    suboptions:
      vault_url:
        description:
          - URL of the source vault (same rules as O(vault_url)).
        type: str
        required: true
      certificate_name:
        description:
          - Name of the certificate in the source vault.
        type: str
        required: true
      version:
        description:
          - Version to copy. Defaults to the source's current version.
        type: str
  min_days_remaining:
    description:
      - Refuse a certificate that expires in fewer than this many days (C(error_code=invalid_material)), before anything
        is written. Use it to stop a stale source from overwriting a renewed certificate.
    type: int
  expected_sans:
    description:
      - DNS names and IP addresses the certificate must cover, as C(www.example.com), C(DNS:www.example.com),
        C(10.0.0.1) or C(IP:10.0.0.1). DNS names compare case-insensitively; a wildcard SAN covers one label
        (C(*.example.com) covers C(www.example.com), not C(example.com)).
      - Any name not covered fails the task with C(error_code=invalid_material) before anything is written.
    type: list
    elements: str
  content_type:
    description:
      - How Key Vault stores the certificate's backing secret.
      - V(pkcs12) is what Application Gateway and most Azure consumers need.
      - V(pem) stores PEM text; the key is converted to PKCS#8 in memory, which Key Vault requires.
    type: str
    default: pkcs12
    choices: [pkcs12, pem]
  exportable:
    description:
      - Whether the private key can be read back from the backing secret. Rollback of a later deploy needs it.
    type: bool
    default: true
  enabled:
    description:
      - Whether the new version is enabled.
    type: bool
    default: true
  tags:
    description:
      - Tags to set on the version, in addition to the provenance tags. Values are converted to strings.
      - Keys starting with C(certdeploy-) are reserved and rejected.
    type: dict
    default: {}
  preserve_chain_order:
    description:
      - Ask Key Vault to keep the chain in the order sent (the import's C(preserveCertOrder), Key Vault API 7.6 and
        later). The module always orders the chain itself, leaf, then intermediates, then the root; this option only
        decides whether Key Vault must keep that order.
      - Unset, it is on where O(api_version) supports it (unset O(api_version) does) and off otherwise, with a warning
        that Key Vault may reorder the chain. V(true) with an older O(api_version) fails with C(error_code=invalid_config).
      - When it is off, the stored-chain check accepts another order with a warning.
    type: bool
  chain_root:
    description:
      - What to do with a root (a self-issued certificate) given in the chain.
      - V(keep) stores it after the intermediates. Application Gateway, Front Door and App Service accept a chain with or
        without its root, and a root that was imported before stays as it is (upgrading never rotates certificates).
      - V(drop) leaves it out; clients validate up to a root they already trust, so it is never needed on the wire.
        Changing it for a deployed certificate that has a root imports a new version.
      - Does not apply to O(copy_from), which copies the source's chain as stored.
    type: str
    choices: [keep, drop]
    default: keep
  verify_stored_chain:
    description:
      - After an import, read the new version's backing secret and compare the chain stored there (certificates and
        their order) and its content type with what was sent. One more request per write; needs
        C(Microsoft.KeyVault/vaults/secrets/getSecret/action).
      - A different chain, order or content type follows the rollback contract. A vault that kept the leaf alone
        although a chain was sent gets a warning, not a rollback. A forbidden or failing read skips the check with a
        warning. RV(verification) says which checks ran.
    type: bool
    default: true
  certificate_id:
    description:
      - Provenance id written to the C(certdeploy-certificate-id) tag, for example the id of the certificate in your
        inventory or CA. Defaults to O(certificate_name).
    type: str
  take_ownership:
    description:
      - Manage a certificate that already exists without the C(certdeploy-managed-by) tag. Without it the module fails with
        C(error_code=not_owned) and changes nothing.
      - Also needed to import over a certificate issued from requests (C(certdeploy-source=request), made with
        M(certdeploy.cloud.azure_kv_certificate_request) and M(certdeploy.cloud.azure_kv_certificate_merge)); its key was made
        in the vault, and without this option the module fails with C(error_code=conflict) and changes nothing.
    type: bool
    default: false
  rollback:
    description:
      - V(auto) takes a rollback snapshot when possible and warns when it is not.
      - V(required) fails before importing anything when no rollback material exists (for example without
        C(Microsoft.KeyVault/vaults/secrets/getSecret/action)).
      - V(disabled) takes no snapshot and never rolls back.
    type: str
    default: auto
    choices: [auto, required, disabled]
  on_soft_deleted:
    description:
      - What to do when the name exists only as a soft-deleted certificate. V(fail) (error C(soft_deleted)) or V(recover)
        it first (needs C(certificates/recover/action)) and then deploy as usual.
      - V(recover) recovers only a deleted certificate that carries the tag C(certdeploy-managed-by=certdeploy); another one
        fails C(not_owned) with nothing changed, unless O(take_ownership=true).
    type: str
    default: fail
    choices: [fail, recover]
  force:
    description:
      - Import a new version even when the latest version already holds the same certificate, chain, content type
        and exportable flag.
    type: bool
    default: false
  allow_expired:
    description:
      - Deploy a certificate that has expired or is not yet valid. A warning is still returned.
    type: bool
    default: false
  check_mode_read:
    description:
      - What check mode does when it cannot read the current certificate (no credential resolves, the vault cannot
        be reached, or reading is forbidden). Check mode always validates options and material offline first.
      - V(best_effort) warns and predicts C(changed=true); the diff then shows C(before) as C(unknown). Suits
        validation runners that have no access to the vault.
      - V(required) fails with the read's C(error_code) instead, for pipelines that must not pass a prediction they
        could not check.
      - Has no effect outside check mode.
    type: str
    choices: [best_effort, required]
    default: best_effort
  metrics_file:
    description:
      - Write Prometheus text-format metrics for node_exporter's textfile collector to this path on the host the module
        runs on. The file is updated atomically and may be shared by many certificates.
      - Not written in check mode.
    type: path
notes:
  - Key Vault permissions (RBAC data actions) by operation are read C(Microsoft.KeyVault/vaults/certificates/read),
    import C(.../certificates/import/action), tags-only update C(.../certificates/update/action), recover
    C(.../certificates/recover/action), and the rollback snapshot C(Microsoft.KeyVault/vaults/secrets/getSecret/action).
    The built-in roles Key Vault Certificates Officer plus Key Vault Secrets User cover everything, and can be scoped to one certificate.
  - Key material given as content (O(private_key), O(pfx)) is a module argument. With Ansible's default settings module
    arguments are written into the temporary module file on the target host for the duration of the task. Give keys by
    path (O(private_key_path), O(pfx_path)), or enable pipelining, to keep key bytes off disk.
  - Idempotency compares the leaf certificate; the chain and its order, O(content_type) and O(exportable), from the record
    the module keeps in the C(certdeploy-material) tag of each version it imports; then the tags and the enabled flag.
    A difference in the first two imports a new version; tags or enabled alone are updated in place. A version without
    that record (imported by an earlier release) is compared once on its stored chain.
  - Failures return a stable RV(error_code) that playbooks can match on.
seealso:
  - name: Azure Key Vault certificate import
    description: The Key Vault operation this module uses.
    link: https://learn.microsoft.com/en-us/rest/api/keyvault/certificates/import-certificate/import-certificate
'''

EXAMPLES = r'''
- name: Deploy a certificate issued by the internal CA
  certdeploy.cloud.azure_kv_certificate_deploy:
    vault_url: https://contoso-tls.vault.azure.net
    certificate_name: www-contoso-com
    certificate_path: /etc/pki/tls/certs/www.contoso.com.crt
    private_key_path: /etc/pki/tls/private/www.contoso.com.key
    chain_path: /etc/pki/tls/certs/contoso-intermediate.crt
    tags:
      owner: platform-team
  delegate_to: localhost
  register: deploy

- name: Show what Application Gateway should reference
  ansible.builtin.debug:
    msg: "{{ deploy.outcome }}: {{ deploy.certificate.versionless_secret_id }}"

- name: Deploy a PFX with a user-assigned managed identity, refusing to run without rollback material
  certdeploy.cloud.azure_kv_certificate_deploy:
    vault_url: https://contoso-tls.vault.azure.net/
    certificate_name: api-contoso-com
    pfx_path: /srv/certs/api.pfx
    pfx_password: "{{ vault_pfx_password }}"
    credential_mode: managed_identity
    client_id: 00000000-0000-0000-0000-000000000000
    rollback: required

- name: Predict the change without writing (check and diff mode)
  certdeploy.cloud.azure_kv_certificate_deploy:
    vault_url: https://contoso-tls.vault.usgovcloudapi.net
    certificate_name: portal
    certificate_path: portal.crt
    private_key_path: portal.key
  check_mode: true
  diff: true

- name: Fail the play on ownership problems only
  certdeploy.cloud.azure_kv_certificate_deploy:
    vault_url: https://contoso-tls.vault.azure.net
    certificate_name: legacy-site
    certificate_path: legacy.crt
    private_key_path: legacy.key
  register: legacy
  failed_when: legacy.failed and legacy.error_code != 'not_owned'

- name: Replicate the central vault's certificate to a regional vault (the key never leaves the module)
  certdeploy.cloud.azure_kv_certificate_deploy:
    vault_url: https://contoso-tls-weu.vault.azure.net
    certificate_name: www-contoso-com
    copy_from:
      vault_url: https://contoso-tls-central.vault.azure.net
      certificate_name: www-contoso-com
    min_days_remaining: 14
    expected_sans:
      - www.contoso.com
  delegate_to: localhost
'''

RETURN = r'''
outcome:
  description:
    - What happened (in check mode, what would happen).
    - V(created) first version of the name; V(rotated) new version over an older one; V(unchanged) nothing written;
      V(updated) tags or enabled changed on the latest version, or a soft-deleted certificate recovered that already
      held what was wanted (no new version); V(concurrent_writer) another writer's version became
      latest after ours and was left alone; V(unverified) imported but the read-back failed, so nothing was rolled back;
      V(rolled_back) the previous certificate was re-imported after a bad import; V(rollback_failed) it could not be.
    - Absent in check mode when the current state could not be read, and on failures before a decision was made.
  returned: when known
  type: str
  sample: rotated
certificate:
  description:
    - Facts of the version the name points to after the run (in check mode, the predicted facts).
  returned: when known
  type: dict
  contains:
    id:
      description: Versioned certificate id.
      type: str
      sample: https://contoso-tls.vault.azure.net/certificates/www-contoso-com/5f0a7c0e8c7b4d5e9a1b2c3d4e5f6a7b
    versionless_id:
      description: Certificate id without version.
      type: str
      sample: https://contoso-tls.vault.azure.net/certificates/www-contoso-com
    version:
      description: Version of the certificate (null in check mode when a new version would be created).
      type: str
      sample: 5f0a7c0e8c7b4d5e9a1b2c3d4e5f6a7b
    secret_id:
      description: Versioned id of the backing secret.
      type: str
    versionless_secret_id:
      description: Versionless id of the backing secret. Reference this from Application Gateway and Front Door so they follow rotations.
      type: str
      sample: https://contoso-tls.vault.azure.net/secrets/www-contoso-com
    key_id:
      description: Id of the backing key.
      type: str
    thumbprint:
      description: Upper-case hex SHA-1 of the leaf certificate.
      type: str
      sample: 6A3F0C1E9B8D7A6F5E4D3C2B1A0F9E8D7C6B5A49
    x5t:
      description: Base64url SHA-1 of the leaf certificate, as Key Vault reports it.
      type: str
    serial:
      description: Serial number, upper-case hex.
      type: str
    subject:
      description: Subject distinguished name (RFC 4514).
      type: str
    issuer:
      description: Issuer distinguished name (RFC 4514).
      type: str
    sans:
      description: Subject alternative names, prefixed with their type (C(DNS:), C(IP:), C(email:), C(URI:)).
      type: list
      elements: str
    not_before:
      description: Start of validity (ISO 8601, UTC).
      type: str
    expires:
      description: End of validity (ISO 8601, UTC).
      type: str
    tags:
      description: Tags of the version, provenance tags included.
      type: dict
    enabled:
      description: Whether the version is enabled.
      type: bool
    content_type:
      description: Format of the backing secret, V(pkcs12) or V(pem).
      type: str
    exportable:
      description: Whether the certificate's policy lets the private key be exported; null when Key Vault did not say.
      type: bool
differences:
  description:
    - What differed from the wanted state, and so decided the run. V(absent) (no certificate yet), V(force),
      V(certificate) (another leaf), V(chain) (the chain or its order), V(content_type), V(exportable) (each imports a new
      version); V(tags), V(enabled) (updated in place), V(record) (a version imported by an earlier release whose stored
      chain equals the wanted one, so only the record is written). Empty when nothing differs.
  returned: when the current certificate could be read
  type: list
  elements: str
  sample: [chain]
read_path:
  description:
    - How the current certificate was learnt. V(read), its own read (this module always reads);
      M(certdeploy.cloud.azure_kv_certificate_deploy_many) also decides no-ops from the vault's list (V(list)).
  returned: when the current certificate was read
  type: str
  sample: read
verification:
  description: Which checks ran after an import, and their verdicts.
  returned: when an import was sent
  type: dict
  contains:
    read_back:
      description:
        - V(passed) (latest holds the certificate sent), V(failed) (unreadable, or holds something else), or
          V(concurrent_writer) (another writer's version is latest).
      type: str
    stored_chain:
      description:
        - V(passed), V(leaf_only) (the vault kept the leaf alone; a warning), V(reordered) (another order where Key Vault
          was not asked to keep it; a warning), V(failed) (rolled back), V(skipped) (the backing secret could not be
          read; a warning), V(disabled) (O(verify_stored_chain=false)), or V(not_run).
      type: str
previous:
  description: The version that was latest before the run.
  returned: when the name existed
  type: dict
  contains:
    version:
      description: Version id.
      type: str
    thumbprint:
      description: Upper-case hex SHA-1 of its leaf certificate.
      type: str
    serial:
      description: Serial number, upper-case hex.
      type: str
    expires:
      description: End of validity (ISO 8601, UTC).
      type: str
rollback:
  description: What rollback did.
  returned: always
  type: dict
  contains:
    attempted:
      description: Whether a rollback import was attempted.
      type: bool
    succeeded:
      description: Whether the rollback import succeeded.
      type: bool
    version:
      description: Version created by the rollback import.
      type: str
    reason:
      description: Why a rollback was attempted, or why it was not possible.
      type: str
diff:
  description:
    - Before and after facts, in diff mode, with the chain's subjects in order, the content type and the exportable
      flag. C(before.chain) is null when the stored chain was not read and the record does not show it.
  returned: in diff mode
  type: dict
error_code:
  description:
    - Stable reason of a failure. One of V(invalid_config), V(invalid_material), V(key_mismatch), V(unsupported_key),
      V(expired), V(not_owned), V(soft_deleted), V(being_deleted), V(forbidden), V(auth_failed), V(vault_not_found),
      V(conflict), V(throttled), V(service_error), V(timeout), V(unreachable) (no connection to the vault or the sign-in
      endpoint; refused, no route, proxy refused), V(network_denied) (the vault's firewall or private-endpoint rules refused
      the caller), V(rollback_failed), V(missing_dependency).
  returned: failure
  type: str
  sample: not_owned
copied_from:
  description:
    - The source version read with O(copy_from).
  returned: when O(copy_from) was given and the source could be read
  type: dict
  contains:
    vault_url:
      description: Normalised URL of the source vault.
      type: str
      sample: https://contoso-tls-central.vault.azure.net
    certificate_name:
      description: Name of the source certificate.
      type: str
      sample: www-contoso-com
    version:
      description: Source version that was copied.
      type: str
      sample: 0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f
    thumbprint:
      description: SHA-1 thumbprint of the source version, upper-case hex.
      type: str
      sample: 3F2A1B0C9D8E7F6A5B4C3D2E1F0A9B8C7D6E5F4A
    content_type:
      description: Format of the source's backing secret, V(pkcs12) or V(pem).
      type: str
      sample: pkcs12
missing_action:
  description: The Key Vault RBAC action that was missing, on C(forbidden) failures.
  returned: when error_code is forbidden
  type: str
  sample: Microsoft.KeyVault/vaults/certificates/import/action
execution:
  description:
    - How the task ran. V(in_process) inside the controller's worker (a local connection in the controller's own
      Python environment, without become or async); V(module) as a normal module on the target host.
    - Set the variable C(certdeploy_in_process=false) (task, host or delegated host) to force V(module).
  returned: always
  type: str
  sample: in_process
'''

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.ansible_module import DeployModule, create_module
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.deploy import run_deploy
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import DEPLOY


def main():
    run_deploy(create_module(DEPLOY, DeployModule))


if __name__ == '__main__':
    main()
