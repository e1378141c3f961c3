# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lowkey-vault under a production Key Vault name, for the benchmark's private namespace.

Inside the namespace that bench.py builds (tests/integration/emulators/namespace.py: ``/etc/hosts``
maps ``<vault>.vault.azure.net`` to 127.0.0.1 and nothing else resolves), lowkey-vault listens on
127.0.0.1:443 and:

* serves the ``*.vault.azure.net`` certificate of the run's test CA (prodnames.make_tls_material),
  as a PKCS#12 key store made here in memory and written 0600 into the work directory;
* answers the unauthenticated first request with the challenge a real vault sends,
  ``resource="https://vault.azure.net"`` (``--LOWKEY_AUTH_RESOURCE``), so the Azure SDK's
  challenge-resource verification stays on and passes for ``<vault>.vault.azure.net``;
* hosts one vault whose base URI is ``https://<vault>.vault.azure.net`` (no port);
* writes a Tomcat access log (one unbuffered line per request: port, method, path, status, and the time Tomcat
  took to serve it in microseconds), which bench.py reads to count token, challenge and authenticated requests
  at the emulator side and to sum the emulator's own time;
* hosts further vaults under other production names on the same address when asked (``vault_hosts``): the
  benchmark gives each fleet a vault of its own, so a vault's size is the fleet's;
