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


def retry_delay_seconds(receive_count: int) -> int:
    """Delay before the `receive_count`-th failed delivery is retried:
    RETRY_BASE_SECONDS * 2**(n-1), at most RETRY_MAX_SECONDS (SQS counts receives from 1)."""
    n = max(1, receive_count)
    return int(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** min(n - 1, 30)))


def hasten_retries(queue: Queue, failed: Iterable[QueueMessage]) -> None:
    """Make each failed message visible again after its backoff. One that cannot be
    changed comes back after the queue's visibility timeout instead, which is logged: the
    retry is late, never lost."""
    for message in failed:
        delay = retry_delay_seconds(message.receive_count)
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
