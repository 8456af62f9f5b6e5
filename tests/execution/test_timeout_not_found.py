"""A plain submit timeout whose lookup answers "not found" leaves the order UNKNOWN (not
REJECTED): the venue's lookup can lag behind an order it did place. It keeps reserving its
exposure, is never submitted again, and reconciliation ends it only when it is still
missing after the grace period. On SQLite and PostgreSQL (`db_engine`)."""

from __future__ import annotations

import pytest
from execution_helpers import engine_on, manager, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus, Side
from algotrendy.execution.brokers.base import BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.errors import SubmitTimeoutError
from algotrendy.execution.ports import StaticPrices

PRICES = StaticPrices({"BTC/USDT": 100.0})


class LaggingVenue(PaperBroker):
    """Places the order when `places` but loses every submit reply, and its lookups do not
    show orders until `visible` (no "duplicate" hint: the paper venue returns the order)."""

    def __init__(self, *, places: bool) -> None:
        super().__init__(PRICES, fee=0.0)
        self.places = places
        self.visible = False
        self.submits = 0

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        self.submits += 1
        if self.places:
            super().submit(intent)
        raise SubmitTimeoutError("read timeout")

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        return super().get_order(client_order_id) if self.visible else None


def engine(db: Engine, venue: LaggingVenue) -> ExecutionEngine:
    eng = engine_on(db, venue, PRICES, manager(max_open_orders=1))
    eng.reconcile_interval = 0.0
    eng.start()
    return eng


def buy(n: int) -> OrderIntent:
    return OrderIntent(intent_id=f"lag-{n:04d}", symbol="BTC/USDT", side=Side.BUY, quantity=1)


def test_placed_but_not_yet_visible_stays_unknown_and_is_booked_once_seen(
    db_engine: Engine,
) -> None:
    venue = LaggingVenue(places=True)
    eng = engine(db_engine, venue)
    order = eng.process(buy(1))
    coid = order.client_order_id
    assert order.status is OrderStatus.UNKNOWN, order.reason
    assert stored_order(eng, coid).status is OrderStatus.UNKNOWN
    # Still reserving: the venue does hold it, so a second order would exceed the limit.
    assert eng.process(buy(2)).reason == "risk: max open orders reached (1/1)"
    submits = venue.submits
    assert eng.process(buy(1)) is not None  # a redelivery looks it up, never re-submits
    assert venue.submits == submits
    assert eng.reconcile_if_due() is not None  # within the grace period: left unknown
    assert eng._open[coid].status is OrderStatus.UNKNOWN

    venue.visible = True
    eng.reconcile_if_due()
    assert stored_order(eng, coid).status is OrderStatus.FILLED
    assert len(eng.repo.fills_for(coid)) == 1
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(1)
    third = eng.process(buy(3))  # the limit is free again: it passes risk and is sent
    assert third.status is OrderStatus.FILLED, third.reason  # found by the lookup at once
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(2)


def test_never_placed_ends_rejected_only_after_the_grace_period(db_engine: Engine) -> None:
    venue = LaggingVenue(places=False)
    eng = engine(db_engine, venue)
    order = eng.process(buy(1))
    coid = order.client_order_id
    assert order.status is OrderStatus.UNKNOWN
    eng.reconcile_if_due()
    assert eng.reconciliation_notes == [
        f"{coid}: still not found at broker; left unknown, reserving its exposure"
    ]

    restarted = engine(db_engine, venue)  # the UNKNOWN state and its time survive a restart
    assert restarted._open[coid].status is OrderStatus.UNKNOWN
    restarted._open[coid].updated_at -= restarted.missing_order_grace
    restarted.reconcile_if_due()
    stored = stored_order(restarted, coid)
    assert stored.status is OrderStatus.REJECTED
    assert stored.reason == ("never acknowledged and still not found at broker after the "
                             "grace period: presumed never placed (check the venue)")  # fmt: skip
    assert coid not in restarted._open
    assert venue.submits == restarted.retry.attempts  # one submit call, retried; never again
