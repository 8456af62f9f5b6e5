"""The engine books a base-asset fee off the position and values it in quote (Binance spot)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import BrokerOrder, BrokerPosition
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import StaticPrices

EngineFactory = Callable[..., ExecutionEngine]


class BaseFeeVenue:
    """Paper fills, but the fee is 0.1% of the quantity in the base asset, as Binance
    charges a spot buy; the venue's balance is what is left after the fee."""

    name = "binance"

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner

    @staticmethod
    def _base_fees(order: BrokerOrder | None) -> BrokerOrder | None:
        if order is None:
            return None
        base = order.symbol.split("/")[0]
        fills = tuple(replace(f, fee=f.quantity * 0.001, fee_currency=base) for f in order.fills)
        return replace(order, fills=fills)

    def submit(self, it: OrderIntent) -> BrokerOrder:
        order = self._base_fees(self.inner.submit(it))
        assert order is not None
        return order

    def get_order(self, coid: str) -> BrokerOrder | None:
        return self._base_fees(self.inner.get_order(coid))

    def cancel(self, coid: str) -> BrokerOrder:
        return self.inner.cancel(coid)

    def open_orders(self) -> list[BrokerOrder]:
        return self.inner.open_orders()

    def positions(self) -> list[BrokerPosition]:
        return [BrokerPosition(p.symbol, p.quantity * 0.999) for p in self.inner.positions()]


def test_base_asset_fee_books_position_and_daily_pnl(
    make_engine: EngineFactory, prices: StaticPrices, tmp_path: Path
) -> None:
    broker = BaseFeeVenue(PaperBroker(prices, fee=0.0))
    eng = make_engine(broker=broker, db=tmp_path / "e.db")
    eng.start()
    it = OrderIntent(intent_id="fee-ccy-1", symbol="BTC/USDT", side="buy", quantity=1.0,
                     strategy="s")  # fmt: skip
    assert eng.process(it).status is OrderStatus.FILLED
    pos = eng.book.get("default", "s", "BTC/USDT")
    assert pos.quantity == pytest.approx(0.999)
    assert pos.fees == pytest.approx(0.001 * 100.0)  # 0.001 BTC at the fill price 100
    day = datetime.now(UTC).date()
    assert eng.repo.daily_pnl("default", day) == pytest.approx(-0.1)  # the loss limit's view
    assert eng.reconcile() == []  # no drift against the venue's 0.999
    restarted = make_engine(broker=broker, db=tmp_path / "e.db")
    assert restarted.start() == []
    assert restarted.book.get("default", "s", "BTC/USDT").quantity == pytest.approx(0.999)
