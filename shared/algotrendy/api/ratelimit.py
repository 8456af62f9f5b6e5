"""Per-user request limits: a fixed window per minute, counted in Redis so every API
instance (Lambda containers, local workers) shares one count, or in process when there is
no Redis.

Fixed window: key `<prefix>:rl:<scope>:<who>:<window number>`, INCR then EXPIRE in one
MULTI/EXEC; the first request of a window creates the key (the pattern of the Redis
`INCR` documentation, "Pattern: Rate limiter 1"). A client may send up to 2x the limit
across a window boundary; that is the accepted cost of one round trip per request.
A refused request gets `Retry-After` = seconds until its window ends (RFC 9110 10.2.3).

If Redis fails, counting falls back to the process (logged once per failure streak): a
limiter outage must not take the API down, and per-process limits still bound abuse.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from algotrendy.api.observability import logger


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset_after)
        return out


class RateLimiter(Protocol):
    name: str

    def hit(self, scope: str, who: str, limit: int) -> Decision:
        """Count one request of `who` in `scope` against `limit` per window."""
        ...


def _decision(count: int, limit: int, now: float, window: int) -> Decision:
    reset = max(1, math.ceil((math.floor(now / window) + 1) * window - now))
    return Decision(count <= limit, limit, max(0, limit - count), reset)


class MemoryRateLimiter:
    name = "memory"

    def __init__(self, window_seconds: int = 60, clock: Callable[[], float] = time.time) -> None:
        self.window = window_seconds
        self.clock = clock
        self._counts: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, scope: str, who: str, limit: int) -> Decision:
        now = self.clock()
        bucket = int(now // self.window)
        with self._lock:
            if len(self._counts) > 10_000:  # drop past windows
                self._counts = {k: v for k, v in self._counts.items() if k[2] >= bucket}
            key = (scope, who, bucket)
            self._counts[key] = self._counts.get(key, 0) + 1
            count = self._counts[key]
        return _decision(count, limit, now, self.window)


class RedisRateLimiter:
    name = "redis"

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "algotrendy",
        window_seconds: int = 60,
        clock: Callable[[], float] = time.time,
        fallback: MemoryRateLimiter | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.window = window_seconds
        self.clock = clock
        self.fallback = fallback or MemoryRateLimiter(window_seconds, clock)
        self._failing = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisRateLimiter:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return cls(client, **kwargs)

    def hit(self, scope: str, who: str, limit: int) -> Decision:
        import redis

        now = self.clock()
        bucket = int(now // self.window)
        key = f"{self.prefix}:rl:{scope}:{who}:{bucket}"
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self.window + 1)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            if not self._failing:
                logger.warning(
                    "rate limiter: redis unavailable, counting in process",
                    extra={"error": str(exc)},
                )
            self._failing = True
            return self.fallback.hit(scope, who, limit)
        self._failing = False
        return _decision(count, limit, now, self.window)
