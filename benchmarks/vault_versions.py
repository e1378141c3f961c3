# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count the versions of every certificate of a vault, with the Azure SDK (bench.py's check of a throttled rotation).

    python vault_versions.py VAULT_URL OUT_JSON

Signs in with the managed-identity endpoint of the environment (the benchmark's emulator), lists the vault's
certificates and, eight at a time, each one's versions; writes {name: number of versions}. Nothing else: no
certificate content is read.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from azure.identity import ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient


def main():
    vault_url, out = sys.argv[1], sys.argv[2]
    client = CertificateClient(vault_url, ManagedIdentityCredential(), api_version='7.6')
    names = [item.name for item in client.list_properties_of_certificates()]

    def versions(name):
        return name, sum(1 for _version in client.list_properties_of_certificate_versions(name))
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = dict(pool.map(versions, names))
    with open(out, 'w', encoding='utf-8') as handle:
        json.dump(counts, handle, sort_keys=True)


if __name__ == '__main__':
    main()
