# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's certificates: made once per (key kind, set, count), cached under .cache/bench/material/.

Generating keys is not what the benchmark measures, and 10,000 RSA-2048 keys cost minutes (about 50 ms each on
this machine's cores), so each set is written once into its own directory (0700, keys 0600) with a manifest, and
reused by later runs while its leaves have at least MIN_DAYS_LEFT days to run. The cache is git-ignored (.cache/):
no key is ever committed. Each set has its own root and intermediate CA (EC P-384 / P-256, as testlib.testpki
makes them); each leaf has its own key (EC P-256 or RSA-2048) and is issued by that intermediate for 90 days.

Files of one certificate: ``crt``, ``key`` (PEM; PKCS#8) and the set's ``chain`` (the intermediate) for certdeploy;
with ``pfx=True`` also ``pfx_b64`` (PKCS#12 of key, leaf and chain, base64, under the set's password) for the
peer's ``cert_data``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import shutil
import time
from pathlib import Path

KINDS = ('ec', 'rsa')
LABELS = {'ec': 'EC P-256', 'rsa': 'RSA-2048'}
MIN_DAYS_LEFT = 45
VALID_DAYS = 90
FORMAT = 2  # bump when the layout or the certificate profile changes: older caches are then made again


def _key(kind):
    from testlib import testpki  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    return testpki.rsa_key(2048) if kind == 'rsa' else testpki.ec_key(ec.SECP256R1())


def _write(path, data, mode):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)


def _make_range(job):
    """Worker: write certificates start..stop-1 of one set; returns their manifest entries."""
    from testlib import testpki  # pylint: disable=import-outside-toplevel
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel

    out, kind, set_name, start, stop, pfx_password = job
    out = Path(out)
    inter = x509.load_pem_x509_certificate((out / 'chain.pem').read_bytes())
    inter_key = serialization.load_pem_private_key((out / 'intermediate.key').read_bytes(), password=None)
    entries = []
    for index in range(start, stop):
        key = _key(kind)
        host = '%s-%05d.bench.example' % (set_name, index)
        leaf = testpki.issue(key, host, inter, inter_key, days=VALID_DAYS, extensions=testpki.EXT_KEY_IDS)
        base = '%05d' % index
        _write(out / (base + '.crt'), testpki.pem(leaf), 0o644)
        _write(out / (base + '.key'), testpki.key_pem(key), 0o600)
        entry = {'base': base, 'thumbprint': testpki.thumbprint(leaf)}
        if pfx_password:
            _write(out / (base + '.pfx.b64'), testpki.b64(testpki.pfx(host, key, leaf, [inter], pfx_password)).encode(), 0o600)
        entries.append(entry)
    return entries


def _expand(out, manifest):
    items = []
    for entry in manifest['items']:
        base = out / entry['base']
        item = {'crt': str(base) + '.crt', 'key': str(base) + '.key', 'chain': str(out / 'chain.pem'), 'thumbprint': entry['thumbprint']}
        if manifest.get('pfx_password'):
            item.update(pfx_b64=str(base) + '.pfx.b64', pfx_password=manifest['pfx_password'])
        items.append(item)
    return items


def certificate_set(cache, kind, set_name, count, pfx=False, log=print):
    """[cert dict] of ``count`` certificates of ``kind`` (ec|rsa); from the cache when it is fresh, else made now.

    Returns (items, facts): facts say whether the set came from the cache and how long making it took.
    """
    if kind not in KINDS:
        raise ValueError('kind must be one of %s' % (KINDS,))
    out = Path(cache) / ('%s-%s-%d%s' % (kind, set_name, count, '-pfx' if pfx else ''))
    manifest_path = out / 'manifest.json'
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding='utf-8'))
        age_days = (time.time() - manifest['created']) / 86400
        if manifest.get('format') == FORMAT and len(manifest['items']) == count and VALID_DAYS - age_days >= MIN_DAYS_LEFT:
            return _expand(out, manifest), {'cached': True, 'seconds': manifest['seconds'], 'age_days': age_days}
    from testlib import testpki  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    if out.exists():
        shutil.rmtree(str(out))
    out.mkdir(parents=True)
    os.chmod(str(out), 0o700)
    _root, _root_key, inter, inter_key = testpki.ca_pair('certdeploy bench root %s' % set_name,
                                                         'certdeploy bench intermediate %s' % set_name, extensions=testpki.EXT_KEY_IDS)
    _write(out / 'chain.pem', testpki.pem(inter), 0o644)
    _write(out / 'intermediate.key', testpki.key_pem(inter_key), 0o600)
    password = secrets.token_urlsafe(12) if pfx else None
    workers = max(1, min(os.cpu_count() or 1, 8)) if kind == 'rsa' and count >= 50 else 1
    step = max(1, -(-count // (workers * 8)))
    jobs = [(str(out), kind, set_name, start, min(start + step, count), password) for start in range(0, count, step)]
    if workers > 1:
        with multiprocessing.get_context('fork').Pool(workers) as pool:
            chunks = pool.map(_make_range, jobs)
    else:
        chunks = [_make_range(job) for job in jobs]
    (out / 'intermediate.key').unlink()  # the set is complete: nothing more is issued from it
    manifest = {'format': FORMAT, 'kind': kind, 'set': set_name, 'created': time.time(), 'seconds': time.monotonic() - started,
                'pfx_password': password, 'items': [entry for chunk in chunks for entry in chunk]}
    _write(manifest_path, json.dumps(manifest).encode(), 0o600)
    log('material: made %d %s certificates (%s) in %.1fs (cached in %s)' % (count, LABELS[kind], set_name, manifest['seconds'], out))
    return _expand(out, manifest), {'cached': False, 'seconds': manifest['seconds'], 'age_days': 0.0}
