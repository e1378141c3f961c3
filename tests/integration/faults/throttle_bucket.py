# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The arithmetic of the throttling test proxy (throttle_addon.py): one token bucket per vault.

Pure Python, no mitmproxy: the unit tests (tests/unit/faults/test_throttle_bucket.py) import this file by path.

A bucket holds at most ``capacity`` tokens and gains ``rate`` tokens a second. A request that finds a whole
token takes it and is admitted; any other request is refused (answered 429) and takes nothing, as Key Vault
does not count a refused request against its limits. The refusal's ``Retry-After`` is the time until the
bucket holds a whole token again, rounded up to whole seconds and at least 1 (Key Vault's header is whole
seconds). The bucket starts full. Time is whatever monotonic clock the caller passes in, in seconds.
"""

from __future__ import annotations

import math

EPSILON = 1e-9


class TokenBucket(object):
    """``rate`` tokens a second, at most ``capacity`` (default ``rate``), full at ``now``."""

    def __init__(self, rate, capacity=None, now=0.0):
        if not rate > 0:
            raise ValueError('rate must be positive, not %r' % (rate,))
        capacity = rate if capacity is None else capacity
        if not capacity >= 1:
            raise ValueError('capacity must be at least 1 (a whole request), not %r' % (capacity,))
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.tokens = self.capacity
        self.stamp = now

    def _refill(self, now):
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now):
        """Admit one request at ``now``: (True, 0), or refuse it: (False, whole seconds to wait, at least 1)."""
        self._refill(now)
        if self.tokens >= 1 - EPSILON:  # many small refills add up to 0.999...: that is a whole token
            self.tokens = max(0.0, self.tokens - 1)
            return True, 0
        return False, retry_after(self.tokens, self.rate)


def retry_after(tokens, rate):
    """Whole seconds until ``tokens`` grows to one at ``rate`` a second: rounded up, at least 1."""
    missing = max(0.0, 1.0 - tokens)
    # A hair of float error (0.3 / 0.1 = 2.9999999999999996, 0.1 * 3 = 0.30000000000000004) must not add a second.
    return max(1, int(math.ceil(round(missing / rate, 9))))


class Buckets(object):
    """One TokenBucket per vault (any hashable key: the proxy uses the upstream vault's URL), made on first use."""

    def __init__(self, rate, capacity=None):
        self.rate, self.capacity = rate, capacity
        TokenBucket(rate, capacity)  # fail now, not at the first request, on a bad rate or capacity
        self.buckets = {}

    def take(self, key, now):
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.rate, self.capacity, now)
        return bucket.take(now)


def minimum_seconds(admitted, rate, capacity=None):
    """The least wall time in which a bucket admits ``admitted`` requests: the first ``capacity`` at once,
    then one every 1/rate seconds (the benchmark's yardstick for a throttled run)."""
    capacity = rate if capacity is None else capacity
    return max(0.0, (admitted - math.floor(capacity)) / float(rate))
