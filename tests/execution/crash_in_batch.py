"""Run in a subprocess by test_crash_recovery: an engine consumes one receive of 10
intents as a batch and SIGKILLs its own process at a chosen point. Not a test module.

Modes: `submit:<k>` dies right after the broker accepted the k-th submit of the batch (the
batch's orders are persisted, the later ones never reach the broker); `record` dies when
the batch's executions are about to be recorded (every order is at the broker, nothing
about their fills is in our database)."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from algotrendy.domain.orders import Fill, Order, OrderIntent
from algotrendy.execution.brokers.base import BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import MemoryPublisher, StaticPrices
from algotrendy.execution.positions import Position
from algotrendy.execution.risk import RiskConfig, RiskManager
from algotrendy.messaging import InMemoryQueue, send_intent
from algotrendy.storage.relational import create_db_engine, upgrade_database
from algotrendy.storage.relational.repositories import SqlExecutionRepository

PRICES = {"BTC/USDT": 100.0, "ETH/USDT": 10.0}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingPaperBroker(PaperBroker):
    def __init__(self, *args: object, crash_after: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.crash_after = crash_after
        self.submits = 0

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        result = super().submit(intent)
        self.submits += 1
        if self.submits == self.crash_after:
            die()
        return result


class CrashingRepository(SqlExecutionRepository):
    def record_executions(
        self,
        orders: Sequence[Order],
        fills: Sequence[Fill],
        positions: Sequence[Position],
        pnl: Sequence[tuple[str, str, date, float, float]],
    ) -> None:
        die()


def main(db: str, broker_state: str, mode: str, intents_json: str) -> None:
    prices = StaticPrices(PRICES)
    engine = create_db_engine(f"sqlite:///{db}")
    upgrade_database(engine)
    crash_after = int(mode.split(":")[1]) if mode.startswith("submit:") else 0
    repo = CrashingRepository(engine) if mode == "record" else SqlExecutionRepository(engine)
    eng = ExecutionEngine(
        repo=repo,
        broker=CrashingPaperBroker(
            prices, fee=0.001, state_path=Path(broker_state), crash_after=crash_after
        ),
        risk=RiskManager(RiskConfig()),
        prices=prices,
        publisher=MemoryPublisher(),
    )
    eng.start()
    queue = InMemoryQueue("orders.fifo")
    for raw in json.loads(intents_json):
        send_intent(queue, OrderIntent.model_validate(raw))
    eng.poll(queue)  # one receive: the whole batch of 10
    raise SystemExit("the batch completed: the crash point was never reached")


if __name__ == "__main__":
    main(*sys.argv[1:5])
