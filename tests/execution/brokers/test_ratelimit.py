"""Token-bucket limiter: burst, refill, never more than the venue's N per window, threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.execution.brokers.ratelimit import (
    VENUE_LIMITS,
    Limit,
    RateLimiter,
    TokenBucket,
    shared_limiter,
)
from algotrendy.execution.errors import RateLimitedError


class FakeClock:
    """Time that only moves when the limiter sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_for_limit_splits_burst_and_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket.for_limit(Limit("orders", 100, 10.0, "doc"), clock=clock,
                                   sleep=clock.sleep)  # fmt: skip
    # burst = 10 % of 100; the other 90 refill over the 10 s window.
    assert bucket.capacity == 10.0
    assert bucket.rate == pytest.approx(90 / 10.0)
    for _ in range(10):
        assert bucket.acquire() == 0.0
    waited = bucket.acquire()
    assert waited == pytest.approx(1 / 9.0)
    assert clock.now == pytest.approx(1 / 9.0)


def test_try_acquire_never_waits() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, 1.0, clock=clock, sleep=clock.sleep)
    assert bucket.try_acquire()
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    assert clock.slept == []
    clock.now += 1.0
    assert bucket.try_acquire()


def test_max_wait_raises_rate_limited_with_retry_after() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, 0.5, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    with pytest.raises(RateLimitedError) as info:
        bucket.acquire(max_wait=1.0)
    assert info.value.retry_after == pytest.approx(2.0)
    assert clock.slept == []


def test_refill_is_capped_at_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3, 1.0, clock=clock, sleep=clock.sleep)
    clock.now += 1000.0
    assert bucket.available == 3.0


@pytest.mark.parametrize(
    ("capacity", "rate", "cost"), [(0, 1.0, 1), (1, 0.0, 1), (2, 1.0, 3), (2, 1.0, 0)]
)
def test_bad_parameters_are_named(capacity: float, rate: float, cost: float) -> None:
    with pytest.raises(ValueError, match=r"capacity|refill|cost"):
        TokenBucket(capacity, rate).acquire(cost)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=60),
    window=st.floats(min_value=0.5, max_value=30.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=300),
)
def test_never_more_than_n_in_any_window(n: int, window: float, gaps: list[float]) -> None:
    """The venue's rule, checked on every admitted request: at most n in [t, t + window)."""
    clock = FakeClock()
    bucket = TokenBucket.for_limit(Limit("x", n, window, "doc"), clock=clock, sleep=clock.sleep)
    admitted: list[float] = []
    for gap in gaps:
        clock.now += gap
        bucket.acquire()
        admitted.append(clock.now)
    eps = 1e-9 * max(1.0, window)
    for i, start in enumerate(admitted):
        inside = sum(1 for t in admitted[i:] if t < start + window - eps)
        assert inside <= n


def test_thread_safe_no_token_handed_out_twice() -> None:
    clock = FakeClock()  # frozen: no refill while the threads race
    bucket = TokenBucket(50, 1.0, clock=clock, sleep=clock.sleep)
    wins: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(20):
            ok = bucket.try_acquire()
            with lock:
                wins.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(wins) == 50
    assert len(wins) == 160


def test_rate_limiter_takes_from_each_named_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter.from_limits(
        [Limit("weight", 20, 1.0, "doc"), Limit("orders", 10, 1.0, "doc")],
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    limiter.acquire(("weight", 2.0), ("orders", 1.0), ("unknown", 99.0))
    assert limiter.buckets["weight"].available == pytest.approx(0.0)
    assert limiter.buckets["orders"].available == pytest.approx(0.0)


def test_shared_limiter_is_one_per_venue() -> None:
    assert shared_limiter("bybit") is shared_limiter("bybit")
    assert shared_limiter("bybit") is not shared_limiter("binance")
    assert set(shared_limiter("binance").buckets) == {lim.name for lim in VENUE_LIMITS["binance"]}


def test_every_documented_limit_names_its_source() -> None:
    for venue, limits in VENUE_LIMITS.items():
        for lim in limits:
            assert lim.source, venue
            assert lim.requests >= 2, venue
            assert lim.window > 0, venue
