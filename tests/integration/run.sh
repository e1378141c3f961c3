#!/usr/bin/env bash
# Integration suite: real ansible-playbook runs of the collection's targets
# (tests/integration/targets/) against Key Vault emulators on loopback.
#
# Called by scripts/test.sh with CERTDEPLOY_VENV (ansible-core 2.21 venv) and
# CERTDEPLOY_COLLECTION_DIR (the ansible_collections/certdeploy/cloud mirror).
#
# 1. Installs the integration requirements into the venv, puts tests/integration (the emulator
#    harness `python -m emulators` and testlib) on its import path (expose_test_helpers in
#    scripts/lib/python.sh: ansible-test passes no PYTHONPATH to targets), resolves the pinned emulators
#    (tests/integration/emulators/versions.env) while the network is still there: an explicit
#    artifact variable, the cache, a build from ../shared/emulators, or the registry, in that
#    order (tests/integration/emulators/README.md); a failed build fails the suite.
# 2. As root, re-enters itself in a new network namespace with only loopback up,
#    so a stray request to 169.254.169.254 or any public host fails at once, and
#    proves that guard before running anything.
# 3. Starts lowkey-vault and the Go Key Vault + Entra emulators (which validate real tokens)
#    on 127.0.0.1, writes tests/integration/integration_config.yml in the mirror, runs
#    `ansible-test integration`, stops the emulators.
#
# A target names what it needs in its aliases file (emulator/lowkey, emulator/akv,
# emulator/mitmproxy).  Where one of those cannot be had, its targets are excluded, the
# names are written to $CERTDEPLOY_SKIPPED_FILE (when set) and the script exits 77 (skipped)
# unless a target failed: a skip is never reported as a pass.
# CERTDEPLOY_IT_TARGETS="name ..." runs only those targets.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib/loopback_only.sh
. "${HERE}/../../scripts/lib/loopback_only.sh"
# shellcheck source=scripts/lib/python.sh
. "${HERE}/../../scripts/lib/python.sh"
: "${CERTDEPLOY_VENV:?run through scripts/test.sh integration}"
: "${CERTDEPLOY_COLLECTION_DIR:?run through scripts/test.sh integration}"
PY="${CERTDEPLOY_VENV}/bin/python"
MITMPROXY_VERSION=12.2.3

log() { printf '[integration] %s\n' "$*"; }

# Identity endpoints pinned to loopback: nothing may fall back to the instance metadata service.
pin_identity_environment() {
    clear_azure_environment
    pin_identity_to_loopback
}

outside() {
    log "Installing integration requirements into ${CERTDEPLOY_VENV#"${PWD}"/}"
    "${PY}" -m pip install --quiet --disable-pip-version-check -r "${HERE}/requirements.txt"
    # The emulator harness (python -m emulators) and testlib, for this script and every target's helper.
    expose_test_helpers "${CERTDEPLOY_VENV}" "${HERE}"
    # Each component a target can ask for (aliases emulator/<component>): resolved now, or missing.
    local kind rc
    CERTDEPLOY_IT_MISSING=''
    for kind in lowkey akv; do
        set +e
        "${PY}" -m emulators install "${kind}"
        rc=$?
        set -e
        case ${rc} in
            0) ;;
            3) CERTDEPLOY_IT_MISSING+=" ${kind}"
               log "The ${kind} emulator cannot be had here (reason above): the targets that need it will be SKIPPED." ;;
            *) log "Resolving the ${kind} emulator failed (exit ${rc}); see above."; exit "${rc}" ;;
        esac
    done
    # The fault matrix puts mitmproxy (its own venv: it pins its own dependencies) between module and vault.
    local mitm_venv="${CERTDEPLOY_VENV%/*}/mitmproxy"
    if [[ ! -x "${mitm_venv}/bin/mitmdump" ]] || ! "${mitm_venv}/bin/mitmdump" --version 2>/dev/null | grep -q "Mitmproxy: ${MITMPROXY_VERSION}"; then
        rm -rf "${mitm_venv}"
        # mitmproxy needs Python 3.12 or later: the newest core's interpreter when test.sh names it, else this venv's.
        if ! { "${CERTDEPLOY_MITMPROXY_PYTHON:-$(readlink -f "${CERTDEPLOY_VENV}/bin/python")}" -m venv "${mitm_venv}" &&
               "${mitm_venv}/bin/python" -m pip install --quiet --disable-pip-version-check "mitmproxy==${MITMPROXY_VERSION}"; }; then
            log "mitmproxy ${MITMPROXY_VERSION} could not be installed: the targets that need it will be SKIPPED."
            CERTDEPLOY_IT_MISSING+=' mitmproxy'
        fi
    fi
    export CERTDEPLOY_MITMDUMP="${mitm_venv}/bin/mitmdump" CERTDEPLOY_IT_MISSING

    if [[ "$(id -u)" -eq 0 ]] && unshare --net true 2>/dev/null; then
        log "Entering a loopback-only network namespace"
        # shellcheck disable=SC2016  # $0 is expanded by the inner shell, on purpose
        exec unshare --net -- "${BASH}" -c 'ip link set lo up && exec "$0" --inside' "${BASH_SOURCE[0]}"
    fi
    log "WARNING: not root or no unshare: running without a network namespace (identity endpoints still pinned)"
    inside
}

