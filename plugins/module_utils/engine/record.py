# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The record of what was imported, kept in the provenance tag ``certdeploy-material``.

A target shows the leaf of a version (its thumbprint) in every read and list, but not the chain stored with
it. So every import also writes, as a tag of the new version, a record of what it sent: the content type, the
exportable flag and a digest of the ordered certificates (leaf, then chain). A later run compares its wanted
record with the stored one and knows from the tags alone -- one read of the version, or a list of the vault --
whether the chain, its order, the content type or the exportable flag changed.

Value format (at most 90 characters, well within tag value limits)::

    v1;<content type>;<exportable|non-exportable>;<sha256 hex of the ordered certificates>

A value this module cannot parse (another format, edited by hand) counts as no record.
"""

from __future__ import annotations

from ..material import certificate as cert_material

FORMAT = 'v1'
_EXPORTABLE = {True: 'exportable', False: 'non-exportable'}
_EXPORTABLE_VALUES = dict((v, k) for k, v in _EXPORTABLE.items())

# What a record compares, in the order differences are reported.
CHAIN = 'chain'
CONTENT_TYPE = 'content_type'
EXPORTABLE = 'exportable'


class Record(object):
    """What one import sent: content type ('pkcs12' or 'pem'), exportable flag, digest of the ordered certificates."""

    def __init__(self, content_type, exportable, digest):
        self.content_type = content_type
        self.exportable = bool(exportable)
        self.digest = digest

    @classmethod
    def of(cls, certificates, content_type, exportable):
        """The record of importing ``certificates`` (leaf first, in the order sent)."""
        return cls(content_type, exportable, cert_material.chain_digest(certificates))

    @classmethod
    def of_material(cls, material, content_type, exportable):
        return cls.of([material.leaf] + list(material.chain), content_type, exportable)

    @classmethod
    def parse(cls, value):
        """The Record in a tag value, or None when there is none this module wrote."""
        if not isinstance(value, str):
            return None
        parts = value.split(';')
        if len(parts) != 4 or parts[0] != FORMAT or parts[1] not in ('pkcs12', 'pem') or parts[2] not in _EXPORTABLE_VALUES:
            return None
        digest = parts[3]
        if len(digest) != 64 or any(c not in '0123456789abcdef' for c in digest):
            return None
        return cls(parts[1], _EXPORTABLE_VALUES[parts[2]], digest)

    def value(self):
        """The tag value."""
        return '%s;%s;%s;%s' % (FORMAT, self.content_type, _EXPORTABLE[self.exportable], self.digest)

    def differences(self, other):
        """What differs between this record and ``other``: a list of CHAIN, CONTENT_TYPE, EXPORTABLE."""
        out = []
        if self.digest != other.digest:
            out.append(CHAIN)
        if self.content_type != other.content_type:
            out.append(CONTENT_TYPE)
        if self.exportable != other.exportable:
            out.append(EXPORTABLE)
        return out

    def __eq__(self, other):
        return isinstance(other, Record) and self.value() == other.value()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return 'Record(%s)' % self.value()
