# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""TLS endpoint probe: which certificate does an endpoint serve, and is it the one just deployed?

Azure edges (Application Gateway, Front Door, App Service) poll Key Vault on
their own schedule, so a deploy is visible at the edge some time later.  These
functions connect to an endpoint, read the leaf certificate it presents and
compare its SHA-1 thumbprint with the expected one, retrying until a deadline.

Nothing here imports Ansible.  The network is reached through one function,
:func:`fetch_certificate`; the waiting loop (:func:`wait_for_certificate`)
takes the fetch, the clock and the sleep as arguments so that it is tested
without a network or real time.  Failures are the collection's
:class:`~..errors.DeployError` with one of ``errors.PROBE_CODES``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time

from .. import errors
from ..errors import INVALID_CONFIG, MISMATCH, MISSING_DEPENDENCY, TLS_ERROR, UNREACHABLE
from ..material import certificate as cert_material

# Whole-string patterns, applied with fullmatch() ("$" would also match before a trailing newline).
_HEX40 = re.compile(r'[0-9A-F]{40}')
_HOSTNAME = re.compile(r'(?=.{1,253}\Z)[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?')


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------

def normalise_thumbprint(value):
    """'6a:3f:...' or '6A3F...' -> '6A3F...' (40 upper-case hex digits, the deploy module's certificate.thumbprint)."""
    if value is None:
        return None
    text = re.sub(r'[\s:]', '', str(value)).upper()
    if not _HEX40.fullmatch(text):
        raise errors.DeployError(
            INVALID_CONFIG,
            'expected_thumbprint must be a SHA-1 thumbprint: 40 hexadecimal digits, colons allowed, as '
            'azure_kv_certificate_deploy returns it in certificate.thumbprint (got %d characters).' % len(text))
    return text


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_host(value, option):
    """A host name or IP address (IPv6 with or without brackets); a URL gets a hint."""
    text = (value or '').strip()
    if text.startswith('[') and text.endswith(']'):
        text = text[1:-1]
    if not text:
        raise errors.DeployError(INVALID_CONFIG, '%s must be a host name or an IP address.' % option)
    if '://' in text or '/' in text:
        raise errors.DeployError(INVALID_CONFIG, '%s must be a host name or an IP address, not a URL (%s); give the port in port.'
                                 % (option, text))
    if not (_is_ip(text) or _HOSTNAME.fullmatch(text)):
        raise errors.DeployError(INVALID_CONFIG, '%s %r is neither a host name nor an IP address.' % (option, text))
    return text


def check_options(host, port, server_name=None, timeout=0, interval=5, connect_timeout=10):
    """Validate and normalise the probe options; returns a dict."""
    host = check_host(host, 'host')
    server_name = check_host(server_name, 'server_name') if server_name else host
    if not 1 <= int(port) <= 65535:
        raise errors.DeployError(INVALID_CONFIG, 'port must be between 1 and 65535 (got %s).' % port)
    if timeout < 0:
        raise errors.DeployError(INVALID_CONFIG, 'timeout must be zero (a single attempt) or a positive number of seconds.')
    if interval <= 0:
        raise errors.DeployError(INVALID_CONFIG, 'interval must be a positive number of seconds.')
    if connect_timeout <= 0:
        raise errors.DeployError(INVALID_CONFIG, 'connect_timeout must be a positive number of seconds.')
    return {'host': host, 'port': int(port), 'server_name': server_name, 'timeout': timeout,
            'interval': interval, 'connect_timeout': connect_timeout}


def client_context(validate_certs=True, ca_path=None):
    """The SSL context of the probe.

    With validation the system trust store is used, plus the anchors in ``ca_path``, and the
    certificate must match the server name, as a browser or an HTTP client would check it.
    Python 3.13 adds VERIFY_X509_STRICT to the default context; HTTP clients (urllib3, and so
    requests and the Azure SDK) do not, so it is cleared to judge the endpoint as they would.
    Without validation any certificate is read (and reported) as served.
    """
    if not validate_certs:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    context.verify_flags &= ~getattr(ssl, 'VERIFY_X509_STRICT', 0)
    if ca_path:
        try:
            context.load_verify_locations(cafile=ca_path)
        except (IOError, OSError, ssl.SSLError) as exc:
            raise errors.DeployError(INVALID_CONFIG, 'ca_path %s cannot be used as a PEM file of trust anchors: %s.'
                                     % (ca_path, getattr(exc, 'strerror', None) or exc))
    return context


# --------------------------------------------------------------------------
# One attempt
# --------------------------------------------------------------------------

