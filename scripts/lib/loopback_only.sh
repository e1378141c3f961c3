# shellcheck shell=bash
# Keep a test or demo run off any real tenant, vault or identity endpoint, whatever the caller's shell holds.
# Sourced by scripts/test.sh, scripts/demo.sh, scripts/mutation.sh and tests/integration/run.sh.

# The closed loopback port (discard) that pinned endpoints point at: a request there is refused at once.
LOOPBACK_TRAP=http://127.0.0.1:9

# Unset every inherited Azure identity variable: AZURE_* (credentials, authority, AWX's names), and the
# managed-identity endpoints azure-identity reads (IDENTITY_*, MSI_*, IMDS_*).
clear_azure_environment() {
    local name
    for name in $(compgen -e); do
        case "${name}" in AZURE_* | IDENTITY_* | IMDS_* | MSI_*) unset "${name}" ;; esac
    done
}

# Point the managed-identity fallbacks (IMDS, 169.254.169.254) at the closed port, and keep loopback off any proxy.
pin_identity_to_loopback() {
    export AZURE_POD_IDENTITY_AUTHORITY_HOST="${LOOPBACK_TRAP}" IMDS_ENDPOINT="${LOOPBACK_TRAP}"
    export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1
}

# Also send every non-loopback HTTP(S) request to the closed port (after the installs: pip needs the network).
trap_proxies() {
    export HTTPS_PROXY="${LOOPBACK_TRAP}" https_proxy="${LOOPBACK_TRAP}" HTTP_PROXY="${LOOPBACK_TRAP}" http_proxy="${LOOPBACK_TRAP}"
}
