"""`intent_id` is an idempotency key: the same request again is the same 202, a different
request under a used intent_id (another account's included) is a 409, so the queue's
de-duplication id (the intent id) always stands for one client order id."""

from __future__ import annotations

from typing import Any

from api_helpers import Session, assert_problem
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.domain.orders import Order, OrderIntent
from algotrendy.messaging.envelope import Envelope
from algotrendy.messaging.memory import DEDUP_WINDOW_SECONDS, InMemoryQueue
from algotrendy.storage.relational.repositories import SqlExecutionRepository

KEY = "client-key-0001"


def _order(client: TestClient, session: Session, **fields: Any) -> Any:
    body = {"symbol": "GOOG", "side": "buy", "quantity": 1, "intent_id": KEY, **fields}
    return client.post("/orders", json=body, headers=session.headers)


def _queued(ctx: ApiContext) -> list[OrderIntent]:
    assert isinstance(ctx.orders_queue, InMemoryQueue)
    messages = ctx.orders_queue.receive(max_messages=10)
    return [Envelope.parse(m.body).intent() for m in messages]


def test_another_account_reusing_an_intent_id_is_a_409_not_a_dropped_order(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """Used to answer 202 twice while the queue (de-duplicating on intent_id) dropped the
    second order and handed back the first one's message id."""
    a = _order(client, trader, account="acct-a")
    assert a.status_code == 202, a.text
    b = _order(client, trader, account="acct-b", side="sell", quantity=5)
    problem = assert_problem(b, 409, "conflict")
    assert KEY in problem["detail"]
    assert "location" not in b.headers
    queued = _queued(ctx)
    assert [(i.account, i.side.value, i.quantity) for i in queued] == [("acct-a", "buy", 1.0)]
    assert queued[0].client_order_id == a.json()["client_order_id"]


def test_a_different_order_under_a_used_key_is_a_409(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    first = _order(client, trader, account="acct-a")
    assert first.status_code == 202, first.text
    other = _order(client, trader, account="acct-a", side="sell", quantity=5)
    problem = assert_problem(other, 409, "conflict")
    assert KEY in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["intent_id"]
    assert [(i.side.value, i.quantity) for i in _queued(ctx)] == [("buy", 1.0)]


def test_a_replay_is_the_same_202_even_after_the_queue_forgot_it(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    now = [0.0]
    ctx.orders_queue = InMemoryQueue("orders.fifo", clock=lambda: now[0])
    first = _order(client, trader)
    now[0] += DEDUP_WINDOW_SECONDS + 1  # past the FIFO de-duplication window
    again = _order(client, trader)
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert len(_queued(ctx)) == 1


def test_the_engines_orders_table_also_holds_the_key(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """An order the engine recorded without an API order request (sent by a webhook or the
    signal evaluator) still decides: the same request is accepted (the engine sees a
    redelivery), a different one is refused."""
    intent = OrderIntent(intent_id=KEY, symbol="GOOG", side="buy", quantity=1)
    SqlExecutionRepository(ctx.db).create_order(Order.from_intent(intent, broker="paper"))
    assert_problem(_order(client, trader, quantity=2), 409, "conflict")
    same = _order(client, trader)
    assert same.status_code == 202, same.text
    assert same.json()["client_order_id"] == intent.client_order_id
