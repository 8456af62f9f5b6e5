"""A submit whose outcome is unknown must never end the order terminal: the venue may hold
it. The Binance case: the submit times out (the order was placed, the reply lost), the
retry is refused as a duplicate, and the venue's lookup by client order id lags behind.
On SQLite and PostgreSQL (`db_engine`)."""

from __future__ import annotations

from typing import Any, ClassVar

import ccxt
import pytest
from execution_helpers import engine_on, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus, Side
from algotrendy.execution.brokers.ccxt_broker import CcxtBroker
from algotrendy.execution.brokers.ratelimit import RateLimiter
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import StaticPrices


class LaggingBinance:
    """Stands in for `ccxt.binance`: places the order but loses the reply, refuses the
    retry as Binance does (-2010), and answers lookups with -2013 until `visible`."""

    has: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.creates = 0
        self.visible = False

    def load_markets(self) -> dict[str, Any]:
        return {}

    def market(self, symbol: str) -> dict[str, Any]:
        return {"symbol": symbol, "type": "spot", "contract": False, "base": "BTC"}

    def create_order(self, symbol: str, type_: str, side: str, amount: float,
                     price: float | None, params: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        self.creates += 1
        coid = params["newClientOrderId"]
        if coid in self.orders:
            raise ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}')
        fee = {"cost": 0.1, "currency": "USDT"}
        trade = {"id": "t1", "order": "123", "amount": amount, "price": 100.0,
                 "timestamp": 1_700_000_000_000, "fee": fee}  # fmt: skip
        self.orders[coid] = {"id": "123", "symbol": symbol, "status": "closed", "amount": amount,
                             "filled": amount, "average": 100.0, "clientOrderId": coid,
                             "trades": [trade]}  # fmt: skip
        raise ccxt.RequestTimeout("binance POST /api/v3/order timed out")

    def fetch_order(self, order_id: str, symbol: str, params: dict[str, Any]) -> dict[str, Any]:
        coid = params["origClientOrderId"]
        if not self.visible or coid not in self.orders:
            raise ccxt.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}')
        return self.orders[coid]

    def fetch_balance(self) -> dict[str, Any]:
        return {"total": {"BTC": sum(o["filled"] for o in self.orders.values())}}


@pytest.fixture
def venue() -> LaggingBinance:
    return LaggingBinance()


@pytest.fixture
def engine(db_engine: Engine, venue: LaggingBinance) -> ExecutionEngine:
    broker = CcxtBroker("binance", exchange=venue, limiter=RateLimiter({}),  # type: ignore[arg-type]
                        symbols=["BTC/USDT"])  # fmt: skip
    eng = engine_on(db_engine, broker, StaticPrices({"BTC/USDT": 100.0}))
    eng.start()
    return eng


BUY = OrderIntent(intent_id="dup-lag-0001", symbol="BTC/USDT", side=Side.BUY, quantity=1)


def test_duplicate_not_yet_visible_leaves_the_order_unknown(
    engine: ExecutionEngine, venue: LaggingBinance
) -> None:
    order = engine.process(BUY)
    assert order.status is OrderStatus.UNKNOWN, order.reason
    assert venue.creates == 3  # one placed, then refused as duplicates: never twice
    assert BUY.client_order_id in engine._open  # still reserving, still looked up
    assert stored_order(engine, BUY.client_order_id).status is OrderStatus.UNKNOWN


def test_reconciliation_books_the_order_once_the_venue_shows_it(
    engine: ExecutionEngine, venue: LaggingBinance
) -> None:
    engine.process(BUY)
    notes = engine.reconcile()  # still lagging: nothing resolved, no position "correction"
    assert any("broker lookup failed" in n for n in notes)
    assert any("not corrected (1 order(s) unresolved" in n for n in notes)
    assert engine.repo.load_positions(strategy="_reconciliation") == []

    venue.visible = True
    notes = engine.reconcile()
    assert notes == [f"{BUY.client_order_id}: unknown -> filled (broker)"]  # and no drift
    order = engine.repo.get_order(BUY.client_order_id)
    assert order is not None
    assert order.status is OrderStatus.FILLED
    assert [f.broker_fill_id for f in engine.repo.fills_for(BUY.client_order_id)] == ["t1"]
    assert engine.book.account_quantity("default", "BTC/USDT") == pytest.approx(1)
    assert engine._open == {}
