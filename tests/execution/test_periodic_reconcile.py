"""The running engine reconciles every `reconcile_interval` seconds (between polls of its
consumer loop), so an order left UNKNOWN ends without a restart; a pass never runs twice
at once, never takes a NEW order for missing, never acts on a miss that an update
overtook, and a failing broker is alerted without stopping the loop. On SQLite and
PostgreSQL (`db_engine`)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from execution_helpers import alerts, engine_on, manager, resting_buy, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import BrokerOrder, BrokerPosition
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import RECONCILIATION_LEDGER, ExecutionEngine
from algotrendy.execution.errors import RetryableBrokerError
from algotrendy.execution.ports import StaticPrices
from algotrendy.messaging import InMemoryQueue, send_intent

PRICES = StaticPrices({"BTC/USDT": 100.0})
MAX_OPEN = "risk: max open orders reached (1/1)"


class Venue(PaperBroker):
    """A paper venue that can lose orders (`forgotten`), be down (`down`: lookups and
    positions fail), report extra units (`extra`), or run a hook inside a lookup."""

    def __init__(self) -> None:
        super().__init__(PRICES, fee=0.0)
        self.forgotten: set[str] = set()
        self.down = False
        self.extra = 0.0
        self.lookups = 0
        self.during_lookup: list[object] = []  # callables run inside the next lookup

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        self.lookups += 1
        while self.during_lookup:
            hook = self.during_lookup.pop(0)
            assert callable(hook)
            hook()
        if self.down:
            raise RetryableBrokerError("venue unreachable")
        if client_order_id in self.forgotten:
            return None
        return super().get_order(client_order_id)

    def positions(self) -> list[BrokerPosition]:
        if self.down:
            raise RetryableBrokerError("venue unreachable")
        held = super().positions()
        if self.extra:
            held = [*held, BrokerPosition("ETH/USDT", self.extra)]
        return held


@pytest.fixture
def venue() -> Venue:
    return Venue()


@pytest.fixture
def eng(db_engine: Engine, venue: Venue) -> ExecutionEngine:
    engine = engine_on(db_engine, venue, PRICES, manager(max_open_orders=1))
    engine.reconcile_interval = 0.0  # a pass after every poll
    engine.start()
    return engine


def resting(n: int) -> OrderIntent:
    return resting_buy(f"periodic-{n:04d}")


def run_once(engine: ExecutionEngine, *intents: OrderIntent) -> None:
    queue = InMemoryQueue("orders.fifo")
    for it in intents:
        send_intent(queue, it)
    engine.run(queue, wait_seconds=0, max_batches=1)
    assert len(queue) == 0


def test_order_missed_twice_across_the_grace_period_ends_without_restart(
    eng: ExecutionEngine, venue: Venue
) -> None:
    order = eng.process(resting(1))
    coid = order.client_order_id
    venue.forgotten.add(coid)

    run_once(eng, resting(2))  # its risk check still counts order 1; then the first miss
    assert stored_order(eng, resting(2).client_order_id).reason == MAX_OPEN
    assert stored_order(eng, coid).status is OrderStatus.UNKNOWN
    assert eng.reconciliation_notes == [
        f"{coid}: submitted -> unknown: submitted order not found at broker on "
        "reconciliation; still reserving its exposure until found or missed again"
    ]

    run_once(eng, resting(3))  # missed again within the grace period: still reserving
    assert stored_order(eng, resting(3).client_order_id).reason == MAX_OPEN
    assert eng.reconciliation_notes == [
        f"{coid}: still not found at broker; left unknown, reserving its exposure"
    ]

    eng._open[coid].updated_at -= eng.missing_order_grace  # the grace period has passed
    run_once(eng)
    assert stored_order(eng, coid).status is OrderStatus.CANCELLED
    assert alerts(eng, "reconciliation")[-1] == (
        f"{coid}: unknown -> cancelled: not found at broker on two reconciliations: "
        "presumed ended at the venue (check it there)"
    )
    run_once(eng, resting(4))  # its exposure is free again, still the same process
    assert stored_order(eng, resting(4).client_order_id).status is OrderStatus.SUBMITTED


def test_passes_are_paced_by_the_interval(eng: ExecutionEngine, venue: Venue) -> None:
    order = eng.process(resting(1))
    venue.forgotten.add(order.client_order_id)
    eng.reconcile_interval = 3600.0  # start() reconciled just now: the next pass is not due
    run_once(eng)
    assert eng._open[order.client_order_id].status is OrderStatus.SUBMITTED
    eng.reconcile_interval = None  # off
    run_once(eng)
    assert eng._open[order.client_order_id].status is OrderStatus.SUBMITTED
    eng.reconcile_interval = 0.0
    run_once(eng)
    assert eng._open[order.client_order_id].status is OrderStatus.UNKNOWN


def test_a_failing_broker_is_alerted_and_the_loop_goes_on(
    eng: ExecutionEngine, venue: Venue
) -> None:
    order = eng.process(resting(1))
    venue.down = True
    queue = InMemoryQueue("orders.fifo")
    send_intent(queue, resting(2))
    eng.run(queue, wait_seconds=0, max_batches=2)  # two passes, both failing: no exception
    assert len(queue) == 0
    assert stored_order(eng, resting(2).client_order_id).reason == MAX_OPEN
    assert eng.reconciliation_notes == [
        f"{order.client_order_id}: broker lookup failed (venue unreachable); left submitted",
        "broker positions lookup failed (venue unreachable); position drift not checked",
    ]
    assert alerts(eng, "reconciliation") == eng.reconciliation_notes * 2  # each pass's

    venue.down = False
    venue.forgotten.add(order.client_order_id)
    run_once(eng)  # the loop is still reconciling once the venue is back
    assert stored_order(eng, order.client_order_id).status is OrderStatus.UNKNOWN


def test_an_unexpected_failure_fails_the_pass_not_the_loop(
    eng: ExecutionEngine, venue: Venue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adapter letting a raw error through (not a BrokerError): the pass is alerted as
    failed, the consumer goes on and the next pass runs as usual."""
    order = eng.process(resting(1))

    def leaky(client_order_id: str) -> BrokerOrder | None:
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(venue, "get_order", leaky)
    queue = InMemoryQueue("orders.fifo")
    send_intent(queue, resting(2))
    eng.run(queue, wait_seconds=0, max_batches=1)
    assert len(queue) == 0
    assert alerts(eng, "reconciliation_failed") == [
        "periodic reconciliation failed (ConnectionResetError: connection reset by peer); "
        "trading goes on, next try in 0s"
    ]
    monkeypatch.undo()
    venue.forgotten.add(order.client_order_id)
    run_once(eng)
    assert stored_order(eng, order.client_order_id).status is OrderStatus.UNKNOWN


