"""Bring a batch's failed messages back soon, not after the queue's visibility timeout.

A queue that feeds a Lambda function must hide a received message for at least six times
the function's timeout (AWS's advice for SQS event sources), so the signals queue hides
for 6 minutes. A record reported as a batch item failure would come back only then: by
that time a 1-minute bar's signal is stale (the evaluator refuses it) and orders.fifo's
5-minute de-duplication window has closed, so intents already sent for that record would
be queued a second time. Shortening the failed records' visibility to an exponential
backoff (5, 10, 20, 40, 60 s...) retries them inside both windows, and a poison message
still reaches the dead-letter queue after `maxReceiveCount` receives, only sooner.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from algotrendy.messaging.base import Queue, QueueMessage

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 5
RETRY_MAX_SECONDS = 60


def retry_delay_seconds(
    receive_count: int, *, base: int | None = None, cap: int | None = None
) -> int:
    """Delay before the `receive_count`-th failed delivery is retried: base * 2**(n-1),
    at most `cap` (SQS counts receives from 1). Defaults: the module's constants, read at
    each call."""
    base = RETRY_BASE_SECONDS if base is None else base
    cap = RETRY_MAX_SECONDS if cap is None else cap
    n = max(1, receive_count)
    return int(min(cap, base * 2 ** min(n - 1, 30)))


def hasten_retries(
    queue: Queue,
    failed: Iterable[QueueMessage],
    *,
    base: int | None = None,
    cap: int | None = None,
) -> list[str]:
    """Make each failed message visible again after its backoff; returns the ids that
    could not be changed (they come back after the queue's visibility timeout instead,
    which is logged: the retry is late, never lost)."""
    late: list[str] = []
    for message in failed:
        delay = retry_delay_seconds(message.receive_count, base=base, cap=cap)
        try:
            queue.release(message, delay_seconds=delay)
        except Exception as exc:  # noqa: BLE001 - still retried, only later (logged)
            log.warning(
                "%s: message %s: retry not hastened (%s); it returns after the queue's "
                "visibility timeout",
                queue.name,
                message.message_id,
                exc,
            )
            late.append(message.message_id)
    return late
