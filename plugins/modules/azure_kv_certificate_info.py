#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: azure_kv_certificate_info
short_description: Read certificates in Azure Key Vault, their versions, thumbprints, expiry and ownership
version_added: 0.1.0
description:
  - Describes the current version of one certificate (O(certificate_name)) or of every certificate in the vault, with
    its ids (including the versionless secret id that Application Gateway and Front Door reference), thumbprint, serial,
    subject, SANs, validity, days remaining, enabled flag, tags and whether certdeploy manages it.
  - With O(include_versions=true) also the version history.
  - A certificate name that does not exist is not a failure, RV(exists) is then V(false). When the name exists only
    as a soft-deleted certificate, RV(deleted) says when it was deleted and when it will be purged.
  - Read-only. It never writes to the vault and never reads a certificate's backing secret, so no private key is ever read.
author:
  - certdeploy.cloud maintainers (@certdeploy)
extends_documentation_fragment:
  - certdeploy.cloud.azure_kv
  - certdeploy.cloud.azure_kv.connection
attributes:
  check_mode:
    support: full
    description:
      - The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
    description:
      - The module changes nothing, so there is nothing to compare.
  platform:
    support: full
    platforms: posix
    description:
      - Runs where the Azure SDK is installed, usually the controller or an execution environment (C(delegate_to=localhost)).
options:
  certificate_name:
    description:
      - Name of the certificate object to describe (1 to 127 letters, digits and hyphens).
      - A DNS-style name such as C(*.example.com) is rejected with a suggested valid name (C(wildcard-example-com)).
      - When omitted, every certificate in the vault is described (see O(managed_only)).
    type: str
    required: false
  managed_only:
    description:
      - When listing the vault (no O(certificate_name)), return only the certificates whose current version carries the
        tag C(certdeploy-managed-by=certdeploy).
      - Ignored, with a warning, together with O(certificate_name); see RV(certificate.owned) instead.
    type: bool
    default: false
  include_versions:
    description:
      - Add the version history of each certificate returned, newest first (see RV(certificate.versions)).
      - Costs one more request per certificate.
    type: bool
    default: false
notes:
  - Needs the Key Vault RBAC data action C(Microsoft.KeyVault/vaults/certificates/read) (get and list). It also covers
    describing a soft-deleted name (Get Deleted Certificate); where that read is refused, a soft-deleted name reads as
    RV(exists=false) with no RV(deleted). The built-in role Key Vault Reader grants it without access to secret values;
    Key Vault Certificates Officer, which deploys need, includes it.
  - Listing the vault reads each certificate once more to return its full facts; for large vaults prefer O(certificate_name)
    or O(managed_only).
  - Failures return a stable RV(error_code) that playbooks can match on.
seealso:
  - module: certdeploy.cloud.azure_kv_certificate_deploy
'''

EXAMPLES = r'''
- name: Read one certificate
  certdeploy.cloud.azure_kv_certificate_info:
    vault_url: https://contoso-tls.vault.azure.net
    certificate_name: www-contoso-com
  delegate_to: localhost
  register: www

- name: Warn about a certificate that expires within 30 days
  ansible.builtin.debug:
    msg: "{{ www.certificate.versionless_secret_id }} expires in {{ www.certificate.days_remaining }} days"
  when: www.exists and www.certificate.days_remaining < 30

- name: Every certificate certdeploy manages in the vault, with version history
  certdeploy.cloud.azure_kv_certificate_info:
    vault_url: https://contoso-tls.vault.azure.net
    managed_only: true
    include_versions: true
  delegate_to: localhost
  register: managed

- name: Names of the certificates that expire within 30 days
  ansible.builtin.debug:
    msg: "{{ managed.certificates | selectattr('days_remaining', 'lt', 30) | map(attribute='name') | list }}"

- name: Fail when a name is soft-deleted (a deploy would fail with soft_deleted)
  certdeploy.cloud.azure_kv_certificate_info:
    vault_url: https://contoso-tls.vault.azure.net
    certificate_name: api-contoso-com
  register: api
  failed_when: api.deleted is defined
'''

RETURN = r'''
exists:
  description: Whether O(certificate_name) exists (a soft-deleted name does not).
  returned: when certificate_name is set and the read succeeded
  type: bool
  sample: true