* serves its App Service-style managed-identity endpoint on a free 127.0.0.1 port (plain HTTP, as
  App Service's own IDENTITY_ENDPOINT is).

The JVM, jar and loopback binding come from the integration harness (tests/integration/emulators/lowkey.py), unchanged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# tests/integration is on the import path of run.sh's venv (scripts/lib/python.sh: expose_test_helpers).
from emulators.common import VERSIONS, EmulatorFailed, EmulatorUnavailable
from emulators.lowkey import DEFAULT_JAVA_OPTS, LowkeyVault, boot_jar_layout, ensure_lowkey_jar, ensure_loopback_classes, java_major_version
from emulators.net import child_environment, free_port, http_get, http_post_json, verifying_context
from emulators.processes import spawn, wait_until
from emulators.tools import find_tool

HTTPS_PORT = 443
# Real Key Vault's challenge names this resource; the SDK checks that the vault host ends with its host.
AUTH_RESOURCE = 'vault.azure.net'
ACCESS_LOG = 'access.log'
# port method path status microseconds: the token endpoint is told apart by its port, a challenge by its 401;
# the last field is Tomcat's time from the request's first byte to the response's last.
ACCESS_PATTERN = '%p %m %U %s %{us}T'
# lowkey-vault's own cipher list names only RSA suites; the test CA issues an EC (P-256) leaf.
CIPHERS = ','.join(('TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
                    'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'))


class LowkeyProdname(LowkeyVault):
    """A LowkeyVault whose vault is https://<name>.vault.azure.net on 127.0.0.1:443."""

    kind = 'lowkey-prodname'

    def __init__(self, state_dir):
        super().__init__(state_dir, owns_state_dir=False)
        self.access_log = None

    def info(self):
        data = super().info()
        data.update({'verify_challenge_resource': True, 'access_log': str(self.access_log), 'auth_resource': AUTH_RESOURCE})
        return data


def write_keystore(tls, path):
    """PKCS#12 of the vault leaf, its key and the test CA, 0600; returns the password (memory only)."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.serialization import pkcs12  # pylint: disable=import-outside-toplevel

    with open(tls['vault_cert'], 'rb') as handle:
        leaf = x509.load_pem_x509_certificate(handle.read())
    with open(tls['vault_key'], 'rb') as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    with open(tls['ca_file'], 'rb') as handle:
        ca = x509.load_pem_x509_certificate(handle.read())
    password = secrets.token_urlsafe(18)
    data = pkcs12.serialize_key_and_certificates(b'vault', key, leaf, [ca], serialization.BestAvailableEncryption(password.encode()))
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
    return password


# The harness's JVM options with a larger heap (a 10,000-certificate vault) and the full JIT: the harness stops
# at the first compiler tier for a fast start, which leaves a long benchmark's crypto (PKCS#12 of every import)
# running slower than it needs to. Emulator configuration only; both tools meet the same emulator.
JAVA_OPTS = tuple(o for o in DEFAULT_JAVA_OPTS if not o.startswith(('-Xmx', '-XX:TieredStopAtLevel'))) + ('-Xmx3g',)


def start(state_dir, names, tls, startup_timeout=180.0, vault_hosts=()):
    """Start lowkey-vault as names.vault_url (root, inside the private namespace); returns a LowkeyProdname.

    ``vault_hosts``: further production vault host names this lowkey-vault hosts (requests carry them in Host);
    their addresses are the caller's business (the namespace's /etc/hosts).
    """
    java = find_tool('java', ('LOWKEY_VAULT_JAVA',), 'JAVA_HOME', 'to run lowkey-vault')
    need = int(VERSIONS['LOWKEY_VAULT_MIN_JAVA'])
    major = java_major_version(java)
    if major < need:
        raise EmulatorUnavailable('lowkey-vault needs Java %d+, %s is Java %d' % (need, java, major))
    jar = ensure_lowkey_jar()
    launcher, _libs = boot_jar_layout(jar)
    classes = ensure_loopback_classes(jar, java)
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(str(state), 0o700)
    emulator = LowkeyProdname(state)
    emulator.jar, emulator.java = str(jar), java
    emulator.api_version = '7.6'  # 3.4.33 serves certificates on 7.3-7.6 only
    emulator.versions = {'lowkey-vault': VERSIONS['LOWKEY_VAULT_VERSION'], 'java': str(major)}
    keystore = state / 'vault-keystore.p12'
    password = write_keystore(tls, keystore)
    emulator.access_log = state / ACCESS_LOG
    address = names.mapping[names.vault_host]
    token_port = free_port()
    argv = [java] + list(JAVA_OPTS) + [
        '-Dcertdeploy.bind.address=' + address, '-Dloader.path=' + str(classes), '-cp', str(jar), launcher,
        '--spring.main.sources=certdeploy.harness.LoopbackConnectors',
        '--server.address=' + address, '--server.port=%d' % HTTPS_PORT, '--app.token.port=%d' % token_port,
        '--spring.main.banner-mode=off', '--LOWKEY_ENABLE_AUTH=true', '--LOWKEY_VAULT_NAMES=-',
        '--LOWKEY_AUTH_RESOURCE=' + AUTH_RESOURCE,
        '--server.ssl.key-store=file:' + str(keystore), '--server.ssl.key-store-type=PKCS12',
        '--server.ssl.key-store-password=' + password, '--server.ssl.ciphers=' + CIPHERS,
        '--server.ssl.enabled-protocols=TLSv1.2,TLSv1.3',
        '--server.tomcat.accesslog.enabled=true', '--server.tomcat.accesslog.directory=' + str(state),
        '--server.tomcat.accesslog.prefix=access', '--server.tomcat.accesslog.suffix=.log',
        '--server.tomcat.accesslog.file-date-format=', '--server.tomcat.accesslog.rotate=false',
        '--server.tomcat.accesslog.buffered=false', '--server.tomcat.accesslog.pattern=' + ACCESS_PATTERN,
    ]
    # The key store password is on the JVM's command line: a random value for a key made for this run only.
    record = spawn('lowkey-vault', argv, state / 'lowkey-vault.log', env=child_environment(), cwd=str(state))
    emulator.processes = [record]
    try:
        context = verifying_context(tls['ca_file'])
        wait_until(lambda: http_get('https://%s/ping' % names.vault_host, context)[0] == 200,
                   'lowkey-vault https://%s/ping' % names.vault_host, startup_timeout, [record])
        for url in [names.vault_url] + ['https://' + host for host in vault_hosts]:
            status, body = http_post_json('https://%s/management/vault' % names.vault_host,
                                          {'baseUri': url, 'aliases': [url + ':443'],
                                           'recoveryLevel': 'Recoverable+Purgeable', 'recoverableDays': 90}, context)
            if status != 200:
                raise EmulatorFailed('lowkey-vault: creating vault %s failed: HTTP %s %s' % (url, status, body))
        emulator.port, emulator.token_port = HTTPS_PORT, token_port
        emulator.vault_url = names.vault_url
        emulator.vault_urls = {names.vault_name: names.vault_url}
        emulator.vault_urls.update((host.split('.', 1)[0], 'https://' + host) for host in vault_hosts)
        emulator.pid = record.pid
        emulator.java_opts = list(JAVA_OPTS)
        emulator.ca_file = Path(tls['ca_file'])
        emulator.identity_endpoint = 'http://%s:%d/metadata/identity/oauth2/token' % (address, token_port)
        emulator.identity_header = secrets.token_hex(16)  # lowkey-vault does not check it; the SDK requires one
        return emulator
    except BaseException:
        emulator.stop()
        raise
