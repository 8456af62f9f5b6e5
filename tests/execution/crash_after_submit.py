"""Run in a subprocess by test_crash_recovery: builds an engine on the given files, submits
one intent, and SIGKILLs its own process right after the broker accepted the order but
before the engine recorded anything about it. Not a test module."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from algotrendy.domain.orders import OrderIntent
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import MemoryPublisher, StaticPrices
from algotrendy.execution.risk import RiskConfig, RiskManager
from algotrendy.storage.relational import create_db_engine, upgrade_database
from algotrendy.storage.relational.repositories import SqlExecutionRepository


class CrashingPaperBroker(PaperBroker):
    def submit(self, intent: OrderIntent):  # type: ignore[no-untyped-def]
        result = super().submit(intent)
        os.kill(os.getpid(), signal.SIGKILL)
        return result


def main(db: str, broker_state: str, intent_json: str) -> None:
    prices = StaticPrices({"BTC/USDT": 100.0})
    engine = create_db_engine(f"sqlite:///{db}")
    upgrade_database(engine)
    eng = ExecutionEngine(
        repo=SqlExecutionRepository(engine),
        broker=CrashingPaperBroker(prices, fee=0.001, state_path=Path(broker_state)),
        risk=RiskManager(RiskConfig()),
        prices=prices,
        publisher=MemoryPublisher(),
    )
    eng.start()
    eng.process(OrderIntent.model_validate_json(intent_json))


if __name__ == "__main__":
    main(*sys.argv[1:4])
