from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from execution_helpers import engine_on

from algotrendy.execution.brokers.base import Broker
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import StaticPrices
from algotrendy.execution.risk import RiskConfig, RiskLimits, RiskManager
from algotrendy.storage.relational import create_db_engine, upgrade_database

EngineFactory = Callable[..., ExecutionEngine]


@pytest.fixture
def prices() -> StaticPrices:
    return StaticPrices({"BTC/USDT": 100.0, "ETH/USDT": 10.0})


@pytest.fixture
def make_engine(tmp_path: Path, prices: StaticPrices) -> EngineFactory:
    def build(
        *,
        broker: Broker | None = None,
        limits: RiskLimits | None = None,
        db: Path | None = None,
        broker_state: Path | None = None,
    ) -> ExecutionEngine:
        engine = create_db_engine(f"sqlite:///{db or tmp_path / 'engine.db'}")
        upgrade_database(engine)
        broker = broker or PaperBroker(prices, fee=0.001, state_path=broker_state)
        risk = RiskManager(RiskConfig(account=limits or RiskLimits()))
        return engine_on(engine, broker, prices, risk)

    return build