prove_isolation() {
    "${PY}" - <<'PY'
import errno, socket, sys, time
# In the namespace only loopback exists: the metadata endpoint and public hosts are unreachable at once.
for host in ('169.254.169.254', '1.1.1.1'):
    started = time.monotonic()
    try:
        socket.create_connection((host, 80), timeout=3).close()
    except OSError as exc:
        if exc.errno != errno.ENETUNREACH:
            sys.exit('isolation guard: %s failed with %r, expected ENETUNREACH' % (host, exc))
    else:
        sys.exit('isolation guard: %s was reachable' % host)
    assert time.monotonic() - started < 1, host
print('[integration] isolation guard: 169.254.169.254 and public hosts are unreachable (ENETUNREACH)')
PY
}

# mitmdump as a reverse proxy in front of lowkey-vault, on loopback, with the fault addon.
start_fault_proxy() {
    local dir="${EMULATOR_STATE}/proxy" upstream upstream_ca port
    mkdir -p "${dir}"
    upstream="$("${PY}" -m emulators env --state-dir "${EMULATOR_STATE}/lowkey" --json | "${PY}" -c 'import json,sys; print(json.load(sys.stdin)["vault_url"])')"
    upstream_ca="${EMULATOR_STATE}/lowkey/ca.pem"
    port="$("${PY}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    echo '[]' >"${dir}/faults.json"
    : >"${dir}/imports.jsonl"
    "${CERTDEPLOY_MITMDUMP}" --mode "reverse:${upstream}" --listen-host 127.0.0.1 --listen-port "${port}" \
        --set confdir="${dir}" --set ssl_insecure=true --set connection_strategy=lazy \
        -s "${HERE}/faults/proxy_addon.py" --set certdeploy_faults="${dir}/faults.json" \
        --set certdeploy_upstream_ca="${upstream_ca}" --set certdeploy_imports="${dir}/imports.jsonl" >"${dir}/mitmdump.log" 2>&1 &
    echo $! >"${dir}/pid"
    local _
    for _ in $(seq 1 100); do
        if [[ -s "${dir}/mitmproxy-ca-cert.pem" ]] && "${PY}" -c "import socket; socket.create_connection(('127.0.0.1', ${port}), 1)" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    # The proxy's own CA signs what it serves; the module trusts it through ca_path.
    # kv_imports_file: one JSON line per import request seen (faults/proxy_addon.py; never the key or password).
    printf '{"kv_proxy_url": "https://localhost:%s", "kv_proxy_ca_file": "%s", "kv_faults_file": "%s", "kv_upstream_ca_file": "%s", "kv_imports_file": "%s"}\n' \
        "${port}" "${dir}/mitmproxy-ca-cert.pem" "${dir}/faults.json" "${upstream_ca}" "${dir}/imports.jsonl" >"${EMULATOR_STATE}/proxy.json"
    log "fault proxy at https://localhost:${port} -> ${upstream}"
}

# shellcheck disable=SC2329  # run by the EXIT trap
stop_emulators() {
    if [[ -f "${EMULATOR_STATE}/proxy/pid" ]]; then
        kill "$(cat "${EMULATOR_STATE}/proxy/pid")" 2>/dev/null || true
    fi
    local dir
    for dir in "${EMULATOR_STATE}"/lowkey/ "${EMULATOR_STATE}"/akv/; do
        [[ -d "${dir}" ]] || continue
        "${PY}" -m emulators stop --state-dir "${dir}" >/dev/null 2>&1 || true
    done
    rm -rf "${EMULATOR_STATE}"
}

