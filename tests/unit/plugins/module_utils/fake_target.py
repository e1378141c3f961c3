# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An in-memory deploy target for engine tests, with scriptable faults."""

from __future__ import annotations

import itertools

from ansible_collections.certdeploy.cloud.plugins.module_utils import errors
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import record as records
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine import tags as provenance
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.model import ExportedVersion, StoredChain, VersionState
from ansible_collections.certdeploy.cloud.plugins.module_utils.engine.target import Target
from ansible_collections.certdeploy.cloud.plugins.module_utils.material import certificate as m


class CommitThenFail(object):
    """Import effect: the version is stored, then the call fails (connection cut after commit)."""

    def __init__(self, error):
        self.error = error


class ConcurrentImport(object):
    """Import effect: another writer imports ``material`` right after ours.

    With ``garbled_leaf`` our import response also shows that certificate instead of the one stored.
    """

    def __init__(self, material, garbled_leaf=None):
        self.material = material
        self.garbled_leaf = garbled_leaf


class Tampered(object):
    """Import effect: the target stores ``leaf`` instead of the certificate sent (the response and every read show it)."""

    def __init__(self, leaf):
        self.leaf = leaf


class StoresChain(object):
    """Import effect: the target stores ``certificates`` (leaf first) as the version's chain instead of what was sent
    (the leaf alone, another order, an intermediate swapped...); the certificate itself is stored as sent."""

    def __init__(self, certificates, content_type=None):
        self.certificates = list(certificates)
        self.content_type = content_type


class Meanwhile(object):
    """Effect of any operation: ``action()`` runs just before it (another writer acting meanwhile)."""

    def __init__(self, action):
        self.action = action


