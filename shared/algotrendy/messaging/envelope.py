"""Versioned message envelopes: every queue body is `{"type", "version", "id", "created_at",
"payload"}` so consumers can refuse what they do not understand (and say why) instead of
guessing, and can de-duplicate on `id`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from algotrendy.domain.orders import OrderIntent
from algotrendy.messaging.base import Queue

ORDER_INTENT = "order.intent"
CANDLES_CLOSED = "candles.closed"


class EnvelopeError(ValueError):
    """A queue body that is not a valid envelope; the message names what is wrong."""


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(min_length=1)
    version: int = Field(1, ge=1)
    id: str = Field(min_length=1, max_length=128)
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    payload: dict[str, Any]

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def parse(cls, body: str) -> Envelope:
        try:
            return cls.model_validate(json.loads(body))
        except json.JSONDecodeError as exc:
            raise EnvelopeError(f"message body is not JSON ({exc.msg} at {exc.pos})") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "body"
            raise EnvelopeError(f"not a message envelope: {loc}: {first['msg']}") from exc

    @classmethod
    def for_intent(cls, intent: OrderIntent) -> Envelope:
        return cls(
            type=ORDER_INTENT,
            id=intent.intent_id,
            created_at=intent.created_at,
            payload=intent.model_dump(mode="json"),
        )

    def intent(self) -> OrderIntent:
        if self.type != ORDER_INTENT:
            raise EnvelopeError(f"expected a {ORDER_INTENT} message, got {self.type!r}")
        try:
            return OrderIntent.model_validate(self.payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "payload"
            raise EnvelopeError(f"invalid order intent: {loc}: {first['msg']}") from exc


def send_intent(queue: Queue, intent: OrderIntent) -> str:
    """Enqueue an intent on `orders.fifo`: grouped by account+symbol, de-duplicated by the
    intent id, so the same intent sent twice within 5 minutes is one message."""
    return queue.send(
        Envelope.for_intent(intent).to_json(),
        group_id=intent.message_group_id,
        dedup_id=intent.intent_id,
        attributes={"type": ORDER_INTENT},
    )
