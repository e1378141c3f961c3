# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private mount + network namespace where Azure's production host names lead to loopback.

NameMap says which names lead where (``<vault>.vault.azure.net`` -> 127.0.0.1,
``login.microsoftonline.com`` -> 127.0.0.2); write_etc() and bind_etc() give the namespace its own
/etc/hosts, resolv.conf and nsswitch.conf by bind mount (never writing the real ones), and only
after require_private_namespaces() has shown that neither namespace is the caller's or PID 1's;
prove_mapping() proves the mapping, and that nothing else resolves or is reachable, before any
request.  Used by prodnames.py and benchmarks/bench.py.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .common import EmulatorUnavailable, HarnessError
from .processes import process_start_time


VAULT_IP = '127.0.0.1'
LOGIN_IP = '127.0.0.2'
LOGIN_HOST = 'login.microsoftonline.com'
VAULT_SUFFIX = '.vault.azure.net'
DEFAULT_VAULT_NAME = 'certdeploy-prod'
HTTPS_PORT = 443


class NamespaceError(HarnessError):
    """The private namespace is not what it must be: nothing may be requested."""


class NameMap:
    """The production names and the loopback addresses they lead to inside the namespace."""

    def __init__(self, vault_name=DEFAULT_VAULT_NAME, vault_ip=VAULT_IP, login_ip=LOGIN_IP):
        if not re.match(r'^[a-z][a-z0-9-]{1,22}[a-z0-9]$', vault_name) or '--' in vault_name:
            raise HarnessError('%r is not a Key Vault name' % vault_name)
        self.vault_name = vault_name
        self.vault_host = vault_name + VAULT_SUFFIX
        self.login_host = LOGIN_HOST
        self.mapping = {self.vault_host: vault_ip, self.login_host: login_ip}
        # Names that must NOT resolve: another vault and another Microsoft host.
        self.unmapped = ('certdeploy-unmapped' + VAULT_SUFFIX, 'graph.microsoft.com')

    @property
    def vault_url(self):
        return 'https://' + self.vault_host

    @property
    def login_origin(self):
        return 'https://' + self.login_host

    def hosts_text(self):
        lines = ['# prodnames.py: private /etc/hosts of one test namespace (bind mount)', '127.0.0.1 localhost']
        lines += ['%s %s' % (ip, host) for host, ip in self.mapping.items()]
        return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------
# Namespaces
# ---------------------------------------------------------------------------
def namespace_ids(pid='self'):
    """(mount namespace, network namespace) of a process, as the kernel names them."""
    return os.readlink('/proc/%s/ns/mnt' % pid), os.readlink('/proc/%s/ns/net' % pid)


def interfaces():
    """Names of the network interfaces of the current network namespace (not /sys, which shows the mounter's)."""
    return sorted(name for _index, name in socket.if_nameindex())


def system_tool(name):
    found = shutil.which(name) or next((p for p in ('/usr/sbin/' + name, '/sbin/' + name, '/usr/bin/' + name) if os.access(p, os.X_OK)), None)
    if not found:
        raise EmulatorUnavailable('%s not found: needed to build the private namespace' % name)
    return found


def run_checked(argv):
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, check=False)
    if result.returncode != 0:
        raise NamespaceError('%s failed (exit %d): %s' % (' '.join(argv), result.returncode, result.stdout.strip()))


def require_private_namespaces(outer):
    """Refuse unless this process's mount and network namespaces are neither the caller's (outer) nor PID 1's."""
    own = namespace_ids()
    others = [('the caller', tuple(outer))]
    try:
        others.append(('PID 1', namespace_ids(1)))
    except OSError:  # PID 1's namespaces may be unreadable (gVisor, another user namespace): the caller's suffice
        pass
    for label, other in others:
        if own[0] == other[0]:
            raise NamespaceError('the mount namespace is the one of %s (%s): refusing to bind-mount over /etc' % (label, own[0]))
        if own[1] == other[1]:
            raise NamespaceError('the network namespace is the one of %s (%s): refusing to serve production names' % (label, own[1]))
    return own