inside() {
    pin_identity_environment
    if [[ "${1:-}" == --inside ]]; then
        prove_isolation
    fi
    EMULATOR_STATE="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-it.XXXXXX")"
    trap stop_emulators EXIT
    local -a kinds=() missing=() skip=() skipped=()
    read -r -a missing <<<"${CERTDEPLOY_IT_MISSING:-}"
    local kind
    for kind in lowkey akv; do
        [[ " ${missing[*]-} " == *" ${kind} "* ]] || kinds+=("${kind}")
    done
    local component target
    mapfile -t skipped < <(targets_needing "${missing[@]+"${missing[@]}"}")
    for target in "${skipped[@]+"${skipped[@]}"}"; do
        skip+=(--exclude "${target}")   # by name: an alias pattern that matches no selected target is an error
    done
    for kind in "${kinds[@]+"${kinds[@]}"}"; do
        # lowkey: https://127.0.0.1:<port> is a second vault (the role's key_vault source copies between two vaults).
        local -a start_opts=()
        if [[ "${kind}" == lowkey ]]; then start_opts=(--ip-vault); fi
        "${PY}" -m emulators start "${kind}" --state-dir "${EMULATOR_STATE}/${kind}" --owner-pid $$ --ttl 3600 \
            "${start_opts[@]+"${start_opts[@]}"}" >/dev/null
    done
    if [[ " ${kinds[*]-} " == *" lowkey "* && " ${missing[*]-} " != *" mitmproxy "* ]]; then
        start_fault_proxy
    fi
    # integration_config.yml: the emulators' connection facts as variables for the targets.
    "${PY}" - "${EMULATOR_STATE}" "${CERTDEPLOY_COLLECTION_DIR}/tests/integration/integration_config.yml" "${kinds[@]+"${kinds[@]}"}" <<'PY'
import json, os, subprocess, sys
state, out, kinds = sys.argv[1], sys.argv[2], sys.argv[3:]
config = {}
for kind in kinds:
    info = json.loads(subprocess.run([sys.executable, '-m', 'emulators', 'env',
                                      '--state-dir', '%s/%s' % (state, kind), '--json'], check=True, capture_output=True).stdout)
    prefix = 'kv_' if kind == 'lowkey' else 'akv_'
    for key in ('vault_url', 'ca_file', 'api_version', 'identity_endpoint', 'identity_header', 'authority_host',
                'tenant_id', 'client_id', 'client_secret'):
        if info.get(key) is not None:
            config[prefix + key] = str(info[key])
    if (info.get('vault_urls') or {}).get('127.0.0.1'):
        config['kv_second_vault_url'] = info['vault_urls']['127.0.0.1']
    print('[integration] %s emulator at %s' % (kind, info['vault_url']))
config.setdefault('kv_vault_url', '')  # no lowkey-vault: the targets that need none still run
proxy = os.path.join(state, 'proxy.json')
if os.path.exists(proxy):
    with open(proxy) as handle:
        config.update(json.load(handle))
with open(out, 'w') as handle:
    json.dump(config, handle, indent=2)  # JSON is YAML
PY
    cd "${CERTDEPLOY_COLLECTION_DIR}"
    local venv_python_version
    venv_python_version="$("${CERTDEPLOY_VENV}/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    local -a only=()
    read -r -a only <<<"${CERTDEPLOY_IT_TARGETS:-}"   # e.g. CERTDEPLOY_IT_TARGETS=azure_kv_fault_matrix
    local rc=0 runnable=1
    if [[ ${#only[@]} -gt 0 ]]; then
        runnable=0
        for target in "${only[@]}"; do
            [[ " ${skipped[*]-} " == *" ${target} "* ]] || runnable=1
        done
    fi
    if [[ ${runnable} -eq 1 ]]; then
        PATH="${CERTDEPLOY_VENV}/bin:${PATH}" "${CERTDEPLOY_VENV}/bin/ansible-test" integration --python "${venv_python_version}" --color no \
            "${skip[@]+"${skip[@]}"}" "${only[@]+"${only[@]}"}" || rc=$?
    fi
    if [[ ${#skipped[@]} -gt 0 ]]; then
        log "SKIPPED (${missing[*]} not available here): ${skipped[*]}"
        if [[ -n "${CERTDEPLOY_SKIPPED_FILE:-}" ]]; then
            printf '%s\n' "${skipped[@]}" >"${CERTDEPLOY_SKIPPED_FILE}"
        fi
        [[ ${rc} -ne 0 ]] || rc=77
    fi
    return "${rc}"
}

# Names of the selected targets whose aliases ask for one of the given components (emulator/<name>).
targets_needing() {
    [[ $# -gt 0 ]] || return 0
    local -a only=()
    read -r -a only <<<"${CERTDEPLOY_IT_TARGETS:-}"
    local aliases target component
    for aliases in "${CERTDEPLOY_COLLECTION_DIR}"/tests/integration/targets/*/aliases; do
        target="$(basename "$(dirname "${aliases}")")"
        if [[ ${#only[@]} -gt 0 && " ${only[*]} " != *" ${target} "* ]]; then
            continue
        fi
        for component in "$@"; do
            if grep -qx "emulator/${component}" "${aliases}"; then
                printf '%s\n' "${target}"
                break
            fi
        done
    done
}

# One compound command, read whole before it runs: editing this file during a run cannot derail it.
{ if [[ "${1:-}" == --inside ]]; then inside --inside; else outside; fi; exit $?; }
