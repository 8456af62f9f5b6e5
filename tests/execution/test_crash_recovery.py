"""The engine SIGKILLed between the broker's accept and its own bookkeeping: after a
restart, reconciliation finds the order at the broker, records its fill once, and the
redelivered intent places nothing new."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import MemoryPublisher, StaticPrices
from algotrendy.execution.risk import RiskConfig, RiskManager
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
