# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Lazy, guarded imports of the Azure SDK.

Nothing is imported until a target actually talks to Key Vault, so check
mode can validate configuration on a host without the SDK, and a missing
package becomes a ``missing_dependency`` error naming what to install.
"""

from __future__ import annotations

import traceback

from ... import errors

PACKAGES = {
    'azure.identity': 'azure-identity',
    'azure.keyvault.certificates': 'azure-keyvault-certificates',
    'azure.core.exceptions': 'azure-core',
    'azure.core.rest': 'azure-core',
    'azure.core.pipeline.transport': 'azure-core',
}

_CACHE = {}


class Sdk(object):
    """The SDK modules the adapter uses, imported once.

    There is no secrets client: the backing secret of a certificate version is read through the
    certificate client's own pipeline (``core_rest.HttpRequest`` + ``CertificateClient.send_request``),
    so one challenge and one token serve every call of a process.

    ``core_transport`` is azure-core's transport module: the connection builds its ``RequestsTransport`` and
    wraps it so that no wait overruns a call's budget (``retry.BoundedTransport``). None leaves the transport
    to the client (unit tests that hand the client a transport of their own).
    """

    def __init__(self, identity, certificates, core_exceptions, core_rest, core_transport=None):
        self.identity = identity
        self.certificates = certificates
        self.core_exceptions = core_exceptions
        self.core_rest = core_rest
        self.core_transport = core_transport


def _import(module):
    try:
        return __import__(module, fromlist=['_'])
    except ImportError:
        raise errors.DeployError(
            errors.MISSING_DEPENDENCY,
            'The Python package %s is required to talk to Azure Key Vault; install it where the module runs '
            '(see the collection requirements.txt).' % PACKAGES[module],
            package=PACKAGES[module], exception=traceback.format_exc())


def load():
    if 'sdk' not in _CACHE:
        _CACHE['sdk'] = Sdk(
            identity=_import('azure.identity'),
            certificates=_import('azure.keyvault.certificates'),
            core_exceptions=_import('azure.core.exceptions'),
            core_rest=_import('azure.core.rest'),
            core_transport=_import('azure.core.pipeline.transport'),
        )
    return _CACHE['sdk']
