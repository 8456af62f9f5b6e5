"""Revision 0003, on SQLite and PostgreSQL: fills are unique per order (not per broker), and
amounts come back from the database as the very floats that were written."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from algotrendy.domain.orders import Fill, Order, OrderIntent, OrderStatus, Side
from algotrendy.execution.positions import Position
from algotrendy.storage.relational.repositories import SqlExecutionRepository

WHEN = datetime(2025, 3, 4, 5, 6, tzinfo=UTC)


def _order(n: int, symbol: str) -> Order:
    it = OrderIntent(intent_id=f"key-{n:05d}", symbol=symbol, side=Side.BUY, quantity=1.0)
    return Order.from_intent(it, broker="binance")


def _fill(order: Order, fill_id: str, qty: float, price: float, fee: float = 0.0) -> Fill:
    return Fill(broker="binance", broker_fill_id=fill_id, client_order_id=order.client_order_id,
                account="default", strategy="s", symbol=order.symbol, side=Side.BUY,
                quantity=qty, price=price, fee=fee, fee_currency="USDT", time=WHEN)  # fmt: skip


def test_same_trade_id_in_two_orders_is_two_fills(db_engine: Engine) -> None:
    """Binance numbers trades per symbol: an ETH trade may carry an earlier BTC trade's id."""
    repo = SqlExecutionRepository(db_engine)
    btc, eth = _order(1, "BTC/USDT"), _order(2, "ETH/USDT")
    repo.create_orders([btc, eth])
    btc.status = eth.status = OrderStatus.FILLED
    repo.record_executions([btc], [_fill(btc, "1001", 1.0, 100.0)], [], [])
    assert repo.known_fill_ids(eth.client_order_id, ["1001"]) == set()
    repo.record_executions([eth], [_fill(eth, "1001", 5.0, 10.0)], [], [])
    assert [(f.symbol, f.quantity) for f in repo.all_fills()] == [
        ("BTC/USDT", 1.0), ("ETH/USDT", 5.0)]  # fmt: skip
    assert repo.known_fill_ids(btc.client_order_id, ["1001", "1002"]) == {"1001"}
    assert repo.known_fill_ids(eth.client_order_id, ["1001"]) == {"1001"}
    assert repo.record_fill(_fill(eth, "1001", 5.0, 10.0)) is False  # still once per order


# Values a fixed NUMERIC(30, 12) rounded: sub-1e-12 digits of low prices, and the 16th-17th
# significant digits that PostgreSQL's float8 -> numeric cast drops.
EXACT = [1.2345678e-9, 1.2345678901234567e-15, 0.1 + 0.2, 1 / 3, 123456789.12345679, 7e-13]


@pytest.mark.parametrize("value", EXACT)
def test_amounts_round_trip_exactly(db_engine: Engine, value: float) -> None:
    repo = SqlExecutionRepository(db_engine)
    order = _order(1, "BABYDOGE/USDT")
    repo.create_orders([order])
    order.status, order.filled_quantity, order.avg_fill_price, order.fees = (
        OrderStatus.FILLED, 1.0, value, value)  # fmt: skip
    pos = Position("default", "s", "BABYDOGE/USDT", 4e9, value, value, value)
    repo.record_executions(
        [order], [_fill(order, "T1", 4e9, value, fee=value)], [pos],
        [("default", "s", date(2025, 3, 4), value, 0.0)],
    )  # fmt: skip
    [fill] = repo.all_fills()
    assert (fill.price, fill.fee) == (value, value)
    stored = repo.get_order(order.client_order_id)
    assert stored is not None
    assert (stored.avg_fill_price, stored.fees) == (value, value)
    [loaded] = repo.load_positions()
    assert loaded == pos
    assert repo.daily_pnl("default", date(2025, 3, 4)) == value


def test_realized_pnl_of_a_low_priced_asset_survives_a_restart(db_engine: Engine) -> None:
    """The audit's case: 4e9 units bought at 1.2345678e-9 and sold at 1.5432109e-9; the
    positions rebuilt from the stored fills must realise what the live book did."""
    repo = SqlExecutionRepository(db_engine)
    buy, sell = _order(1, "BABYDOGE/USDT"), _order(2, "BABYDOGE/USDT")
    repo.create_orders([buy, sell])
    live = Position("default", "s", "BABYDOGE/USDT")
    fills = [_fill(buy, "T1", 4e9, 1.2345678e-9), _fill(sell, "T2", 4e9, 1.5432109e-9)]
    fills[1] = fills[1].model_copy(update={"side": Side.SELL})
    for order, f in zip((buy, sell), fills, strict=True):
        live.apply_fill(f.side, f.quantity, f.price)
        order.status = OrderStatus.FILLED
        repo.record_executions([order], [f], [live], [])
    rebuilt = Position("default", "s", "BABYDOGE/USDT")
    for f in repo.all_fills():
        rebuilt.apply_fill(f.side, f.quantity, f.price)
    assert rebuilt.realized_pnl == live.realized_pnl
    assert repo.load_positions()[0].realized_pnl == live.realized_pnl