def write_etc(work_dir, names):
    """hosts, resolv.conf and nsswitch.conf for the namespace, in work_dir/etc; returns {real path: private file}."""
    etc = Path(work_dir) / 'etc'
    etc.mkdir(parents=True, exist_ok=True)
    files = {'/etc/hosts': names.hosts_text(),
             # 127.0.0.1:53 has no listener: a DNS query is refused at once, so unmapped names fail fast.
             '/etc/resolv.conf': 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n'}
    if os.path.exists('/etc/nsswitch.conf'):
        with open('/etc/nsswitch.conf', encoding='utf-8', errors='replace') as handle:
            text = handle.read()
        text, count = re.subn(r'(?m)^hosts:.*$', 'hosts: files dns', text)
        files['/etc/nsswitch.conf'] = text if count else text + '\nhosts: files dns\n'
    private = {}
    for real, content in files.items():
        path = etc / os.path.basename(real)
        path.write_text(content, encoding='utf-8')
        os.chmod(str(path), 0o644)
        private[real] = str(path)
    return private


def bind_etc(private, outer):
    """Make every mount private, then bind the private files over /etc (only in a private mount namespace)."""
    require_private_namespaces(outer)
    mount = system_tool('mount')
    run_checked([mount, '--make-rprivate', '/'])
    for real, path in private.items():
        if not os.path.exists(real):
            raise NamespaceError('%s does not exist; refusing to create it' % real)
        run_checked([mount, '--bind', path, real])


def _resolve(host):
    infos = socket.getaddrinfo(host, HTTPS_PORT, socket.AF_UNSPEC, socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def prove_mapping(names, outer, private=None):
    """Prove, before any request, that only the mapping is in effect; returns the facts or raises NamespaceError."""
    own = require_private_namespaces(outer)
    found = interfaces()
    if found != ['lo']:
        raise NamespaceError('the network namespace has interfaces %s; only lo is allowed' % found)
    facts = {'mount_namespace': own[0], 'network_namespace': own[1], 'interfaces': found, 'resolved': {}, 'unresolved': []}
    for real, path in (private or {}).items():
        with open(real, encoding='utf-8') as seen, open(path, encoding='utf-8') as wanted:
            if seen.read() != wanted.read():
                raise NamespaceError('%s is not the private file %s: the bind mount is not in effect' % (real, path))
    for host, address in names.mapping.items():
        try:
            addresses = _resolve(host)
        except socket.gaierror as error:
            raise NamespaceError('%s does not resolve inside the namespace: %s' % (host, error))
        if addresses != [address]:
            raise NamespaceError('%s resolves to %s inside the namespace, expected only %s' % (host, addresses, address))
        facts['resolved'][host] = address
    for host in names.unmapped:
        started = time.monotonic()
        try:
            addresses = _resolve(host)
        except socket.gaierror:
            facts['unresolved'].append(host)
            if time.monotonic() - started > 5:
                raise NamespaceError('resolving %s took %.1fs to fail: a resolver is being asked' % (host, time.monotonic() - started))
            continue
        raise NamespaceError('%s resolves to %s: names outside the mapping must not resolve' % (host, addresses))
    try:
        socket.create_connection(('1.1.1.1', HTTPS_PORT), timeout=3).close()
    except OSError as error:
        if error.errno != errno.ENETUNREACH:
            raise NamespaceError('1.1.1.1 failed with %r, expected ENETUNREACH' % error)
    else:
        raise NamespaceError('1.1.1.1 was reachable from the namespace')
    facts['public_address'] = 'ENETUNREACH'
    return facts


def namespace_processes(net_namespace=None, exclude=()):
    """PIDs of the processes in a network namespace (default: this one), other than ``exclude``."""
    net_namespace = net_namespace or namespace_ids()[1]
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        try:
            if os.readlink('/proc/%s/ns/net' % entry) == net_namespace and process_start_time(int(entry)) is not None:
                pids.append(int(entry))
        except OSError:
            continue
    return sorted(pids)
