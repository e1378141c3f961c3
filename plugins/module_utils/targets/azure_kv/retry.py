# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every call to Key Vault ends within a bound derived from ``timeout``, whatever the server asks.

azure-core's ``RetryPolicy`` sleeps whatever ``Retry-After`` says (a day, if a throttling proxy says so),
and its total ``timeout`` is only checked before each try. azure-identity's credentials run their own
pipelines with their own retry policies, under none of the vault call's limits. Two pieces close that:

- :class:`BoundedRetryPolicy` (the vault client's retry policy) opens a *call budget* when an SDK operation
  starts: ``TOTAL_TIMEOUT_FACTOR x timeout`` from now, kept per thread, so the token requests the call makes
  from inside its pipeline (the challenge policy asks the credential) fall under the same budget. Garbage in
  ``Retry-After`` is read as "no wish" (plain backoff) instead of an exception.
- :class:`BoundedTransport` wraps the HTTP transport of the vault client *and* of the credential. Every wait
  of any retry policy goes through ``transport.sleep``: a wait that would end past the budget is not slept,
  and no request is started once the budget is spent. Both raise :class:`WaitRefused`, which is not an
  ``AzureError``, so no retry policy retries it; the adapter reports it as ``throttled`` (a server's wish
  that does not fit, named in seconds; azure-core's own backoff never exceeds 30 s) or ``timeout``.

So one call lasts at most the budget plus one request already on the wire (its connect and read timeouts):
:func:`call_time_bound`. ``clock`` is read for every budget decision; tests replace it (and azure-core's own
``time``) with a virtual clock.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time

try:
    from azure.core.pipeline.policies import RetryPolicy
except ImportError:  # the SDK is loaded lazily (sdk.load reports it missing); this module must import without it
    RetryPolicy = object

# One call, retries and waits included, may start requests for this many request timeouts.
TOTAL_TIMEOUT_FACTOR = 4

clock = time.time

_scope = threading.local()


def call_time_bound(timeout):
    """The longest one SDK call may take, its token requests included: the budget, plus the request that may
    be on the wire when it runs out (connect timeout and read timeout, each ``timeout``)."""
    return (TOTAL_TIMEOUT_FACTOR + 2) * timeout


class WaitRefused(Exception):
    """A wait that would overrun the call budget (``wanted`` seconds), or a request once it is spent (None)."""

    def __init__(self, wanted, left):
        self.wanted = wanted
        self.left = max(0.0, left)
        if wanted is None:
            text = 'the call used up its time budget before Key Vault answered'
        else:
            text = 'a retry was asked to wait %s s (Retry-After), more than the %d s left of this call\'s budget' % (
                _seconds(wanted), int(self.left))
        super(WaitRefused, self).__init__(text)


def _seconds(value):
    if not math.isfinite(value):
        return str(value)
    return '%d' % value if value == int(value) else '%.1f' % value


def refused_wait(exc):
    """The WaitRefused in ``exc`` or anything it was raised from (a credential chain wraps it); else None."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, WaitRefused):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def retry_after_seconds(headers, now=None):
    """The wait a response asks for, in seconds: ``retry-after-ms``/``x-ms-retry-after-ms`` (milliseconds), else
    ``Retry-After`` (seconds or an HTTP date); None when it asks for none or the value is garbage."""
    if headers is None:
        return None
    for name, scale in (('retry-after-ms', 1000.0), ('x-ms-retry-after-ms', 1000.0), ('Retry-After', 1.0)):
        try:
            value = headers.get(name)
        except AttributeError:
            return None
        if not value:
            continue
        try:
            seconds = float(value) / scale
        except (TypeError, ValueError):
            if scale != 1.0:
                continue
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                continue
            if when is None:
                continue
            seconds = when.timestamp() - (clock() if now is None else now)
        if not math.isfinite(seconds):  # NaN or infinite: garbage
            continue
        return max(0.0, seconds)
    return None


def _deadline():
    stack = getattr(_scope, 'deadlines', None)
    return stack[-1] if stack else None


class BoundedRetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy, with a per-call budget the transport enforces (see the module docstring)."""

    def send(self, request):
        options = request.context.options
        budget = options.get('timeout', self.timeout)
        stack = getattr(_scope, 'deadlines', None)
        if stack is None:
            stack = _scope.deadlines = []
        outer = _deadline()
        deadline = clock() + budget
        stack.append(deadline if outer is None else min(outer, deadline))
        try:
            return super(BoundedRetryPolicy, self).send(request)
        finally:
            stack.pop()

    def get_retry_after(self, response):
        try:
            return super(BoundedRetryPolicy, self).get_retry_after(response)
        except (ValueError, TypeError, OverflowError):  # not seconds, not an HTTP date: no wish, plain backoff
            return None


class BoundedTransport(object):
    """An azure-core HttpTransport that refuses waits and requests past the current call's budget.

    With a ``pacer`` (the vault's ``pacing.VaultPacer``; the vault client's transport has one, the credential's
    none) every request first waits out the vault's throttling pause -- within the call's budget, like any
    wait -- and every request, answer and wait is accounted to that vault.
    """

    # A wait outside any call's budget (none is expected: every SDK call opens one) is bounded by this.
    UNSCOPED_WAIT_MAX = 30.0

    def __init__(self, inner, pacer=None):
        self._inner = inner
        self.pacer = pacer

    def send(self, request, **kwargs):
        pacer = self.pacer
        if pacer is not None:
            pause = pacer.pause_left()
            if pause > 0:
                self.sleep(pause)
        deadline = _deadline()
        if deadline is not None and clock() >= deadline:
            raise WaitRefused(None, 0)
        if pacer is None:
            return self._inner.send(request, **kwargs)
        pacer.sent()
        response = self._inner.send(request, **kwargs)
        status = getattr(response, 'status_code', None)
        if isinstance(status, int):
            pacer.answered(status, retry_after_seconds(getattr(response, 'headers', None)) if status == 429 else None)
        return response

    def sleep(self, duration):
        deadline = _deadline()
        if deadline is not None:
            left = deadline - clock()
            if duration > left:
                raise WaitRefused(duration, left)
        elif duration > self.UNSCOPED_WAIT_MAX:
            raise WaitRefused(duration, self.UNSCOPED_WAIT_MAX)
        outcome = self._inner.sleep(duration)
        if self.pacer is not None:
            self.pacer.waited_for(duration)
        return outcome

    def open(self):
        return self._inner.open()

    def close(self):
        return self._inner.close()

    def __enter__(self):
        self._inner.__enter__()
        return self

    def __exit__(self, *args):
        return self._inner.__exit__(*args)
