#!/usr/bin/env bash
# Packaging: build the tarball, check its file list, install it offline into a fresh path and deploy
# from there alone.
#
# 1. tarball.py copies the collection under test, plants decoys (caches, test output, byte code,
#    earlier tarballs, emulator secrets, key files made now) and runs `ansible-galaxy collection
#    build`; the file list must hold none of them, no PEM private key, and every shipped file.
# 2. `ansible-galaxy collection install <tarball> -p <fresh>` (no dependencies: nothing is fetched).
# 3. deploy.yml runs from a directory of its own with ANSIBLE_COLLECTIONS_PATH=<fresh> only; at -vvvv
#    Ansible names the path of each collection it loads ("Loading collection ... from") and of each
#    module file it sends: every certdeploy.cloud one must be in <fresh>.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PY="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}"
# ansible-test copies run.sh's integration_config.yml (lowkey-vault's connection facts) here.
config="${HERE}/../../integration_config.yml"
started=${SECONDS}
work="$(mktemp -d "${TMPDIR:-/tmp}/certdeploy-tarball.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

source_root="$("${PY}" "${HERE}/tarball.py" locate)"
tarball="$("${PY}" "${HERE}/tarball.py" build "${source_root}" "${work}")"

fresh="${work}/fresh"
mkdir -p "${fresh}"
# Only the fresh path is configured: the copy ansible-test put on the path must not make this a no-op.
env -u ANSIBLE_COLLECTIONS_PATHS ANSIBLE_COLLECTIONS_PATH="${fresh}" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
    ansible-galaxy collection install "${tarball}" -p "${fresh}" --offline
"${PY}" "${HERE}/tarball.py" installed "${fresh}"

"${PY}" "${HERE}/../setup_certdeploy/files/make_pki.py" "${work}/pki" >"${work}/pki.json"
mkdir -p "${work}/play"
cp "${HERE}/deploy.yml" "${work}/play/deploy.yml"
cp "${HERE}/../setup_certdeploy/files/vault_state.py" "${work}/play/vault_state.py"
printf 'localhost ansible_connection=local ansible_python_interpreter=%s\n' "${PY}" >"${work}/play/inventory"
cd "${work}/play"
# Only the fresh path: neither ansible-test's collection root nor Python's sys.path is searched.
env -u ANSIBLE_COLLECTIONS_PATHS ANSIBLE_COLLECTIONS_PATH="${fresh}" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
    ansible-galaxy collection list --format json >"${work}/list.json"
env -u ANSIBLE_COLLECTIONS_PATHS ANSIBLE_COLLECTIONS_PATH="${fresh}" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
    ansible-playbook -vvvv -i inventory deploy.yml -e "@${config}" -e "pki_file=${work}/pki.json" \
    -e "vault_state_py=${work}/play/vault_state.py" "$@" | tee "${work}/play.log"

"${PY}" - "${fresh}" "${work}/list.json" "${work}/play.log" <<'PY'
import json, re, sys
fresh, listing, log = sys.argv[1], sys.argv[2], sys.argv[3]
paths = json.load(open(listing))
assert list(paths) == [fresh + '/ansible_collections'] and list(paths[fresh + '/ansible_collections']) == ['certdeploy.cloud'], paths
text = open(log).read()
root = fresh + '/ansible_collections/certdeploy/cloud'
loaded = re.findall(r'Loading collection certdeploy\.cloud from (\S+)', text)
assert loaded and set(p.rstrip('/') for p in loaded) == {root}, loaded
modules = [p for p in re.findall(r'Using module file (\S+)', text) if '/certdeploy/cloud/' in p]
assert all(p.startswith(root + '/plugins/modules/') for p in modules), modules
print('collection_tarball: certdeploy.cloud loaded %d time(s), %d module file(s) sent, all from %s' % (len(loaded), len(modules), root))
PY
echo "collection_tarball: passed in $((SECONDS - started)) s"
