#!/usr/bin/env bash
# Changelog and plugin documentation checks.
#
# Usage: scripts/docs.sh            check; exit non-zero on any finding
#        scripts/docs.sh --update   the same, but write the regenerated CHANGELOG.rst into the checkout
#
# 1. `antsibull-changelog lint` on every fragment in changelogs/fragments/.
# 2. CHANGELOG.rst is regenerated and must equal the committed one. While the version in galaxy.yml is not
#    yet a release in changelogs/changelog.yaml, the regeneration is `antsibull-changelog release` for that
#    version on a throw-away copy (the fragments stay in the checkout; the release date only goes into the
#    copy's changelog.yaml, which CHANGELOG.rst does not show, so the output is the same on every day).
#    Once that version is released (changelog.yaml committed), it is `antsibull-changelog generate`.
#    A warning from antsibull-changelog (for example a release without a release_summary) is a finding.
# 3. `antsibull-docs lint-collection-docs --plugin-docs`: schema, markup and RST of every module and role.
# 4. Every Ansible example (a ```yaml play or task list) in README.md and docs/*.md passes
#    `ansible-playbook --syntax-check` against this collection.
#
# The tools (pinned below) are installed from PyPI into .cache/venv/docs on first use and reused afterwards;
# the checks themselves are offline. They run on a temporary copy of the files git would track (tracked and
# untracked, not ignored) under ansible_collections/certdeploy/cloud, the layout the tools need, with
# ANSIBLE_COLLECTIONS_PATH pointing only there, so no installed copy of the collection is seen.
#
# Environment:
#   CERTDEPLOY_DOCS_VENV  virtual environment to use (default .cache/venv/docs)
#   PYENV_ROOT            where to look for Python interpreters (default ~/.pyenv)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${CERTDEPLOY_DOCS_VENV:-${REPO_ROOT}/.cache/venv/docs}"
# The antsibull tools and the libraries whose versions change what they report, pinned together.
SPECS=(
    'antsibull-changelog==0.36.0'
    'antsibull-docs==2.28.0'
    'antsibull-core==3.6.0'
    'antsibull-docs-parser==1.2.3'
    'antsibull-docutils==1.4.1'
    'antsibull-fileutils==1.5.3'
    'rstcheck-core==1.3.2'
    'docutils==0.23'
    'ansible-core==2.21.5'
)
# Any fixed date: it only lands in the throw-away copy's changelog.yaml.
RELEASE_DATE='2026-01-01'
UPDATE=false

log() { printf '[docs.sh] %s\n' "$*"; }
# shellcheck source=scripts/lib/python.sh
. "${REPO_ROOT}/scripts/lib/python.sh"
die() { log "ERROR: $*"; exit 1; }

case "${1:-}" in
    '') ;;
    --update) UPDATE=true ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (use --update or --help)" ;;
esac

