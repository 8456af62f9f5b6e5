"""Client-side rate limiting shared by every live adapter: token buckets, thread-safe, with
an injectable clock and sleep so tests never wait.

A venue documents its limits as "at most N requests per window W". A plain bucket of
capacity N refilled at N/W admits up to 2N in some window of length W (a full bucket
plus a window's refill), which a venue counting over a rolling window would throttle. So
`TokenBucket.for_limit` splits N into a burst `b` (the capacity, 10 % of N by default)
and a refill rate `(N - b) / W`: in any interval of length W at most `b + (N - b) = N`
units are admitted, whatever the timing, and the sustained rate stays at 90 % of the
venue's. `tests/execution/brokers/test_ratelimit.py` checks that bound as a property.

The documented limits sit next to their numbers in `VENUE_LIMITS`; `shared_limiter(venue)`
returns one process-wide limiter per venue, so several adapter instances on one account
share one budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from algotrendy.execution.errors import RateLimitedError


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `requests` units per `window` seconds, as the venue documents it (`source`)."""

    name: str
    requests: float
    window: float
    source: str


class TokenBucket:
    def __init__(
        self,
        capacity: float,
        refill_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        if refill_per_second <= 0:
            raise ValueError(f"refill_per_second must be > 0, got {refill_per_second}")
        self.capacity = float(capacity)
        self.rate = float(refill_per_second)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(capacity)
        self._last = clock()
        self._lock = threading.Lock()

    @classmethod
    def for_limit(
        cls,
        limit: Limit,
        *,
        burst_fraction: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> TokenBucket:
        """A bucket that never admits more than `limit.requests` in any `limit.window`."""
        if not 0 < burst_fraction < 1:
            raise ValueError(f"burst_fraction must be in (0, 1), got {burst_fraction}")
        if limit.requests < 2:
            raise ValueError(f"limit {limit.name!r} needs at least 2 requests per window")
        burst = max(1.0, math.floor(limit.requests * burst_fraction))
        rate = (limit.requests - burst) / limit.window
        return cls(burst, rate, clock=clock, sleep=sleep)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._last = now

    def try_acquire(self, cost: float = 1.0) -> bool:
        """Take `cost` tokens if they are there now; never waits."""
        self._check_cost(cost)
        with self._lock:
            self._refill()
            if self._tokens >= cost:
                self._tokens -= cost
                return True
            return False

    def acquire(self, cost: float = 1.0, *, max_wait: float | None = None) -> float:
        """Take `cost` tokens, waiting until they are earned; returns the seconds waited.

        The tokens are reserved at once (the balance may go negative) and the caller then
        sleeps off the deficit, so concurrent callers queue in arrival order and no
        floating-point residue can make a caller wait forever. Raises `RateLimitedError`
        (with `retry_after`) instead of waiting longer than `max_wait`, reserving nothing,
        so a caller with a deadline hands the wait to the retry policy.
        """
        self._check_cost(cost)
        with self._lock:
            self._refill()
            wait = max(0.0, (cost - self._tokens) / self.rate)
            if max_wait is not None and wait > max_wait:
                raise RateLimitedError(
                    f"client-side rate limit: {wait:.3f}s until {cost:g} tokens are free",
                    retry_after=wait,
                )
            self._tokens -= cost
        if wait > 0:
            self._sleep(wait)
        return wait

    def _check_cost(self, cost: float) -> None:
        if cost <= 0 or cost > self.capacity:
            raise ValueError(f"cost must be in (0, {self.capacity:g}], got {cost}")

    @property
    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens


class RateLimiter:
    """Named buckets for one venue account; `acquire(("orders", 1), ("weight", 4))`."""

    def __init__(self, buckets: dict[str, TokenBucket]) -> None:
        self.buckets = dict(buckets)

    @classmethod
    def from_limits(
        cls,
        limits: Iterable[Limit],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RateLimiter:
        return cls(
            {lim.name: TokenBucket.for_limit(lim, clock=clock, sleep=sleep) for lim in limits}
        )

    def acquire(self, *costs: tuple[str, float], max_wait: float | None = None) -> float:
        """Take from each named bucket in turn (unknown names are not limited)."""
        waited = 0.0
        for name, cost in costs:
            bucket = self.buckets.get(name)
            if bucket is not None:
                cost = min(cost, bucket.capacity)
                remaining = None if max_wait is None else max(0.0, max_wait - waited)
                waited += bucket.acquire(cost, max_wait=remaining)
        return waited


# Documented limits, per venue. Each number is followed by where it is documented.
VENUE_LIMITS: dict[str, tuple[Limit, ...]] = {
    # Binance spot: exchangeInfo `rateLimits` — REQUEST_WEIGHT 6000 / 1 MINUTE per IP,
    # ORDERS 100 / 10 SECOND per account (developers.binance.com, Spot API "LIMITS").
    "binance": (
        Limit("weight", 6000, 60.0, "Binance spot REQUEST_WEIGHT 6000/min (exchangeInfo)"),
        Limit("orders", 100, 10.0, "Binance spot ORDERS 100/10s (exchangeInfo)"),
    ),
    # Binance USD-M futures: REQUEST_WEIGHT 2400 / 1 MINUTE, ORDERS 300 / 10 SECOND and
    # 1200 / 1 MINUTE (USDⓈ-M Futures "General Info — Limits").
    "binanceusdm": (
        Limit("weight", 2400, 60.0, "Binance USD-M REQUEST_WEIGHT 2400/min"),
        Limit("orders", 300, 10.0, "Binance USD-M ORDERS 300/10s"),
    ),
    # Bybit v5: 600 requests / 5 s per IP for HTTP; order create/cancel 10 / s per UID
    # per category (bybit-exchange.github.io/docs/v5/rate-limit).
    "bybit": (
        Limit("weight", 600, 5.0, "Bybit v5 IP limit 600 requests/5s"),
        Limit("orders", 10, 1.0, "Bybit v5 /v5/order/create 10/s per UID"),
    ),
    # TradeStation v3: Accounts, Order Details, Balances, Positions 250 / 5-minute each
    # (api.tradestation.com/docs/fundamentals/rate-limiting).
    "tradestation": (
        Limit("orders", 250, 300.0, "TradeStation Order Details 250/5min"),
        Limit("positions", 250, 300.0, "TradeStation Positions 250/5min"),
        Limit("accounts", 250, 300.0, "TradeStation Accounts 250/5min"),
    ),
    # Interactive Brokers TWS API: at most 50 messages per second from the client
    # (IBKR TWS API "Pacing / message rate limitations").
    "ib": (Limit("messages", 50, 1.0, "IB TWS API 50 messages/s"),),
}

# Any other ccxt exchange: ccxt's own `rateLimit` (ms between requests) is used instead.

_shared: dict[str, RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(venue: str) -> RateLimiter:
    """The process-wide limiter for `venue` (one budget for every adapter instance)."""
    with _shared_lock:
        limiter = _shared.get(venue)
        if limiter is None:
            limiter = RateLimiter.from_limits(VENUE_LIMITS.get(venue, ()))
            _shared[venue] = limiter
        return limiter
