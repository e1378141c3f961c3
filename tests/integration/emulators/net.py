# Copyright: contributors to certdeploy.cloud
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loopback networking for the harness: free ports, child environments, HTTP(S) without proxies.

Every helper talks to 127.0.0.1 only and never uses a proxy; TLS contexts either trust one CA
file (as the Azure SDK will) or, while an emulator starts, nothing at all.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import urllib.error
import urllib.request

from .common import LOOPBACK, LOOPBACK_NAMES


def free_port():
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def no_proxy_value(existing=None):
    """NO_PROXY extended with the loopback names (kept comma separated, no duplicates)."""
    if existing is None:
        existing = os.environ.get('NO_PROXY') or os.environ.get('no_proxy') or ''
    names = [name.strip() for name in existing.split(',') if name.strip()]
    for name in LOOPBACK_NAMES:
        if name not in names:
            names.append(name)
    return ','.join(names)


def child_environment(extra=None):
    """A minimal environment for emulator processes: nothing inherited can reconfigure them.

    Spring Boot reads any environment variable as a property, entra-emulator reads generic names
    such as HOST, PORT and ISSUER, and the Go emulators honour proxy variables: pass only the basics.
    """
    env = {}
    for name in ('PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ'):
        if os.environ.get(name):
            env[name] = os.environ[name]
    env.setdefault('PATH', os.defpath)
    env['NO_PROXY'] = env['no_proxy'] = no_proxy_value('')
    if extra:
        env.update(extra)
    return env


def _http_opener(context=None):
    """urllib opener that never uses a proxy (the emulators are on loopback)."""
    handlers = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def insecure_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def verifying_context(ca_file):
    """An SSL context trusting only ca_file, as HTTP clients (requests/urllib3) verify.

    Python 3.13's create_default_context() adds VERIFY_X509_STRICT, which rejects the emulators'
    self-signed leaf certificates (no authority key identifier); urllib3 does not set it, so
    it is cleared here to check what the Azure SDK will see.
    """
    context = ssl.create_default_context(cafile=str(ca_file))
    context.verify_flags &= ~getattr(ssl, 'VERIFY_X509_STRICT', 0)
    return context


def http_get(url, context=None, headers=None, timeout=5.0):
    """GET url without proxies; returns (status, headers, body bytes); HTTP errors are results."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _http_opener(context).open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def fetch_server_chain(host, port, server_name=None, timeout=5.0):
    """PEM text of the certificate chain a TLS server presents (leaf only before Python 3.13)."""
    context = insecure_context()
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_name or host) as tls:
            chain = None
            if hasattr(tls, 'get_unverified_chain'):  # Python 3.13+
                chain = tls.get_unverified_chain()
            if chain:
                ders = [bytes(cert) for cert in chain]  # DER bytes
            else:
                ders = [tls.getpeercert(binary_form=True)]
    return ''.join(ssl.DER_cert_to_PEM_cert(der) for der in ders)


def pem_certificates(text):
    return re.findall(r'-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----', text, re.S)


def http_post_json(url, payload, context=None, timeout=10.0):
    """POST JSON without proxies; returns (status, parsed JSON or raw text)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method='POST',
                                     headers={'Content-Type': 'application/json', 'Accept': 'application/json'})
    try:
        with _http_opener(context).open(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body.decode('utf-8'))
    except ValueError:
        return status, body.decode('utf-8', 'replace')
