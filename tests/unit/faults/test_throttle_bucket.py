# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The throttling test proxy's arithmetic (tests/integration/faults/throttle_bucket.py): a token bucket per vault.

The integration targets and the benchmark trust the proxy to admit at most ``rate`` requests a second per vault
(after a burst of ``capacity``) and to tell a refused client to wait the right whole seconds; these tests pin
that down with an explicit clock, so no test here sleeps. The module under test is a test helper, not part of
the collection, so it is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

PATH = os.path.join(os.path.dirname(__file__), '..', '..', 'integration', 'faults', 'throttle_bucket.py')
_SPEC = importlib.util.spec_from_file_location('certdeploy_throttle_bucket', PATH)
tb = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tb)


def admitted_in(bucket, times):
    return [bucket.take(t)[0] for t in times]


def test_starts_full_admits_the_burst_then_refuses():
    bucket = tb.TokenBucket(rate=10, capacity=3, now=100.0)
    assert admitted_in(bucket, [100.0] * 4) == [True, True, True, False]


def test_capacity_defaults_to_the_rate():
    bucket = tb.TokenBucket(rate=5, now=0.0)
    assert admitted_in(bucket, [0.0] * 6) == [True] * 5 + [False]


def test_refills_at_the_rate_and_never_above_capacity():
    bucket = tb.TokenBucket(rate=10, capacity=2, now=0.0)
    assert admitted_in(bucket, [0.0, 0.0, 0.0]) == [True, True, False]
    # 0.1 s later exactly one token is back; 0.05 s later still not a whole one.
    assert admitted_in(bucket, [0.05, 0.1, 0.1]) == [False, True, False]
    # An hour of idling refills to capacity (2), not 36,000.
    assert admitted_in(bucket, [3600.0] * 3) == [True, True, False]


def test_refused_requests_take_no_token():
    """Key Vault does not count a 429 against the limit: hammering while refused does not delay recovery."""
    bucket = tb.TokenBucket(rate=1, capacity=1, now=0.0)
    assert bucket.take(0.0) == (True, 0)
    for t in (0.1, 0.2, 0.5, 0.9):
        assert bucket.take(t)[0] is False
    assert bucket.take(1.0) == (True, 0)


def test_sustained_rate_over_a_long_run():
    """Requests every millisecond for 10 s at 20/s with capacity 20: 20 + 10 * 20 admitted, no more."""
    bucket = tb.TokenBucket(rate=20, capacity=20, now=0.0)
    admitted = sum(admitted_in(bucket, [i / 1000.0 for i in range(10001)]))
    assert admitted == 20 + 200


@pytest.mark.parametrize('tokens, rate, expected', [
    (0.0, 10, 1),      # 0.1 s to wait: rounded up to one whole second
    (0.0, 1, 1),       # exactly 1 s
    (0.0, 0.5, 2),     # 2 s
    (0.25, 0.5, 2),    # 1.5 s -> 2
    (0.0, 0.3, 4),     # 3.33 s -> 4
    (0.9, 0.1, 1),     # 1 s, float error must not make it 2
    (0.7, 0.1, 3),     # 3 s, float error must not make it 4
    (0.99, 0.001, 10),
])
def test_retry_after_is_whole_seconds_rounded_up_at_least_one(tokens, rate, expected):
    assert tb.retry_after(tokens, rate) == expected


def test_a_refusal_says_how_long_until_a_whole_token():
    bucket = tb.TokenBucket(rate=0.25, capacity=1, now=0.0)
    assert bucket.take(0.0) == (True, 0)
    assert bucket.take(0.0) == (False, 4)
    assert bucket.take(1.0) == (False, 3)
    assert bucket.take(3.5) == (False, 1)
    assert bucket.take(4.0) == (True, 0)


def test_one_bucket_per_vault():
    buckets = tb.Buckets(rate=1, capacity=2)
    a, b = 'https://localhost:8443', 'https://127.0.0.1:8443'
    assert [buckets.take(a, 0.0)[0] for dummy in range(3)] == [True, True, False]
    # Another vault has its own, full bucket, made at its first request.
    assert [buckets.take(b, 0.0)[0] for dummy in range(3)] == [True, True, False]
    assert buckets.take(a, 1.0)[0] is True
    assert buckets.take(a, 1.0)[0] is False


@pytest.mark.parametrize('rate, capacity', [(0, None), (-1, None), (10, 0.5), (10, 0)])
def test_bad_settings_fail_at_once(rate, capacity):
    with pytest.raises(ValueError):
        tb.TokenBucket(rate, capacity)
    with pytest.raises(ValueError):
        tb.Buckets(rate, capacity)


@pytest.mark.parametrize('admitted, rate, capacity, seconds', [
    (0, 10, None, 0.0),
    (10, 10, None, 0.0),
    (110, 10, None, 10.0),
    (300, 20, 5, 14.75),
])
def test_minimum_seconds(admitted, rate, capacity, seconds):
    assert tb.minimum_seconds(admitted, rate, capacity) == pytest.approx(seconds)


def test_minimum_seconds_matches_the_bucket():
    """The yardstick agrees with the bucket: the last of N requests sent as fast as allowed is admitted then."""
    rate, capacity, n = 8, 3, 50
    bucket = tb.TokenBucket(rate, capacity, now=0.0)
    admitted, t, last = 0, 0.0, None
    while admitted < n:
        ok, dummy = bucket.take(t)
        if ok:
            admitted, last = admitted + 1, t
        else:
            t = round(t + 0.001, 6)
    assert last == pytest.approx(tb.minimum_seconds(n, rate, capacity), abs=0.002)
