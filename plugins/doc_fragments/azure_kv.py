# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The vault and the certificate of a module that works on one certificate.  Use together with CONNECTION.
    DOCUMENTATION = r'''
options:
  vault_url:
    description:
      - URL of the vault, for example C(https://contoso-tls.vault.azure.net).
      - The portal's form with a trailing C(/), an explicit C(:443) and upper-case letters in the host are accepted and normalised.
      - Only C(https://) is accepted; paths, queries and user information are rejected.
      - Hosts outside C(*.vault.azure.net), C(*.vault.usgovcloudapi.net) and C(*.vault.azure.cn) need O(cloud=custom).
        With O(cloud=custom) the host may also be an IP address; an IPv6 address is written in brackets
        (C(https://[::1]:8443)) and keeps them in the URL used and reported.
    type: str
    required: true
  certificate_name:
    description:
      - Name of the certificate object in the vault (1 to 127 letters, digits and hyphens).
      - A DNS-style name such as C(*.example.com) is rejected with a suggested valid name (C(wildcard-example-com)).
    type: str
    required: true
'''

    # Sign-in, identity and transport options shared by every Key Vault module (certdeploy.cloud.azure_kv.connection).
    CONNECTION = r'''
options:
  cloud:
    description:
      - The Azure cloud the vault lives in; sets the Microsoft Entra sign-in host of the credential.
      - Inferred from the vault URL when not set, or taken from AWX's E(AZURE_CLOUD_ENVIRONMENT).
      - V(custom) accepts any vault host and needs O(authority_host). It is meant for emulators and special networks.
    type: str
    choices: [public, usgov, china, custom]
  authority_host:
    description:
      - Microsoft Entra sign-in host used with O(cloud=custom), for example C(https://login.example.internal).
        Not needed with O(credential_mode=managed_identity).
      - Falls back to E(AZURE_AUTHORITY_HOST).
    type: str
  credential_mode:
    description:
      - How the module signs in. No secret is ever a module option.
      - V(default) uses a complete client-secret configuration from the environment when there is one
        (E(AZURE_TENANT_ID)/E(AZURE_TENANT), E(AZURE_CLIENT_ID), E(AZURE_CLIENT_SECRET)/E(AZURE_SECRET)),
        otherwise azure-identity's C(DefaultAzureCredential) chain (workload identity, managed identity, Azure CLI and others).
      - V(managed_identity) uses the host's managed identity; O(client_id) selects a user-assigned identity.
      - V(client_secret) uses an app registration; the secret comes from E(AZURE_CLIENT_SECRET) or AWX's E(AZURE_SECRET).
      - V(workload_identity) exchanges the federated token in E(AZURE_FEDERATED_TOKEN_FILE) (Kubernetes, GitHub OIDC and similar).
    type: str
    default: default
    choices: [default, managed_identity, client_secret, workload_identity]
  client_id:
    description:
      - Application (client) id, or the client id of a user-assigned managed identity.
      - Falls back to E(AZURE_CLIENT_ID).
    type: str
  tenant_id:
    description:
      - Microsoft Entra tenant id. Falls back to E(AZURE_TENANT_ID), then AWX's E(AZURE_TENANT).
    type: str
  api_version:
    description:
      - Key Vault REST API version to speak, for emulators that lag behind the service. Defaults to the SDK's newest.
    type: str
  ca_path:
    description:
      - PEM file with additional trust anchors for TLS to the vault and the sign-in host (for example an emulator's CA).
      - The public trust store stays in use; TLS verification is never switched off.
    type: path
  verify_challenge_resource:
    description:
      - Check that Key Vault's authentication challenge names a resource matching the vault host before a token is sent.
      - This stops a token for the vault audience from going to a foreign host. Switch it off only for emulators
        or private aliases you trust.
    type: bool
    default: true
  timeout:
    description:
      - Connection and read timeout of each request to Key Vault and to the sign-in endpoint, in seconds.
      - Throttled and failing requests are retried with azure-core's retry policy, which honours C(Retry-After), up to
        4 times; one call starts requests for at most four times this timeout, retries, waits and its token requests
        included, and so ends within six times it (error C(timeout), C(throttled) or C(service_error)). A
        C(Retry-After) longer than what is left of that budget is not waited for; the call fails C(throttled) and the
        message names the wish in seconds.
      - An import is never resent by the retry policy (a resend of an import that committed would add a second
        version); after a transient failure the module reads the latest version and sends the import again only when
        it did not commit.
      - A connection that cannot be made at all (refused, no route, proxy refused) is tried twice, without a wait in
        between, and then fails with C(unreachable); that takes at most two times this timeout when connecting
        hangs, and no time at all when it is refused.
    type: int
    default: 60
requirements:
  - python >= 3.9
  - azure-identity
  - azure-keyvault-certificates
  - cryptography
'''
