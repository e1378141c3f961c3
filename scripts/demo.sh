#!/usr/bin/env bash
# The certdeploy.cloud demos, against a local Key Vault emulator.
#
#   ./scripts/demo.sh          examples/demo.yml: deploy, rerun, rotate, retag (lowkey-vault)
#   ./scripts/demo.sh issue    examples/demo_issue.yml: the key stays in the vault - request -> sign (a throw-away
#                              CA) -> merge, rerun, renew, printing each CSR's SHA-256 and the merged versions
#                              (azure-keyvault-emulator and entra-emulator, the Go pair: lowkey-vault has no requests)
#
# 1. Clears every inherited AZURE_*, IDENTITY_*, MSI_* and IMDS_* variable, so nothing in the
#    caller's shell can point the demo at a real tenant or vault.
# 2. Installs ansible-core 2.21 and requirements.txt into .cache/venv/demo (Python 3.13 or 3.12),
#    and gets lowkey-vault 3.4.33: from the cache, else built from ../shared/emulators (Java 17
#    and Maven), else from Maven Central (tests/integration/emulators/README.md says the order); for `issue`
#    the Go pair instead: from the cache, else built from ../shared/emulators (Go), else `go install`.
# 3. As root, enters a network namespace with only loopback (nothing else is reachable at all);
#    otherwise every proxy variable points at a closed loopback port, so any request for a host
#    that is not loopback fails at once.  Identity endpoints are pinned to loopback either way.
# 4. Starts the emulator on 127.0.0.1, runs the playbook (created -> unchanged -> rotated -> updated;
#    or requested+merged -> unchanged -> renewed; then a table), and stops the emulator: no process is left behind.
#
# Environment:
#   CERTDEPLOY_DEMO_VAULT_URL   use an emulator that is already running (no start/stop); with
#   CERTDEPLOY_DEMO_CA_FILE     its TLS CA file, CERTDEPLOY_DEMO_API_VERSION (default 7.6), and
#                               CERTDEPLOY_DEMO_IDENTITY_ENDPOINT / _HEADER for its managed identity.
#   LOWKEY_VAULT_JAR            a lowkey-vault-app 3.4.33 jar to use instead of building one.
# Where Java 17 or Maven is missing, no emulator can be had: the demo then says so and runs the
# same playbook in check mode (offline validation and prediction; nothing is deployed). The issue demo
# needs a vault that makes keys, so without the Go pair (no Go toolchain) it says so and exits 3.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CACHE="${REPO_ROOT}/.cache"
VENV="${CACHE}/venv/demo"
# shellcheck source=scripts/lib/loopback_only.sh
. "${REPO_ROOT}/scripts/lib/loopback_only.sh"
# shellcheck source=scripts/lib/python.sh
. "${REPO_ROOT}/scripts/lib/python.sh"
log() { printf '[demo] %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# Which demo: set by choose_demo from the first argument.
DEMO=deploy
PLAYBOOK=demo.yml
EMULATOR=lowkey
EMULATOR_LABEL=lowkey-vault

choose_demo() {
    case "${1:-}" in
        '' | deploy) ;;
        issue) DEMO=issue PLAYBOOK=demo_issue.yml EMULATOR=akv
               EMULATOR_LABEL='azure-keyvault-emulator (with entra-emulator)' ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
}

