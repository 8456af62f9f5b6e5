"""Redelivery of an intent whose order exists. On SQLite and PostgreSQL (`db_engine`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from execution_helpers import engine_on, manager, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import MemoryPublisher, StaticPrices
from algotrendy.messaging import InMemoryQueue, send_intent
from algotrendy.messaging.base import QueueMessage


class DropsConnection(PaperBroker):
    """The first `failures` submits fail before anything is sent (not a broker error)."""

    def __init__(self, prices: StaticPrices, failures: int) -> None:
        super().__init__(prices)
        self.failures = failures

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("socket closed before send")
        return super().submit(intent)


Build = Callable[[int], tuple[ExecutionEngine, DropsConnection]]


@pytest.fixture
def build(db_engine: Engine) -> Build:
    def make(failures: int) -> tuple[ExecutionEngine, DropsConnection]:
        prices = StaticPrices({"BTC/USDT": 100.0})
        broker = DropsConnection(prices, failures)
        engine = engine_on(db_engine, broker, prices, manager(max_position=1))
        engine.start()
        return engine, broker

    return make


def message(intent: OrderIntent) -> QueueMessage:
    queue = InMemoryQueue("orders.fifo")
    send_intent(queue, intent)
    [msg] = queue.receive(max_messages=1, wait_seconds=0)
    return msg


def alerts(engine: ExecutionEngine) -> list[str]:
    assert isinstance(engine.publisher, MemoryPublisher)
    return [e["kind"] for e in engine.publisher.topic("alerts")]


BUY = OrderIntent(intent_id="stuck-new-0001", symbol="BTC/USDT", side="buy", quantity=1)


def test_new_order_the_broker_never_got_is_submitted_on_redelivery(build: Build) -> None:
    eng, broker = build(1)
    msg = message(BUY)
    assert eng.handle(msg) is False  # kept for redelivery
    assert alerts(eng) == ["submit_failed"]
    assert stored_order(eng, BUY.client_order_id).status is OrderStatus.NEW

    assert eng.handle(msg) is True  # the redelivery places it
    order = eng.repo.get_order(BUY.client_order_id)
    assert order is not None
    assert order.status is OrderStatus.FILLED
    assert broker.get_order(BUY.client_order_id) is not None
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(1)
    assert eng._open == {}
    assert len(eng.repo.list_orders()) == 1


def test_redelivery_whose_submit_fails_again_keeps_the_message(build: Build) -> None:
    eng, broker = build(2)
    msg = message(BUY)
    assert eng.handle(msg) is False
    assert eng.handle(msg) is False  # not acknowledged: the order is still not placed
    assert alerts(eng) == ["submit_failed", "submit_failed"]
    assert broker.get_order(BUY.client_order_id) is None
    assert eng.handle(msg) is True
    order = eng.repo.get_order(BUY.client_order_id)
    assert order is not None
    assert order.status is OrderStatus.FILLED


def test_redelivery_places_the_order_once(build: Build) -> None:
    """The resubmit uses the intent's client order id: a venue that already has it (the
    failed submit did reach it after all) returns it instead of placing another."""
    eng, broker = build(1)
    msg = message(BUY)
    assert eng.handle(msg) is False
    broker.failures = 0
    for _ in range(3):
        assert eng.handle(msg) is True
    assert len(broker.positions()) == 1
    assert broker.positions()[0].quantity == pytest.approx(1)
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(1)
