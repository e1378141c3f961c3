#!/usr/bin/env bash
# AWX / Automation Platform, run for real: awx_job.py runs project/deploy.yml through ansible-runner
# the way an AWX job template does (private data directory, inventory script, env/envvars with only
# the Azure Resource Manager credential's variables, env/extravars, env/settings), three jobs in a row,
# and searches every artifact for the client secret and key bytes.
#
# Outside: tests/integration/emulators/prodnames.py builds a private mount + network namespace where
# https://<vault>.vault.azure.net and login.microsoftonline.com are the token-validating Go emulator
# pair on loopback (nothing else resolves, only lo), runs this script again with --inside, and stops
# the pair. Needs root; exit 3 from prodnames.py means this machine cannot build it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PY="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}"  # tests/integration is on its import path (run.sh)

if [[ "${1:-}" == --inside ]]; then
    : "${PRODNAMES_FACTS:?--inside is started by python -m emulators.prodnames run}"
    exec "${PY}" "${HERE}/awx_job.py" "$(dirname "${PRODNAMES_FACTS}")/awx"
fi

# ansible-test copies run.sh's integration_config.yml here: it names the Go pair's binaries.
config="${HERE}/../../integration_config.yml"
[[ -f "${config}" ]] || config=''
work="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-awx.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
started=${SECONDS}
rc=0
"${PY}" -m emulators.prodnames run --work-dir "${work}" --vault-name certdeploy-awx \
    ${config:+--integration-config "${config}"} -- "${BASH}" "${HERE}/runme.sh" --inside || rc=$?
case ${rc} in
    0) echo "awx_runner_job: passed in $((SECONDS - started)) s" ;;
    3) echo "awx_runner_job: FAILED: this machine cannot build the namespace or has no Go emulators (reason above)" >&2 ;;
    *) echo "awx_runner_job: FAILED (exit ${rc}) after $((SECONDS - started)) s" >&2 ;;
esac
exit "${rc}"
