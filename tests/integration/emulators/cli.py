# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The harness's command line: ``python -m emulators start|stop|env|install|check``.

Exit status: 0 success, 1 failure, 3 emulator unavailable here (missing tool or artifact).
``start`` hands the processes over to a watchdog (``--owner-pid``, ``--ttl``) and prints
``export VAR=...`` lines; ``stop`` and ``env`` work from the state directory's harness.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from .common import EXIT_FAILED, EXIT_UNAVAILABLE, PROXY_TRAP, VERSIONS, EmulatorFailed, EmulatorUnavailable, HarnessError, cache_dir
from .emulator import forget, load_descriptor, start_watchdog, stop_state_dir, watch
from .gopair import GO_BINARIES, ensure_go_binary, start_go_emulators
from .lowkey import ensure_lowkey_jar, start_lowkey_vault
from .tools import find_tool, shared_emulators_dir


STARTERS = {'lowkey': start_lowkey_vault, 'akv': start_go_emulators}


def _cmd_start(args):
    kwargs = {'state_dir': args.state_dir, 'die_with_parent': False}
    if args.kind == 'lowkey' and args.vault_name:
        kwargs['vault_names'] = args.vault_name
    if args.kind == 'lowkey' and args.ip_vault:
        kwargs['ip_vault'] = True
    emulator = STARTERS[args.kind](**kwargs)
    forget(emulator)  # from here on the CLI hands the processes over (watchdog / `stop`)
    try:
        if args.owner_pid or args.ttl:
            start_watchdog(emulator, args.owner_pid, args.ttl)
    except BaseException:
        emulator.stop()
        raise
    print('\n'.join(emulator.export_lines(proxy_trap=args.proxy_trap)))
    return 0


def _cmd_stop(args):
    if not stop_state_dir(args.state_dir):
        print('nothing running in %s' % args.state_dir, file=sys.stderr)
    return 0


def _cmd_env(args):
    data = load_descriptor(args.state_dir)
    if data is None:
        raise EmulatorFailed('no emulator described in %s' % args.state_dir)
    if args.json:
        print(json.dumps(data['info'], indent=2, sort_keys=True))
    else:
        env = data['env_proxy_trap'] if args.proxy_trap else data['env']
        print('\n'.join('export %s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items()) if v is not None))
    return 0


def _cmd_install(args):
    """Resolve (and if needed build or download) the pinned artifacts; each prints where it came from."""
    status = 0
    kinds = ['lowkey', 'akv'] if args.kind == 'all' else [args.kind]
    for kind in kinds:
        try:
            if kind == 'lowkey':
                ensure_lowkey_jar(refresh=args.refresh)
            else:
                ensure_go_binary('entra-emulator')
                ensure_go_binary('azure-keyvault-emulator')
        except EmulatorUnavailable as error:
            print('[emulators] %s: UNAVAILABLE: %s' % (kind, error), file=sys.stderr)
            status = EXIT_UNAVAILABLE
    return status


def _cmd_check(_args):
    """Print which prerequisites are present (no downloads)."""
    rows = []
    for tool, env_vars, home in (('java', ('LOWKEY_VAULT_JAVA',), 'JAVA_HOME'), ('javac', ('JAVAC',), 'JAVA_HOME'),
                                 ('mvn', ('MVN',), 'MAVEN_HOME'), ('go', ('GO',), 'GOROOT')):
        try:
            rows.append('%-6s %s' % (tool, find_tool(tool, env_vars, home)))
        except EmulatorUnavailable as error:
            rows.append('%-6s MISSING: %s' % (tool, error))
    jar = os.environ.get('LOWKEY_VAULT_JAR') or cache_dir() / ('%s-%s.jar' % (VERSIONS['LOWKEY_VAULT_ARTIFACT_ID'], VERSIONS['LOWKEY_VAULT_VERSION']))
    rows.append('lowkey jar  %s%s' % (jar, '' if os.path.exists(jar) else ' (absent)'))
    shared = shared_emulators_dir()
    rows.append('sources     %s' % (shared if shared else '(no ../shared/emulators: registry installs only)'))
    for name, (env_var, _m, _p, _v) in sorted(GO_BINARIES.items()):
        path = os.environ.get(env_var) or cache_dir() / 'bin' / name
        rows.append('%s  %s%s' % (name, path, '' if os.path.exists(path) else ' (absent)'))
    print('\n'.join(rows))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m emulators', description='Local Azure Key Vault emulators for integration tests.')
    sub = parser.add_subparsers(dest='command')
    sub.required = True

    start = sub.add_parser('start', help='start an emulator and print `export VAR=...` lines')
    start.add_argument('kind', choices=sorted(STARTERS))
    start.add_argument('--state-dir', required=True, help='directory for logs, CA file and harness.json')
    start.add_argument('--owner-pid', type=int, default=0, help='stop the emulator when this process exits (e.g. $$)')
    start.add_argument('--ttl', type=int, default=7200, help='stop the emulator after this many seconds (0: never; default 7200)')
    start.add_argument('--vault-name', action='append', help='lowkey: extra vault <name>.localhost (repeatable)')
    start.add_argument('--ip-vault', action='store_true', help='lowkey: https://127.0.0.1:<port> is a second vault, not an alias')
    start.add_argument('--proxy-trap', action='store_true', help='also export HTTP(S)_PROXY=%s (non-loopback requests fail)' % PROXY_TRAP)
    start.set_defaults(func=_cmd_start)

    stop = sub.add_parser('stop', help='stop the emulator recorded in --state-dir')
    stop.add_argument('--state-dir', required=True)
    stop.set_defaults(func=_cmd_stop)

    env = sub.add_parser('env', help='print the export lines (or --json info) of a running emulator again')
    env.add_argument('--state-dir', required=True)
    env.add_argument('--json', action='store_true')
    env.add_argument('--proxy-trap', action='store_true')
    env.set_defaults(func=_cmd_env)

    install = sub.add_parser('install', help='download/install the pinned emulator artifacts only')
    install.add_argument('kind', choices=['lowkey', 'akv', 'all'], nargs='?', default='all')
    install.add_argument('--refresh', action='store_true', help='lowkey: download the jar again')
    install.set_defaults(func=_cmd_install)

    check = sub.add_parser('check', help='show which tools and artifacts are present')
    check.set_defaults(func=_cmd_check)

    watchdog = sub.add_parser('_watchdog')
    watchdog.add_argument('--state-dir', required=True)
    watchdog.add_argument('--owner-pid', type=int, default=0)
    watchdog.add_argument('--owner-start', default=None)
    watchdog.add_argument('--ttl', type=int, default=0)
    watchdog.set_defaults(func=lambda a: watch(a.state_dir, a.owner_pid, a.owner_start, a.ttl))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmulatorUnavailable as error:
        print('harness: unavailable: %s' % error, file=sys.stderr)
        return EXIT_UNAVAILABLE
    except HarnessError as error:
        print('harness: error: %s' % error, file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
