# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reading many certificates of one target: one read each, or a listing of the target (pure, no I/O).

A target that lists its certificates page by page (Key Vault: 25 a page, each with its thumbprint, tags and
enabled flag) can settle a fleet's no-ops with fewer requests than it has certificates: a certificate whose
listed state already is the wanted one (see ``DeployEngine.run(listed=...)``) needs no read of its own.
Whether listing pays depends on how many certificates the target holds, which nobody knows before listing.
:class:`ListingPlan` decides by counting, as in the ski-rental problem: it keeps listing while the pages read
are fewer than the task's certificates the listing has not found yet, and stops once every one was found.
So listing never costs more than the reads it could replace, plus those reads: at most about twice what one
read per certificate costs, and about one request per page size of certificates when the task covers the
target.
"""

from __future__ import annotations

EACH = 'each'    # one read per certificate
LIST = 'list'    # list the target until every certificate of the task was found (or the listing ends)
AUTO = 'auto'    # list while it costs less than the reads it may replace (ListingPlan.more)
READ_MODES = (AUTO, LIST, EACH)

# Fewer certificates of one target than this in a task are read one by one in auto mode: one read each is
# then never more than the first page of a listing, and often less.
AUTO_MINIMUM = 2


def folded(name):
    """Certificate names compare without case (Key Vault's object names do)."""
    return (name or '').lower()


class ListingPlan(object):
    """Which listed states a task wants, and whether to read the next page (``more``).

    ``names`` are the task's certificate names in this target; ``mode`` one of READ_MODES.
    """

    def __init__(self, names, mode=AUTO):
        if mode not in READ_MODES:
            raise ValueError('unknown read mode %r' % (mode,))
        self.mode = mode
        self._wanted = set(folded(name) for name in names)
        self.found = {}
        self._twice = set()  # names listed more than once: such a listing is not trusted for them
        self.pages = 0
        self.listed = 0
        self.complete = False  # the listing reached its last page
        self.stopped = None    # why the listing stopped before its end: 'found' (all found), 'cost', or an error code

    @property
    def lists(self):
        """Whether this plan lists at all."""
        if self.mode == EACH:
            return False
        return self.mode == LIST or len(self._wanted) >= AUTO_MINIMUM

    @property
    def unfound(self):
        return len(self._wanted) - len(self.found)

    def more(self):
        """Whether to read the next page."""
        if not self.lists or self.complete or self.stopped is not None:
            return False
        if self.unfound == 0:
            self.stopped = 'found'
            return False
        if self.mode == AUTO and self.pages >= self.unfound:
            self.stopped = 'cost'
            return False
        return True

    def take(self, page, last=False):
        """Account one page: ``page`` is a list of (name, state); keeps the states of wanted names."""
        self.pages += 1
        self.listed += len(page)
        for name, state in page:
            key = folded(name)
            if key in self._wanted:
                if key in self.found:
                    self._twice.add(key)  # a listing names each certificate once; which entry to believe is unknown
                self.found[key] = state
        if last:
            self.complete = True

    def fail(self, code):
        """The listing failed (``code``: the error code); what it found so far is still used."""
        self.stopped = code

    def listed_state(self, name):
        """The listed state of ``name``, or None (not found, not listed, or listed more than once)."""
        key = folded(name)
        return None if key in self._twice else self.found.get(key)

    def report(self):
        """The task result's account of this target's reads."""
        return {'read': LIST if self.pages else EACH, 'list_pages': self.pages, 'listed_certificates': self.listed,
                'list_complete': self.complete, 'list_stopped': self.stopped}
