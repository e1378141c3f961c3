#!/usr/bin/env bash
# Mutation testing of the deploy engine and the material parser (not part of scripts/test.sh or CI).
#
# Usage: scripts/mutation.sh [--tree DIR] [engine|material|all ...]      (default: engine)
#
# Mutates plugins/module_utils/engine/ and/or plugins/module_utils/material/ with mutmut 3 and runs
# the unit tests (tests/unit/, plain pytest) against every mutant. mutmut first records which
# tests reach each function and later runs only those for a mutant of that function, so the whole
# unit suite can be the test selection. It prints, per area: total mutants, killed, survived,
# timeouts and the score (killed/total), and writes the mutants not killed (file:line, function,
# the diff) to .cache/mutation/<tree>/<area>-report.txt (numbers: <area>-summary.json).
# One worker, under nice -n 10. Installs happen first (PyPI, into .cache/venv/mutation); the
# mutation run itself is in a network namespace with only loopback, so it cannot reach the network.
#
# Options and environment:
#   --tree DIR / MUTATION_TREE  the collection tree to mutate (default: this repository). E.g. the code
#                               at an older commit: git archive dcd7320 | tar -x -C /tmp/mut-before;
#                               scripts/mutation.sh --tree /tmp/mut-before engine material
#   MUTATION_TESTS              test paths relative to the tree, space-separated (default: tests/unit)
#   MUTATION_TIMEOUT_MULTIPLIER a mutant gets (its tests' measured time + MUTATION_TIMEOUT_CONSTANT)
#   MUTATION_TIMEOUT_CONSTANT   x multiplier x 2 CPU seconds, then counts as a timeout (default 5 and 2)
#   MUTATION_RUN_TIMEOUT        wall-clock limit in seconds for one area's whole run (default 5400)
#   MUTATION_NO_NETNS=1         run without the network namespace (only where one cannot be made)
#   PYENV_ROOT                  where to look for Python 3.13 / 3.11 (default ~/.pyenv)
#
# Each run starts from a fresh copy: .cache/mutation/<tree>/<area>/work/ansible_collections/certdeploy/cloud
# (mutmut's mutants/ is made next to it). `cd` there and `.cache/venv/mutation/bin/mutmut show NAME`
# or `mutmut browse` to look further. Mutmut 3 mutates function and method bodies only, not module-
# or class-level constants.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CACHE_DIR="${REPO_ROOT}/.cache"
VENV="${CACHE_DIR}/venv/mutation"
OUT_ROOT="${CACHE_DIR}/mutation"
COLLECTION_REL='ansible_collections/certdeploy/cloud'

MUTMUT_SPEC='mutmut==3.8.1'
declare -A CORE_SPEC=([3.13]='ansible-core>=2.21,<2.22' [3.11]='ansible-core>=2.19,<2.20')
TEST_TOOLS=('pytest>=8,<10' 'pytest-mock>=3.14,<4')