def test_a_pass_never_runs_alongside_another(eng: ExecutionEngine, venue: Venue) -> None:
    eng.process(resting(1))
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        inside.set()
        assert release.wait(10)

    venue.during_lookup.append(hold)
    other = threading.Thread(target=eng.reconcile)
    other.start()
    try:
        assert inside.wait(10)
        lookups = venue.lookups
        assert eng.reconcile_if_due() is None  # a pass is under way: skipped, not doubled
        assert venue.lookups == lookups
    finally:
        release.set()
        other.join(10)
    assert not other.is_alive()


def test_a_miss_overtaken_by_an_update_changes_nothing(eng: ExecutionEngine, venue: Venue) -> None:
    """The order fills while its lookup is on the wire and the lookup then misses it (a
    lagging read): the fill is newer news, so the order stays FILLED."""
    order = eng.process(resting(1))
    coid = order.client_order_id
    venue.forgotten.add(coid)

    def filled_meanwhile() -> None:
        [filled] = venue.on_price("BTC/USDT", 40.0)  # the limit at 50 trades
        assert filled.status is OrderStatus.FILLED
        eng.on_broker_update(filled)

    venue.during_lookup.append(filled_meanwhile)
    assert eng.reconcile_if_due() is not None
    assert stored_order(eng, coid).status is OrderStatus.FILLED
    assert coid not in eng._open
    assert not any(n.startswith(coid) for n in eng.reconciliation_notes)


def test_a_new_order_is_left_to_its_redelivery(
    db_engine: Engine, venue: Venue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NEW order is one whose submit is under way or failed before the broker answered
    (its message is kept): a periodic miss must not reject it; the redelivery submits it."""
    eng = engine_on(db_engine, venue, PRICES)
    eng.reconcile_interval = 0.0
    eng.start()
    real_submit = venue.submit

    def broken(it: OrderIntent) -> BrokerOrder:
        raise ConnectionResetError("socket closed before sending")

    monkeypatch.setattr(venue, "submit", broken)
    queue = InMemoryQueue("orders.fifo", visibility_timeout=0.0)  # redelivered at once
    send_intent(queue, resting(1))
    eng.run(queue, wait_seconds=0, max_batches=1)
    assert len(queue) == 1  # kept for redelivery
    assert stored_order(eng, resting(1).client_order_id).status is OrderStatus.NEW

    monkeypatch.setattr(venue, "submit", real_submit)
    eng.run(queue, wait_seconds=0, max_batches=1)
    assert len(queue) == 0
    assert stored_order(eng, resting(1).client_order_id).status is OrderStatus.SUBMITTED


def test_drift_is_reported_not_corrected_while_an_order_works(
    eng: ExecutionEngine, venue: Venue
) -> None:
    """A working order may fill between its lookup and the position snapshot; correcting
    that "drift" would book its fill twice once recorded."""
    eng.process(resting(1))
    venue.extra = 2.0
    run_once(eng)
    assert eng.reconciliation_notes == [
        "position ETH/USDT: engine 0 vs broker 2; not corrected while 1 order(s) work"
    ]
    assert eng.repo.load_positions(strategy=RECONCILIATION_LEDGER) == []


def test_the_interval_comes_from_the_settings(tmp_path: Path) -> None:
    from algotrendy.config import Settings
    from algotrendy.execution.service import build_runtime

    db = f"sqlite:///{tmp_path / 'engine.db'}"
    every = build_runtime(Settings(database_url=db, reconcile_interval_seconds=15))
    assert every.engine.reconcile_interval == 15
    never = build_runtime(Settings(database_url=db, reconcile_interval_seconds=0))
    assert never.engine.reconcile_interval is None
