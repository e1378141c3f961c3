# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""FakeTarget with a pending certificate request: the target makes the key and the CSR, and merges a signed certificate.

Like Key Vault: one pending request per name; a merge needs the pending key's public key; a merged version keeps
the certificates it was sent (unless a test says otherwise). ``shows_pending_only`` decides whether a name that is
only pending has a readable policy (the Go emulator serves none; the service serves the policy it was sent).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import PendingRequest, VersionState
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import csr as csr_material
from ansible_collections.certdeploy.cloud.tests.unit.plugins.module_utils.fake_target import CommitThenFail, FakeTarget

_OIDS = {'CN': NameOID.COMMON_NAME, 'O': NameOID.ORGANIZATION_NAME, 'OU': NameOID.ORGANIZATIONAL_UNIT_NAME,
         'L': NameOID.LOCALITY_NAME, 'ST': NameOID.STATE_OR_PROVINCE_NAME, 'C': NameOID.COUNTRY_NAME}
_CURVES = {'P-256': ec.SECP256R1, 'P-384': ec.SECP384R1, 'P-521': ec.SECP521R1}
_RSA_KEYS = {}


def make_key(policy):
    if policy.key_type == 'EC':
        return ec.generate_private_key(_CURVES[policy.curve]())
    # RSA keys are slow to make: a few per size are enough for the tests (different requests get different keys).
    pool = _RSA_KEYS.setdefault(policy.key_size, [])
    if len(pool) < 4:
        pool.append(rsa.generate_private_key(public_exponent=65537, key_size=policy.key_size))
        return pool[-1]
    pool.append(pool.pop(0))
    return pool[-1]


def make_csr(key, subject, dns_names):
    name = x509.Name([x509.NameAttribute(_OIDS[attr], value) for attr, value in csr_material.parse_subject(subject)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if dns_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
    return builder.sign(key, hashes.SHA256())


class FakeRequestTarget(FakeTarget):

    def __init__(self, serves_policy_when_pending_only=True, pending_version_tags=None):
        """``pending_version_tags``: None, a name that is only pending reads as absent (the Go emulator); a dict, it
        reads as a disabled version without a certificate carrying those tags (the service shows such a version)."""
        super(FakeRequestTarget, self).__init__()
        self.pending_version_tags = pending_version_tags
        self.pending = None   # dict: key, csr (DER), policy, tags, status, cancelled
        self.policy = None    # the stored policy dict, as read_policy returns it
        self.serves_policy_when_pending_only = serves_policy_when_pending_only

    # -- test helpers ----------------------------------------------------------

    def seed_pending(self, policy, tags=None, status='inProgress', key=None):
        key = key or make_key(policy)
        csr = make_csr(key, policy.subject, policy.dns_names)
        self.pending = {'key': key, 'csr': csr.public_bytes(serialization.Encoding.DER), 'policy': policy, 'tags': dict(tags or {}),
                        'status': status, 'cancelled': False}
        self.policy = dict(policy.as_dict(), issuer='Unknown')
        return csr

    @property
    def writes(self):
        return [c for c in self.calls if c[0] in ('import', 'update', 'recover', 'create', 'discard', 'merge')]

    # -- Target port -----------------------------------------------------------------

    def read_latest(self, look_for_deleted=True):
        if self.pending_version_tags is not None and self.pending is not None and not self.versions:
            self.calls.append(('read',))
            self._apply_fault('read')
            return VersionState(version='pending-1', thumbprint=None, tags=self.pending_version_tags, enabled=False)
        return super(FakeRequestTarget, self).read_latest(look_for_deleted)

    def read_pending(self):
        self.calls.append(('read_pending',))
        override = self._apply_fault('read_pending')
        if isinstance(override, PendingRequest):
            return override
        if self.pending is None:
            return None
        p = self.pending
        return PendingRequest(csr=p['csr'], status='cancelled' if p['cancelled'] else p['status'], issuer='Unknown',
                              cancellation_requested=p['cancelled'])

    def read_policy(self):
        self.calls.append(('read_policy',))
        self._apply_fault('read_policy')
        if not self.versions and not self.serves_policy_when_pending_only:
            return None
        return dict(self.policy) if self.policy is not None else None

    def create_request(self, policy, tags):
        self.calls.append(('create', dict(tags)))
        effect = self._apply_fault('create')
        if self.soft_deleted is not None:
            raise errors.DeployError(errors.SOFT_DELETED, '409: the name is deleted but recoverable')
        self.seed_pending(policy, tags)
        if isinstance(effect, CommitThenFail):  # committed, then the answer was lost
            raise effect.error
        return PendingRequest(csr=self.pending['csr'], status='inProgress', issuer='Unknown')

    def discard_request(self):
        self.calls.append(('discard',))
        self._apply_fault('discard')
        self.pending = None

    def merge(self, signed, tags):
        self.calls.append(('merge', m.thumbprint(signed.leaf), dict(tags), [m.thumbprint(c) for c in signed.chain]))
        effect = self._apply_fault('merge')
        if self.pending is None or self.pending['cancelled']:
            raise errors.DeployError(errors.CONFLICT, 'no pending request')
        if not m.public_key_matches(signed.leaf, self.pending['key']):
            raise errors.DeployError(errors.KEY_MISMATCH, 'the public key does not match')
        material = m.Material(signed.leaf, self.pending['key'], signed.chain)
        self.seed(material, tags, True, self.pending['policy'].content_type, record=False)
        self.pending = None
        if isinstance(effect, CommitThenFail):  # committed, then the answer was lost
            raise effect.error
        return self._state(self.versions[-1])
