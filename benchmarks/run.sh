#!/usr/bin/env bash
# certdeploy.cloud against azure.azcollection on one emulated vault under a production name.
#
#   ./benchmarks/run.sh                 the published run: writes docs/performance.md (33 minutes measured on 2 cores, certificate sets cached)
#   ./benchmarks/run.sh --quick         a development run (2 runs, fleets of 10 and 50, a 50-certificate throttled
#                                       rotation, no 10,000): writes .cache/bench/performance-quick.md
#   ./benchmarks/run.sh [--quick] --only GROUP[,GROUP]   some of peers, fleets, huge, throttled: writes
#                                       .cache/bench/performance-only.md (development; never docs/performance.md)
#
# Installs what it needs under .cache/bench/ on first use (PyPI): the peer from the `ansible` package with
# azure.azcollection's whole requirements list, and an environment for this collection with the same
# ansible-core. Needs root (a private mount + network namespace) and lowkey-vault (the integration
# harness resolves it: cache, build from the shared emulator sources, or its registry).
# Not part of scripts/test.sh: a benchmark measures, it does not pass or fail on times.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/lib/loopback_only.sh
. "${ROOT}/scripts/lib/loopback_only.sh"
# shellcheck source=scripts/lib/python.sh
. "${ROOT}/scripts/lib/python.sh"

QUICK=''
ONLY=''
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=--quick; shift ;;
        --only) ONLY="${2:?--only needs a comma-separated list of groups}"; shift 2 ;;
        *) echo "benchmarks: unknown argument $1 (--quick, --only GROUPS)" >&2; exit 2 ;;
    esac
done

ANSIBLE_VERSION=14.5.0   # the `ansible` package: ships azure.azcollection (and ansible-core 2.21)
CACHE="${ROOT}/.cache/bench"
PY="${CERTDEPLOY_BENCH_PYTHON:-}"
if [[ -z "${PY}" ]]; then
    PY="$(find_python 3.13 3.12)" || PY=''
fi
[[ -n "${PY}" ]] || { echo "benchmarks: Python 3.12+ not found (set CERTDEPLOY_BENCH_PYTHON)" >&2; exit 3; }
# The interpreter itself, not a link to it: scripts/test.sh re-creates .cache/bin while it runs.
PY="$(readlink -f "${PY}")"
[[ "$(id -u)" == 0 ]] || { echo "benchmarks: needs root (private mount + network namespace)" >&2; exit 3; }
mkdir -p "${CACHE}"

pip_quiet() { "$1/bin/pip" install -q --disable-pip-version-check "${@:2}"; }

# The peer, unmodified: ansible==${ANSIBLE_VERSION}, then the collection's own requirements.txt, whole.
# One constraint on top (benchmarks/peer-constraints.txt): azure-keyvault-certificates 4.10.0, inside the range
# the peer's requirements allow, whose default api-version 7.6 is one lowkey-vault 3.4.33 serves.
PEER="${CACHE}/venv-peer"
PEER_STAMP="${PEER}/.bench-${ANSIBLE_VERSION}-$(sha256sum "${ROOT}/benchmarks/peer-constraints.txt" | cut -c1-12)"
if [[ ! -f "${PEER_STAMP}" ]]; then
    rm -rf "${PEER}"
    started=${SECONDS}
    "${PY}" -m venv "${PEER}"
    pip_quiet "${PEER}" "ansible==${ANSIBLE_VERSION}"
    AZREQ="$("${PEER}/bin/python" -c 'import ansible_collections.azure.azcollection as c, os; print(os.path.join(list(c.__path__)[0], "requirements.txt"))')"
    pip_quiet "${PEER}" -r "${AZREQ}" -c "${ROOT}/benchmarks/peer-constraints.txt"
    echo "$((SECONDS - started))" >"${PEER}/.bench-install-seconds"
    touch "${PEER_STAMP}"
fi

