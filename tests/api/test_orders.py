from __future__ import annotations

from datetime import UTC, datetime

from api_helpers import Session, assert_problem
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.domain.orders import Fill, Order, OrderIntent, OrderStatus, Side
from algotrendy.messaging.cancel import ORDER_CANCEL
from algotrendy.messaging.envelope import Envelope
from algotrendy.messaging.memory import InMemoryQueue
from algotrendy.storage.relational.repositories import SqlExecutionRepository


def _queue(ctx: ApiContext) -> InMemoryQueue:
    assert isinstance(ctx.orders_queue, InMemoryQueue)
    return ctx.orders_queue


def test_placed_order_lands_on_the_queue_as_a_valid_intent_envelope(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    body = {
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": 0.25,
        "order_type": "limit",
        "limit_price": 42000.5,
        "strategy": "sma_cross",
    }
    reply = client.post("/orders", json=body, headers=trader.headers)
    assert reply.status_code == 202, reply.text
    accepted = reply.json()
    assert accepted["status"] == "queued"
    assert reply.headers["location"] == f"/orders/{accepted['client_order_id']}"

    [message] = _queue(ctx).receive(max_messages=10)
    assert message.group_id == "default:BTC/USDT"
    assert message.attributes["type"] == "order.intent"
    intent = Envelope.parse(message.body).intent()
    assert isinstance(intent, OrderIntent)
    assert intent.intent_id == accepted["intent_id"]
    assert intent.client_order_id == accepted["client_order_id"]
    assert (intent.symbol, intent.side, intent.quantity) == ("BTC/USDT", Side.BUY, 0.25)
    assert intent.limit_price == 42000.5
    assert (intent.source, intent.strategy, intent.account) == ("api", "sma_cross", "default")


def test_same_intent_id_is_queued_once(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    body = {"symbol": "AAPL", "side": "sell", "quantity": 3, "intent_id": "my-key-00000001"}
    a = client.post("/orders", json=body, headers=trader.headers).json()
    b = client.post("/orders", json=body, headers=trader.headers).json()
    assert a["client_order_id"] == b["client_order_id"]
    assert a["message_id"] == b["message_id"]
    assert len(_queue(ctx)) == 1


def test_order_validation_names_the_fields(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/orders", json={"symbol": "AAPL", "side": "hold", "quantity": -1}, headers=trader.headers
    )
    body = assert_problem(reply, 422, "validation")
    fields = {e["field"]: e for e in body["errors"]}
    assert set(fields) == {"side", "quantity"}
    assert fields["quantity"]["pointer"] == "#/quantity"
    assert fields["quantity"]["location"] == "body"
    assert "greater than 0" in fields["quantity"]["detail"]


def test_limit_order_without_price_is_refused(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/orders",
        headers=trader.headers,
        json={"symbol": "AAPL", "side": "buy", "quantity": 1, "order_type": "limit"},
    )
    body = assert_problem(reply, 422, "validation")
    assert "limit order needs limit_price" in body["detail"]


def test_unknown_field_is_refused(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/orders",
        headers=trader.headers,
        json={"symbol": "AAPL", "side": "buy", "quantity": 1, "qty": 2},
    )
    body = assert_problem(reply, 422)
    assert body["errors"] == [
        {"location": "body", "field": "qty", "pointer": "#/qty", "detail": "unknown field"}
    ]


def test_viewer_cannot_trade(client: TestClient, viewer: Session, ctx: ApiContext) -> None:
    reply = client.post(
        "/orders", json={"symbol": "AAPL", "side": "buy", "quantity": 1}, headers=viewer.headers
    )
    assert_problem(reply, 403, "forbidden")
    assert len(_queue(ctx)) == 0


def _engine_order(ctx: ApiContext, intent_id: str, status: OrderStatus) -> Order:
    """An order as the execution engine records it (the engine is the orders' writer)."""
    repo = SqlExecutionRepository(ctx.db)
    intent = OrderIntent(intent_id=intent_id, symbol="ETH/USDT", side=Side.BUY, quantity=2.0)
    order = Order.from_intent(intent, broker="paper")
    order.status = status
    repo.create_order(order)
    return order


def test_list_and_get_orders_with_fills(
    client: TestClient, ctx: ApiContext, viewer: Session
) -> None:
    working = _engine_order(ctx, "intent-working-1", OrderStatus.SUBMITTED)
    done = _engine_order(ctx, "intent-filled-01", OrderStatus.SUBMITTED)
    fill = Fill(
        broker="paper",
        broker_fill_id="f-1",
        client_order_id=done.client_order_id,
        account="default",
        strategy=None,
        symbol="ETH/USDT",
        side=Side.BUY,
        quantity=2.0,
        price=2500.25,
        fee=0.5,
        time=datetime(2025, 1, 2, tzinfo=UTC),
    )
    done.status, done.filled_quantity, done.avg_fill_price = OrderStatus.FILLED, 2.0, 2500.25
    SqlExecutionRepository(ctx.db).record_execution(done, [fill], None, None)

    listed = client.get("/orders", headers=viewer.headers).json()
    assert [o["client_order_id"] for o in listed] == [done.client_order_id, working.client_order_id]
    filled = client.get("/orders", params={"status": "filled"}, headers=viewer.headers).json()
    assert [o["client_order_id"] for o in filled] == [done.client_order_id]

    one = client.get(f"/orders/{done.client_order_id}", headers=viewer.headers).json()
    assert one["status"] == "filled"
    assert one["fills"] == [
        {
            "broker_fill_id": "f-1",
            "side": "buy",
            "quantity": 2.0,
            "price": 2500.25,
            "fee": 0.5,
            "fee_currency": None,
            "time": "2025-01-02T00:00:00Z",
        }
    ]
    assert_problem(client.get("/orders/at-nope", headers=viewer.headers), 404, "not-found")
    assert_problem(client.get("/orders", params={"status": "weird"}, headers=viewer.headers), 422)


def test_cancel_sends_a_cancel_request_in_the_orders_group(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    order = _engine_order(ctx, "intent-to-cancel", OrderStatus.SUBMITTED)
    reply = client.post(f"/orders/{order.client_order_id}/cancel", headers=trader.headers)
    assert reply.status_code == 202, reply.text
    [message] = _queue(ctx).receive()
    envelope = Envelope.parse(message.body)
    assert envelope.type == ORDER_CANCEL
    assert envelope.payload["client_order_id"] == order.client_order_id
    assert envelope.payload["requested_by"] == "trader"
    assert message.group_id == "default:ETH/USDT"
    assert envelope.id == reply.json()["request_id"]


def test_cancel_of_a_finished_or_unknown_order_is_refused(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    order = _engine_order(ctx, "intent-rejected", OrderStatus.REJECTED)
    body = assert_problem(
        client.post(f"/orders/{order.client_order_id}/cancel", headers=trader.headers),
        409,
        "conflict",
    )
    assert "rejected" in body["detail"]
    assert_problem(client.post("/orders/at-unknown/cancel", headers=trader.headers), 404)
    assert len(_queue(ctx)) == 0


def test_order_calls_are_audited(client: TestClient, ctx: ApiContext, trader: Session) -> None:
    accepted = client.post(
        "/orders", json={"symbol": "AAPL", "side": "buy", "quantity": 1}, headers=trader.headers
    ).json()
    client.post(
        "/orders", json={"symbol": "AAPL", "side": "buy", "quantity": 0}, headers=trader.headers
    )
    rows = ctx.audit.recent(actor="trader")
    placed = [r for r in rows if r.action == "order.place"]
    assert len(placed) == 1
    assert placed[0].target == accepted["client_order_id"]
    assert placed[0].detail["intent_id"] == accepted["intent_id"]
    assert placed[0].detail["status"] == 202
    refused = [r for r in rows if r.action == "POST /orders"]
    assert [r.detail["status"] for r in refused] == [422]