class FakeTarget(Target):
    """Versions of one name kept in a list; ``faults`` maps an operation to a list of exceptions/callables to apply in turn."""

    # An import effect that is a bare certificate garbles the import *response* only; Tampered changes what is stored.

    def __init__(self):
        self.labels = {'target': 'fake', 'vault': 'mem://vault', 'name': 'www'}
        self.versions = []          # list of dicts: version, material, tags, enabled, content_type, payload
        self.soft_deleted = None    # a versions list waiting for recovery
        self.deleted_lookups = []   # look_for_deleted of every read_latest, in order
        self.calls = []
        self.faults = {}
        self.exportable = True
        self._ids = itertools.count(1)

    # -- test helpers ------------------------------------------------------

    def seed(self, material, tags=None, enabled=True, content_type='pkcs12', payload=None, exportable=True, record=True,
             stored=None):
        """Store a version; ``payload`` stands for its exported bytes (a fresh token unless given).

        A version with the provenance tags gets the record of its material (as this release's imports write it)
        unless ``record`` is false: a version imported by an earlier release. ``stored`` (certificates, leaf
        first) is what its stored chain holds when not the material's own.
        """
        version = 'v%d' % next(self._ids)
        tags = dict(tags or {})
        if record and provenance.is_managed(tags) and provenance.MATERIAL not in tags:
            tags[provenance.MATERIAL] = records.Record.of_material(material, content_type, exportable).value()
        self.versions.append({'version': version, 'material': material, 'tags': tags, 'enabled': enabled,
                              'content_type': content_type, 'payload': payload or ('exported-bytes-of-' + version),
                              'exportable': exportable, 'stored': stored})
        return version

    def fail(self, operation, *effects):
        self.faults.setdefault(operation, []).extend(effects)

    def _apply_fault(self, operation):
        """Pop the next scripted effect: an exception is raised, anything else is returned for the operation to use."""
        queue = self.faults.get(operation)
        effect = queue.pop(0) if queue else None
        if isinstance(effect, Exception):
            raise effect
        if isinstance(effect, Meanwhile):
            effect.action()
            return None
        return effect

    @property
    def writes(self):
        return [c for c in self.calls if c[0] in ('import', 'update', 'recover')]

    def _state(self, entry, leaf_override=None):
        leaf = leaf_override or entry['material'].leaf
        state = VersionState(
            version=entry['version'], thumbprint=m.thumbprint(leaf), tags=entry['tags'], enabled=entry['enabled'],
            facts=m.certificate_facts(leaf), ids={'id': 'mem://vault/www/' + entry['version'], 'versionless_id': 'mem://vault/www'},
            created_on=int(entry['version'][1:]), content_type=entry['content_type'], leaf=leaf)
        state.exportable = entry['exportable']
        return state

    # -- Target port ---------------------------------------------------------

    def read_latest(self, look_for_deleted=True):
        """Like Key Vault: without ``look_for_deleted`` a soft-deleted name reads as absent (the import then says 409)."""
        self.calls.append(('read',))
        self.deleted_lookups.append(look_for_deleted)
        override = self._apply_fault('read')
        if isinstance(override, VersionState):
            return override
        if self.soft_deleted is not None:
            if look_for_deleted:
                raise errors.DeployError(errors.SOFT_DELETED, 'soft-deleted')
            return None
        return self._state(self.versions[-1]) if self.versions else None

    def read_deleted(self):
        self.calls.append(('read_deleted',))
        self._apply_fault('read_deleted')
        return self._state(self.soft_deleted[-1]) if self.soft_deleted else None

    def list_versions(self):
        self.calls.append(('list_versions',))
        self._apply_fault('list_versions')
        return [self._state(entry) for entry in self.versions]

    def recover_deleted(self):
        self.calls.append(('recover',))
        self.versions, self.soft_deleted = self.soft_deleted, None

    def update_properties(self, state, tags, enabled):
        self.calls.append(('update', state.version))
        self._apply_fault('update')
        entry = next(e for e in self.versions if e['version'] == state.version)
        entry['tags'], entry['enabled'] = dict(tags), enabled
        return self._state(entry)

    def read_version(self, version=None):
        """Like KeyVaultTarget.read_version: latest, or one version; a missing one is a config error."""
        self.calls.append(('read_version', version))
        self._apply_fault('read_version')
        entries = [e for e in self.versions if version is None or e['version'] == version]
        if not entries:
            raise errors.DeployError(errors.INVALID_CONFIG, 'The certificate %s does not exist.' % self.labels['name'])
        return self._state(entries[-1])

    def export_version(self, state):
        self.calls.append(('read_secret', state.version))
        self._apply_fault('read_secret')
        if not self.exportable:
            raise errors.DeployError(errors.INVALID_MATERIAL, 'no private key in the secret')
        entry = next(e for e in self.versions if e['version'] == state.version)
        return ExportedVersion(entry['payload'], entry['content_type'], entry['material'], version=entry['version'])

    def read_stored_chain(self, state):
        self.calls.append(('read_stored', state.version))
        self._apply_fault('read_stored')
        entry = next(e for e in self.versions if e['version'] == state.version)
        stored = entry['stored']
        if stored is None:
            stored = StoredChain([entry['material'].leaf] + list(entry['material'].chain), entry['content_type'])
        return stored

    def import_material(self, material, tags, enabled, content_type=None, exportable=None):
        return self._store(material, tags, enabled, content_type or 'pkcs12', None, 'import', exportable)

    def import_exported(self, exported, tags, enabled, content_type=None, exportable=None):
        if content_type not in (None, exported.content_type):
            return self.import_material(exported.material, tags, enabled, content_type, exportable)
        return self._store(exported.material, tags, enabled, exported.content_type, exported.payload, 'import_exported', exportable)

    def _store(self, material, tags, enabled, content_type, payload, how, exportable=None):
        """``exportable=None`` means the target's configured default (True here)."""
        self.calls.append(('import', m.thumbprint(material.leaf), dict(tags), how))
        effect = self._apply_fault('import')
        if self.soft_deleted is not None:  # Key Vault's 409 ObjectIsDeletedButRecoverable
            raise errors.DeployError(errors.SOFT_DELETED, '409: the name is deleted but recoverable')
        self.seed(material, tags, enabled, content_type, payload, True if exportable is None else exportable, record=False)
        mine = self.versions[-1]
        if isinstance(effect, StoresChain):
            mine['stored'] = StoredChain(effect.certificates, effect.content_type or content_type)
        if isinstance(effect, Tampered):
            mine['material'] = m.Material(effect.leaf, None, [])
        if isinstance(effect, CommitThenFail):
            raise effect.error
        stored_leaf = effect if isinstance(effect, m.x509.Certificate) else None
        if isinstance(effect, ConcurrentImport):
            self.seed(effect.material, {'writer': 'someone-else'}, record=False)
            stored_leaf = effect.garbled_leaf
        return self._state(mine, leaf_override=stored_leaf)

    def predicted_ids(self):
        return {'versionless_id': 'mem://vault/www'}
