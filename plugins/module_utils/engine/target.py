# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The port every deploy target implements (Azure Key Vault today; AWS ACM or files later).

Adapters translate their service's failures into ``errors.DeployError`` with
the stable codes; the engine never sees an SDK exception.
"""

from __future__ import annotations


class Target(object):
    """Abstract deploy target holding versions of one named certificate."""

    #: Labels identifying the target in metrics and messages, e.g. {'vault': ..., 'name': ...}.
    labels = {}

    #: Whether the target stores a chain in the order it was sent (when false it may reorder it: the
    #: stored-chain check then accepts another order with a warning).
    keeps_chain_order = True

    def read_latest(self, look_for_deleted=True):
        """Return the current ``VersionState``, or None when the name does not exist.

        Raises DeployError(SOFT_DELETED) when the name exists only as a
        deleted, recoverable object (with ``deleted=<VersionState>`` in its details when the target read it), and DeployError(BEING_DELETED) while a
        deletion is still in progress.

        ``look_for_deleted=False`` lets a target skip what telling a free name from a
        soft-deleted one costs (an extra request): such a name may then read as None,
        and the import into it must raise DeployError(SOFT_DELETED) instead.  The engine
        asks for it only where nothing is written after the read (check mode).
        """
        raise NotImplementedError

    def read_deleted(self):
        """The soft-deleted certificate of this name (a ``VersionState``: its tags tell who owns it), or None."""
        raise NotImplementedError

    def recover_deleted(self):
        """Recover a soft-deleted name and wait until it is readable again."""
        raise NotImplementedError

    def list_versions(self):
        """Every version of this name as ``VersionState`` (version, created_on, thumbprint, tags; no certificate).

        Used before a rollback, to make sure no other writer's version was created since the snapshot.
        Raises DeployError when the versions cannot be listed in full.
        """
        raise NotImplementedError

    def read_version(self, version=None):
        """The VersionState of ``version`` (latest when None), certificate included; DeployError when it does not exist."""
        raise NotImplementedError

    def read_stored_chain(self, state):
        """The certificates stored with version ``state``, as a ``model.StoredChain`` (leaf first, in stored order).

        Raises DeployError when they cannot be read (FORBIDDEN when reading them is not allowed).
        """
        raise NotImplementedError

    def update_properties(self, state, tags, enabled):
        """Set tags and enabled on an existing version without a new import; return the new VersionState."""
        raise NotImplementedError

    def export_version(self, state):
        """Export the stored version ``state``, private key included, as a ``model.ExportedVersion``.

        Raises DeployError when it cannot be read (forbidden, not exportable...)
        or when what was read is not the certificate of ``state``.
        """
        raise NotImplementedError

    def import_material(self, material, tags, enabled, content_type=None, exportable=None):
        """Import ``material`` as a new version; return the VersionState from the import response.

        The target sends an import once and never resends it by itself: a failed import may have committed, and
        only the engine, after reading latest, decides to send it again.

        ``content_type`` and ``exportable`` override the target's configured ones (a rollback
        re-imports in the previous version's format, as exportable as it was).
        """
        raise NotImplementedError

    def import_exported(self, exported, tags, enabled, content_type=None, exportable=None):
        """Import an ``ExportedVersion`` (a snapshot, or a version exported by another target) unchanged.

        When ``content_type`` asks for another format than the export's, the
        target may rebuild the payload from ``exported.material`` instead.
        Returns the VersionState from the import response.
        """
        raise NotImplementedError

    # -- key made in the target: a pending certificate request, and the merge of its signed certificate ------------

    def read_pending(self):
        """The name's pending certificate request (``model.PendingRequest``, whatever its status), or None."""
        raise NotImplementedError

    def read_policy(self):
        """The name's stored policy as a dict of ``model.RequestPolicy.FIELDS`` (plus ``issuer``), or None when the
        target serves none (a name that is only pending, on some targets)."""
        raise NotImplementedError

    def create_request(self, policy, tags):
        """Make a new key and a pending request from ``policy`` (a ``model.RequestPolicy``); return the PendingRequest.

        Sent once, never resent by the target: a failure that may have reached the target carries
        ``may_have_written=True`` and the engine settles it by reading the pending request.
        """
        raise NotImplementedError

    def discard_request(self):
        """Cancel the pending request and delete it (its key with it), so that a new one can be made."""
        raise NotImplementedError

    def merge(self, signed, tags):
        """Merge the signed certificate and its chain (``material.csr.SignedCertificate``) into the pending request.

        Returns the new VersionState. Sent once; a failure that may have committed carries ``may_have_written=True``.
        """
        raise NotImplementedError

    def predicted_ids(self):
        """Version-independent identifiers known before any write (check mode), e.g. versionless ids."""
        return {}

    def close(self):
        """Release connections and temporary resources."""
