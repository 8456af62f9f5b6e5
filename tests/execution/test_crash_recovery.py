"""The engine SIGKILLed between the broker's accept and its own bookkeeping: after a
restart, reconciliation finds the order at the broker, records its fill once, and the
redelivered intent places nothing new."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import MemoryPublisher, StaticPrices
from algotrendy.execution.risk import RiskConfig, RiskManager
from algotrendy.messaging import InMemoryQueue, send_intent
from algotrendy.storage.relational import create_db_engine, upgrade_database
from algotrendy.storage.relational.repositories import SqlExecutionRepository

SCRIPT = Path(__file__).with_name("crash_after_submit.py")


def test_sigkill_between_submit_and_persistence(tmp_path: Path) -> None:
    db, state = tmp_path / "engine.db", tmp_path / "paper.db"
    intent = OrderIntent(intent_id="crash-0001", symbol="BTC/USDT", side="buy", quantity=2,
                         strategy="s")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(db), str(state), intent.model_dump_json()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    prices = StaticPrices({"BTC/USDT": 100.0})
    engine = create_db_engine(f"sqlite:///{db}")
    upgrade_database(engine)
    repo = SqlExecutionRepository(engine)
    before = repo.get_order(intent.client_order_id)
    assert before is not None
    assert before.status is OrderStatus.NEW  # persisted before submit, nothing after
    assert repo.fills_for(intent.client_order_id) == []

    broker = PaperBroker(prices, fee=0.001, state_path=state)  # the venue remembers
    eng = ExecutionEngine(repo=repo, broker=broker, risk=RiskManager(RiskConfig()),
                          prices=prices, publisher=MemoryPublisher())  # fmt: skip
    notes = eng.start()
    assert notes == [f"{intent.client_order_id}: new -> filled (broker)"]

    again = eng.process(intent)  # the queue redelivers the undeleted message
    assert again.status is OrderStatus.FILLED
    assert eng.stats.duplicates == 1
    assert len(broker.snapshot_orders()) == 1  # no second order at the venue
    [fill] = repo.fills_for(intent.client_order_id)
    assert fill.quantity == pytest.approx(2)
    assert eng.book.get("default", "s", "BTC/USDT").quantity == pytest.approx(2)

    # A second restart rebuilds positions from the fills: still exactly one fill's worth.
    eng2 = ExecutionEngine(repo=repo, broker=broker, risk=RiskManager(RiskConfig()),
                           prices=prices, publisher=MemoryPublisher())  # fmt: skip
    assert eng2.start() == []
    assert eng2.book.account_quantity("default", "BTC/USDT") == pytest.approx(2)


BATCH_SCRIPT = Path(__file__).with_name("crash_in_batch.py")


def _batch_intents() -> list[OrderIntent]:
    """Ten intents for one receive: two symbols, both sides, distinct sizes, so a lost or
    doubled fill shows in the positions."""
    return [
        OrderIntent(intent_id=f"batch-{n:04d}", symbol="BTC/USDT" if n % 3 else "ETH/USDT",
                    side="sell" if n in (4, 7) else "buy", quantity=n + 1, strategy="s")
        for n in range(10)
    ]  # fmt: skip


def _signed(intent: OrderIntent) -> float:
    return intent.quantity if intent.side.value == "buy" else -intent.quantity


@pytest.mark.parametrize(("mode", "at_broker"), [("submit:3", 3), ("record", 10)])
def test_sigkill_inside_a_batch(tmp_path: Path, mode: str, at_broker: int) -> None:
    """Group commit keeps the single-intent guarantees: every order of the batch is NEW in
    the database before the first submit; after the crash, reconciliation fills what the
    broker has and keeps what it does not show reserved (UNKNOWN: its submit may have gone
    out, the venue's lookup may lag); the redelivered batch places nothing new; a restart
    after the grace period rejects what the broker still does not have; positions equal
    the broker's, before and after it."""
    db, state = tmp_path / "engine.db", tmp_path / "paper.db"
    intents = _batch_intents()
    payload = json.dumps([i.model_dump(mode="json") for i in intents])
    proc = subprocess.run(
        [sys.executable, str(BATCH_SCRIPT), str(db), str(state), mode, payload],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    prices = StaticPrices({"BTC/USDT": 100.0, "ETH/USDT": 10.0})
    engine = create_db_engine(f"sqlite:///{db}")
    upgrade_database(engine)
    repo = SqlExecutionRepository(engine)
    stored = [repo.get_order(i.client_order_id) for i in intents]
    assert all(o is not None and o.status is OrderStatus.NEW for o in stored)
    assert repo.all_fills() == []

    broker = PaperBroker(prices, fee=0.001, state_path=state)  # the venue remembers
    placed = [i for i in intents if broker.get_order(i.client_order_id) is not None]
    assert placed == intents[:at_broker]  # submitted in message order, up to the crash

    eng = ExecutionEngine(repo=repo, broker=broker, risk=RiskManager(RiskConfig()),
                          prices=prices, publisher=MemoryPublisher())  # fmt: skip
    notes = eng.start()
    expected = [f"{i.client_order_id}: new -> filled (broker)" for i in intents[:at_broker]]
    expected += [
        f"{i.client_order_id}: new -> unknown: new order not found at broker on start-up "
        "reconciliation: its submit may have reached the venue just before a crash; still "
        "reserving its exposure until found or missed again"
        for i in intents[at_broker:]
    ]
    assert sorted(notes) == sorted(expected)  # and no position drift note

    queue = InMemoryQueue("orders.fifo")  # SQS redelivers the ten undeleted messages
    for intent in intents:
        send_intent(queue, intent)
    eng.run(queue, wait_seconds=0, max_batches=2)
    assert len(queue) == 0
    assert eng.stats.duplicates == 10
    assert eng.stats.processed == 0
    assert len(broker.snapshot_orders()) == at_broker  # nothing placed twice or late
    # What the broker does not show stays reserved until missed again after the grace.
    assert sorted(o.client_order_id for o in repo.open_orders()) == sorted(
        i.client_order_id for i in intents[at_broker:]
    )
    fills = repo.all_fills()
    assert sorted(f.client_order_id for f in fills) == sorted(
        i.client_order_id for i in intents[:at_broker]
    )

    broker_positions = {p.symbol: p.quantity for p in broker.positions()}
    expected_positions: dict[str, float] = {}
    for intent in intents[:at_broker]:  # derived from the intents, not from the engine
        expected_positions[intent.symbol] = expected_positions.get(intent.symbol, 0.0) + _signed(
            intent
        )
    assert broker_positions == pytest.approx(
        {s: q for s, q in expected_positions.items() if q != 0}
    )
    for symbol in ("BTC/USDT", "ETH/USDT"):
        assert eng.book.account_quantity("default", symbol) == pytest.approx(
            broker_positions.get(symbol, 0.0)
        )

    # Another restart, after the grace period: what the broker still does not have is
    # rejected; positions are rebuilt from the fills alone: still the broker's.
    eng2 = ExecutionEngine(repo=repo, broker=broker, risk=RiskManager(RiskConfig()),
                           prices=prices, publisher=MemoryPublisher())  # fmt: skip
    eng2.missing_order_grace = timedelta(0)
    assert sorted(eng2.start()) == sorted(
        f"{i.client_order_id}: unknown -> rejected: never acknowledged and still not found "
        "at broker after the grace period: presumed never placed (check the venue)"
        for i in intents[at_broker:]
    )
    assert repo.open_orders() == []  # every order resolved
    for n, intent in enumerate(intents):
        order = repo.get_order(intent.client_order_id)
        assert order is not None
        assert order.status is (OrderStatus.FILLED if n < at_broker else OrderStatus.REJECTED)
    for symbol in ("BTC/USDT", "ETH/USDT"):
        assert eng2.book.account_quantity("default", symbol) == pytest.approx(
            broker_positions.get(symbol, 0.0)
        )
