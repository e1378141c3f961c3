#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: tls_certificate_probe
short_description: Read the certificate a TLS endpoint serves and wait, bounded, until it is the expected one
version_added: 0.1.0
description:
  - Connects to a TLS endpoint (O(host), O(port), with O(server_name) as SNI), completes the handshake and reports the
    leaf certificate it presents (SHA-1 thumbprint, subject, names, validity).
  - With O(expected_thumbprint) it retries every O(interval) seconds until the endpoint serves that certificate or
    O(timeout) seconds have passed. Azure edges such as Application Gateway and Front Door pick up a new Key Vault version
    on their own schedule, so this is how a playbook learns that a rotation reached the edge.
  - By default a miss is reported (RV(matched=false)), not a failure; O(fail_on_mismatch=true) makes it fail.
  - Read-only. Only a TLS handshake is made; no HTTP request is sent.
author:
  - certdeploy.cloud maintainers (@certdeploy)
attributes:
  check_mode:
    support: full
    description:
      - The probe only reads, so it runs unchanged in check mode.
  diff_mode:
    support: none
    description:
      - Nothing changes, so there is no diff.
  platform:
    support: full
    platforms: posix
    description:
      - Runs on the host that should reach the endpoint, usually the controller. Needs network access to O(host).
options:
  host:
    description:
      - Host name or IP address to connect to. IPv6 addresses may be given with or without brackets.
    type: str
    required: true
  port:
    description:
      - TCP port of the endpoint.
    type: int
    default: 443
  server_name:
    description:
      - Server name sent in the TLS handshake (SNI) and checked against the certificate when O(validate_certs=true).
      - Defaults to O(host). Set it when connecting to an address (a load balancer IP, a private endpoint) that serves
        several names.
    type: str
  expected_thumbprint:
    description:
      - SHA-1 thumbprint of the certificate the endpoint should serve, as 40 hexadecimal digits (colons and lower case
        accepted), for example RV(certdeploy.cloud.azure_kv_certificate_deploy#module:certificate.thumbprint).
      - Without it the module makes one successful handshake (retrying connection failures until O(timeout)) and
        reports what is served.
    type: str
  timeout:
    description:
      - How long to keep trying, in seconds. No attempt starts after it has passed, so the task takes at most
        O(timeout) plus one attempt (O(connect_timeout)).
      - V(0) makes exactly one attempt.
    type: int
    default: 0
  interval:
    description:
      - Seconds between two attempts.
    type: int
    default: 10
  connect_timeout:
    description:
      - Time limit of one attempt (connection and handshake), in seconds.
    type: int
    default: 10
  validate_certs:
    description:
      - Verify the served certificate against the system trust store plus O(ca_path), and against O(server_name).
      - With V(false) any certificate is read and reported; RV(verified) says which way it was read.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with additional trust anchors, for endpoints with certificates from a private CA.
    type: path
  fail_on_mismatch:
    description:
      - Fail (RV(error_code=mismatch), or the last connection error's code) when the endpoint does not serve
        O(expected_thumbprint) before O(timeout).
    type: bool
    default: false
notes:
  - Azure edges poll Key Vault on their own schedule (Application Gateway checks every few hours), so a short
    O(timeout) that passes without a match usually means "not yet", not "failed".
  - Connections go straight to O(host); proxy environment variables are not used.
requirements:
  - python >= 3.9
  - cryptography
seealso:
  - module: certdeploy.cloud.azure_kv_certificate_deploy
'''

EXAMPLES = r'''
- name: Deploy the certificate
  certdeploy.cloud.azure_kv_certificate_deploy:
    vault_url: https://contoso-tls.vault.azure.net
    certificate_name: www-contoso-com
    certificate_path: /etc/pki/tls/certs/www.contoso.com.crt
    private_key_path: /etc/pki/tls/private/www.contoso.com.key
  register: deploy

- name: Wait up to 15 minutes for Application Gateway to serve it
  certdeploy.cloud.tls_certificate_probe:
    host: www.contoso.com
    expected_thumbprint: "{{ deploy.certificate.thumbprint }}"
    timeout: 900
    interval: 30
  register: probe

- name: Report
  ansible.builtin.debug:
    msg: "{{ 'live' if probe.matched else 'not served yet, still ' ~ (probe.served.thumbprint | default('nothing')) }}"

- name: Read what a private listener serves through its IP, with the internal CA, failing on a miss
  certdeploy.cloud.tls_certificate_probe:
    host: 10.20.0.4
    port: 8443
    server_name: api.internal.contoso.com
    ca_path: /etc/pki/ca-trust/source/anchors/contoso-root.pem
    expected_thumbprint: 6A:3F:0C:1E:9B:8D:7A:6F:5E:4D:3C:2B:1A:0F:9E:8D:7C:6B:5A:49
    fail_on_mismatch: true
'''

RETURN = r'''
host:
  description: Host connected to.
  returned: always
  type: str
  sample: www.contoso.com
port:
  description: Port connected to.
  returned: always
  type: int
  sample: 443
server_name:
  description: Server name sent as SNI and verified.
  returned: when the options are valid
  type: str
  sample: www.contoso.com
expected_thumbprint:
  description: O(expected_thumbprint), normalised to upper-case hex without separators (null when not given).
  returned: when the options are valid
  type: str
  sample: 6A3F0C1E9B8D7A6F5E4D3C2B1A0F9E8D7C6B5A49
matched:
  description:
    - Whether the endpoint served O(expected_thumbprint) before O(timeout). Null without O(expected_thumbprint).
  returned: when the probe ran
  type: bool
  sample: true
attempts:
  description: Number of connection attempts made.
  returned: when the probe ran
  type: int
  sample: 3
elapsed:
  description: Seconds spent probing.
  returned: when the probe ran
  type: float
  sample: 20.041
verified:
  description: Whether the served certificate was verified (O(validate_certs)).
  returned: when the probe ran
  type: bool
served:
  description:
    - The leaf certificate the endpoint presented at the last successful attempt; null when no handshake succeeded.
  returned: when the probe ran
  type: dict
  contains:
    thumbprint:
      description: Upper-case hex SHA-1 of the certificate (the format of the deploy module's certificate.thumbprint).
      type: str
      sample: 6A3F0C1E9B8D7A6F5E4D3C2B1A0F9E8D7C6B5A49
    x5t:
      description: Base64url SHA-1 of the certificate.
      type: str
    serial:
      description: Serial number, upper-case hex.
      type: str
    subject:
      description: Subject distinguished name (RFC 4514); null when it cannot be parsed (see RV(served.parse_errors)).
      type: str
      sample: CN=www.contoso.com
    issuer:
      description: Issuer distinguished name (RFC 4514); null when it cannot be parsed (see RV(served.parse_errors)).
      type: str
    sans:
      description:
        - Subject alternative names, prefixed with their type (C(DNS:), C(IP:), C(email:), C(URI:)).
        - Empty when the certificate's extensions cannot be parsed (see RV(served.parse_errors)).
      type: list
      elements: str
    parse_errors:
      description:
        - What of the certificate could not be parsed (a malformed extension, subject or issuer), and why. The
          thumbprint, serial and validity are exact all the same, so the comparison with O(expected_thumbprint)
          holds; a warning says so. Absent when the whole certificate was parsed.
      type: list
      elements: str
      sample: ['the extension cannot be parsed (Duplicate 2.5.29.17 extension found)']
    not_before:
      description: Start of validity (ISO 8601, UTC).
      type: str
    expires:
      description: End of validity (ISO 8601, UTC).
      type: str
      sample: '2026-03-01T12:00:00+00:00'
    tls_version:
      description: TLS version negotiated.
      type: str
      sample: TLSv1.3
error:
  description:
    - Why the last attempt failed (C(code) and C(message)), null when it succeeded. Codes as in RV(error_code).
  returned: when the probe ran
  type: dict
error_code:
  description:
    - Stable reason of a failure. V(invalid_config) bad options; V(unreachable) no connection or handshake within the
      time limits; V(tls_error) handshake or certificate verification failed; V(mismatch) another certificate is
      served (only with O(fail_on_mismatch=true)); V(missing_dependency) cryptography is not installed.
  returned: failure
  type: str
  sample: unreachable
'''

from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.ansible_module import create_module
from ansible_collections.certdeploy.cloud.plugins.module_utils.frontend.probe import PROBE, run_probe


def main():
    run_probe(create_module(PROBE))


if __name__ == '__main__':
    main()