log() { printf '[mutation.sh] %s\n' "$*"; }
die() { printf '[mutation.sh] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
mutmut_version() { "${VENV}/bin/python" -c 'from importlib.metadata import version; print("mutmut", version("mutmut"))' 2>/dev/null || echo mutmut; }

# shellcheck source=scripts/lib/loopback_only.sh
. "${REPO_ROOT}/scripts/lib/loopback_only.sh"
# shellcheck source=scripts/lib/python.sh
. "${REPO_ROOT}/scripts/lib/python.sh"

# Nothing inherited may point the tests at a real cloud (the same rule as scripts/test.sh).
sanitize_environment() {
    clear_azure_environment
    pin_identity_to_loopback
    unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PYENV_VERSION
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
}

ensure_venv() {
    local tree="$1" version python want stamp="${VENV}/.certdeploy-requirements"
    local requirements="${tree}/tests/unit/requirements.txt"
    # Python 3.13 (ansible-core 2.21), else 3.11 (2.19): the versions CORE_SPEC names.
    python="$(find_python 3.13 3.11)" || die "neither Python 3.13 nor 3.11 found (looked in ${PYENV_ROOT:-${HOME}/.pyenv}/versions and PATH)"
    version="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    want="$(printf 'python: %s\n%s\n%s\n' "${python}" "${MUTMUT_SPEC}" "${CORE_SPEC[${version}]}")"
    want+=$'\n'"$(printf '%s\n' "${TEST_TOOLS[@]}")"
    [[ -f "${requirements}" ]] && want+=$'\n'"$(grep -v '^[[:space:]]*\(#\|$\)' "${requirements}")"

    if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" && -x "${VENV}/bin/mutmut" ]]; then
        log "Reusing ${VENV#"${REPO_ROOT}"/} ($(mutmut_version))"
        return 0
    fi
    log "Creating ${VENV#"${REPO_ROOT}"/} with ${python}: ${MUTMUT_SPEC} ${CORE_SPEC[${version}]} ${TEST_TOOLS[*]} + $(basename "${requirements}")"
    rm -rf "${VENV}"
    mkdir -p "$(dirname "${VENV}")"
    "${python}" -m venv "${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --upgrade pip
    local -a req=()
    [[ -f "${requirements}" ]] && req=(-r "${requirements}")
    "${VENV}/bin/python" -m pip install --quiet "${MUTMUT_SPEC}" "${CORE_SPEC[${version}]}" "${TEST_TOOLS[@]}" "${req[@]+"${req[@]}"}"
    printf '%s\n' "${want}" >"${stamp}.tmp"
    mv "${stamp}.tmp" "${stamp}"
}

# The command prefix that runs its arguments without network access (only loopback, brought up).
NETNS=()
choose_isolation() {
    local probe='ip link set lo up && exec true'
    if [[ "${MUTATION_NO_NETNS:-}" == 1 ]]; then
        log "MUTATION_NO_NETNS=1: running WITHOUT a network namespace (environment sanitised only)"
        NETNS=()
    elif command -v ip >/dev/null 2>&1 && unshare --net sh -c "${probe}" >/dev/null 2>&1; then
        NETNS=(unshare --net)
    elif command -v ip >/dev/null 2>&1 && unshare --map-root-user --net sh -c "${probe}" >/dev/null 2>&1; then
        NETNS=(unshare --map-root-user --net)
    else
        die "cannot create a network namespace (unshare --net / --map-root-user --net, and ip); set MUTATION_NO_NETNS=1 to run without one"
    fi
}

# Fresh copy of the tree in the ansible_collections/certdeploy/cloud layout, plus mutmut's setup.cfg.
prepare_workdir() {
    local tree="$1" area="$2" work="$3" test_path
    local -a selection=()
    rm -rf "${work}"
    mkdir -p "${work}/${COLLECTION_REL}"
    tar -C "${tree}" --exclude=./.git --exclude=./.cache --exclude=./tests/output --exclude=__pycache__ \
        --exclude='*.pyc' -cf - . | tar -C "${work}/${COLLECTION_REL}" -xf -
    for test_path in ${MUTATION_TESTS:-tests/unit}; do
        [[ -e "${work}/${COLLECTION_REL}/${test_path}" ]] || die "test path ${test_path} not found in ${tree}"
        selection+=("${COLLECTION_REL}/${test_path}")
    done
    [[ -d "${work}/${COLLECTION_REL}/plugins/module_utils/${area}" ]] || die "${tree} has no plugins/module_utils/${area}/"
    {
        printf '[mutmut]\n'
        printf 'source_paths = %s/plugins/module_utils/%s\n' "${COLLECTION_REL}" "${area}"
        printf 'also_copy = ansible_collections\n'
        printf 'pytest_add_cli_args_test_selection =\n'
        printf '    %s\n' "${selection[@]}"
        printf 'pytest_add_cli_args = -p no:cacheprovider\n'
        printf 'timeout_multiplier = %s\n' "${MUTATION_TIMEOUT_MULTIPLIER:-5}"
        printf 'timeout_constant = %s\n' "${MUTATION_TIMEOUT_CONSTANT:-2}"
        printf 'use_git_change_detection = false\n'
    } >"${work}/setup.cfg"
}

run_area() {
    local tree="$1" label="$2" area="$3"
    local out="${OUT_ROOT}/${label}" work="${OUT_ROOT}/${label}/${area}/work"
    local log_file="${OUT_ROOT}/${label}/${area}/mutmut.log" rc=0 started=${SECONDS} progress_pid
    prepare_workdir "${tree}" "${area}" "${work}"
    log "${area}: mutating ${tree}/plugins/module_utils/${area}/ against ${MUTATION_TESTS:-tests/unit} (log: ${log_file#"${REPO_ROOT}"/})"

    # mutmut redraws one progress line with \r; show its latest state once a minute.
    (
        while sleep 60; do
            [[ -f "${log_file}" ]] || continue
            printf '[mutation.sh] %s: %s\n' "${area}" "$(tail -c 400 "${log_file}" | tr '\r' '\n' | grep -a '/' | tail -n 1 || true)"
        done
    ) &
    progress_pid=$!
    set +e
    (
        cd "${work}"
        exec timeout --kill-after=30 "${MUTATION_RUN_TIMEOUT:-5400}" nice -n 10 \
            "${NETNS[@]+"${NETNS[@]}"}" sh -c '{ ! command -v ip >/dev/null || ip link set lo up 2>/dev/null; } && exec "$@"' sh \
            env PATH="${VENV}/bin:${PATH}" "${VENV}/bin/mutmut" run --max-children 1
    ) >"${log_file}" 2>&1 </dev/null
    rc=$?
    set -e
    kill "${progress_pid}" 2>/dev/null || true
    wait "${progress_pid}" 2>/dev/null || true
    if [[ ${rc} -ne 0 ]]; then
        tail -c 4000 "${log_file}" | tr '\r' '\n' | tail -n 40 >&2
        die "${area}: mutmut exited with ${rc} after $((SECONDS - started))s (124: MUTATION_RUN_TIMEOUT reached); see ${log_file}"
    fi

    (cd "${work}" && "${VENV}/bin/python" - "${area} (${label})" "${COLLECTION_REL}/" \
        "${out}/${area}-report.txt" "${out}/${area}-summary.json" <<'PY'
"""Summarise a finished mutmut run (cwd: the mutmut work directory): numbers and the mutants not killed."""
import ast
import difflib
import json
import sys
from collections import Counter
from pathlib import Path

import libcst as cst
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import read_mutant_function, read_mutants_module, read_original_function
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files
from mutmut.utils.format_utils import orig_function_and_class_names_from_key

label, prefix, report_path, summary_path = sys.argv[1:5]
NOT_KILLED = ('survived', 'no tests', 'suspicious', 'not checked', 'segfault', 'skipped')


def def_lines(source):
    """(class or None, function) -> line of its `def`, for top-level functions and methods."""
    lines = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines[(None, node.name)] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines[(node.name, item.name)] = item.lineno
    return lines


def def_index(code_lines):
    for index, line in enumerate(code_lines):
        if line.lstrip().startswith(('def ', 'async def ')):
            return index
    return 0


def order(item):
    name, _, number = item[0].rpartition('__mutmut_')
    return name, int(number) if number.isdigit() else 0


def relative(path):
    return str(path)[len(prefix):] if str(path).startswith(prefix) else str(path)


counts, per_file, not_killed = Counter(), {}, []
for path in sorted(walk_mutatable_files()):
    data = SourceFileMutationData(path=path)
    data.load()
    defs = def_lines(Path(path).read_text(encoding='utf-8'))
    module, file_counts = None, Counter()
    for key, exit_code in sorted(data.exit_code_by_key.items(), key=order):
        status = status_by_exit_code[exit_code]
        counts[status] += 1
        file_counts[status] += 1
        if status not in NOT_KILLED:
            continue
        module = module or read_mutants_module(path)
        orig = cst.Module([read_original_function(module, key)]).code.split('\n')
        mutant = cst.Module([read_mutant_function(module, key)]).code.split('\n')
        func, cls = orig_function_and_class_names_from_key(key)
        changed = next((i1 for tag, i1, _, _, _ in difflib.SequenceMatcher(a=orig, b=mutant, autojunk=False).get_opcodes()
                        if tag != 'equal'), None)
        base = defs.get((cls, func))
        line = base + changed - def_index(orig) if base is not None and changed is not None else '?'
        diff = [d for d in list(difflib.unified_diff(orig, mutant, lineterm='', n=0))[2:] if not d.startswith('@@')]
        not_killed.append({'status': status, 'file': relative(path), 'line': line,
                           'function': (cls + '.' if cls else '') + func, 'mutant': key.rpartition('.')[2], 'diff': diff})
    per_file[relative(path)] = file_counts

total = sum(counts.values())
killed = counts['killed'] + counts['caught by type check']
other = total - killed - counts['survived'] - counts['timeout'] - counts['no tests']
score = '%.1f%%' % (100.0 * killed / total) if total else 'n/a'
summary = {'area': label, 'total': total, 'killed': killed, 'survived': counts['survived'], 'timeouts': counts['timeout'],
           'no_tests': counts['no tests'], 'other': other, 'score': round(killed / total, 4) if total else None}
Path(summary_path).write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')

out = ['# mutmut: %s' % label,
       'total %d, killed %d, survived %d, timeouts %d, no tests %d, other %d; score (killed/total) %s'
       % (total, killed, counts['survived'], counts['timeout'], counts['no tests'], other, score),
       '', '## per file: killed/total, survived, timeouts']
for rel, c in per_file.items():
    if sum(c.values()):
        out.append('  %-48s %4d/%-4d survived %-4d timeouts %d' % (rel, c['killed'], sum(c.values()), c['survived'], c['timeout']))
out += ['', '## mutants not killed (%d): file:line  function  [mutant]  status, then the change (- original, + mutant)'
        % len(not_killed)]
for item in not_killed:
    out += ['', '%(file)s:%(line)s  %(function)s  [%(mutant)s]  %(status)s' % item] + ['    ' + d for d in item['diff']]
Path(report_path).write_text('\n'.join(out) + '\n', encoding='utf-8')

print('[mutation.sh] %s: total mutants %d, killed %d, survived %d, timeouts %d (no tests %d, other %d)'
      % (label, total, killed, counts['survived'], counts['timeout'], counts['no tests'], other))
print('[mutation.sh] %s: score (killed/total) %s' % (label, score))
PY
    )
    log "${area}: $((SECONDS - started))s; mutants not killed, with their diffs: ${out#"${REPO_ROOT}"/}/${area}-report.txt"
}

main() {
    local tree="${MUTATION_TREE:-${REPO_ROOT}}" label area
    local -a areas=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --tree) [[ $# -ge 2 ]] || die "--tree needs a directory"; tree="$2"; shift ;;
            --tree=*) tree="${1#--tree=}" ;;
            engine | material) areas+=("$1") ;;
            all) areas+=(engine material) ;;
            *) usage >&2; exit 2 ;;
        esac
        shift
    done
    [[ ${#areas[@]} -gt 0 ]] || areas=(engine)
    [[ -d "${tree}/plugins/module_utils" ]] || die "${tree} is not a certdeploy.cloud tree (no plugins/module_utils)"
    tree="$(cd "${tree}" && pwd -P)"
    if [[ "${tree}" == "${REPO_ROOT}" ]]; then
        label=repo
    else
        label="$(basename "${tree}")"
    fi

    sanitize_environment
    mkdir -p "${OUT_ROOT}"
    # One run at a time per checkout (shared venv and work directories).
    exec 8>"${OUT_ROOT}/.lock"
    if ! flock -n 8; then
        log "Another scripts/mutation.sh run holds ${OUT_ROOT}/.lock; waiting for it..."
        flock 8
    fi
    ensure_venv "${tree}"
    choose_isolation
    log "Tree: ${tree} (reports under ${OUT_ROOT#"${REPO_ROOT}"/}/${label}/); $(mutmut_version); network: ${NETNS[*]:-not isolated}"

    local -a summaries=()
    for area in "${areas[@]}"; do
        run_area "${tree}" "${label}" "${area}"
        summaries+=("${OUT_ROOT}/${label}/${area}-summary.json")
    done
    printf '\n'
    "${VENV}/bin/python" - "${summaries[@]}" <<'PY'
import json
import sys

for path in sys.argv[1:]:
    s = json.load(open(path))
    print('%-22s total %5d  killed %5d  survived %4d  timeouts %3d  score %s'
          % (s['area'], s['total'], s['killed'], s['survived'], s['timeouts'],
             '%.1f%%' % (100 * s['score']) if s['score'] is not None else 'n/a'))
PY
}

# One line, so that bash has read all it will run: editing this file during a run cannot derail it.
main "$@"; exit $?
