"""Retry for broker calls: exponential backoff with full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter"), only for errors marked retryable; a venue's
`retry_after` is honoured. Everything else propagates at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from algotrendy.execution.errors import RateLimitedError, RetryableBrokerError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 2.0


DEFAULT_RETRY = RetryPolicy()


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy = DEFAULT_RETRY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Call `fn`; on a retryable error wait and try again, up to `policy.attempts` calls."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except RetryableBrokerError as exc:
            if attempt == policy.attempts:
                raise
            delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)) * rand()
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
