#!/usr/bin/env bash
# Production host names, zero emulator switches.
#
# Outside: tests/integration/emulators/prodnames.py builds a private mount + network namespace
# (its own /etc/hosts and resolv.conf by bind mount: <vault>.vault.azure.net -> 127.0.0.1,
# login.microsoftonline.com -> 127.0.0.2, nothing else resolves, only lo), proves that mapping
# before any request, makes a test CA, starts the Go pair on :443 under those names, runs this
# script again with --inside, and stops the pair. Then no process of the run may be left.
# Inside: the test PKI (setup_certdeploy's make_pki.py) and prodnames.yml, whose module calls
# use every default: no cloud, authority_host, api_version or verify_challenge_resource.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PY="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}"  # tests/integration is on its import path (run.sh)

if [[ "${1:-}" == --inside ]]; then
    shift
    : "${PRODNAMES_FACTS:?--inside is started by python -m emulators.prodnames run}"
    work="$(dirname "${PRODNAMES_FACTS}")"
    "${PY}" "${HERE}/../setup_certdeploy/files/make_pki.py" "${work}/pki" >"${work}/pki.json"
    exec ansible-playbook -i localhost, "${HERE}/prodnames.yml" -e "@${PRODNAMES_FACTS}" \
        -e "prod_pki_file=${work}/pki.json" -e "prod_vault_state=${HERE}/../setup_certdeploy/files/vault_state.py" "$@"
fi

# ansible-test passes no environment through, but copies integration_config.yml (run.sh's) to
# tests/integration/ of its work tree: it names the state directory of the Go pair run.sh
# started, and so the emulator binaries (AKV_EMULATOR_BIN / ENTRA_EMULATOR_BIN win when set).
config="${HERE}/../../integration_config.yml"
[[ -f "${config}" ]] || config=''
work="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-prodnames.XXXXXX")"
# shellcheck disable=SC2329  # left_behind and cleanup run from the EXIT trap
left_behind() {
    local pid
    for pid in $(pgrep -f -- "${work}" || true); do
        [[ "${pid}" != "$$" ]] && echo "${pid}"
    done
}
# shellcheck disable=SC2329
cleanup() {
    local rc=$? strays
    strays="$(left_behind)"
    if [[ -n "${strays}" ]]; then
        echo "azure_kv_production_names: FAILED: processes of this run still alive: ${strays//$'\n'/ }" >&2
        # shellcheck disable=SC2086  # one PID per word
        kill -KILL ${strays} 2>/dev/null || true
        rc=1
    fi
    rm -rf "${work}"
    exit "${rc}"
}
trap cleanup EXIT
started=${SECONDS}
rc=0
"${PY}" -m emulators.prodnames run --work-dir "${work}" ${config:+--integration-config "${config}"} \
    -- "${BASH}" "${HERE}/runme.sh" --inside "$@" || rc=$?
case ${rc} in
    0) echo "azure_kv_production_names: passed in $((SECONDS - started)) s" ;;
    3) echo "azure_kv_production_names: FAILED: this machine cannot build the namespace or has no Go emulators (reason above)" >&2 ;;
    *) echo "azure_kv_production_names: FAILED (exit ${rc}) after $((SECONDS - started)) s" >&2 ;;
esac
exit "${rc}"
