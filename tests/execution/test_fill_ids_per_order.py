"""The engine de-duplicates fills per order: a venue that numbers trades per symbol (Binance)
gives an ETH fill the id of an earlier BTC fill, and that fill must still be booked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import BrokerOrder, BrokerPosition
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import StaticPrices

EngineFactory = Callable[..., ExecutionEngine]


class PerSymbolTradeIds:
    """A paper venue whose first trade in every symbol has id 1001, as on Binance."""

    name = "binance"

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner

    @staticmethod
    def _renumber(order: BrokerOrder | None) -> BrokerOrder | None:
        if order is None:
            return None
        fills = tuple(replace(f, fill_id=str(1001 + i)) for i, f in enumerate(order.fills))
        return replace(order, fills=fills)

    def submit(self, it: OrderIntent) -> BrokerOrder:
        order = self._renumber(self.inner.submit(it))
        assert order is not None
        return order

    def get_order(self, coid: str) -> BrokerOrder | None:
        return self._renumber(self.inner.get_order(coid))

    def cancel(self, coid: str) -> BrokerOrder:
        return self.inner.cancel(coid)

    def open_orders(self) -> list[BrokerOrder]:
        return self.inner.open_orders()

    def positions(self) -> list[BrokerPosition]:
        return self.inner.positions()


def _intent(n: int, symbol: str, qty: float) -> OrderIntent:
    return OrderIntent(intent_id=f"per-symbol-{n}", symbol=symbol, side="buy", quantity=qty,
                       strategy="s")  # fmt: skip


def test_same_trade_id_in_another_symbol_is_booked(
    make_engine: EngineFactory, prices: StaticPrices, tmp_path: Path
) -> None:
    broker = PerSymbolTradeIds(PaperBroker(prices, fee=0.0))
    eng = make_engine(broker=broker, db=tmp_path / "e.db")
    eng.start()
    btc = eng.process(_intent(1, "BTC/USDT", 1.0))
    eth = eng.process(_intent(2, "ETH/USDT", 5.0))
    assert (btc.status, eth.status) == (OrderStatus.FILLED, OrderStatus.FILLED)
    fills = eng.repo.all_fills()
    assert [(f.symbol, f.broker_fill_id, f.quantity) for f in fills] == [
        ("BTC/USDT", "1001", 1.0), ("ETH/USDT", "1001", 5.0)]  # fmt: skip
    assert eng.book.get("default", "s", "ETH/USDT").avg_price == pytest.approx(10.0)

    restarted = make_engine(broker=broker, db=tmp_path / "e.db")
    assert restarted.start() == []  # no drift: every fill is in the strategy's ledger
    assert restarted.book.get("default", "s", "ETH/USDT").quantity == pytest.approx(5.0)
    assert eng.process(_intent(2, "ETH/USDT", 5.0)).status is OrderStatus.FILLED  # redelivery
    assert len(eng.repo.all_fills()) == 2
