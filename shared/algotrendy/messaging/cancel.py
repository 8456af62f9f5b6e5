"""The cancel request producers (the API) put on orders.fifo (envelope type `order.cancel`).

It travels in the order's own message group (`account:symbol`), so the engine sees it
after the intent that placed the order, never before. De-duplicated by its request id,
which is derived from the order and the minute it was asked in: a double-clicked cancel
is one message (SQS FIFO's 5-minute de-duplication window), a retry a minute later is
another, harmless one (cancelling a cancelled order is a no-op for the engine).

The execution engine dispatches on the envelope type and cancels the order
(`ExecutionEngine.handle`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from algotrendy.messaging.base import Queue
from algotrendy.messaging.envelope import Envelope

ORDER_CANCEL = "order.cancel"


class CancelRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    request_id: str = Field(min_length=8, max_length=128)
    client_order_id: str = Field(min_length=1, max_length=64)
    account: str
    symbol: str
    requested_by: str
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def for_order(
        cls,
        client_order_id: str,
        account: str,
        symbol: str,
        requested_by: str,
        now: datetime | None = None,
    ) -> CancelRequest:
        at = now or datetime.now(UTC)
        digest = hashlib.sha256(f"{client_order_id}|{at:%Y%m%d%H%M}".encode()).hexdigest()
        return cls(
            request_id=f"cancel-{digest[:32]}",
            client_order_id=client_order_id,
            account=account,
            symbol=symbol,
            requested_by=requested_by,
            created_at=at,
        )


def send_cancel(queue: Queue, request: CancelRequest) -> str:
    envelope = Envelope(
        type=ORDER_CANCEL,
        id=request.request_id,
        created_at=request.created_at,
        payload=request.model_dump(mode="json"),
    )
    return queue.send(
        envelope.to_json(),
        group_id=f"{request.account}:{request.symbol}",
        dedup_id=request.request_id,
        attributes={"type": ORDER_CANCEL},
    )
