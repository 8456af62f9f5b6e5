"""POST /orders under one intent id from concurrent requests, on SQLite and PostgreSQL.

The idempotency record (`order_requests`) is written BEFORE the send: two different
requests racing under one intent id used to both get 202 (each checked the audit log,
written only after the reply, before either was written) while the queue, which
de-duplicates on the intent id, silently dropped one of them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from api_helpers import Session, assert_problem, make_context
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from algotrendy.api.context import ApiContext
from algotrendy.api.launcher import LocalBacktestLauncher
from algotrendy.config import Settings
from algotrendy.domain.orders import OrderIntent
from algotrendy.messaging.base import QueueError
from algotrendy.messaging.envelope import Envelope
from algotrendy.messaging.memory import InMemoryQueue
from algotrendy.storage.local import LocalCandleStore
from algotrendy.storage.relational.api_repositories import OrderRequestRepository

KEY = "race-key-0001"
WAIT = 10.0  # seconds; a bound for a hung test, never reached when the code is right


@pytest.fixture
def ctx(
    settings: Settings, db_engine: Engine, candle_store: LocalCandleStore
) -> Iterator[ApiContext]:
    """The API over `db_engine` (both backends) instead of conftest's SQLite-only one."""
    context = make_context(settings, db_engine, candle_store)
    yield context
    if isinstance(context.launcher, LocalBacktestLauncher):
        context.launcher.shutdown()


class HeldFirstSend(InMemoryQueue):
    """Holds the first send until `release` is set, keeping its request inside the window
    between "intent id checked" and "intent sent" while another request runs."""

    def __init__(self) -> None:
        super().__init__("orders.fifo")
        self.sending = threading.Event()
        self.release = threading.Event()
        self._first = True
        self._lock = threading.Lock()

    def send(self, body: str, **options: Any) -> str:
        with self._lock:
            first, self._first = self._first, False
        if first:
            self.sending.set()
            assert self.release.wait(WAIT), "the held send was never released"
        return super().send(body, **options)


class FailingFirstSend(InMemoryQueue):
    """The first send fails as a transport error would; later ones go through."""

    def __init__(self) -> None:
        super().__init__("orders.fifo")
        self.attempts = 0

    def send(self, body: str, **options: Any) -> str:
        self.attempts += 1
        if self.attempts == 1:
            raise QueueError("orders.fifo: connection reset")
        return super().send(body, **options)


def _order(client: TestClient, session: Session, **fields: Any) -> httpx.Response:
    body = {"symbol": "GOOG", "side": "buy", "quantity": 1, "intent_id": KEY, **fields}
    return client.post("/orders", json=body, headers=session.headers)


def _queued(queue: InMemoryQueue) -> list[OrderIntent]:
    return [Envelope.parse(m.body).intent() for m in queue.receive(max_messages=10)]


def test_a_different_request_arriving_while_the_first_is_sending_is_a_409(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """The exact race: B arrives after A passed every check but before A's send returned
    (and so before A's audit row exists)."""
    queue = HeldFirstSend()
    ctx.orders_queue = queue
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(_order, client, trader, quantity=1)
        assert queue.sending.wait(WAIT), "the first request never reached the queue"
        second = _order(client, trader, quantity=5)
        queue.release.set()
        a = first.result(timeout=WAIT)
    assert a.status_code == 202, a.text
    problem = assert_problem(second, 409, "conflict")
    assert KEY in problem["detail"]
    queued = _queued(queue)
    assert [(i.quantity, i.client_order_id) for i in queued] == [(1.0, a.json()["client_order_id"])]
    held = OrderRequestRepository(ctx.db).get(KEY)
    assert held is not None
    assert held.message_id == a.json()["message_id"]


def test_many_different_requests_racing_under_one_intent_id_place_one_order(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """Released together by a barrier: exactly one 202, the rest 409, one queued message,
    and it is the winner's order."""
    queue = InMemoryQueue("orders.fifo")
    ctx.orders_queue = queue
    quantities = [1, 2, 3, 4, 5, 6]
    start = threading.Barrier(len(quantities))

    def race(quantity: int) -> httpx.Response:
        start.wait(WAIT)
        return _order(client, trader, quantity=quantity)

    with ThreadPoolExecutor(max_workers=len(quantities)) as pool:
        replies = list(pool.map(race, quantities))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [202] + [409] * (len(quantities) - 1), [r.text for r in replies]
    (won,) = [q for q, r in zip(quantities, replies, strict=True) if r.status_code == 202]
    assert [i.quantity for i in _queued(queue)] == [float(won)]


def test_the_same_request_racing_itself_is_one_order_and_one_message_id(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    queue = InMemoryQueue("orders.fifo")
    ctx.orders_queue = queue
    start = threading.Barrier(4)

    def race(_: int) -> httpx.Response:
        start.wait(WAIT)
        return _order(client, trader)

    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(race, range(4)))
    assert [r.status_code for r in replies] == [202] * 4, [r.text for r in replies]
    assert len({r.json()["message_id"] for r in replies}) == 1
    assert len(_queued(queue)) == 1


def test_a_failed_send_is_sent_once_by_the_retry_and_keeps_the_key(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """The record written before a failed send stays (the send may have reached the
    queue): the same request again is sent, a different one is refused."""
    queue = FailingFirstSend()
    ctx.orders_queue = queue
    failed = _order(client, trader)
    assert_problem(failed, 503, "unavailable")
    held = OrderRequestRepository(ctx.db).get(KEY)
    assert held is not None
    assert held.message_id is None
    assert_problem(_order(client, trader, quantity=5), 409, "conflict")
    retry = _order(client, trader)
    assert retry.status_code == 202, retry.text
    again = _order(client, trader)
    assert again.json() == retry.json()
    assert queue.attempts == 2  # the failure and the retry; the replay sent nothing
    queued = _queued(queue)
    assert [(i.quantity, i.client_order_id) for i in queued] == [
        (1.0, retry.json()["client_order_id"])
    ]