ensure_venv() {
    local stamp="${VENV}/.certdeploy-specs" want python
    want="$(printf '%s\n' "${SPECS[@]}")"
    if [[ -x "${VENV}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]] \
            && "${VENV}/bin/python" -c 'import antsibull_changelog, antsibull_docs, ansible' >/dev/null 2>&1; then
        return 0
    fi
    python="$(find_python 3.13 3.12)" || die 'Python 3.13 or 3.12 not found (ansible-core 2.21, pinned above, needs 3.12+)'
    log "Creating ${VENV#"${REPO_ROOT}"/} with ${python}: ${SPECS[*]}"
    rm -rf "${VENV}"
    "${python}" -m venv "${VENV}"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "${SPECS[@]}"
    printf '%s\n' "${want}" >"${stamp}"
}

ensure_venv

work="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-docs.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
copy="${work}/ansible_collections/certdeploy/cloud"
mkdir -p "${copy}" "${work}/home"

# The files git would track, as they are in the working tree (new, uncommitted fragments included).
"${VENV}/bin/python" - "${REPO_ROOT}" "${copy}" <<'PY'
import os
import shutil
import subprocess
import sys

source, dest = sys.argv[1], sys.argv[2]
out = subprocess.run(['git', '-C', source, 'ls-files', '-z', '-c', '-o', '--exclude-standard'],
                     check=True, stdout=subprocess.PIPE).stdout.decode('utf-8', 'surrogateescape')
for rel in sorted(set(filter(None, out.split('\0')))):
    src = os.path.join(source, rel)
    if rel.startswith(('.cache/', 'tests/output/')) or not os.path.lexists(src):
        continue  # caches, test results, files deleted in the working tree
    dst = os.path.join(dest, rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    elif os.path.isfile(src):
        shutil.copy2(src, dst)
PY

export PATH="${VENV}/bin:${PATH}"
export ANSIBLE_COLLECTIONS_PATH="${work}" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export ANSIBLE_HOME="${work}/home" ANSIBLE_LOCAL_TEMP="${work}/home/tmp"
findings=0
cd "${copy}"

log 'Running: antsibull-changelog lint'
antsibull-changelog lint || findings=$((findings + 1))

version="$(python -c 'import sys, yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')"
released="$(python - "${version}" <<'PY'
import os
import sys

import yaml

path = 'changelogs/changelog.yaml'
releases = (yaml.safe_load(open(path)) or {}).get('releases') or {} if os.path.exists(path) else {}
print('yes' if sys.argv[1] in releases else 'no')
PY
)"
if [[ "${released}" == yes ]]; then
    command=(antsibull-changelog generate)
else
    command=(antsibull-changelog release --version "${version}" --date "${RELEASE_DATE}")
fi
log "Running: ${command[*]}  (version ${version} from galaxy.yml; released: ${released})"
if "${command[@]}" >"${work}/changelog.out" 2>&1; then
    cat "${work}/changelog.out"
    # antsibull's own warnings start with "WARNING "; ansible-doc's "[WARNING]: ..." lines about ansible-core's
    # internal collections are not about this collection.
    if grep -q '^WARNING ' "${work}/changelog.out"; then
        log 'FINDING: antsibull-changelog warned (see above)'
        findings=$((findings + 1))
    fi
    if [[ "${UPDATE}" == true ]]; then
        if ! cmp -s "${copy}/CHANGELOG.rst" "${REPO_ROOT}/CHANGELOG.rst"; then
            cp "${copy}/CHANGELOG.rst" "${REPO_ROOT}/CHANGELOG.rst"
            log 'Wrote CHANGELOG.rst'
        fi
    elif [[ ! -f "${REPO_ROOT}/CHANGELOG.rst" ]]; then
        log 'FINDING: CHANGELOG.rst is missing; run scripts/docs.sh --update and commit it'
        findings=$((findings + 1))
    elif ! diff -u --label 'CHANGELOG.rst (committed)' --label 'CHANGELOG.rst (from changelogs/)' \
            "${REPO_ROOT}/CHANGELOG.rst" "${copy}/CHANGELOG.rst"; then
        log 'FINDING: CHANGELOG.rst is not current; run scripts/docs.sh --update and commit it'
        findings=$((findings + 1))
    fi
else
    cat "${work}/changelog.out"
    log "FINDING: ${command[*]} failed"
    findings=$((findings + 1))
fi

log 'Running: antsibull-docs lint-collection-docs --plugin-docs'
antsibull-docs lint-collection-docs --plugin-docs "${copy}" || findings=$((findings + 1))

# The Ansible examples in README.md and docs/: every ```yaml block that is a play or a task list (an indented
# task list continues the play before it) must pass `ansible-playbook --syntax-check`, which also resolves every
# module and role name against this collection.
log 'Running: ansible-playbook --syntax-check on the YAML examples of README.md and docs/*.md'
if ! python - "${copy}" "${work}/examples" <<'PY'
import glob
import os
import re
import subprocess
import sys
import textwrap

import yaml

copy, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
failed = checked = 0
for doc in ['README.md'] + sorted(os.path.relpath(p, copy) for p in glob.glob(os.path.join(copy, 'docs', '*.md'))):
    with open(os.path.join(copy, doc)) as handle:
        text = handle.read()
    play = None
    for number, match in enumerate(re.finditer(r'^```yaml\n(.*?)^```', text, re.M | re.S), 1):
        block = match.group(1)
        line = text.count('\n', 0, match.start()) + 1
        if block.startswith((' ', '\t')) and play is not None:  # more tasks of the play before (same page)
            play = play + '\n' + block
            source = play
        else:
            try:
                data = yaml.safe_load(block)
            except yaml.YAMLError as exc:
                print('%s:%d: not valid YAML: %s' % (doc, line, exc))
                failed += 1
                continue
            if not (isinstance(data, list) and data and all(isinstance(item, dict) for item in data)):
                continue  # not Ansible (an execution-environment file, a requirements list, ...)
            if all('hosts' in item for item in data):
                play = source = block
            else:
                play = None
                source = '- name: Example\n  hosts: localhost\n  gather_facts: false\n  tasks:\n' + textwrap.indent(block, '    ')
        path = os.path.join(out, '%s-%d.yml' % (doc.replace('/', '_'), number))
        with open(path, 'w') as handle:
            handle.write(source)
        checked += 1
        done = subprocess.run(['ansible-playbook', '--syntax-check', '-i', 'localhost,', path],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if done.returncode != 0:
            print('%s:%d: ansible-playbook --syntax-check failed:\n%s' % (doc, line, done.stdout.strip()))
            failed += 1
print('[docs.sh] %d example(s) checked, %d failed' % (checked, failed))
sys.exit(1 if failed or not checked else 0)
PY
then
    findings=$((findings + 1))
fi

if [[ ${findings} -gt 0 ]]; then
    log "FAILED: ${findings} check(s) had findings"
    exit 1
fi
log 'passed: fragments lint clean, CHANGELOG.rst current, plugin docs lint clean, examples parse'
exit 0
