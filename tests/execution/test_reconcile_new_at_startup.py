"""Start-up reconciliation of a NEW order the broker does not show: its submit may have
reached the venue just before a crash, and venue lookups lag. So it is kept reserved
(UNKNOWN) and alerted, never resubmitted by a redelivery, and ended (REJECTED, presumed
never placed) only when missed again after `missing_order_grace`. On SQLite and
PostgreSQL (`db_engine`); each `start()` is a restart on the same database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from execution_helpers import alerts, engine_on, manager, resting_buy, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import StaticPrices

PRICES = StaticPrices({"BTC/USDT": 100.0})
MISSED = ("new order not found at broker on start-up reconciliation: its submit may have "
          "reached the venue just before a crash; still reserving its exposure until found "
          "or missed again")  # fmt: skip


class CrashingVenue(PaperBroker):
    """The engine "dies" inside the submit: `crash` raises after the venue placed the order
    (`placed=True`) or before (`placed=False`), so the order stays NEW in the database.
    Lookups of the ids in `lagging` miss (the venue's read side is behind)."""

    def __init__(self) -> None:
        super().__init__(PRICES, fee=0.0)
        self.crash: bool | None = None  # None: no crash; else whether the order was placed
        self.lagging: set[str] = set()

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        placed = self.crash
        if placed is None:
            return super().submit(intent)
        if placed:
            super().submit(intent)
        raise SystemError("process died during the submit")  # not a BrokerError: stays NEW

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        if client_order_id in self.lagging:
            return None
        return super().get_order(client_order_id)


Build = Callable[[], ExecutionEngine]


@pytest.fixture
def venue() -> CrashingVenue:
    return CrashingVenue()


@pytest.fixture
def build(db_engine: Engine, venue: CrashingVenue) -> Build:
    def make() -> ExecutionEngine:
        return engine_on(db_engine, venue, PRICES, manager(max_open_orders=1))

    return make


def resting(n: int) -> OrderIntent:
    return resting_buy(f"startup-new-{n:04d}")


def crash_in_submit(build: Build, venue: CrashingVenue, *, placed: bool) -> str:
    """An engine that dies in the submit of `resting(1)`; returns its client order id."""
    eng = build()
    eng.start()
    venue.crash = placed
    with pytest.raises(SystemError):
        eng.process(resting(1))
    venue.crash = None
    coid = resting(1).client_order_id
    assert stored_order(eng, coid).status is OrderStatus.NEW
    return coid


def test_new_order_placed_before_a_crash_is_kept_reserved_not_rejected(
    build: Build, venue: CrashingVenue
) -> None:
    coid = crash_in_submit(build, venue, placed=True)
    venue.lagging.add(coid)  # placed at the venue, its lookup not there yet

    eng = build()
    notes = eng.start()
    assert notes == [f"{coid}: new -> unknown: {MISSED}"]
    assert alerts(eng, "reconciliation") == notes
    assert stored_order(eng, coid).status is OrderStatus.UNKNOWN
    # Still reserving: the order may work at the venue.
    assert eng.process(resting(2)).reason == "risk: max open orders reached (1/1)"

    # The redelivered intent only looks it up: nothing placed a second time.
    assert eng.process(resting(1)).status is OrderStatus.UNKNOWN
    assert len(venue.snapshot_orders()) == 1

    venue.lagging.clear()  # the venue's lookup catches up
    later = build()
    later.missing_order_grace = timedelta(0)
    assert later.start() == [f"{coid}: unknown -> submitted (broker)"]
    assert stored_order(later, coid).status is OrderStatus.SUBMITTED


def test_new_order_never_placed_is_rejected_only_after_the_grace_period(
    build: Build, venue: CrashingVenue
) -> None:
    coid = crash_in_submit(build, venue, placed=False)

    first = build()
    assert first.start() == [f"{coid}: new -> unknown: {MISSED}"]
    assert first.process(resting(1)).status is OrderStatus.UNKNOWN  # redelivery: no submit
    assert venue.snapshot_orders() == []

    soon = build()  # a restart within the grace period changes nothing
    assert soon.start() == [
        f"{coid}: still not found at broker; left unknown, reserving its exposure"
    ]
    assert stored_order(soon, coid).status is OrderStatus.UNKNOWN

    # The running engine's periodic pass ends it once the grace period is over.
    soon.missing_order_grace = timedelta(0)
    soon.reconcile_interval = 0.0
    assert soon.reconcile_if_due() == [
        f"{coid}: unknown -> rejected: never acknowledged and still not found at broker "
        "after the grace period: presumed never placed (check the venue)"
    ]
    assert stored_order(soon, coid).status is OrderStatus.REJECTED
    assert soon._open == {}
    assert soon.process(resting(2)).status is OrderStatus.SUBMITTED  # exposure freed
    assert [o.client_order_id for o in venue.snapshot_orders()] == [resting(2).client_order_id]
