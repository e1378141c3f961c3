# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a command where Azure's production host names lead to the Go emulator pair.

Inside a private mount + network namespace of its own, ``https://<vault>.vault.azure.net``
is azure-keyvault-emulator on 127.0.0.1:443 and ``https://login.microsoftonline.com`` is
entra-emulator on 127.0.0.2:443, both serving certificates of a test CA made at run time.
So the collection runs with every default (public cloud inferred from the URL, challenge
resource verified, the SDK's api-version, MSAL's own authority handling) and no emulator
switch; only the test CA has to be trusted (``ca_path`` or ``REQUESTS_CA_BUNDLE``).

How (``run``, as root; Linux):

1. ``unshare --mount --net --propagation private`` re-executes this module: a new mount
   namespace (``mount --make-rprivate /`` again, so no mount can reach the host's) and a new
   network namespace with only ``lo`` (brought up: 127.0.0.0/8 is local, so 127.0.0.2 works).
2. It refuses to go on unless both namespaces differ from the caller's and from PID 1's.
3. It writes ``hosts`` (the two names only), ``resolv.conf`` (``nameserver 127.0.0.1``, where
   nothing answers DNS: every other name fails at once) and ``nsswitch.conf`` (``hosts: files
   dns``) into the work directory and bind-mounts them over the ones in /etc.  The real files
   are never written; the bind mounts vanish with the namespace.
4. Proof of the mapping, BEFORE any request (``prove_mapping``): each name resolves to exactly
   its address, unmapped names (another vault, graph.microsoft.com) do not resolve, the only
   interface is ``lo``, a public address is unreachable (ENETUNREACH).  Any failure stops here.
5. TLS material (``make_tls_material``): a CA, a ``*.vault.azure.net`` leaf and a
   ``login.microsoftonline.com`` leaf, keys in the work directory (0600), never committed.
6. gopair.start_go_emulators(layout=GoPairLayout(...)) starts the pair on those addresses
   (entra PUBLIC_ORIGIN=https://login.microsoftonline.com, vault issuer
   https://login.microsoftonline.com/<tenant>/v2.0) and checks both through the names.
7. The command runs with PRODNAMES_FACTS=<work>/prodnames.json (also an Ansible vars file:
   ``prod_*``).  Then the pair is stopped and the namespace must hold no process but this one.

Exit status: the command's, 3 when this machine cannot do it (not root, no unshare, no
emulator binaries), 1 when the namespace or the emulators misbehave.

Usage::

    python -m emulators.prodnames run --work-dir DIR [--vault-name NAME] [--integration-config FILE] -- CMD [ARG...]
    python -m emulators.prodnames tls --out DIR [--vault-name NAME]    # the TLS material only (any namespace)

Library: ``make_tls_material``, ``go_pair_layout``, ``locate_go_binaries`` here; ``NameMap``,
``write_etc``, ``bind_etc``, ``prove_mapping``, ``namespace_processes`` in namespace.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .common import EmulatorUnavailable, HarnessError
from .emulator import load_descriptor
from .gopair import GO_BINARIES, GoPairLayout, ensure_go_binary, start_go_emulators
from .namespace import (DEFAULT_VAULT_NAME, HTTPS_PORT, VAULT_SUFFIX, NameMap, NamespaceError, bind_etc, namespace_ids, namespace_processes,
                        prove_mapping, require_private_namespaces, run_checked, system_tool, write_etc)

FACTS_FILE = 'prodnames.json'
INSIDE_MARK = 'PRODNAMES_INSIDE'
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3


# ---------------------------------------------------------------------------
# TLS material (made at run time; keys only in the work directory)
# ---------------------------------------------------------------------------
def make_tls_material(out_dir, names):
    """A test CA and two leaves (the vault wildcard, the sign-in host); returns their paths.

    Keys are written 0600 into out_dir and never leave it.  The leaves carry SAN, serverAuth,
    SKI/AKI, so strict verifiers (Python 3.13's VERIFY_X509_STRICT, Go) accept them too.
    """
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # pylint: disable=import-outside-toplevel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(str(out), 0o700)
    now = datetime.datetime.now(datetime.timezone.utc)

    def subject(common_name):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'certdeploy tests'),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def write(name, data, mode):
        path = out / name
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        return str(path)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = subject('certdeploy production-names test CA')
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    files = {'ca_file': write('ca.pem', ca.public_bytes(serialization.Encoding.PEM), 0o644)}

    for label, common_name, sans in (('vault', '*' + VAULT_SUFFIX, ['*' + VAULT_SUFFIX, VAULT_SUFFIX[1:]]),
                                     ('login', names.login_host, [names.login_host])):
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder().subject_name(subject(common_name)).issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(san) for san in sans]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        files[label + '_cert'] = write(label + '-cert.pem', leaf.public_bytes(serialization.Encoding.PEM), 0o644)
        files[label + '_key'] = write(label + '-key.pem', key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    return files


def go_pair_layout(names, tls):
    """The harness layout that serves the pair under the production names with this TLS material."""
    return GoPairLayout(
        entra_address=(names.mapping[names.login_host], HTTPS_PORT),
        vault_address=(names.mapping[names.vault_host], HTTPS_PORT),
        public_origin=names.login_origin, vault_url=names.vault_url,
        entra_tls=(tls['login_cert'], tls['login_key']), vault_tls=(tls['vault_cert'], tls['vault_key']),
        ca_file=tls['ca_file'])


# ---------------------------------------------------------------------------
# Emulator binaries
# ---------------------------------------------------------------------------
def _binaries_from_config(path):
    """The binaries of the Go pair tests/integration/run.sh started (its harness.json, beside akv_ca_file)."""
    try:
        with open(path, encoding='utf-8') as handle:
            config = json.load(handle)  # run.sh writes JSON (which is YAML)
    except (OSError, ValueError):
        return {}
    ca_file = config.get('akv_ca_file')
    descriptor = load_descriptor(os.path.dirname(ca_file)) if ca_file else None
    return {p['name']: p['argv'][0] for p in (descriptor or {}).get('processes', []) if p.get('argv')}


def locate_go_binaries(integration_config=None):
    """Put the pair's binaries into AKV_EMULATOR_BIN / ENTRA_EMULATOR_BIN; returns {name: path}.

    In order: those variables; the binaries of the pair run.sh is running (ansible-test passes
    no environment to a target, but integration_config.yml names that pair's state directory);
    the harness's own resolution (cache, build).  EmulatorUnavailable when none applies.
    """
    from_config = _binaries_from_config(integration_config) if integration_config else {}
    found = {}
    for name, (env_var, _m, _p, _v) in sorted(GO_BINARIES.items()):
        if not os.environ.get(env_var) and from_config.get(name):
            os.environ[env_var] = from_config[name]
        found[name] = str(ensure_go_binary(name))
        os.environ[env_var] = found[name]
    return found


# ---------------------------------------------------------------------------
# run: outside (enter) and inside (map, prove, start, run, stop)
# ---------------------------------------------------------------------------
def _enter(args):
    if os.geteuid() != 0:
        raise EmulatorUnavailable('building a private mount + network namespace needs root')
    unshare = system_tool('unshare')
    locate_go_binaries(args.integration_config)
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(str(work), 0o700)
    mnt, net = namespace_ids()
    env = dict(os.environ, **{INSIDE_MARK: '%s %s' % (mnt, net)})  # same interpreter and directory: the package is found again
    argv = [unshare, '--mount', '--net', '--propagation', 'private', '--', sys.executable, '-m', 'emulators.prodnames',
            '_inside', '--work-dir', str(work), '--vault-name', args.vault_name, '--'] + args.command
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(unshare, argv, env)


def _log(message):
    print('[prodnames] %s' % message, file=sys.stderr, flush=True)


def _inside(args):
    outer = (os.environ.pop(INSIDE_MARK, '') or ' ').split(' ', 1)
    if len(outer) != 2 or not all(outer):
        raise NamespaceError('_inside is only reached through `python -m emulators.prodnames run`')
    names = NameMap(args.vault_name)
    work = Path(args.work_dir)
    require_private_namespaces(outer)
    run_checked([system_tool('ip'), 'link', 'set', 'lo', 'up'])
    private = write_etc(work, names)
    bind_etc(private, outer)
    proof = prove_mapping(names, outer, private)
    _log('namespace proven: %s; %s do not resolve; only lo; public addresses ENETUNREACH'
         % (', '.join('%s -> %s' % item for item in proof['resolved'].items()), ', '.join(proof['unresolved'])))
    tls = make_tls_material(work / 'tls', names)

    def stop_on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    started = time.monotonic()
    pair = start_go_emulators(state_dir=str(work / 'emulators'), layout=go_pair_layout(names, tls))
    rc = EXIT_FAILED
    try:
        _log('Go pair up in %.1fs: %s (127.0.0.1:443), %s (127.0.0.2:443)' % (time.monotonic() - started, pair.vault_url, pair.authority_host))
        facts = {'prod_vault_name': names.vault_name, 'prod_vault_url': pair.vault_url, 'prod_vault_host': names.vault_host,
                 'prod_login_host': names.login_host, 'prod_authority_host': pair.authority_host,
                 'prod_ca_file': str(pair.ca_file), 'prod_tenant_id': pair.tenant_id, 'prod_client_id': pair.client_id,
                 'prod_client_secret': pair.client_secret, 'prod_identity_endpoint': pair.identity_endpoint,
                 'prod_identity_header': pair.identity_header, 'prod_issuer': pair.issuer, 'prod_proof': proof,
                 'prod_logs': {p.name: p.log for p in pair.processes}}
        facts_file = work / FACTS_FILE
        facts_file.write_text(json.dumps(facts, indent=2, sort_keys=True) + '\n', encoding='utf-8')
        os.chmod(str(facts_file), 0o600)
        env = dict(os.environ, PRODNAMES_FACTS=str(facts_file))
        rc = subprocess.call(args.command, env=env)
    finally:
        records = list(pair.processes)
        pair.stop()
        left = [record.name for record in records if record.alive()]
        strays = namespace_processes(exclude=(os.getpid(),))
        for pid in strays:  # only this namespace's processes: started by the command above
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if left or strays:
        _log('FAILED: still running after the stop: %s' % ', '.join(left + ['pid %d' % pid for pid in strays]))
        return rc or EXIT_FAILED
    _log('stopped: no process left in the namespace')
    return rc


def _tls(args):
    print(json.dumps(make_tls_material(args.out, NameMap(args.vault_name)), indent=2, sort_keys=True))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m emulators.prodnames',
                                     description='Run a command where Azure production host names lead to the Go emulator pair.')
    sub = parser.add_subparsers(dest='action')
    sub.required = True
    run = sub.add_parser('run', help='private namespace + mapping + Go pair, then COMMAND')
    run.add_argument('--work-dir', required=True, help='private files, TLS material, emulator state (mode 0700)')
    run.add_argument('--vault-name', default=DEFAULT_VAULT_NAME)
    run.add_argument('--integration-config', help="ansible-test's integration_config.yml (finds run.sh's emulator binaries)")
    run.add_argument('command', nargs=argparse.REMAINDER)
    run.set_defaults(func=_enter)
    inside = sub.add_parser('_inside')
    inside.add_argument('--work-dir', required=True)
    inside.add_argument('--vault-name', default=DEFAULT_VAULT_NAME)
    inside.add_argument('command', nargs=argparse.REMAINDER)
    inside.set_defaults(func=_inside)
    tls = sub.add_parser('tls', help='write the TLS material only')
    tls.add_argument('--out', required=True)
    tls.add_argument('--vault-name', default=DEFAULT_VAULT_NAME)
    tls.set_defaults(func=_tls)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if hasattr(args, 'command'):
        args.command = args.command[1:] if args.command[:1] == ['--'] else args.command
        if not args.command:
            print('prodnames: a command is needed after --', file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except EmulatorUnavailable as error:
        print('prodnames: unavailable: %s' % error, file=sys.stderr)
        return EXIT_UNAVAILABLE
    except HarnessError as error:
        print('prodnames: error: %s' % error, file=sys.stderr)
        return EXIT_FAILED


if __name__ == '__main__':
    sys.exit(main())
