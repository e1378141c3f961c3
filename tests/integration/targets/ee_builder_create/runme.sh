#!/usr/bin/env bash
# Execution environment, offline: `ansible-builder create` renders the example definition
# (examples/execution-environment/) into a build context, and check_ee.py checks that the image it
# describes would hold this collection's Python and system requirements (read from requirements.txt
# and bindep.txt at run time), by running the context's own introspection over the built collection.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PY="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}"
started=${SECONDS}
work="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-ee.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
root="$("${PY}" "${HERE}/../collection_tarball/tarball.py" locate)"
"${PY}" "${HERE}/check_ee.py" "${root}" "${root}/examples/execution-environment" "${work}"
echo "ee_builder_create: passed in $((SECONDS - started)) s"
