"""The queue port: SQS in aws, an in-process queue locally, the same semantics for both.

Semantics the consumers rely on (SQS's, see the SQS developer guide):
* at-least-once delivery: a received message stays invisible for the visibility timeout
  and comes back unless deleted, so consumers must be idempotent and must delete only
  after their effect is durable;
* FIFO queues: order within a message group, no second in-flight message of a group, and
  a 5-minute de-duplication window on the deduplication id;
* after `max_receive_count` receives a message moves to the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class QueueMessage:
    body: str
    receipt: str
    message_id: str
    receive_count: int = 1
    group_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Queue(Protocol):
    name: str
    fifo: bool

    def send(
        self,
        body: str,
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Enqueue; returns the message id. FIFO queues require `group_id`."""
        ...

    def receive(
        self,
        *,
        max_messages: int = 10,
        wait_seconds: float = 0.0,
        visibility_timeout: float | None = None,
    ) -> list[QueueMessage]:
        """Long-poll up to `wait_seconds` for at most `max_messages` messages."""
        ...

    def delete(self, message: QueueMessage) -> None:
        """Acknowledge: call only once the message's effect is durable."""
        ...

    def release(self, message: QueueMessage, *, delay_seconds: float = 0.0) -> None:
        """Give the message back (visible again after `delay_seconds`) without deleting it."""
        ...


class QueueError(Exception):
    """A queue operation failed (misuse such as a FIFO send without group id, or transport)."""
