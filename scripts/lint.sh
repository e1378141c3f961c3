#!/usr/bin/env bash
# ansible-lint, production profile, on the role and the example playbooks.
#
# Usage: scripts/lint.sh [extra ansible-lint options]
#
# ansible-lint (pinned below) is installed from PyPI into .cache/venv/lint on first use and reused
# afterwards. The run itself is offline: nothing is installed from Galaxy (--offline); the collection
# under test is this checkout, made visible to ansible-lint and ansible-playbook --syntax-check through
# a temporary ansible_collections/certdeploy/cloud link. Configuration: .ansible-lint.
#
# Environment:
#   CERTDEPLOY_LINT_VENV  virtual environment to use (default .cache/venv/lint)
#   PYENV_ROOT            where to look for Python interpreters (default ~/.pyenv)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${CERTDEPLOY_LINT_VENV:-${REPO_ROOT}/.cache/venv/lint}"
ANSIBLE_LINT_SPEC='ansible-lint==26.10.1'
LINTED=(roles/azure_kv_certificate examples/)

log() { printf '[lint.sh] %s\n' "$*"; }
# shellcheck source=scripts/lib/python.sh
. "${REPO_ROOT}/scripts/lib/python.sh"

if ! "${VENV}/bin/python" -c "
import sys
from importlib.metadata import version
sys.exit(version('ansible-lint') != '${ANSIBLE_LINT_SPEC#*==}')" >/dev/null 2>&1; then
    python="$(find_python 3.13 3.12 3.11)" || { log 'ERROR: Python 3.11-3.13 not found'; exit 1; }
    log "Creating ${VENV#"${REPO_ROOT}"/} with ${python}: ${ANSIBLE_LINT_SPEC}"
    rm -rf "${VENV}"
    "${python}" -m venv "${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "${ANSIBLE_LINT_SPEC}"
fi

collections="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-lint.XXXXXX")"
trap 'rm -rf "${collections}"' EXIT
mkdir -p "${collections}/ansible_collections/certdeploy"
ln -s "${REPO_ROOT}" "${collections}/ansible_collections/certdeploy/cloud"

cd "${REPO_ROOT}"
log "Running: ansible-lint --offline --profile production $* ${LINTED[*]}"
PATH="${VENV}/bin:${PATH}" ANSIBLE_COLLECTIONS_PATH="${collections}" \
    "${VENV}/bin/ansible-lint" --offline --profile production "$@" "${LINTED[@]}"
