"""Run an action once per key: the `IdempotencyStore` port and its in-process adapter.

`run_once(key, action)` runs `action` for the first caller of a key and gives every later
caller (until the record expires) the first caller's stored reply. A caller arriving while
the first is still running waits up to `wait_seconds` for its reply; if the first fails,
its record is dropped and a waiting caller runs the action itself. Waiting beats an error
here: TradingView expects an answer within 3 s and would otherwise record a failed
delivery although the order was queued.

The DynamoDB adapter (Powertools Idempotency) is `algotrendy.webhooks.dynamodb`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Reply = dict[str, Any]


class DuplicateInFlightError(Exception):
    """The same key is still being processed by another caller after the wait."""


class IdempotencyUnavailableError(Exception):
    """The idempotency store failed (transient: the caller should retry)."""


@runtime_checkable
class IdempotencyStore(Protocol):
    def run_once(self, key: str, action: Callable[[], Reply]) -> Reply:
        """`action()` if `key` is new, else the reply stored for it."""
        ...


@dataclass
class _Record:
    done: bool
    reply: Reply | None
    expires_at: float


class InMemoryIdempotency:
    """Process-local records with the DynamoDB adapter's semantics (local shape, tests,
    bench). Thread-safe; records expire after `expires_after_seconds`."""

    def __init__(
        self,
        *,
        expires_after_seconds: float = 3600.0,
        wait_seconds: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.expires_after_seconds = expires_after_seconds
        self.wait_seconds = wait_seconds
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._cond = threading.Condition()
        self.executions = 0  # how many times an action actually ran (tests)

    def run_once(self, key: str, action: Callable[[], Reply]) -> Reply:
        deadline = time.monotonic() + self.wait_seconds
        with self._cond:
            while True:
                record = self._records.get(key)
                if record is not None and record.expires_at <= self._clock():
                    del self._records[key]
                    record = None
                if record is None:
                    self._records[key] = _Record(False, None, self._clock() + 3600.0)
                    self.executions += 1
                    break
                if record.done:
                    assert record.reply is not None
                    return dict(record.reply)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DuplicateInFlightError(f"{key}: still being processed")
                self._cond.wait(remaining)
        try:
            reply = action()
        except BaseException:
            with self._cond:
                self._records.pop(key, None)
                self._cond.notify_all()
            raise
        with self._cond:
            self._records[key] = _Record(
                True, dict(reply), self._clock() + self.expires_after_seconds
            )
            self._cond.notify_all()
        return reply

    def __len__(self) -> int:
        with self._cond:
            return sum(1 for r in self._records.values() if r.done)
