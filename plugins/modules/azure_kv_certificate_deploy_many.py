#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: azure_kv_certificate_deploy_many
short_description: Deploy many TLS certificates into one or more Azure Key Vaults in one task
version_added: 0.1.0
description:
  - Deploys every element of O(certificates) exactly as M(certdeploy.cloud.azure_kv_certificate_deploy) deploys one
    certificate. Each element takes that module's per-certificate options, and each gets its own result with the
    same RV(certificates[].outcome) values and RV(certificates[].error_code) values. Idempotency, ownership,
    snapshot, verification and rollback are the same, certificate by certificate.
  - One module run signs in once per vault. It builds one credential and one client per vault and gets one token
    for it, then uses them for every certificate of that vault. The first request to a vault goes alone, so Key
    Vault's authentication challenge and the token request happen once per vault, whatever O(max_concurrency) is.
  - Up to O(max_concurrency) certificates are deployed at the same time.
  - "A no-op costs fewer requests than certificates. Key Vault lists a vault's certificates 25 a page, each with its
    thumbprint, tags and enabled flag. A certificate whose listed thumbprint, tags (including the record of the
    chain, content type and exportable flag each import writes, C(certdeploy-material)), enabled flag and ownership
    already are the wanted ones is V(unchanged) without a read of its own (RV(certificates[].read_path) is V(list)).
    Everything else is read and decided as by M(certdeploy.cloud.azure_kv_certificate_deploy). See O(vault_read)."
  - "Throttling is paced per vault. When Key Vault answers 429, every request to that vault waits for its
    C(Retry-After) (within each call's time budget), and fewer of that vault's certificates run at once (halved, at
    least one), rising again by one after each round of clean answers. A certificate whose call still ended
    V(throttled) with nothing written is tried again later in the same task, until O(throttle_retry_seconds) after
    the task started. RV(vaults) reports per vault the requests, the 429 answers and the time waited."
  - A failed certificate does not stop or hide the others. Every certificate is attempted and reported in
    RV(certificates), in the order of O(certificates). The task fails when any certificate failed. Its message
    counts the failures and names them, and RV(failed_certificates) lists them with their error codes.
  - Why a module of its own rather than a list option of M(certdeploy.cloud.azure_kv_certificate_deploy). One
    certificate per task keeps that module's return flat (RV(certificates[].outcome) and the other keys at the top
    level, where playbooks and C(failed_when) read them). A list needs a list of results and a different failure
    rule (fail when any failed, but return all). Two modules give each shape its own documented return, and
    C(loop) over the single module stays the way to give each certificate its own task.
author:
  - certdeploy.cloud maintainers (@certdeploy)
extends_documentation_fragment:
  - certdeploy.cloud.azure_kv.connection
attributes:
  check_mode:
    support: full
    description:
      - Every certificate is validated offline and, where credentials resolve, predicted from a read of its vault,
        as in M(certdeploy.cloud.azure_kv_certificate_deploy). Never writes.
  diff_mode:
    support: full
    description:
      - Returns one before/after entry per certificate in RV(diff), headed by its vault and name, and the same in
        each RV(certificates[].diff). Key material is never part of the diff.
  platform:
    support: full
    platforms: posix
    description:
      - Runs where the Azure SDK is installed, usually the controller or an execution environment (C(delegate_to=localhost)).