def fetch_certificate(host, port, server_name, context, connect_timeout):
    """Complete a TLS handshake and return (leaf DER bytes, TLS version). Raises DeployError."""
    where = '%s:%d' % (host, port) if server_name == host else '%s:%d (server name %s)' % (host, port, server_name)
    try:
        raw = socket.create_connection((host, port), timeout=connect_timeout)
    except socket.timeout:
        raise errors.DeployError(UNREACHABLE, 'No connection to %s within %s seconds.' % (where, connect_timeout))
    except (socket.gaierror, socket.herror) as exc:
        raise errors.DeployError(UNREACHABLE, 'Cannot resolve %s: %s.' % (host, exc.strerror or exc))
    except (IOError, OSError) as exc:
        raise errors.DeployError(UNREACHABLE, 'Cannot connect to %s: %s.' % (where, exc.strerror or exc))
    try:
        # No SNI is sent for an IP address; the certificate is then checked against the IP.
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        raise errors.DeployError(TLS_ERROR, '%s presented a certificate that failed verification: %s. Set ca_path to the issuing '
                                 'CA, or validate_certs: false to read it anyway.' % (where, exc.verify_message or exc.reason or exc))
    except ssl.SSLError as exc:
        raise errors.DeployError(TLS_ERROR, 'TLS handshake with %s failed: %s.' % (where, exc.reason or exc))
    except socket.timeout:
        raise errors.DeployError(UNREACHABLE, 'No TLS handshake with %s within %s seconds.' % (where, connect_timeout))
    except (IOError, OSError) as exc:
        raise errors.DeployError(TLS_ERROR, 'TLS handshake with %s failed: %s.' % (where, exc.strerror or exc))
    finally:
        raw.close()
    if not der:
        raise errors.DeployError(TLS_ERROR, '%s completed the handshake without presenting a certificate.' % where)
    return der, version


def served_facts(der):
    """Public facts of a DER certificate: thumbprint, x5t, serial, subject, issuer, sans, not_before, expires.

    The probe compares thumbprints, which do not depend on what the certificate says: a malformed name or
    extension leaves that fact empty and is listed in ``parse_errors`` (see certificate_facts, lenient).
    """
    try:
        cert = cert_material.load_der_certificate(der)
    except errors.DeployError as exc:  # cryptography is missing
        raise errors.DeployError(MISSING_DEPENDENCY, exc.message)
    if cert is None:
        raise errors.DeployError(TLS_ERROR, 'The endpoint presented a certificate that cannot be parsed.')
    return cert_material.certificate_facts(cert, lenient=True)


def probe_once(options, context):
    """One attempt: the served certificate's facts plus the TLS version. Raises DeployError."""
    der, version = fetch_certificate(options['host'], options['port'], options['server_name'], context, options['connect_timeout'])
    facts = served_facts(der)
    facts['tls_version'] = version
    return facts


# --------------------------------------------------------------------------
# The bounded wait
# --------------------------------------------------------------------------

def wait_for_certificate(fetch, expected=None, timeout=0, interval=5, clock=time.monotonic, sleep=time.sleep):
    """Call ``fetch()`` until it returns the expected thumbprint, or, without ``expected``, any certificate.

    ``fetch`` returns a facts dict (with ``thumbprint``) or raises DeployError. Attempts are
    ``interval`` seconds apart and the last one starts when ``timeout`` seconds have passed, so the
    wait lasts at most ``timeout`` plus one attempt. ``timeout=0`` makes exactly one attempt.

    Returns a dict: ``matched`` (None without ``expected``), ``attempts``, ``elapsed`` (seconds),
    ``served`` (facts of the last certificate seen, or None) and ``error`` (the last attempt's
    failure as {code, message}, or None when it succeeded).
    """
    started = clock()
    deadline = started + timeout
    attempts = 0
    served = None
    error = None
    while True:
        attempts += 1
        try:
            served = fetch()
            error = None
        except errors.DeployError as exc:
            error = exc
        if error is None and (expected is None or served.get('thumbprint') == expected):
            break
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sleep(min(interval, remaining))
    matched = None if expected is None else bool(served and error is None and served.get('thumbprint') == expected)
    return {
        'matched': matched,
        'attempts': attempts,
        'elapsed': round(clock() - started, 3),
        'served': served,
        'error': error.as_dict() if error is not None else None,
    }


def failure(report, expected, fail_on_mismatch):
    """The DeployError a report amounts to, or None.

    Without ``expected`` the probe's purpose is to read the certificate: not getting one fails.
    With ``expected`` a miss fails only when ``fail_on_mismatch`` asks for it (by default the
    probe reports: an edge that has not picked up the new version yet is not an error).
    """
    error = report['error']
    if expected is None:
        if report['served'] is None:
            return errors.DeployError(error['code'], error['message'])
        return None
    if report['matched'] or not fail_on_mismatch:
        return None
    if error is not None:
        return errors.DeployError(error['code'], error['message'] + ' Expected thumbprint %s.' % expected)
    return errors.DeployError(MISMATCH, 'After %d attempts in %s seconds the endpoint still serves %s (%s), not %s.'
                              % (report['attempts'], report['elapsed'], report['served']['thumbprint'],
                                 report['served']['subject'], expected))