certificate:
  description: The current version of O(certificate_name).
  returned: when certificate_name is set and it exists
  type: dict
  contains:
    name:
      description: Name of the certificate object.
      type: str
      sample: www-contoso-com
    version:
      description: Version id of the current version.
      type: str
      sample: 5f0a7c0e8c7b4d5e9a1b2c3d4e5f6a7b
    id:
      description: Versioned certificate id.
      type: str
      sample: https://contoso-tls.vault.azure.net/certificates/www-contoso-com/5f0a7c0e8c7b4d5e9a1b2c3d4e5f6a7b
    versionless_id:
      description: Certificate id without version.
      type: str
      sample: https://contoso-tls.vault.azure.net/certificates/www-contoso-com
    secret_id:
      description: Versioned id of the backing secret.
      type: str
    versionless_secret_id:
      description: Versionless id of the backing secret, what Application Gateway and Front Door reference to follow rotations.
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
      description: Serial number, upper-case hex. Null when Key Vault returned no certificate (for example a pending one).
      type: str
    subject:
      description: Subject distinguished name (RFC 4514).
      type: str
      sample: CN=www.contoso.com
    issuer:
      description: Issuer distinguished name (RFC 4514).
      type: str
    sans:
      description: Subject alternative names, prefixed with their type (C(DNS:), C(IP:), C(email:), C(URI:)).
      type: list
      elements: str
      sample: ["DNS:www.contoso.com"]
    not_before:
      description: Start of validity (ISO 8601, UTC).
      type: str
    expires:
      description: End of validity (ISO 8601, UTC).
      type: str
      sample: "2026-09-30T12:00:00+00:00"
    days_remaining:
      description: Whole days until RV(certificate.expires), rounded down; negative once expired.
      type: int
      sample: 74
    enabled:
      description: Whether the version is enabled.
      type: bool
    tags:
      description: Tags of the version.
      type: dict
    owned:
      description: Whether the version carries C(certdeploy-managed-by=certdeploy), that is whether the deploy module manages it.
      type: bool
    content_type:
      description: Format of the backing secret, V(pkcs12) or V(pem), from the certificate's policy.
      type: str
    exportable:
      description: Whether the certificate's policy lets the private key be exported; null when Key Vault did not say.
      type: bool
    created:
      description: When the version was created (ISO 8601, UTC).
      type: str
    updated:
      description: When the version was last updated, for example its tags (ISO 8601, UTC).
      type: str
    versions:
      description: The version history, newest first. Key Vault lists versions without their certificates, so subject,
        serial and SANs are not part of it.
      returned: when include_versions is true
      type: list
      elements: dict
      contains:
        version:
          description: Version id.
          type: str
        id:
          description: Versioned certificate id.
          type: str
        thumbprint:
          description: Upper-case hex SHA-1 of the leaf certificate, from Key Vault's x5t.
          type: str
        x5t:
          description: Base64url SHA-1 of the leaf certificate.
          type: str
        created:
          description: When the version was created (ISO 8601, UTC).
          type: str
        updated:
          description: When the version was last updated (ISO 8601, UTC).
          type: str
        not_before:
          description: Start of validity, from the version's attributes (ISO 8601, UTC).
          type: str
        expires:
          description: End of validity, from the version's attributes (ISO 8601, UTC). Key Vault sets it from the certificate.
          type: str
        days_remaining:
          description: Whole days until RV(certificate.versions[].expires), rounded down; negative once expired.
          type: int
        enabled:
          description: Whether the version is enabled.
          type: bool
        tags:
          description: Tags of the version (tags are per version in Key Vault).
          type: dict
        owned:
          description: Whether the version carries C(certdeploy-managed-by=certdeploy).
          type: bool
        current:
          description: Whether this is the current version, the one the versionless ids resolve to.
          type: bool
certificates:
  description:
    - The certificates described, sorted by name, each with the fields of RV(certificate).
    - With O(certificate_name), a list of that one certificate, or empty when it does not exist.
  returned: when the read succeeded
  type: list
  elements: dict
deleted:
  description: The soft-deleted certificate of O(certificate_name). Deploying to the name fails with C(soft_deleted)
    until it is recovered or purged.
  returned: when certificate_name is set, does not exist, and is soft-deleted
  type: dict
  contains:
    deleted_on:
      description: When it was deleted (ISO 8601, UTC).
      type: str
    scheduled_purge_date:
      description: When Key Vault purges it (ISO 8601, UTC).
      type: str
    recovery_id:
      description: Id of the deleted certificate, for recover and purge.
      type: str
    version:
      description: Its last version.
      type: str
    thumbprint:
      description: Upper-case hex SHA-1 of its last version's certificate.
      type: str
    serial:
      description: Serial number of its last version's certificate, upper-case hex.
      type: str
    subject:
      description: Subject distinguished name of its last version's certificate.
      type: str
    expires:
      description: End of validity of its last version (ISO 8601, UTC).
      type: str
    tags:
      description: Tags of its last version.
      type: dict
    owned:
      description: Whether its last version carries C(certdeploy-managed-by=certdeploy).
      type: bool
error_code:
  description:
    - Stable reason of a failure, from the codes of M(certdeploy.cloud.azure_kv_certificate_deploy). A read fails with
      V(invalid_config), V(forbidden), V(auth_failed), V(vault_not_found), V(conflict), V(throttled), V(service_error),
      V(timeout), V(unreachable), V(network_denied) or V(missing_dependency).
  returned: failure
  type: str
  sample: forbidden
missing_action:
  description: The Key Vault RBAC action that was missing, on C(forbidden) failures.
  returned: when error_code is forbidden
  type: str
  sample: Microsoft.KeyVault/vaults/certificates/read
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
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.info import run_info
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import INFO


def main():
    run_info(create_module(INFO))


if __name__ == '__main__':
    main()
