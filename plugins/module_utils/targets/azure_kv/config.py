# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Key Vault addressing: vault URL, certificate name and cloud (pure, no SDK)."""

from __future__ import annotations

import ipaddress
import re

from ... import errors

try:  # Python 3
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover
    from urlparse import urlsplit  # type: ignore

CLOUDS = {
    'public': {'suffix': '.vault.azure.net', 'authority_host': 'login.microsoftonline.com'},
    'usgov': {'suffix': '.vault.usgovcloudapi.net', 'authority_host': 'login.microsoftonline.us'},
    'china': {'suffix': '.vault.azure.cn', 'authority_host': 'login.chinacloudapi.cn'},
}
CLOUD_CHOICES = ('public', 'usgov', 'china', 'custom')

# AWX / azure-cli names for the clouds (AZURE_CLOUD_ENVIRONMENT).
AWX_CLOUD_NAMES = {
    'azurecloud': 'public',
    'azurepubliccloud': 'public',
    'azureusgovernment': 'usgov',
    'azureusgovernmentcloud': 'usgov',
    'azurechinacloud': 'china',
}

# Whole-string patterns, always applied with fullmatch(): "$" would also match before a trailing newline, which a
# YAML folded scalar (">") adds to a value.
_VAULT_NAME = re.compile(r'[a-z][a-z0-9-]{1,22}[a-z0-9]')
_CERT_NAME = re.compile(r'[0-9A-Za-z-]{1,127}')
_HOST = re.compile(r'[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*')


class VaultAddress(object):
    """A validated vault: normalised URL, its cloud, and the vault name (None for custom hosts)."""

    def __init__(self, url, cloud, name):
        self.url = url
        self.cloud = cloud
        self.name = name

    def __repr__(self):
        return 'VaultAddress(%r, cloud=%r)' % (self.url, self.cloud)


def cloud_from_env(env):
    """The cloud named by AWX's AZURE_CLOUD_ENVIRONMENT, or None."""
    raw = (env.get('AZURE_CLOUD_ENVIRONMENT') or '').strip()
    if not raw:
        return None
    cloud = AWX_CLOUD_NAMES.get(raw.lower().replace('_', '').replace(' ', ''))
    if cloud is None:
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'AZURE_CLOUD_ENVIRONMENT is "%s"; expected AzureCloud, AzureUSGovernment or AzureChinaCloud '
            '(or set the cloud option).' % raw,
        )
    return cloud


def infer_cloud(host):
    for cloud, info in CLOUDS.items():
        if host.endswith(info['suffix']):
            return cloud
    return None


def parse_vault_url(url, cloud=None):
    """Validate and normalise ``url``; return a :class:`VaultAddress`.

    Accepts the portal's form with a trailing ``/``, an explicit ``:443`` and
    any letter case in the host.  Rejects other schemes, paths, queries,
    fragments and user info.  A host outside the known clouds needs
    ``cloud='custom'``.
    """
    if not isinstance(url, str) or not url.strip():
        raise errors.DeployError(errors.INVALID_CONFIG, 'vault_url is empty; expected https://<vault-name>.vault.azure.net.')
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise errors.DeployError(errors.INVALID_CONFIG, 'vault_url "%s" is not a valid URL (%s).' % (raw, exc))
    if parts.scheme.lower() != 'https':
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'vault_url "%s" must use https:// (Key Vault accepts no other scheme; tokens must never travel in clear text).' % raw,
        )
    if parts.username is not None or parts.password is not None or '@' in parts.netloc:
        raise errors.DeployError(errors.INVALID_CONFIG, 'vault_url must not contain user information ("user@").')
    if parts.path not in ('', '/'):
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'vault_url "%s" has a path (%s); give the vault root only, e.g. https://<vault-name>.vault.azure.net. '
            'Name the certificate with certificate_name.' % (raw, parts.path),
        )
    if parts.query or parts.fragment or raw.endswith('?') or raw.endswith('#'):
        raise errors.DeployError(errors.INVALID_CONFIG, 'vault_url must not have a query or fragment.')
    host = (parts.hostname or '').lower()
    if not host:
        raise errors.DeployError(errors.INVALID_CONFIG, 'vault_url "%s" has no host.' % raw)

    inferred = infer_cloud(host)
    if cloud is None:
        cloud = inferred
    if cloud is None:
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'vault_url host "%s" is not in a known Azure cloud (*.vault.azure.net, *.vault.usgovcloudapi.net, '
            '*.vault.azure.cn). For an emulator or a private endpoint alias set cloud: custom and authority_host.' % host,
        )
    if cloud == 'custom':
        if not _HOST.fullmatch(host) and not _is_ip(host):
            raise errors.DeployError(errors.INVALID_CONFIG, 'vault_url host "%s" is not a valid host name.' % host)
        # An IPv6 address keeps its brackets with or without a port: "https://::1" is no URL.
        netloc = _bracket(host) if port in (None, 443) else '%s:%d' % (_bracket(host), port)
        return VaultAddress('https://' + netloc, cloud, None)

    suffix = CLOUDS[cloud]['suffix']
    if not host.endswith(suffix):
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'vault_url host "%s" does not belong to the %s cloud (expected *%s)%s.'
            % (host, cloud, suffix, '; it looks like the %s cloud' % inferred if inferred else ''),
        )
    if port not in (None, 443):
        raise errors.DeployError(errors.INVALID_CONFIG, 'vault_url port %s is not valid for Key Vault; omit the port or use 443.' % port)
    name = host[:-len(suffix)]
    check_vault_name(name)
    return VaultAddress('https://' + host, cloud, name)


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _bracket(host):
    return '[%s]' % host if ':' in host else host