ensure_venv() {
    local stamp="${VENV}/.certdeploy-demo" want
    want="ansible-core>=2.21,<2.22 $(cat "${REPO_ROOT}/requirements.txt" | grep -v '^#' | tr '\n' ' ')"
    if [[ -x "${VENV}/bin/ansible-playbook" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
        return 0
    fi
    local python
    python="$(find_python 3.13 3.12)" || die "Python 3.12 or 3.13 is needed (ansible-core 2.21 requires it)."
    log "Installing ansible-core 2.21 and the collection requirements into .cache/venv/demo (first run only)"
    rm -rf "${VENV}"
    "${python}" -m venv "${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check 'ansible-core>=2.21,<2.22' -r "${REPO_ROOT}/requirements.txt"
    printf '%s' "${want}" >"${stamp}"
}

# The emulator harness: `python -m emulators` (tests/integration/emulators) in the demo's venv.
harness() {
    "${VENV}/bin/python" -m emulators "$@"
}

# After the installs: identity endpoints on a closed loopback port, proxies likewise (loopback excepted).
pin_to_loopback() {
    pin_identity_to_loopback
    trap_proxies
}

ansible_settings() {
    # ansible-playbook finds the collection through this path (a link to the working tree).
    local collections="${CACHE}/demo-collections"
    mkdir -p "${collections}/ansible_collections/certdeploy"
    ln -sfn "${REPO_ROOT}" "${collections}/ansible_collections/certdeploy/cloud"
    export ANSIBLE_COLLECTIONS_PATH="${collections}" ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
    export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ANSIBLE_NOCOLOR="${NO_COLOR:+1}"
    export ANSIBLE_PYTHON_INTERPRETER="${VENV}/bin/python"
}

playbook() {
    "${VENV}/bin/ansible-playbook" -i localhost, -c local "${REPO_ROOT}/examples/${PLAYBOOK}" "$@"
}

# The part that needs no network: start the emulator, run the playbook, stop the emulator.
run_against_emulator() {
    pin_to_loopback
    ansible_settings
    local state
    state="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-demo.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the paths are fixed
    trap "'${VENV}/bin/python' -m emulators stop --state-dir '${state}' >/dev/null 2>&1 || true; rm -rf '${state}'" EXIT
    local exports
    exports="$(harness start "${EMULATOR}" --state-dir "${state}" --owner-pid $$ --ttl 1800)" ||
        die "${EMULATOR_LABEL} failed to start; see the messages above"
    eval "${exports}"
    log "Key Vault emulator: ${EMULATOR_LABEL} at ${KV_EMU_VAULT_URL} (signed in with its managed-identity endpoint)"
    # lowkey-vault needs an api-version it knows; the Go emulator takes the SDK's default.
    local -a api=()
    [[ -z "${KV_EMU_API_VERSION:-}" ]] || api=(-e "demo_api_version=${KV_EMU_API_VERSION}")
    playbook -e "demo_vault_url=${KV_EMU_VAULT_URL}" "${api[@]+"${api[@]}"}" -e "demo_ca_path=${KV_EMU_CA_FILE}" \
        -e demo_cloud=custom -e demo_credential_mode=managed_identity -e demo_verify_challenge_resource=false
}

main() {
    if [[ "${1:-}" == --inside ]]; then
        choose_demo "${2:-}"
        ip link set lo up
        log "In a network namespace of its own: only loopback exists, so nothing off this machine is reachable"
        run_against_emulator
        return
    fi
    choose_demo "${1:-}"
    # Nothing inherited may point the demo at a real tenant, vault or identity endpoint.
    clear_azure_environment
    unset PYTHONPATH PYTHONHOME
    ensure_venv
    expose_test_helpers "${VENV}" "${REPO_ROOT}/tests/integration"

    if [[ -n "${CERTDEPLOY_DEMO_VAULT_URL:-}" ]]; then
        pin_to_loopback
        ansible_settings
        log "Using the emulator at ${CERTDEPLOY_DEMO_VAULT_URL}"
        local -a extra=(-e "demo_vault_url=${CERTDEPLOY_DEMO_VAULT_URL}" -e "demo_api_version=${CERTDEPLOY_DEMO_API_VERSION:-7.6}"
                        -e demo_cloud=custom -e demo_credential_mode=managed_identity -e demo_verify_challenge_resource=false)
        [[ -z "${CERTDEPLOY_DEMO_CA_FILE:-}" ]] || extra+=(-e "demo_ca_path=${CERTDEPLOY_DEMO_CA_FILE}")
        [[ -z "${CERTDEPLOY_DEMO_IDENTITY_ENDPOINT:-}" ]] ||
            export IDENTITY_ENDPOINT="${CERTDEPLOY_DEMO_IDENTITY_ENDPOINT}" IDENTITY_HEADER="${CERTDEPLOY_DEMO_IDENTITY_HEADER:-demo}"
        playbook "${extra[@]}"
        return
    fi

    local rc=0
    harness install "${EMULATOR}" || rc=$?
    if [[ ${rc} -eq 3 && "${DEMO}" == issue ]]; then
        log "The Go Key Vault emulator could not be had here (the line above says why; building it from"
        log "../shared/emulators needs Go). The issue demo needs a vault that makes keys and CSRs, so it stops here;"
        log "./scripts/demo.sh (the deploy demo) runs with lowkey-vault, or in check mode without any emulator."
        exit 3
    elif [[ ${rc} -eq 3 ]]; then
        log "No local Key Vault emulator could be had here (the line above says why; building lowkey-vault from"
        log "../shared/emulators needs Java 17 and Maven). Running the playbook in CHECK MODE instead: certificates"
        log "and options are validated offline and each step's outcome is predicted; nothing is deployed anywhere."
        pin_to_loopback
        ansible_settings
        # No vault to read: the module's "cannot read the vault, predicting changed" notice is expected here.
        export ANSIBLE_ACTION_WARNINGS=false
        playbook -e demo_check_mode=true -e demo_credential_mode=client_secret
        return
    elif [[ ${rc} -ne 0 ]]; then
        die "getting ${EMULATOR_LABEL} failed (exit ${rc}); see the messages above"
    fi

    if [[ "$(id -u)" -eq 0 ]] && unshare --net true 2>/dev/null; then
        exec unshare --net -- "${BASH}" "${BASH_SOURCE[0]}" --inside "${DEMO}"
    fi
    log "Not root (or no unshare): running without a network namespace; proxies and identity endpoints point at loopback"
    run_against_emulator
}

# One line, so that bash has read all it will run: editing this file during a run cannot derail it.
main "$@"; exit $?
