"""Bounded retries with exponential backoff and full jitter, shared by every channel.

Delay before retry n (n = 1, 2, ...) is ``uniform(0, min(max_delay, base_delay * 2**(n-1)))``:
the "Full Jitter" scheme of AWS's Architecture Blog, *Exponential Backoff And Jitter*
(Marc Brooker, 2015), which spreads clients that failed together so they do not retry in
lock-step against a vendor that is already struggling.

Each channel supplies a classifier that says whether an exception is *transient* (worth
another try: timeouts, 5xx, 429, "exchange not available") or *permanent* (4xx, bad
symbol, bad key: retrying cannot help and would only spend rate limit). A transient error
whose root cause is a failed DNS lookup is treated as *offline*: there is no network at
all, so the channel fails at once with one line instead of sleeping through its retries.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from algotrendy.errors import SourceUnavailableError

T = TypeVar("T")


class Verdict(Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. `sleep` and `random` are injectable for tests."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    random: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")

    def delay(self, retry: int) -> float:
        """Full-jitter delay before retry number `retry` (1-based)."""
        cap = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return float(self.random() * cap)


def offline_cause(exc: BaseException) -> BaseException | None:
    """The DNS failure at the root of `exc`, if any (walks ``__cause__``/``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return current
        name = type(current).__name__
        if name in ("NameResolutionError", "DNSError"):  # urllib3 / curl_cffi wrappers
            return current
        current = current.__cause__ or current.__context__
    return None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def call_with_retry(
    source: str,
    what: str,
    call: Callable[[], T],
    *,
    classify: Callable[[BaseException], Verdict | None],
    policy: RetryPolicy,
    translate: Callable[[BaseException], Exception] | None = None,
) -> T:
    """Run `call`; retry transient failures per `policy`; raise one clear error otherwise.

    `classify` returns None for exceptions that are not the vendor's (programming errors):
    those propagate untouched. Permanent failures go through `translate` (default: a
    `SourceUnavailableError` naming source and cause) without any retry.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as exc:
            verdict = classify(exc)
            if verdict is None:
                raise
            if verdict is Verdict.PERMANENT:
                if translate is not None:
                    raise translate(exc) from exc
                raise SourceUnavailableError(f"{source}: {what} refused ({one_line(exc)})") from exc
            dns = offline_cause(exc)
            if dns is not None:
                raise SourceUnavailableError(
                    f"{source}: no network, cannot resolve the vendor's host while trying to "
                    f"{what} ({one_line(dns)})"
                ) from exc
            if attempt == policy.attempts:
                raise SourceUnavailableError(
                    f"{source}: {what} failed after {policy.attempts} attempts ({one_line(exc)})"
                ) from exc
            policy.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover - loop always returns or raises
