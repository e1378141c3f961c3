# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One vault's pace in a task: throttling is paced, not fought.

Key Vault limits the transactions each vault serves per 10 seconds and answers the excess ``429`` with
``Retry-After``. Every certificate of a task that uses one vault shares that vault's :class:`VaultPacer`
(one per ``VaultConnection``, so one per vault per task):

- **Pause.** A 429 pauses the whole vault until its ``Retry-After`` has passed (1 s when it names none): every
  request to that vault waits for the pause to end before it is sent. The wait goes through the call's
  budget (``retry.BoundedTransport``): a pause longer than what is left of a call ends that call as
  ``throttled``, and a fleet task may try that certificate again later (``frontend.deploy_many``).
- **Concurrency.** How many certificates of the vault run at once (``slot``) halves on a throttling episode
  (once per episode, never below 1) and rises by one after each round of clean answers (as many as the
  current limit), never above where it started: additive increase, multiplicative decrease.
- **Account.** Requests sent (429-answered ones and the unauthenticated challenge included), 429s, and the
  seconds waited (pauses and the retry policy's waits, summed over concurrent calls), for the task's result.

The clock is ``retry.clock`` (as the call budgets'), so tests drive both with one virtual clock.
"""

from __future__ import annotations

import contextlib
import threading

from . import retry

DEFAULT_PAUSE = 1.0  # a 429 without a usable Retry-After pauses the vault this long


class VaultPacer(object):
    """The pace of one vault in one task (see the module docstring); safe to share between threads."""

    def __init__(self, concurrency=1):
        self.start = max(1, int(concurrency))
        self.limit = self.start
        self.lowest = self.start
        self.requests = 0
        self.throttled = 0
        self.waited = 0.0
        self._resume_at = 0.0
        self._episode_until = None
        self._clean = 0
        self._active = 0
        self._cond = threading.Condition()

    # -- the fleet's side ------------------------------------------------------

    @contextlib.contextmanager
    def slot(self):
        """Hold one of the vault's ``limit`` places while one certificate runs."""
        with self._cond:
            while self._active >= self.limit:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def pause_left(self):
        """Seconds until the vault's pause ends (0 when it is not paused)."""
        with self._cond:
            return max(0.0, self._resume_at - retry.clock())

    # -- the transport's side -------------------------------------------------

    def sent(self):
        with self._cond:
            self.requests += 1

    def answered(self, status, retry_after=None):
        """Account an answer: a 429 pauses the vault and (once per episode) halves its concurrency."""
        now = retry.clock()
        with self._cond:
            if status == 429:
                self.throttled += 1
                pause = DEFAULT_PAUSE if retry_after is None else retry_after
                self._resume_at = max(self._resume_at, now + pause)
                if self._episode_until is None or now >= self._episode_until:
                    self.limit = max(1, self.limit // 2)
                    self.lowest = min(self.lowest, self.limit)
                self._episode_until = self._resume_at
                self._clean = 0
                return
            if status >= 500:
                return  # not a throttling answer, and not a clean one either
            if self._episode_until is not None and now < self._episode_until:
                return  # answers to requests of the throttling episode do not show the vault has recovered
            self._clean += 1
            if self.limit < self.start and self._clean >= self.limit:
                self.limit += 1
                self._clean = 0
                self._cond.notify_all()

    def waited_for(self, seconds):
        with self._cond:
            self.waited += seconds

    def report(self):
        """The task result's account of this vault."""
        with self._cond:
            return {'requests': self.requests, 'throttled': self.throttled, 'waited_seconds': round(self.waited, 3),
                    'concurrency': {'start': self.start, 'lowest': self.lowest, 'end': self.limit}}