def check_vault_name(name):
    problems = []
    if not 3 <= len(name) <= 24:
        problems.append('be 3 to 24 characters long (it has %d)' % len(name))
    if '.' in name:
        problems.append('be a single DNS label (no dots)')
    elif not _VAULT_NAME.fullmatch(name):
        problems.append('start with a letter, end with a letter or digit and contain only letters, digits and hyphens')
    if '--' in name:
        problems.append('not contain consecutive hyphens')
    if problems:
        raise errors.DeployError(errors.INVALID_CONFIG, 'The vault name "%s" must %s.' % (name, '; '.join(problems)))


def suggest_certificate_name(name):
    """Map a DNS-style name to a valid Key Vault certificate name, or None when no mapping helps."""
    candidate = name.strip().replace('*', 'wildcard').replace('.', '-').replace('_', '-')
    candidate = re.sub(r'-{2,}', '-', candidate).strip('-')
    return candidate if _CERT_NAME.fullmatch(candidate) else None


def _shown(text):
    """``text`` for a message, with control characters escaped (a trailing newline shows as \\n)."""
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def check_certificate_name(name):
    if isinstance(name, str) and _CERT_NAME.fullmatch(name):
        return name
    text = _shown(name) if isinstance(name, str) else repr(name)
    hint = ''
    suggestion = suggest_certificate_name(name) if isinstance(name, str) and name else None
    if suggestion and suggestion != name:
        hint = ' Try certificate_name: %s' % suggestion
    raise errors.DeployError(
        errors.INVALID_CONFIG,
        'certificate_name "%s" is not a valid Key Vault object name: 1 to 127 letters, digits and hyphens.%s' % (text, hint),
    )


def authority_host_for(cloud, authority_host=None, env=None, required=True):
    """The sign-in host for ``cloud``; ``custom`` needs authority_host (or AZURE_AUTHORITY_HOST).

    ``required=False`` (managed identity, which signs in through its own endpoint)
    returns None for ``custom`` when no host is configured.
    """
    env = env or {}
    if cloud != 'custom':
        if authority_host:
            raise errors.DeployError(
                errors.INVALID_CONFIG,
                'authority_host is only used with cloud: custom; the %s cloud signs in at %s.' % (cloud, CLOUDS[cloud]['authority_host']),
            )
        return CLOUDS[cloud]['authority_host']
    value = authority_host or env.get('AZURE_AUTHORITY_HOST')
    if not value and not required:
        return None
    if not value:
        raise errors.DeployError(
            errors.INVALID_CONFIG,
            'cloud: custom needs authority_host (the Microsoft Entra sign-in host, e.g. https://login.example.internal), '
            'or AZURE_AUTHORITY_HOST in the environment.',
        )
    parts = urlsplit(value if '://' in value else 'https://' + value)
    if parts.scheme != 'https' or not parts.hostname or parts.path not in ('', '/') or parts.query:
        raise errors.DeployError(errors.INVALID_CONFIG, 'authority_host "%s" must be an https:// host without a path.' % value)
    return 'https://%s' % parts.netloc


# Key Vault REST API versions are "7.0" ... "7.6", then dates ("2025-07-01", ...); "2016-10-01" predates 7.0.
_NUMBERED_API = re.compile(r'(\d+)\.(\d+)(-preview(\.\d+)?)?')
_DATED_API = re.compile(r'(\d{4})-(\d{2})-(\d{2})(-preview(\.\d+)?)?')
# The first API version whose import keeps a chain's order when asked (preserveCertOrder).
PRESERVE_ORDER_SINCE = '7.6'


def preserve_order_supported(api_version):
    """Whether an import on ``api_version`` (None: the SDK's default, 7.6 or later since the SDK release this
    collection requires) can ask Key Vault to keep the chain's order. An unknown form counts as not supported."""
    if api_version is None:
        return True
    text = str(api_version).strip()
    numbered = _NUMBERED_API.fullmatch(text)
    if numbered:
        return (int(numbered.group(1)), int(numbered.group(2))) >= (7, 6)
    dated = _DATED_API.fullmatch(text)
    if dated:
        return int(dated.group(1)) >= 2025  # the dated versions after 7.6; 2016-10-01 is the oldest of all
    return False
