"""Notional limits are priced where the order can fill at worst, not at its limit or stop
(audit defect 2: a sell limit or a buy stop at 0.01 passed a 1000 notional limit and then
filled 1000 units at the market price of 100)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from execution_helpers import FLAT, engine_on, intent, manager
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.ports import StaticPrices


@pytest.mark.parametrize(
    ("order", "notional"),
    [
        (intent("sell", 10, order_type="limit", limit_price=0.01), 1000.0),  # fills at market
        (intent("sell", 10, order_type="limit", limit_price=150), 1500.0),  # rests, fills at 150
        (intent("buy", 10, order_type="stop", stop_price=0.01), 1000.0),  # triggers at once
        (intent("buy", 10, order_type="stop", stop_price=120), 1200.0),  # fills from 120 up
        (intent("sell", 10, order_type="stop", stop_price=80), 1000.0),
        (intent("sell", 10, order_type="stop_limit", stop_price=80, limit_price=1), 1000.0),
        (intent("buy", 10, order_type="limit", limit_price=70), 700.0),  # never above 70
        (intent("buy", 10, order_type="stop_limit", stop_price=120, limit_price=125), 1250.0),
    ],
)
def test_order_notional_is_priced_at_the_worst_fill(order: OrderIntent, notional: float) -> None:
    m = manager(max_order_notional=notional - 0.01)
    d = m.check(order, FLAT)
    assert not d.approved
    assert d.reason == f"order notional {notional:.2f} exceeds limit {notional - 0.01:g}"
    assert manager(max_order_notional=notional).check(order, FLAT).approved


def test_position_notional_is_marked_at_the_market_at_least() -> None:
    # +8 at 100 is 800 already; a buy limit at 10 must not value the position at 10.
    d = manager(max_notional=1000).check(
        intent("buy", 3, order_type="limit", limit_price=10), replace(FLAT, position=8)
    )
    assert not d.approved
    assert d.reason == "notional limit: BTC/USDT would reach 1100.00 (limit 1000)"


def test_no_market_price_refuses_what_cannot_be_bounded() -> None:
    blind = replace(FLAT, price=None)
    m = manager(max_order_notional=1000)
    for order in (
        intent("sell", 1, order_type="limit", limit_price=50),
        intent("buy", 1, order_type="stop", stop_price=50),
        intent("buy", 1),
    ):
        assert m.check(order, blind).reason == "no reference price for BTC/USDT: cannot size risk"
    # A buy limit bounds its own fill price: 5 x 70 = 350.
    assert m.check(intent("buy", 5, order_type="limit", limit_price=70), blind).approved
    # Valuing a position needs the market, whatever the order.
    d = manager(max_notional=1000).check(intent("buy", 1, order_type="limit", limit_price=7), blind)
    assert d.reason == "no reference price for BTC/USDT: cannot size risk"


def test_far_limit_and_stop_cannot_slip_past_notional_limits(
    db_engine: Engine, prices: StaticPrices
) -> None:
    risk = manager(max_order_notional=1000, max_notional=1000)
    eng = engine_on(db_engine, PaperBroker(prices, fee=0.0), prices, risk)
    eng.start()
    sell = eng.process(intent("sell", 1000, n=1, order_type="limit", limit_price=0.01))
    assert sell.status is OrderStatus.REJECTED
    assert sell.reason == "risk: order notional 100000.00 exceeds limit 1000"
    buy = eng.process(intent("buy", 2000, n=2, order_type="stop", stop_price=0.01))
    assert buy.status is OrderStatus.REJECTED
    assert buy.reason == "risk: order notional 200000.00 exceeds limit 1000"
    assert (
        eng.process(intent("sell", 10, n=3, order_type="limit", limit_price=0.01)).filled_quantity
        == 10
    )
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(-10.0)
