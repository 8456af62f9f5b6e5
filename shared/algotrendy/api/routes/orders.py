"""Orders: placed by enqueuing an `OrderIntent` on orders.fifo (the execution engine risk-
checks it and is the only writer of the orders table), read from the engine's tables,
cancelled by enqueuing a cancel request."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from algotrendy.api.deps import Ctx, Trader, Viewer
from algotrendy.api.observability import logger
from algotrendy.api.problems import Problem, field_error
from algotrendy.api.schemas import CancelAccepted, FillOut, OrderAccepted, OrderOut, OrderRequest
from algotrendy.domain.orders import TERMINAL_STATUSES, OrderIntent, OrderStatus
from algotrendy.messaging.base import Queue, QueueError
from algotrendy.messaging.cancel import CancelRequest, send_cancel
from algotrendy.messaging.envelope import send_intent
from algotrendy.storage.relational.api_repositories import OrderRequestRepository
from algotrendy.storage.relational.models import FillRow, OrderRow

router = APIRouter(prefix="/orders", tags=["orders"])


def _queue(ctx: Ctx) -> Queue:
    if ctx.orders_queue is None:
        raise Problem(
            503, "unavailable", "orders queue not configured (ALGOTRENDY_ORDERS_QUEUE_URL)"
        )
    return ctx.orders_queue


def order_out(row: OrderRow, fills: list[FillRow] | None = None) -> OrderOut:
    data: dict[str, Any] = {k: getattr(row, k) for k in OrderOut.model_fields if k != "fills"}
    if fills is not None:
        data["fills"] = [
            FillOut(
                broker_fill_id=f.broker_fill_id,
                side=f.side,
                quantity=f.quantity,
                price=f.price,
                fee=f.fee,
                fee_currency=f.fee_currency,
                time=f.time,
            )
            for f in fills
        ]
    return OrderOut.model_validate(data)


# What makes two requests "the same order": everything the client chose (not the time, not
# the source, which the API sets).
_REQUEST_FIELDS = frozenset(OrderIntent.model_fields) - {"created_at", "source", "version"}
# The subset the engine's orders table keeps (it has no reduce_only column).
_ORDER_ROW_FIELDS = _REQUEST_FIELDS - {"intent_id", "reduce_only"}


def _request_sha256(intent: OrderIntent) -> str:
    fields = intent.model_dump(mode="json", include=set(_REQUEST_FIELDS))
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _engine_has_other(ctx: Ctx, intent: OrderIntent) -> bool | None:
    """Whether the engine's orders table holds `intent.intent_id` for a different order
    (True), only for this one (False), or not at all (None). Intents reach the engine by
    other paths too (webhooks, the signal evaluator), which write no order request row."""
    orders = ctx.trading.orders_by_intent(intent.intent_id)
    if not orders:
        return None
    asked = intent.model_dump(mode="json", include=set(_ORDER_ROW_FIELDS))
    return not any(asked == {f: getattr(o, f) for f in _ORDER_ROW_FIELDS} for o in orders)


def _conflict(request: Request, intent: OrderIntent) -> Problem:
    request.state.audit_target = intent.client_order_id
    request.state.audit_detail = {"intent_id": intent.intent_id, "conflict": True}
    detail = (
        f"intent_id {intent.intent_id!r} was already used for a different order; "
        "send a new intent_id for a new order"
    )
    return Problem(409, "conflict", detail, errors=[field_error("intent_id", detail)])


def _prune_order_requests(requests: OrderRequestRepository) -> None:
    """Drop order requests past their retention (one small batch, at most once per
    period per process); a failure is logged and retried next period, never answered."""
    try:
        requests.prune_if_due()
    except SQLAlchemyError:
        logger.exception("pruning order_requests failed")


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=OrderAccepted)
def place_order(
    body: OrderRequest,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    user: Trader,
    ctx: Ctx,
) -> OrderAccepted:
    """Queue an order intent. 202: accepted for risk check and execution, not yet placed;
    follow it at `Location`.

    `intent_id` is an idempotency key (the orders queue de-duplicates on it): sending the
    same request again answers the same 202 and never places a second order; a different
    request under a used intent_id, another account's included, is a 409, so one intent
    id always means one client order id (account + intent id).

    The request is recorded (`order_requests`) BEFORE it is sent, so of two requests racing
    under one intent id exactly one owns it. If the send fails (503) the record stays,
    without a message id: the same request sent again is sent again (the queue drops a
    duplicate of a send that did get through), a different one is still a 409, because the
    failed send may have reached the queue under that intent id.

    The record is kept `ORDER_REQUEST_RETENTION` (30 days; see api_repositories): a
    replay after that is a new request, recorded and sent again; only the engine's orders
    table then tells a different request under the intent id (409) from the same one
    (which the engine takes once)."""
    queue = _queue(ctx)
    values = body.model_dump(exclude_none=True)
    values["intent_id"] = body.intent_id or f"api-{uuid.uuid4().hex}"
    try:
        intent = OrderIntent(**values, source="api")
    except ValidationError as exc:
        errors = [
            field_error(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
            for e in exc.errors()
        ]
        raise Problem(
            422, "validation", "; ".join(e["detail"] for e in errors), errors=errors
        ) from None
    sha256 = _request_sha256(intent)
    in_engine = _engine_has_other(ctx, intent) if body.intent_id else None
    if in_engine:
        raise _conflict(request, intent)
    requests = ctx.order_requests
    held, claimed = requests.claim(intent.intent_id, intent.client_order_id, sha256, user.username)
    if held.request_sha256 != sha256:  # same hash: same account and intent id, same order
        raise _conflict(request, intent)
    message_id = held.message_id
    if message_id is None:
        # Ours, or the same request whose send failed or is still under way: sending
        # (again) is safe, the queue de-duplicates on the intent id within 5 minutes and
        # the engine treats a later redelivery as one.
        try:
            sent = send_intent(queue, intent)
        except QueueError as exc:
            raise Problem(
                503,
                "unavailable",
                f"orders queue refused the intent: {exc}; send the same request again",
            ) from None
        message_id = requests.record_message(intent.intent_id, sent)
    request.state.audit_action = "order.place"
    request.state.audit_target = intent.client_order_id
    request.state.audit_detail = {
        "intent_id": intent.intent_id,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "quantity": intent.quantity,
        "order_type": intent.order_type.value,
        "request_sha256": sha256,
        "message_id": message_id,
        "replay": not claimed or in_engine is not None,
    }
    response.headers["Location"] = f"/orders/{intent.client_order_id}"
    background.add_task(_prune_order_requests, requests)  # after the reply is sent
    return OrderAccepted(
        intent_id=intent.intent_id, client_order_id=intent.client_order_id, message_id=message_id
    )


@router.get("", response_model=list[OrderOut])
def list_orders(
    user: Viewer,
    ctx: Ctx,
    account: str | None = None,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    symbol: str | None = None,
    strategy: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, description="page: orders older than")] = None,
) -> list[OrderOut]:
    """Newest first."""
    rows = ctx.trading.orders(
        account=account,
        status=status_.value if status_ else None,
        symbol=symbol,
        strategy=strategy,
        limit=limit,
        before_id=before_id,
    )
    return [order_out(r) for r in rows]


@router.get("/{client_order_id}", response_model=OrderOut)
def get_order(client_order_id: str, user: Viewer, ctx: Ctx) -> OrderOut:
    """One order with its fills. 404 until the engine has taken the intent."""
    found = ctx.trading.order(client_order_id)
    if found is None:
        raise Problem(
            404,
            "not-found",
            f"no order {client_order_id!r} (yet: intents are recorded once the engine takes them)",
        )
    return order_out(*found)


@router.post(
    "/{client_order_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=CancelAccepted
)
def cancel_order(client_order_id: str, request: Request, user: Trader, ctx: Ctx) -> CancelAccepted:
    """Ask the engine to cancel a working order (202: requested, not yet done)."""
    queue = _queue(ctx)
    found = ctx.trading.order(client_order_id)
    if found is None:
        raise Problem(404, "not-found", f"no order {client_order_id!r}")
    order, _ = found
    if OrderStatus(order.status) in TERMINAL_STATUSES:
        raise Problem(
            409,
            "conflict",
            f"order {client_order_id} is {order.status}; only working orders can be cancelled",
        )
    cancel = CancelRequest.for_order(client_order_id, order.account, order.symbol, user.username)
    try:
        message_id = send_cancel(queue, cancel)
    except QueueError as exc:
        raise Problem(503, "unavailable", f"orders queue refused the cancel: {exc}") from None
    request.state.audit_action = "order.cancel"
    request.state.audit_target = client_order_id
    request.state.audit_detail = {"request_id": cancel.request_id}
    return CancelAccepted(
        client_order_id=client_order_id, request_id=cancel.request_id, message_id=message_id
    )
