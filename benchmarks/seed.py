# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put a fleet into a vault with one import request per certificate: the set-up of bench.py's 10,000 no-op.

    python seed.py ARGS_JSON OUT_JSON [--threads N]

ARGS_JSON is what deploy_many would be given (vault_url, api_version, credential_mode, certificates with
certificate_name, certificate_path, private_key_path, chain_path). A first import through deploy_many costs four
requests per certificate (read, import, read back, read the stored chain) plus the key check and the stored-chain
check on the client, which a set-up does not need. This sends only the import, and sends exactly what
deploy_many's import sends, built by the collection's own code: the material loaded by the frontend's
``load_material``, the settings by ``keyvault_settings``, the tags by ``desired_tags`` with the material record
(``Record.of_material``), and the request by ``KeyVaultTarget.import_material`` (the adapter's import: PKCS#12
payload, policy, content type, ``preserve_order``, tags, enabled). One difference, in transit only: the PKCS#12's
password is stretched with 1 PBKDF2 round instead of 10,000 (``build_pkcs12`` is replaced in this process; a vault
stores the key, the certificate and the chain, not the transport encryption), which spares the emulator 10,000
slow PKCS#12 decryptions. lowkey-vault refuses a PKCS#12 without a password, or that would have been used. bench.py then runs the no-op
through ansible-playbook, which checks that no certificate changed: a seeded vault that deploy_many would not
take for its own shows up there as a problem, not as a faster no-op.

Writes {seconds, certificates, failed, threads}. No key material leaves this process.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

PACKAGE = 'ansible_collections.certdeploy.cloud.plugins.module_utils'


def fast_pkcs12(material, password, friendly_name=None):
    """build_pkcs12 with 1 PBKDF2 round: the same algorithms, the same content, cheap to decrypt."""
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.serialization import pkcs12  # pylint: disable=import-outside-toplevel
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(1)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
                  .build(password.encode() if isinstance(password, str) else password))
    return pkcs12.serialize_key_and_certificates(friendly_name, material.key, material.leaf, material.chain or None, encryption)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('args_json')
    parser.add_argument('out_json')
    parser.add_argument('--threads', type=int, default=10)
    options = parser.parse_args()
    with open(options.args_json, encoding='utf-8') as handle:
        params = json.load(handle)
    deploy = importlib.import_module(PACKAGE + '.frontend.deploy')
    kv_options = importlib.import_module(PACKAGE + '.frontend.keyvault_options')
    connection = importlib.import_module(PACKAGE + '.targets.azure_kv.connection')
    target = importlib.import_module(PACKAGE + '.targets.azure_kv.target')
    record = importlib.import_module(PACKAGE + '.engine.record')
    tags = importlib.import_module(PACKAGE + '.engine.tags')
    certificate = importlib.import_module(PACKAGE + '.material.certificate')
    certificate.build_pkcs12 = fast_pkcs12

    env = os.environ
    pool = connection.ConnectionPool(env)
    shared = dict((k, params[k]) for k in ('vault_url', 'api_version', 'credential_mode') if k in params)
    failures = []
    lock = threading.Lock()

    def seed(item):
        item_params = dict(shared, **item)
        try:
            settings = kv_options.keyvault_settings(item_params, env)
            material = deploy.load_material(item_params)
            wanted = record.Record.of_material(material, settings.content_type, settings.exportable)
            item_tags = tags.desired_tags({}, item.get('certificate_id') or item['certificate_name'], wanted)
            vault = target.KeyVaultTarget(settings, env=env, connection=pool.connection(settings))
            vault.import_material(material, item_tags, True)
        except Exception as exc:  # pylint: disable=broad-except
            with lock:
                failures.append('%s: %s' % (item['certificate_name'], exc))

    items = params['certificates']
    started = time.perf_counter()
    try:
        if items:
            seed(items[0])  # alone: the challenge and the token, once
        with ThreadPoolExecutor(max_workers=options.threads) as threads:
            list(threads.map(seed, items[1:]))
    finally:
        pool.close()
    out = {'seconds': time.perf_counter() - started, 'certificates': len(items), 'failed': len(failures), 'failures': failures[:5],
           'threads': options.threads}
    with open(options.out_json, 'w', encoding='utf-8') as handle:
        json.dump(out, handle)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
