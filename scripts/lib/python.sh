# shellcheck shell=bash
# Finding a Python interpreter to build a virtual environment from, and making the shared test helpers
# (tests/integration/emulators and tests/integration/testlib) importable in one.
# Sourced by scripts/test.sh, scripts/demo.sh, scripts/docs.sh, scripts/lint.sh, scripts/mutation.sh,
# tests/integration/run.sh and benchmarks/run.sh.

# find_python VERSION [VERSION ...]
#   Print the path of a working, real (not a pyenv shim, not a virtual environment) interpreter of the first
#   VERSION (e.g. 3.13) that has one; exit status 1 when none has.  Callers name the versions they accept,
#   preferred first: e.g. `find_python 3.13 3.12`.
#   For each version: pyenv's builds under ${PYENV_ROOT:-~/.pyenv}/versions (highest patch first; skips
#   pyenv-virtualenv environments and -dev builds), then pythonX.Y on PATH.  A candidate counts only if it
#   runs and has venv and ensurepip (a pyenv shim answers to every pythonX.Y and fails for versions that are
#   not selected; Debian's python3 may lack ensurepip).  The path printed is the interpreter's own,
#   symlinks resolved, so a link (e.g. .cache/bin/python3.X) or a working shim yields the real interpreter.
find_python() {
    local version candidate real
    local pyenv_root="${PYENV_ROOT:-${HOME}/.pyenv}"
    for version in "$@"; do
        local -a candidates=()
        if [[ -d "${pyenv_root}/versions" ]]; then
            while IFS= read -r candidate; do
                candidates+=("${candidate}")
            done < <(compgen -G "${pyenv_root}/versions/${version}.[0-9]*/bin/python${version}" | sort -rV)
        fi
        if candidate="$(command -v "python${version}" 2>/dev/null)"; then
            candidates+=("${candidate}")
        fi
        for candidate in "${candidates[@]+"${candidates[@]}"}"; do
            [[ -x "${candidate}" ]] || continue
            if real="$("${candidate}" - "${version}" 2>/dev/null <<'PY'
import os, sys, venv, ensurepip  # noqa: F401  (venv and ensurepip: `python -m venv` must work)
if sys.prefix != sys.base_prefix or '%d.%d' % sys.version_info[:2] != sys.argv[1]:
    sys.exit(1)
print(os.path.realpath(sys.executable))
PY
            )" && [[ -n "${real}" ]]; then
                printf '%s\n' "${real}"
                return 0
            fi
        done
    done
    return 1
}


# expose_test_helpers VENV DIR
#   Put DIR, a tests/integration directory (its packages `emulators` and `testlib`), on the import path of every
#   Python run from the virtual environment VENV, through a .pth file in its site-packages.  ansible-test passes
#   no PYTHONPATH to integration targets, but the helpers they run use the venv's interpreter, as do the emulator
#   harness's own re-executions and the benchmark's: a .pth file reaches them all.
expose_test_helpers() {
    local venv="$1" dir="$2" site
    site="$("${venv}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    printf '%s\n' "${dir}" >"${site}/certdeploy-test-helpers.pth"
}
