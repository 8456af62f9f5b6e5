"""Reconciliation of open orders the broker no longer knows. On SQLite and PostgreSQL
(`db_engine`); each `start()` is a restart of the engine on the same database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from execution_helpers import alerts, engine_on, manager, resting_buy, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import BrokerFill, BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import StaticPrices


class ForgetfulVenue(PaperBroker):
    """A paper venue that can lose orders (purged, another account, a lookup gap)."""

    def __init__(self, prices: StaticPrices) -> None:
        super().__init__(prices)
        self.forgotten: set[str] = set()

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        if client_order_id in self.forgotten:
            return None
        return super().get_order(client_order_id)


Build = Callable[[], ExecutionEngine]
PRICES = StaticPrices({"BTC/USDT": 100.0})


@pytest.fixture
def venue() -> ForgetfulVenue:
    return ForgetfulVenue(PRICES)


@pytest.fixture
def build(db_engine: Engine, venue: ForgetfulVenue) -> Build:
    def make() -> ExecutionEngine:
        return engine_on(db_engine, venue, PRICES, manager(max_open_orders=1))

    return make


def resting(n: int) -> OrderIntent:
    return resting_buy(f"ghost-{n:04d}")


def test_submitted_order_missing_at_broker_is_reported_and_kept_reserved(
    build: Build, venue: ForgetfulVenue
) -> None:
    first = build()
    first.start()
    order = first.process(resting(1))
    assert order.status is OrderStatus.SUBMITTED
    venue.forgotten.add(order.client_order_id)

    eng = build()
    notes = eng.start()
    coid = order.client_order_id
    assert notes == [
        f"{coid}: submitted -> unknown: submitted order not found at broker on "
        "reconciliation; still reserving its exposure until found or missed again"
    ]
    assert alerts(eng, "reconciliation") == notes
    assert eng._open[coid].status is OrderStatus.UNKNOWN
    assert stored_order(eng, coid).status is OrderStatus.UNKNOWN
    # A miss may be a lookup gap: the order may still work at the venue, so it still counts.
    assert eng.process(resting(2)).reason == "risk: max open orders reached (1/1)"


def test_missed_again_after_the_grace_period_the_order_ends(
    build: Build, venue: ForgetfulVenue
) -> None:
    first = build()
    first.start()
    order = first.process(resting(1))
    venue.forgotten.add(order.client_order_id)
    build().start()  # first miss: UNKNOWN

    soon = build()
    notes = soon.start()  # a restart within the grace period changes nothing
    assert notes == [
        f"{order.client_order_id}: still not found at broker; left unknown, reserving its exposure"
    ]

    later = build()
    later.missing_order_grace = timedelta(0)
    notes = later.start()
    assert notes == [
        f"{order.client_order_id}: unknown -> cancelled: not found at broker on "
        "two reconciliations: presumed ended at the venue (check it there)"
    ]
    assert later._open == {}
    assert stored_order(later, order.client_order_id).status is OrderStatus.CANCELLED
    assert later.process(resting(2)).status is OrderStatus.SUBMITTED


def test_an_order_found_again_resumes(build: Build, venue: ForgetfulVenue) -> None:
    first = build()
    first.start()
    order = first.process(resting(1))
    venue.forgotten.add(order.client_order_id)
    build().start()
    venue.forgotten.clear()
    eng = build()
    eng.missing_order_grace = timedelta(0)
    assert eng.start() == [f"{order.client_order_id}: unknown -> submitted (broker)"]
    assert eng._open[order.client_order_id].status is OrderStatus.SUBMITTED


def test_partly_filled_order_missing_keeps_its_fills(build: Build, venue: ForgetfulVenue) -> None:
    """PARTIALLY_FILLED -> UNKNOWN -> CANCELLED: the fill stands, the rest stops reserving."""
    first = build()
    first.start()
    order = first.process(resting(1).model_copy(update={"quantity": 4.0}))
    at_venue = venue.get_order(order.client_order_id)
    assert at_venue is not None
    fill = BrokerFill("F1", 1.0, 50.0, 0.0, datetime.now(UTC))
    partial = replace(at_venue, status=OrderStatus.PARTIALLY_FILLED, filled_quantity=1.0,
                      avg_fill_price=50.0, fills=(fill,))  # fmt: skip
    first.on_broker_update(partial)
    venue.forgotten.add(order.client_order_id)

    second = build()
    notes = second.start()
    assert notes[0].startswith(f"{order.client_order_id}: partially_filled -> unknown: ")
    assert any(n.endswith("not corrected (1 order(s) unresolved at the broker)") for n in notes)

    third = build()
    third.missing_order_grace = timedelta(0)
    assert third.start()[0].startswith(f"{order.client_order_id}: unknown -> cancelled: ")
    stored = stored_order(third, order.client_order_id)
    assert (stored.status, stored.filled_quantity) == (OrderStatus.CANCELLED, 1.0)
    assert [f.broker_fill_id for f in third.repo.fills_for(order.client_order_id)] == ["F1"]
    assert third._open == {}
