#!/usr/bin/env bash
# Integration suite: real ansible-playbook runs of the collection's targets
# (tests/integration/targets/) against a Key Vault emulator on loopback.
#
# Called by scripts/test.sh with CERTDEPLOY_VENV (ansible-core 2.21 venv) and
# CERTDEPLOY_COLLECTION_DIR (the ansible_collections/certdeploy/cloud mirror).
#
# 1. Installs the integration requirements into the venv and the pinned emulator
#    (tests/integration/emulators/versions.env) while the network is still there.
# 2. As root, re-enters itself in a new network namespace with only loopback up,
#    so a stray request to 169.254.169.254 or any public host fails at once, and
#    proves that guard before running anything.
# 3. Starts lowkey-vault (and, where installable, the Go Key Vault + Entra emulators,
#    which validate real tokens) on 127.0.0.1, writes tests/integration/integration_config.yml
#    in the mirror, runs `ansible-test integration`, stops the emulators.
#
# Targets whose emulator cannot be installed on this machine are excluded, and the run says so.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
export HARNESS="${HERE}/emulators/harness.py"
: "${CERTDEPLOY_VENV:?run through scripts/test.sh integration}"
: "${CERTDEPLOY_COLLECTION_DIR:?run through scripts/test.sh integration}"
PY="${CERTDEPLOY_VENV}/bin/python"

log() { printf '[integration] %s\n' "$*"; }

# Identity endpoints pinned to loopback: nothing may fall back to the instance metadata service.
pin_identity_environment() {
    local name
    for name in $(compgen -e); do
        case "${name}" in AZURE_* | IDENTITY_* | IMDS_ENDPOINT | MSI_*) unset "${name}" ;; esac
    done
    export AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:9   # IMDS base URL override
    export IMDS_ENDPOINT=http://127.0.0.1:9
    export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1
}

outside() {
    log "Installing integration requirements into ${CERTDEPLOY_VENV#"${PWD}"/}"
    "${PY}" -m pip install --quiet --disable-pip-version-check -r "${HERE}/requirements.txt"
    # Emulator targets need an emulator; the bad-input corpus needs none and always runs.
    local kind rc
    for kind in lowkey akv; do
        set +e
        "${PY}" "${HARNESS}" install "${kind}"
        rc=$?
        set -e
        case ${rc} in
            0) CERTDEPLOY_IT_EMULATORS="${CERTDEPLOY_IT_EMULATORS:-} ${kind}" ;;
            3) log "The ${kind} emulator cannot be installed here (see the line above): its targets will be SKIPPED." ;;
            *) exit "${rc}" ;;
        esac
    done
    export CERTDEPLOY_IT_EMULATORS

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

stop_emulators() {
    local dir
    for dir in "${EMULATOR_STATE}"/*/; do
        "${PY}" "${HARNESS}" stop --state-dir "${dir}" >/dev/null 2>&1 || true
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
    local -a kinds=() skip=()
    read -r -a kinds <<<"${CERTDEPLOY_IT_EMULATORS:-}"
    [[ " ${kinds[*]-} " == *" lowkey "* ]] || skip+=(--exclude azure_kv_certificate_deploy)
    [[ " ${kinds[*]-} " == *" akv "* ]] || skip+=(--exclude azure_kv_credential_modes)
    local kind
    for kind in "${kinds[@]+"${kinds[@]}"}"; do
        "${PY}" "${HARNESS}" start "${kind}" --state-dir "${EMULATOR_STATE}/${kind}" --owner-pid $$ --ttl 3600 >/dev/null
    done
    # integration_config.yml: the emulators' connection facts as variables for the targets.
    "${PY}" - "${EMULATOR_STATE}" "${CERTDEPLOY_COLLECTION_DIR}/tests/integration/integration_config.yml" "${kinds[@]+"${kinds[@]}"}" <<'PY'
import json, os, subprocess, sys
state, out, kinds = sys.argv[1], sys.argv[2], sys.argv[3:]
config = {}
for kind in kinds:
    info = json.loads(subprocess.run([sys.executable, os.environ['HARNESS'], 'env',
                                      '--state-dir', '%s/%s' % (state, kind), '--json'], check=True, capture_output=True).stdout)
    prefix = 'kv_' if kind == 'lowkey' else 'akv_'
    for key in ('vault_url', 'ca_file', 'api_version', 'identity_endpoint', 'identity_header', 'authority_host',
                'tenant_id', 'client_id', 'client_secret'):
        if info.get(key) is not None:
            config[prefix + key] = str(info[key])
    print('[integration] %s emulator at %s' % (kind, info['vault_url']))
config.setdefault('kv_vault_url', '')  # no lowkey-vault: the targets that need none still run
with open(out, 'w') as handle:
    json.dump(config, handle, indent=2)  # JSON is YAML
PY
    cd "${CERTDEPLOY_COLLECTION_DIR}"
    PATH="${CERTDEPLOY_VENV}/bin:${PATH}" "${CERTDEPLOY_VENV}/bin/ansible-test" integration --python 3.13 --color no "${skip[@]+"${skip[@]}"}"
    if [[ ${#skip[@]} -gt 0 ]]; then
        log "PARTIAL: these targets were SKIPPED because their emulator is not installable here:$(printf ' %s' "${skip[@]}" | sed 's/ --exclude//g')"
    fi
}

if [[ "${1:-}" == --inside ]]; then
    inside --inside
else
    outside
fi
