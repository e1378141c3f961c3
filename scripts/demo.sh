#!/usr/bin/env bash
# The certdeploy.cloud demo: examples/demo.yml against a local Key Vault emulator.
#
#   ./scripts/demo.sh
#
# Installs ansible-core 2.21 and requirements.txt into .cache/venv/demo (Python 3.13),
# starts lowkey-vault on 127.0.0.1 (tests/integration/emulators/harness.py), runs the
# playbook (created -> unchanged -> rotated, printing the versionless secret id), and
# stops the emulator.
#
# Environment:
#   CERTDEPLOY_DEMO_VAULT_URL   use an emulator that is already running (no start/stop); with
#   CERTDEPLOY_DEMO_CA_FILE     its TLS CA file, CERTDEPLOY_DEMO_API_VERSION (default 7.6), and
#                               IDENTITY_ENDPOINT / IDENTITY_HEADER for its managed identity.
#   LOWKEY_VAULT_JAR            a lowkey-vault-app jar to use when Maven cannot provide it.
# Without any emulator, the demo runs the same playbook in check mode (offline validation
# and prediction; nothing is written) and says so.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CACHE="${REPO_ROOT}/.cache"
VENV="${CACHE}/venv/demo"
HARNESS="${REPO_ROOT}/tests/integration/emulators/harness.py"
log() { printf '[demo] %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

find_python() {
    local candidate
    for candidate in "${PYENV_ROOT:-${HOME}/.pyenv}"/versions/3.13.*/bin/python3.13 "$(command -v python3.13 || true)" \
                     "${PYENV_ROOT:-${HOME}/.pyenv}"/versions/3.12.*/bin/python3.12 "$(command -v python3.12 || true)"; do
        if [[ -n "${candidate}" && -x "${candidate}" ]] && "${candidate}" -c 'import venv' 2>/dev/null; then
            printf '%s\n' "${candidate}"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    local stamp="${VENV}/.certdeploy-demo" want
    want="ansible-core>=2.21,<2.22 $(cat "${REPO_ROOT}/requirements.txt" | grep -v '^#' | tr '\n' ' ')"
    if [[ -x "${VENV}/bin/ansible-playbook" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
        return 0
    fi
    local python
    python="$(find_python)" || die "Python 3.12 or 3.13 is needed (ansible-core 2.21 requires it)."
    log "Installing ansible-core 2.21 and the collection requirements into .cache/venv/demo (first run only)"
    rm -rf "${VENV}"
    "${python}" -m venv "${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check 'ansible-core>=2.21,<2.22' -r "${REPO_ROOT}/requirements.txt"
    printf '%s' "${want}" >"${stamp}"
}

main() {
    ensure_venv
    # ansible-playbook finds the collection through this path (a link to the working tree).
    local collections="${CACHE}/demo-collections"
    mkdir -p "${collections}/ansible_collections/certdeploy"
    ln -sfn "${REPO_ROOT}" "${collections}/ansible_collections/certdeploy/cloud"
    export ANSIBLE_COLLECTIONS_PATH="${collections}" ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
    export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_NOCOLOR="${NO_COLOR:+1}"
    # Nothing may fall back to the instance metadata endpoint.
    export AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:9 NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1

    local -a extra=()
    if [[ -n "${CERTDEPLOY_DEMO_VAULT_URL:-}" ]]; then
        log "Using the emulator at ${CERTDEPLOY_DEMO_VAULT_URL}"
        extra=(-e "demo_vault_url=${CERTDEPLOY_DEMO_VAULT_URL}" -e "demo_api_version=${CERTDEPLOY_DEMO_API_VERSION:-7.6}")
        [[ -z "${CERTDEPLOY_DEMO_CA_FILE:-}" ]] || extra+=(-e "demo_ca_path=${CERTDEPLOY_DEMO_CA_FILE}")
        extra+=(-e demo_cloud=custom -e demo_credential_mode=managed_identity -e demo_verify_challenge_resource=false)
    else
        local state rc=0
        state="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-demo.XXXXXX")"
        trap '"${VENV}/bin/python" "${HARNESS}" stop --state-dir "'"${state}"'" >/dev/null 2>&1 || true; rm -rf "'"${state}"'"' EXIT
        log "Starting lowkey-vault on 127.0.0.1 (needs Java 17 and Maven; first run downloads it)"
        local exports
        exports="$("${VENV}/bin/python" "${HARNESS}" start lowkey --state-dir "${state}" --owner-pid $$ --ttl 1800)" || rc=$?
        if [[ ${rc} -eq 0 ]]; then
            eval "${exports}"
            log "Key Vault emulator: ${KV_EMU_VAULT_URL}"
            extra=(-e "demo_vault_url=${KV_EMU_VAULT_URL}" -e "demo_api_version=${KV_EMU_API_VERSION}" -e "demo_ca_path=${KV_EMU_CA_FILE}"
                   -e demo_cloud=custom -e demo_credential_mode=managed_identity -e demo_verify_challenge_resource=false)
        elif [[ ${rc} -eq 3 ]]; then
            log "No Key Vault emulator is available on this machine (reason above)."
            log "Running the demo in CHECK MODE instead: options and certificates are validated offline and the"
            log "outcome is predicted; nothing is written. Set LOWKEY_VAULT_JAR or CERTDEPLOY_DEMO_VAULT_URL for a real deploy."
            extra=(-e demo_check_mode=true -e demo_credential_mode=client_secret)
        else
            die "the emulator failed to start (exit ${rc}); see the messages above"
        fi
    fi
    "${VENV}/bin/ansible-playbook" "${REPO_ROOT}/examples/demo.yml" "${extra[@]}"
}

main "$@"