# This collection: ansible-core as the peer's environment has it, and requirements.txt.
CORE_VERSION="$("${PEER}/bin/python" -c 'import ansible.release as r; print(r.__version__)')"
OURS="${CACHE}/venv-ours"
OURS_STAMP="${OURS}/.bench-${CORE_VERSION}-$(sha256sum "${ROOT}/requirements.txt" | cut -c1-12)"
if [[ ! -f "${OURS_STAMP}" ]]; then
    rm -rf "${OURS}"
    started=${SECONDS}
    "${PY}" -m venv "${OURS}"
    pip_quiet "${OURS}" "ansible-core==${CORE_VERSION}" -r "${ROOT}/requirements.txt"
    echo "$((SECONDS - started))" >"${OURS}/.bench-install-seconds"
    touch "${OURS_STAMP}"
fi
# bench.py and lowkey_prodname.py import the emulator harness and testlib from tests/integration.
expose_test_helpers "${OURS}" "${ROOT}/tests/integration"

# The throttling proxy: mitmdump (its own environment: it pins its own dependencies), the version the
# integration tests use, with the project's addon tests/integration/faults/throttle_addon.py.
MITMPROXY_VERSION="$(sed -n 's/^MITMPROXY_VERSION=\([0-9.]*\).*/\1/p' "${ROOT}/tests/integration/run.sh")"
MITM="${CACHE}/venv-mitmproxy"
if [[ ! -x "${MITM}/bin/mitmdump" ]] || ! "${MITM}/bin/mitmdump" --version 2>/dev/null | grep -q "Mitmproxy: ${MITMPROXY_VERSION}"; then
    rm -rf "${MITM}"
    if ! { "${PY}" -m venv "${MITM}" && pip_quiet "${MITM}" "mitmproxy==${MITMPROXY_VERSION}"; }; then
        echo "benchmarks: mitmproxy ${MITMPROXY_VERSION} could not be installed: the throttled rotation is skipped" >&2
        rm -rf "${MITM}"
    fi
fi
MITMDUMP=''
[[ -x "${MITM}/bin/mitmdump" ]] && MITMDUMP="${MITM}/bin/mitmdump"
THROTTLE_ADDON="${CERTDEPLOY_BENCH_THROTTLE_ADDON:-${ROOT}/tests/integration/faults/throttle_addon.py}"
[[ -f "${THROTTLE_ADDON}" ]] || { echo "benchmarks: ${THROTTLE_ADDON} not found: the throttled rotation is skipped" >&2; MITMDUMP=''; }

# This collection from the working tree, as ansible-galaxy would lay it out.
COLLECTIONS="${CACHE}/collections"
rm -rf "${COLLECTIONS}"
mkdir -p "${COLLECTIONS}/ansible_collections/certdeploy/cloud" "${CACHE}/collections-none"
tar -C "${ROOT}" --exclude=./.cache --exclude=./.git --exclude=./benchmarks -cf - . | tar -C "${COLLECTIONS}/ansible_collections/certdeploy/cloud" -xf -

CONFIG="${CACHE}/config.json"
"${OURS}/bin/python" "${ROOT}/benchmarks/facts.py" --root "${ROOT}" --peer "${PEER}" --ours "${OURS}" \
    --collections-ours "${COLLECTIONS}" --collections-peer "${CACHE}/collections-none" --ansible-version "${ANSIBLE_VERSION}" \
    --mitmdump "${MITMDUMP}" --throttle-addon "${THROTTLE_ADDON}" >"${CONFIG}"

clear_azure_environment
pin_identity_to_loopback
trap_proxies
SUFFIX="${QUICK:+-quick}${ONLY:+-only}"
RESULTS="${CACHE}/results${SUFFIX}.json"
OUT="${ROOT}/docs/performance.md"
[[ -n "${SUFFIX}" ]] && OUT="${CACHE}/performance${SUFFIX}.md"
started=${SECONDS}
# Certificate sets are made once and kept (certsets.py): 10,000 RSA keys take minutes to generate.
"${OURS}/bin/python" "${ROOT}/benchmarks/bench.py" run --work-dir "${CACHE}/work" --config "${CONFIG}" --results "${RESULTS}" \
    --material-cache "${CACHE}/material" --only "${ONLY}" ${QUICK}
"${OURS}/bin/python" "${ROOT}/benchmarks/report.py" --results "${RESULTS}" --out "${OUT}" --seconds "$((SECONDS - started))"
rm -rf "${CACHE}/work"
echo "benchmarks: wrote ${OUT#"${ROOT}"/} in $((SECONDS - started)) s${SUFFIX:+ (development numbers, not the published ones)}"
