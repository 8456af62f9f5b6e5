"""Broker updates folded into orders: terminal answers to a submit (an IOC the venue
expires), late updates after newer ones. On SQLite and PostgreSQL (`db_engine`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from execution_helpers import engine_on, manager, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus, TimeInForce
from algotrendy.execution.brokers.base import BrokerFill, BrokerOrder, BrokerPosition
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import StaticPrices

S = OrderStatus


class Venue:
    """A venue whose submit reply the test sets: the order accepted, then `fills` traded
    (quantity, price), then `ends` as its status if given."""

    name = "stub"

    def __init__(self) -> None:
        self.orders: dict[str, BrokerOrder] = {}
        self.fills: list[tuple[float, float]] = []
        self.ends: OrderStatus | None = None

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        coid = intent.client_order_id
        order = self.orders.get(coid)
        if order is None:
            order = BrokerOrder(coid, f"B{len(self.orders) + 1}", intent.symbol, S.SUBMITTED,
                                intent.quantity)  # fmt: skip
            for qty, price in self.fills:
                order = self.fill(order, qty, price)
            if self.ends is not None:
                order = replace(order, status=self.ends)
            self.orders[coid] = order
        return order

    @staticmethod
    def fill(order: BrokerOrder, qty: float, price: float) -> BrokerOrder:
        """`order` after one more fill (the update a venue would send)."""
        fill = BrokerFill(f"{order.broker_order_id}-{len(order.fills) + 1}", qty, price, 0.0,
                          datetime.now(UTC))  # fmt: skip
        fills = (*order.fills, fill)
        filled = sum(f.quantity for f in fills)
        return replace(
            order, fills=fills, filled_quantity=filled,
            status=S.FILLED if filled >= order.quantity else S.PARTIALLY_FILLED,
            avg_fill_price=sum(f.quantity * f.price for f in fills) / filled,
        )  # fmt: skip

    def cancel(self, client_order_id: str) -> BrokerOrder:
        return self.orders[client_order_id]

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        return self.orders.get(client_order_id)

    def open_orders(self) -> list[BrokerOrder]:
        return [o for o in self.orders.values() if o.status not in (S.FILLED, S.EXPIRED)]

    def positions(self) -> list[BrokerPosition]:
        qty = sum(o.filled_quantity for o in self.orders.values())
        return [BrokerPosition("BTC/USDT", qty)] if qty else []


Build = Callable[[Venue], ExecutionEngine]


@pytest.fixture
def build(db_engine: Engine) -> Build:
    def make(venue: Venue) -> ExecutionEngine:
        prices = StaticPrices({"BTC/USDT": 100.0})
        return engine_on(db_engine, venue, prices, manager(max_position=10))

    return make


def buy(n: int, qty: float, **kw: object) -> OrderIntent:
    return OrderIntent.model_validate(
        {"intent_id": f"fold-{n:04d}", "symbol": "BTC/USDT", "side": "buy", "quantity": qty, **kw}
    )


def ioc(n: int, qty: float) -> OrderIntent:
    return buy(n, qty, order_type="limit", limit_price=90.0, time_in_force=TimeInForce.IOC)


def test_ioc_the_venue_expires_unfilled_ends_expired(build: Build) -> None:
    """Binance answers an unfilled IOC with EXPIRED: the order ends, its 10 stop reserving."""
    venue = Venue()
    venue.ends = S.EXPIRED
    eng = build(venue)
    eng.start()
    order = eng.process(ioc(1, 10))
    assert order.status is S.EXPIRED
    assert stored_order(eng, order.client_order_id).status is S.EXPIRED
    assert eng._open == {}
    venue.ends = None
    assert eng.process(buy(2, 1)).status is S.SUBMITTED  # 0 + 1 <= 10, nothing reserved
    restarted = build(venue)
    restarted.start()
    assert order.client_order_id not in restarted._open


def test_ioc_expired_after_a_partial_fill_books_the_fill_and_ends(build: Build) -> None:
    venue = Venue()
    venue.fills, venue.ends = [(3.0, 100.0)], S.EXPIRED
    eng = build(venue)
    eng.start()
    order = eng.process(ioc(1, 5))
    assert (order.status, order.filled_quantity) == (S.EXPIRED, 3.0)
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(3.0)
    venue.fills, venue.ends = [], None
    # 3 held + 6 = 9 <= 10: the 2 the venue expired are not reserved any more.
    second = eng.process(buy(2, 6))
    assert second.status is S.SUBMITTED, second.reason


@pytest.mark.parametrize("ends", [S.EXPIRED, S.CANCELLED, S.REJECTED, S.FILLED])
def test_every_terminal_answer_to_a_submit_ends_the_order(build: Build, ends: OrderStatus) -> None:
    venue = Venue()
    venue.fills = [(2.0, 100.0)] if ends is S.FILLED else []
    venue.ends = ends
    eng = build(venue)
    eng.start()
    order = eng.process(buy(1, 2))
    assert order.status is ends
    assert stored_order(eng, order.client_order_id).status is ends
    assert eng._open == {}


def test_rejected_after_a_partial_fill_ends_cancelled(build: Build) -> None:
    """An adapter passing on a venue's REJECTED after fills must not leave the order open."""
    venue = Venue()
    eng = build(venue)
    eng.start()
    order = eng.process(buy(1, 5))
    partial = Venue.fill(venue.orders[order.client_order_id], 2.0, 100.0)
    eng.on_broker_update(partial)
    eng.on_broker_update(replace(partial, status=S.REJECTED))
    assert (order.status, order.filled_quantity) == (S.CANCELLED, 2.0)
    assert eng._open == {}


def test_an_older_update_after_a_newer_one_never_moves_figures_back(build: Build) -> None:
    venue = Venue()
    eng = build(venue)
    eng.start()
    order = eng.process(buy(1, 10))
    first = Venue.fill(venue.orders[order.client_order_id], 4.0, 100.0)  # partly filled, 4
    last = Venue.fill(first, 6.0, 101.0)  # filled, 10
    eng.on_broker_update(last)
    eng.on_broker_update(first)  # delivered late
    stored = stored_order(eng, order.client_order_id)
    assert (stored.status, stored.filled_quantity) == (S.FILLED, 10.0)
    assert stored.avg_fill_price == pytest.approx(100.6)
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(10.0)


def test_an_older_update_never_shrinks_an_open_orders_fill(build: Build) -> None:
    venue = Venue()
    eng = build(venue)
    eng.start()
    order = eng.process(buy(1, 10))
    two = Venue.fill(venue.orders[order.client_order_id], 2.0, 100.0)
    seven = Venue.fill(two, 5.0, 100.0)
    eng.on_broker_update(seven)
    eng.on_broker_update(two)  # delivered late
    live = eng._open[order.client_order_id]
    assert (live.status, live.filled_quantity, live.remaining) == (S.PARTIALLY_FILLED, 7.0, 3.0)
    stored = stored_order(eng, order.client_order_id)
    assert stored.filled_quantity == 7.0
