# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Go back end: calvinchengx's azure-keyvault-emulator and the entra-emulator it validates tokens against.

The binaries come from $AKV_EMULATOR_BIN / $ENTRA_EMULATOR_BIN, the cache, a build from
../shared/emulators or `go install` (ensure_go_binary).  start_go_emulators() / go_emulators()
start entra-emulator, then the vault, on free loopback ports, or on the addresses, names and
certificates of a GoPairLayout (prodnames.py's production host names).
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

from .common import (ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET, ENTRA_TENANT_ID, LOOPBACK, VERSIONS, EmulatorFailed, EmulatorUnavailable,
                     cache_dir, run, version_tuple, write_text)
from .emulator import Emulator, prepare_state_dir
from .net import child_environment, fetch_server_chain, free_port, http_get, insecure_context, pem_certificates, verifying_context
from .processes import spawn, wait_until
from .tools import build_from_shared, cache_lock, find_tool, read_origin, report_resolved, shared_emulators_dir, show_path, write_origin


class GoKeyVault(Emulator):
    """azure-keyvault-emulator validating tokens from entra-emulator, both on 127.0.0.1."""

    kind = 'akv'

    def __init__(self, state_dir, owns_state_dir=False):
        super().__init__(state_dir, owns_state_dir)
        self.port = None
        self.entra_port = None
        self.authority_host = None
        self.tenant_id = ENTRA_TENANT_ID
        self.client_id = ENTRA_CLIENT_ID
        self.client_secret = ENTRA_CLIENT_SECRET
        self.issuer = None
        self.token_endpoint = None
        self.control_url = None

    def info(self):
        data = super().info()
        data.update({'port': self.port, 'entra_port': self.entra_port, 'authority_host': self.authority_host,
                     'tenant_id': self.tenant_id, 'client_id': self.client_id, 'client_secret': self.client_secret,
                     'issuer': self.issuer, 'token_endpoint': self.token_endpoint, 'control_url': self.control_url})
        return data

    def env(self, proxy_trap=False):
        env = super().env(proxy_trap)
        env.update({'KV_EMU_AUTHORITY_HOST': self.authority_host, 'KV_EMU_TENANT_ID': self.tenant_id,
                    'KV_EMU_CLIENT_ID': self.client_id, 'KV_EMU_CLIENT_SECRET': self.client_secret,
                    'KV_EMU_TOKEN_ENDPOINT': self.token_endpoint, 'KV_EMU_ISSUER': self.issuer,
                    'KV_EMU_CONTROL_URL': self.control_url})
        return env


GO_BINARIES = {
    'azure-keyvault-emulator': ('AKV_EMULATOR_BIN', 'AKV_EMULATOR_MODULE', 'AKV_EMULATOR_PACKAGE', 'AKV_EMULATOR_VERSION'),
    'entra-emulator': ('ENTRA_EMULATOR_BIN', 'ENTRA_EMULATOR_MODULE', 'ENTRA_EMULATOR_PACKAGE', 'ENTRA_EMULATOR_VERSION'),
}


def go_binary_module_version(go, binary):
    """(main module path, version) recorded in a Go binary, via `go version -m`."""
    result = run([go, 'version', '-m', str(binary)], timeout=60)
    match = re.search(r'^\s*mod\s+(\S+)\s+(\S+)', result.stdout, re.M)
    return (match.group(1), match.group(2)) if match else (None, None)


def _go_install(name, go, gobin):
    """The ordinary install: `go install package@version` (GOTOOLCHAIN=local) into gobin."""
    env_var, _module_key, package_key, version_key = GO_BINARIES[name]
    package, version = VERSIONS[package_key], VERSIONS[version_key]
    env = dict(os.environ, GOBIN=str(gobin), GOTOOLCHAIN='local')
    gobin.mkdir(parents=True, exist_ok=True)
    result = run([go, 'install', '%s@%s' % (package, version)], env=env, timeout=1200)
    if result.returncode != 0 or not (gobin / name).exists():
        output = result.stdout.strip()
        if re.search(r'not available|404 Not Found|403 Forbidden|410 Gone|unknown revision|no matching versions', output):
            why = 'the Go module proxy does not serve it'
        elif 'requires go >=' in output or 'toolchain' in output:
            why = 'the local Go toolchain is too old (GOTOOLCHAIN=local)'
        else:
            why = 'go install failed'
        raise EmulatorUnavailable('cannot install %s@%s: %s:\n%s\nSet %s=/path/to/%s to use a binary obtained another way.'
                                  % (package, version, why, output[-1500:], env_var, name))


def ensure_go_binary(name):
    """Path of a pinned Go emulator binary, resolved as ensure_lowkey_jar() resolves the jar:

    $AKV_EMULATOR_BIN / $ENTRA_EMULATOR_BIN, then the cache (.cache/emulators/bin/, checked with
    `go version -m` against the pinned module version), then a build of both binaries with
    ../shared/emulators/build.sh go (when that folder exists), then `go install module@version`.
    """
    env_var, module_key, _package_key, version_key = GO_BINARIES[name]
    module, version = VERSIONS[module_key], VERSIONS[version_key]
    label = '%s %s' % (name, version)
    override = os.environ.get(env_var)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise EmulatorUnavailable('%s=%s is not an executable file' % (env_var, override))
        return report_resolved(label, Path(override).resolve(), '%s=%s' % (env_var, override))
    go = find_tool('go', ('GO',), 'GOROOT', 'to check or build %s %s' % (name, version))
    gobin = cache_dir() / 'bin'
    binary = gobin / name
    with cache_lock():
        if binary.exists() and go_binary_module_version(go, binary) == (module, version):
            return report_resolved(label, binary, '%s (cached)' % read_origin(binary, 'an earlier install'))
        have = run([go, 'env', 'GOVERSION'], timeout=60).stdout.strip()
        need = VERSIONS['GO_EMULATORS_MIN_GO']
        if version_tuple(have) < version_tuple(need):
            raise EmulatorUnavailable('%s@%s needs go >= %s; this is %s and GOTOOLCHAIN=local forbids downloading a toolchain'
                                      % (module, version, need, have))
        shared = shared_emulators_dir()
        if shared is not None:
            seconds = build_from_shared(shared, 'go', ['bin/' + other for other in sorted(GO_BINARIES)])
            for other in sorted(GO_BINARIES):
                write_origin(gobin / other, 'built from %s' % show_path(shared))
            if go_binary_module_version(go, binary) != (module, version):
                raise EmulatorFailed('%s/build.sh go did not produce %s %s at %s' % (show_path(shared), module, version, binary))
            return report_resolved(label, binary, 'built from %s in %.0f s' % (show_path(shared), seconds))
        _go_install(name, go, gobin)
        return report_resolved(label, binary, write_origin(binary, 'installed with go install from the Go module proxy'))


@dataclasses.dataclass
class GoPairLayout:
    """Where, and under which names and certificates, start_go_emulators() serves the Go pair.

    Without a layout the pair listens on free ports of 127.0.0.1 as https://localhost:<port>
    with the emulators' own self-signed certificates.  With one (see prodnames.py, which builds
    it for the production host names inside a private mount + network namespace):

    * entra-emulator listens on ``entra_address`` (host, port) with ``PUBLIC_ORIGIN=public_origin``
      (issuer ``<public_origin>/<tenant>/v2.0``) and ``TLS_CERT``/``TLS_KEY`` = ``entra_tls``;
    * azure-keyvault-emulator listens on ``vault_address`` with ``vault_tls`` copied to
      ``<data-dir>/tls/cert.pem`` and ``key.pem`` (where it loads its certificate from);
    * clients are told ``vault_url``; ``ca_file`` (the CA that issued both certificates) is what
      the vault's JWKS fetch trusts (SSL_CERT_FILE) and becomes the emulator's ``ca_file``.

    The caller makes the names resolve to the addresses (a private /etc/hosts): the harness
    reaches both through those names, verifying TLS with ca_file, before it returns.
    """

    entra_address: tuple
    vault_address: tuple
    public_origin: str
    vault_url: str
    entra_tls: tuple
    vault_tls: tuple
    ca_file: str


def start_go_emulators(state_dir=None, startup_timeout=60.0, die_with_parent=True, default_vault='emulator',
                       soft_delete_retention_days=90, purge_protection=False, layout=None):
    """Start entra-emulator then azure-keyvault-emulator on 127.0.0.1; returns a running GoKeyVault.

    The vault validates RS256 tokens against entra's JWKS (issuer, audience
    https://vault.azure.net, expiry); its JWKS fetch verifies entra's TLS certificate
    through SSL_CERT_FILE (no -entra-tls-insecure).  ``layout`` (a GoPairLayout) serves
    the pair on given addresses, names and certificates instead.
    """
    entra_bin = ensure_go_binary('entra-emulator')
    akv_bin = ensure_go_binary('azure-keyvault-emulator')
    state_dir, owns = prepare_state_dir(state_dir)
    emulator = GoKeyVault(state_dir, owns)
    emulator.versions = {'azure-keyvault-emulator': VERSIONS['AKV_EMULATOR_VERSION'], 'entra-emulator': VERSIONS['ENTRA_EMULATOR_VERSION']}
    try:
        entra_dir, akv_dir = state_dir / 'entra', state_dir / 'akv'
        entra_dir.mkdir(parents=True, exist_ok=True)
        akv_dir.mkdir(parents=True, exist_ok=True)
        mi_secret = secrets.token_hex(16)
        entra_host, entra_port = tuple(layout.entra_address) if layout else (LOOPBACK, free_port())
        entra_env = child_environment({
            'HOST': entra_host, 'PORT': str(entra_port), 'ORIGIN_MODE': 'compat', 'TENANT_ID': ENTRA_TENANT_ID,
            'DB_PATH': str(entra_dir / 'entra-emulator.db'), 'TLS_CERT_DIR': str(entra_dir / 'tls'),
            'CONFIG_FILE': str(entra_dir / 'entra-emulator.config.json'),  # absent on purpose: no stray config
            'MANAGED_IDENTITY_SECRET': mi_secret, 'SEED_ON_START': 'true', 'LOG_LEVEL': 'info'})
        if layout:  # PUBLIC_ORIGIN collapses every surface (login, portal, graph) onto one origin, as compat does
            entra_env.update({'PUBLIC_ORIGIN': layout.public_origin, 'TLS_CERT': str(layout.entra_tls[0]), 'TLS_KEY': str(layout.entra_tls[1])})
        entra = spawn('entra-emulator', [entra_bin], state_dir / 'entra-emulator.log', env=entra_env, cwd=str(entra_dir),
                      die_with_parent=die_with_parent)
        emulator.processes = [entra]
        emulator.save()
        wait_until(lambda: http_get('https://%s:%d/health' % (entra_host, entra_port), insecure_context())[0] == 200,
                   'entra-emulator /health', startup_timeout, [entra])
        if layout:
            entra_ca = Path(layout.ca_file)
        else:
            entra_ca = entra_dir / 'tls' / 'cert.pem'
            served = fetch_server_chain(LOOPBACK, entra_port, 'localhost')
            if not entra_ca.exists() or pem_certificates(served)[0] not in entra_ca.read_text(encoding='ascii'):
                write_text(entra_dir / 'served-cert.pem', served)
                entra_ca = entra_dir / 'served-cert.pem'
        emulator.entra_port = entra_port
        emulator.authority_host = layout.public_origin.rstrip('/') if layout else 'https://localhost:%d' % entra_port
        emulator.issuer = '%s/%s/v2.0' % (emulator.authority_host, ENTRA_TENANT_ID)
        emulator.token_endpoint = '%s/%s/oauth2/v2.0/token' % (emulator.authority_host, ENTRA_TENANT_ID)
        emulator.identity_endpoint = '%s/msi/token' % emulator.authority_host
        emulator.identity_header = mi_secret

        akv_host, port = tuple(layout.vault_address) if layout else (LOOPBACK, free_port())
        if layout:  # the vault loads <data-dir>/tls/cert.pem + key.pem (leaf first, then any chain) when both parse
            write_text(akv_dir / 'data' / 'tls' / 'cert.pem', Path(layout.vault_tls[0]).read_text(encoding='ascii'))
            write_text(akv_dir / 'data' / 'tls' / 'key.pem', Path(layout.vault_tls[1]).read_text(encoding='ascii'), mode=0o600)
        argv = [akv_bin, '-addr', '%s:%d' % (akv_host, port), '-data-dir', str(akv_dir / 'data'), '-entra-issuer', emulator.issuer,
                '-default-vault', default_vault, '-soft-delete-retention-days', str(soft_delete_retention_days)]
        if purge_protection:
            argv.append('-purge-protection')
        akv = spawn('azure-keyvault-emulator', argv, state_dir / 'azure-keyvault-emulator.log',
                    env=child_environment({'SSL_CERT_FILE': str(entra_ca)}), cwd=str(akv_dir), die_with_parent=die_with_parent)
        emulator.processes = [entra, akv]
        emulator.save()

        def challenged():
            status, headers, _body = http_get('https://%s:%d/secrets?api-version=7.5' % (akv_host, port), insecure_context())
            return status == 401 and 'authorization=' in ''.join(v for k, v in headers.items() if k.lower() == 'www-authenticate')
        wait_until(challenged, 'azure-keyvault-emulator 401 challenge', startup_timeout, [entra, akv])
        emulator.port = port
        emulator.ca_file = state_dir / 'ca.pem'
        if layout:
            emulator.vault_url = layout.vault_url.rstrip('/')
            emulator.control_url = emulator.vault_url + '/_emulator'
            write_text(emulator.ca_file, entra_ca.read_text(encoding='ascii'))
        else:
            emulator.vault_url = 'https://localhost:%d' % port
            emulator.control_url = 'https://localhost:%d/_emulator' % port
            akv_served = fetch_server_chain(LOOPBACK, port, 'localhost')
            write_text(emulator.ca_file, ''.join(pem_certificates(akv_served)[:1]) + '\n' + entra_ca.read_text(encoding='ascii'))
        context = verifying_context(emulator.ca_file)
        for url in (emulator.authority_host + '/health', emulator.vault_url + '/secrets?api-version=7.5'):
            if http_get(url, context)[0] not in (200, 401):
                raise EmulatorFailed('%s through the CA bundle did not answer 200/401' % url)
        emulator.save()
        return emulator
    except BaseException:
        emulator.stop()
        raise


@contextmanager
def go_emulators(**kwargs):
    """Context manager around start_go_emulators()."""
    emulator = start_go_emulators(**kwargs)
    try:
        yield emulator
    finally:
        emulator.stop()