options:
  vault_url:
    description:
      - URL of the vault of every element of O(certificates) that gives no C(vault_url) of its own, for example
        C(https://contoso-tls.vault.azure.net).
      - The portal's form with a trailing C(/), an explicit C(:443) and upper-case letters in the host are accepted and normalised.
      - Only C(https://) is accepted; paths, queries and user information are rejected.
      - Hosts outside C(*.vault.azure.net), C(*.vault.usgovcloudapi.net) and C(*.vault.azure.cn) need O(cloud=custom).
        With O(cloud=custom) the host may also be an IP address; an IPv6 address is written in brackets
        (C(https://[::1]:8443)) and keeps them in the URL used and reported.
    type: str
  certificates:
    description:
      - The certificates to deploy. Each element takes the per-certificate options of
        M(certdeploy.cloud.azure_kv_certificate_deploy) (listed below, with the same meaning, defaults and rules),
        plus its own O(certificates[].certificate_name) and optionally O(certificates[].vault_url).
      - Each (vault, name) pair may appear once. All elements of a pair that appears twice fail with
        C(error_code=invalid_config), because which of them should win cannot be guessed.
      - Material is read and parsed once per element, on the host the module runs on.
    type: list
    elements: dict
    required: true
    suboptions:
      certificate_name:
        description:
          - Name of the certificate object in the vault (1 to 127 letters, digits and hyphens).
        type: str
        required: true
      vault_url:
        description:
          - URL of this certificate's vault. Defaults to the top-level O(vault_url); one of the two is required.
        type: str
      certificate:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:certificate). Mutually exclusive with
            O(certificates[].certificate_path), O(certificates[].pfx) and O(certificates[].pfx_path).
        type: str
      certificate_path:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:certificate_path).
        type: path
      private_key:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:private_key). Prefer
            O(certificates[].private_key_path).
        type: str
      private_key_path:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:private_key_path).
        type: path
      private_key_passphrase:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:private_key_passphrase).
        type: str
      chain:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:chain).
        type: str
      chain_path:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:chain_path).
        type: path
      pfx:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:pfx).
        type: str
      pfx_path:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:pfx_path).
        type: path
      pfx_password:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:pfx_password).
        type: str
      copy_from:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:copy_from). The source vault is reached with the
            run's identity and shares its connection with the other certificates of that vault.
        type: dict
        suboptions:
          vault_url:
            description:
              - URL of the source vault.
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
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:min_days_remaining).
        type: int
      expected_sans:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:expected_sans).
        type: list
        elements: str
      content_type:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:content_type).
        type: str
        default: pkcs12
        choices: [pkcs12, pem]
      exportable:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:exportable).
        type: bool
        default: true
      enabled:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:enabled).
        type: bool
        default: true
      tags:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:tags).
        type: dict
        default: {}
      preserve_chain_order:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:preserve_chain_order).
        type: bool
      chain_root:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:chain_root).
        type: str
        choices: [keep, drop]
        default: keep
      verify_stored_chain:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:verify_stored_chain).
        type: bool
        default: true
      certificate_id:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:certificate_id). Defaults to
            O(certificates[].certificate_name).
        type: str
      take_ownership:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:take_ownership).
        type: bool
        default: false
      rollback:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:rollback).
        type: str
        default: auto
        choices: [auto, required, disabled]
      on_soft_deleted:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:on_soft_deleted).
        type: str
        default: fail
        choices: [fail, recover]
      force:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:force).
        type: bool
        default: false
      allow_expired:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:allow_expired).
        type: bool
        default: false
      check_mode_read:
        description:
          - See O(certdeploy.cloud.azure_kv_certificate_deploy#module:check_mode_read).
        type: str
        default: best_effort
        choices: [best_effort, required]
  max_concurrency:
    description:
      - How many certificates are deployed at the same time, from 1 to 10 (the HTTP connection pool of one client
        holds 10 connections).
      - The first request to each vault always goes alone (it answers the authentication challenge and gets the token).
    type: int
    default: 4
  vault_read:
    description:
      - How the current state of the certificates is read.
      - V(each) reads every certificate on its own (one request each).
      - V(list) lists the vault's certificates, 25 a page, until every certificate of the task was found, and decides
        the no-ops from the list. A certificate that is absent from the list, differs, carries no record of its import
        (imported by an earlier release or another tool) or is not owned is then read on its own. Listing needs
        C(Microsoft.KeyVault/vaults/certificates/read) at vault scope. When listing fails (for example an identity whose
        roles are scoped to single certificates), every certificate not yet found is read on its own.
      - V(auto) lists a vault only while the pages read are fewer than the task's certificates of that vault not found
        yet, and reads a vault with one certificate in the task on its own. So it never sends more than about twice the
        requests of V(each), and a task that covers a whole vault of V certificates needs about V/25 requests for its
        no-ops.
      - A no-op decided from the list reports no version in RV(certificates[].certificate) (Key Vault's list names
        none) and does not compare the certificate's policy with the record (a single read does, and warns).
    type: str
    choices: [auto, list, each]
    default: auto
  throttle_retry_seconds:
    description:
      - For how many seconds after the task started a certificate whose call ended V(throttled) (Key Vault kept
        answering 429, or asked to wait longer than the call's time budget) with nothing written is tried again. It
        is tried after its vault's pause, as often as time allows; past this budget it fails with V(throttled).
      - V(0) tries each certificate once.
      - An import whose outcome is unknown is never sent again without reading the vault first.
    type: int
    default: 600
  metrics_file:
    description:
      - Write Prometheus text-format metrics for every certificate of the run to this path, as
        O(certdeploy.cloud.azure_kv_certificate_deploy#module:metrics_file) does for one. Not written in check mode.
    type: path
notes:
  - The identity needs the same Key Vault permissions as M(certdeploy.cloud.azure_kv_certificate_deploy), on every
    certificate of the list.
  - When the first request to a vault fails because the identity cannot sign in, the vault cannot be reached, the
    network is denied or the vault does not exist, the other certificates of that vault report the same
    RV(certificates[].error_code) without sending a request. A C(forbidden) answer concerns one certificate only
    (role assignments can be scoped to one certificate).
  - Key material given as content (O(certificates[].private_key), O(certificates[].pfx)) is a module argument; see
    the notes of M(certdeploy.cloud.azure_kv_certificate_deploy). Give keys by path to keep them off disk.
seealso:
  - module: certdeploy.cloud.azure_kv_certificate_deploy
  - module: certdeploy.cloud.azure_kv_certificate_info
'''

EXAMPLES = r'''
- name: Deploy every certificate of the platform into its vault in one task
  certdeploy.cloud.azure_kv_certificate_deploy_many:
    vault_url: https://contoso-tls.vault.azure.net
    credential_mode: managed_identity
    certificates:
      - certificate_name: www-contoso-com
        certificate_path: /etc/pki/tls/certs/www.contoso.com.crt
        private_key_path: /etc/pki/tls/private/www.contoso.com.key
        chain_path: /etc/pki/tls/certs/contoso-intermediate.crt
        tags:
          owner: web-team
      - certificate_name: api-contoso-com
        pfx_path: /srv/certs/api.pfx
        pfx_password: "{{ vault_api_pfx_password }}"
      - certificate_name: www-contoso-com
        vault_url: https://contoso-tls-weu.vault.azure.net
        copy_from:
          vault_url: https://contoso-tls.vault.azure.net
          certificate_name: www-contoso-com
  delegate_to: localhost
  register: fleet

- name: Show what changed
  ansible.builtin.debug:
    msg: "{{ fleet.msg }}"

- name: List a directory of certificates (NAME.crt with NAME.key next to it; the role's deploy_many entry point does this)
  ansible.builtin.set_fact:
    tls_certificates: >-
      {{ tls_certificates | default([]) + [{'certificate_name': item | basename | splitext | first,
                                            'certificate_path': item,
                                            'private_key_path': (item | splitext | first) ~ '.key'}] }}
  loop: "{{ query('ansible.builtin.fileglob', '/srv/tls/*.crt') }}"

- name: Predict what deploying them would change
  certdeploy.cloud.azure_kv_certificate_deploy_many:
    vault_url: https://contoso-tls.vault.azure.net
    certificates: "{{ tls_certificates }}"
  check_mode: true
  diff: true

- name: Keep going past ownership problems, fail on anything else
  certdeploy.cloud.azure_kv_certificate_deploy_many:
    vault_url: https://contoso-tls.vault.azure.net
    certificates: "{{ my_certificates }}"
  register: fleet
  failed_when: fleet.failed_certificates | rejectattr('error_code', 'equalto', 'not_owned') | list | length > 0
'''

RETURN = r'''
certificates:
  description:
    - One result per element of O(certificates), in the same order. Each holds what
      M(certdeploy.cloud.azure_kv_certificate_deploy) returns for that certificate, plus its vault and name.
  returned: when the certificates were run (all options, each element's too, passed validation)
  type: list
  elements: dict
  contains:
    vault_url:
      description: Normalised URL of the certificate's vault (as given when it could not be parsed).
      type: str
      sample: https://contoso-tls.vault.azure.net
    certificate_name:
      description: Name of the certificate.
      type: str
      sample: www-contoso-com
    changed:
      description: Whether this certificate changed (in check mode, would change).
      type: bool
    failed:
      description: Whether this certificate failed.
      type: bool
    outcome:
      description:
        - As RV(certdeploy.cloud.azure_kv_certificate_deploy#module:outcome). Absent when the certificate failed
          before a decision was made.
      type: str
      sample: unchanged
    certificate:
      description: As RV(certdeploy.cloud.azure_kv_certificate_deploy#module:certificate).
      type: dict
    previous:
      description: As RV(certdeploy.cloud.azure_kv_certificate_deploy#module:previous).
      type: dict
    rollback:
      description: As RV(certdeploy.cloud.azure_kv_certificate_deploy#module:rollback).
      type: dict
    differences:
      description: As RV(certdeploy.cloud.azure_kv_certificate_deploy#module:differences).
      type: list
      elements: str
    read_path:
      description:
        - V(list) when the certificate was decided V(unchanged) from the vault's list, without a read of its own;
          V(read) when it was read on its own. Absent when it failed before a read.
      type: str
      sample: list
    verification:
      description: As RV(certdeploy.cloud.azure_kv_certificate_deploy#module:verification).
      type: dict
    copied_from:
      description: As RV(certdeploy.cloud.azure_kv_certificate_deploy#module:copied_from).
      type: dict
    diff:
      description: Before and after facts of this certificate, in diff mode.
      type: dict
    warnings:
      description: Warnings about this certificate (the task's warnings name the certificates they concern).
      type: list
      elements: str
    error_code:
      description: As RV(certdeploy.cloud.azure_kv_certificate_deploy#module:error_code), when this certificate failed.
      type: str
      sample: key_mismatch
    msg:
      description: Why this certificate failed.
      type: str
    missing_action:
      description: The Key Vault RBAC action that was missing, on C(forbidden) failures.
      type: str
failed_certificates:
  description: The certificates that failed, in input order.
  returned: when the certificates were run (all options, each element's too, passed validation)
  type: list
  elements: dict
  contains:
    index:
      description: Position of the certificate in O(certificates), from 0.
      type: int
    vault_url:
      description: Its vault.
      type: str
    certificate_name:
      description: Its name.
      type: str
    error_code:
      description: Its error code.
      type: str
    msg:
      description: Why it failed.
      type: str
vaults:
  description:
    - One entry per vault the task used, in order of first use.
  returned: when the certificates were run (all options, each element's too, passed validation)
  type: list
  elements: dict
  contains:
    vault_url:
      description: The vault.
      type: str
    read:
      description: V(list) when the vault was listed (at least one page), else V(each).
      type: str
    list_pages:
      description: Pages of the vault's list that were read.
      type: int
    listed_certificates:
      description: Certificates in those pages.
      type: int
    list_complete:
      description: Whether the listing reached the vault's last page.
      type: bool
    list_stopped:
      description:
        - "Why the listing stopped before the last page: V(found) (every certificate of the task was found), V(cost)
          (O(vault_read=auto) stopped, as more pages could cost more than reading the rest one by one), or the error code
          of a failed page (the rest were read one by one). Null when the listing ran to its end or did not run."
      type: str
    decided_from_list:
      description: Certificates decided from the list (RV(certificates[].read_path=list)).
      type: int
    requests:
      description:
        - HTTP requests sent to the vault, retries, 429-answered requests and the unauthenticated challenge included
          (token requests to the sign-in host are not).
      type: int
    throttled:
      description: Requests Key Vault answered 429.
      type: int
    waited_seconds:
      description:
        - Seconds spent waiting on this vault, throttling pauses and retry waits, summed over the certificates that
          waited at the same time.
      type: float
    concurrency:
      description: How many of this vault's certificates ran at once, at the start, at the lowest and at the end.
      type: dict
      sample: {start: 4, lowest: 1, end: 3}
    retried_certificates:
      description: Certificates tried again in this task after being throttled.
      type: int
  sample:
    - {vault_url: "https://contoso-tls.vault.azure.net", read: list, list_pages: 4, listed_certificates: 96,
       list_complete: true, list_stopped: null, decided_from_list: 95, requests: 9, throttled: 0, waited_seconds: 0.0,
       concurrency: {start: 4, lowest: 4, end: 4}, retried_certificates: 0}
summary:
  description:
    - How many certificates had each outcome, how many changed and how many failed, and the total.
  returned: when the certificates were run (all options, each element's too, passed validation)
  type: dict
  sample: {total: 3, changed: 1, failed: 1, created: 1, rotated: 0, unchanged: 1, updated: 0, concurrent_writer: 0,
           unverified: 0, rolled_back: 0, rollback_failed: 0}
msg:
  description: The counts of the run and, when certificates failed, which ones with their error codes.
  returned: always
  type: str
  sample: "1 of 3 certificates failed: api in https://contoso-tls.vault.azure.net (key_mismatch). The others: 1 created, 1 unchanged."
error_code:
  description:
    - On failure, the error code of the first failed certificate (each has its own in RV(certificates)), or
      V(invalid_config) when the options themselves are wrong.
  returned: failure
  type: str
  sample: key_mismatch
diff:
  description: One before/after entry per certificate, headed by its vault and name, in diff mode.
  returned: in diff mode
  type: list
  elements: dict
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
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.deploy_many import run_deploy_many
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.keyvault_options import DEPLOY_MANY


def main():
    run_deploy_many(create_module(DEPLOY_MANY))


if __name__ == '__main__':
    main()
