"""Reducing orders skip the size limits only while they cannot go through zero, counting
the working orders on their side (audit defect 1: a batch of reduce-only sells, stacked
resting sells or one oversized sell flipped the position past every limit)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from execution_helpers import FLAT, engine_on, intent, manager
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderStatus
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import StaticPrices

LONG_10 = replace(FLAT, position=10.0)


def engine(db: Engine, prices: StaticPrices, **limits: object) -> ExecutionEngine:
    return engine_on(db, PaperBroker(prices, fee=0.0), prices, manager(**limits))


# -- the risk manager alone --------------------------------------------------------------
def test_reduce_only_counts_working_orders_on_its_side() -> None:
    m = manager(max_position=10)
    assert m.check(intent("sell", 10, reduce_only=True), LONG_10).approved
    d = m.check(intent("sell", 10, reduce_only=True), replace(LONG_10, open_sell_quantity=10))
    assert not d.approved
    assert d.reason == (
        "reduce-only order would not reduce the position: working sell orders already "
        "close all of 10"
    )


def test_reduce_only_that_would_flip_is_refused() -> None:
    d = manager().check(intent("sell", 6, reduce_only=True), replace(LONG_10, open_sell_quantity=5))
    assert not d.approved
    assert d.reason == (
        "reduce-only order of 6 would take the position past zero: only 5 of 10 is left to "
        "close after working sell orders"
    )


def test_flipping_order_is_checked_like_an_opening_one() -> None:
    # Over the (lowered) position limit, selling 19 from +10 would open a -9 short.
    d = manager(max_position=5).check(intent("sell", 19), LONG_10)
    assert not d.approved
    assert d.reason == "position limit: BTC/USDT would reach -9 (limit 5, incl. working orders)"
    # Closing exactly to flat still passes although the position is over the limit.
    assert manager(max_position=5, max_open_orders=0).check(intent("sell", 10), LONG_10).approved


def test_stacked_sells_count_against_open_orders_once_they_flip() -> None:
    m = manager(max_open_orders=2)
    d = m.check(intent("sell", 5), replace(LONG_10, open_sell_quantity=10, open_orders=2))
    assert not d.approved
    assert d.reason == "max open orders reached (2/2)"


def test_daily_loss_limit_blocks_the_flip_but_not_the_close() -> None:
    m = manager(daily_loss_limit=50)
    hurt = replace(LONG_10, daily_pnl=-100)
    d = m.check(intent("sell", 19), hurt)
    assert not d.approved
    assert d.reason == "daily loss limit reached (-100.00 <= -50)"
    assert m.check(intent("sell", 10), hurt).approved
    short = replace(hurt, position=-10, open_buy_quantity=4)
    assert m.check(intent("buy", 6), short).approved
    assert not m.check(intent("buy", 7), short).approved


def test_closing_float_sum_to_flat_is_reducing() -> None:
    pos = 0.1 + 0.2  # 0.30000000000000004
    snap = replace(LONG_10, position=pos, daily_pnl=-1000)
    assert manager(daily_loss_limit=1).check(intent("sell", 0.3, reduce_only=True), snap).approved


@given(
    st.floats(-20, 20),
    st.lists(
        st.tuples(st.sampled_from(["buy", "sell"]), st.floats(0.01, 25), st.booleans()),
        max_size=40,
    ),
    st.floats(0.5, 15),
)
def test_reserved_exposure_never_passes_limit_or_zero(
    position: float, orders: list[tuple[str, float, bool]], limit: float
) -> None:
    """From any start (even over the limit), approving and reserving orders one by one:
    the worst case on each side stays within the limit, or — if the start was already past
    it — between the start and zero; reduce-only orders never take it past zero."""
    m = manager(max_position=limit)
    snap = replace(LONG_10, position=position)
    for side, qty, reduce_only in orders:
        if not m.check(intent(side, qty, reduce_only=reduce_only), snap).approved:
            continue
        if side == "buy":
            snap = replace(snap, open_buy_quantity=snap.open_buy_quantity + qty)
            if reduce_only:
                assert snap.position + snap.open_buy_quantity <= 1e-9
        else:
            snap = replace(snap, open_sell_quantity=snap.open_sell_quantity + qty)
            if reduce_only:
                assert snap.position - snap.open_sell_quantity >= -1e-9
        assert snap.position + snap.open_buy_quantity <= max(limit, position) + 1e-9
        assert snap.position - snap.open_sell_quantity >= min(-limit, position) - 1e-9


# -- the audit's scenarios, end to end on both databases ---------------------------------
def test_batch_of_reduce_only_sells_cannot_flip(db_engine: Engine, prices: StaticPrices) -> None:
    eng = engine(db_engine, prices, max_position=10)
    eng.start()
    assert eng.process(intent("buy", 10, n=1)).status is OrderStatus.FILLED
    closes = [intent("sell", 10, n=10 + i, reduce_only=True) for i in range(3)]
    items = eng._process_batch(closes, time.perf_counter())
    statuses = [item.result.status for item in items if item.result is not None]
    assert statuses == [OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.REJECTED]
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(0.0)


def test_resting_sells_cannot_stack_past_the_limits(
    db_engine: Engine, prices: StaticPrices
) -> None:
    eng = engine(db_engine, prices, max_position=10, max_open_orders=2)
    eng.start()
    eng.process(intent("buy", 10, n=1))
    results = [
        eng.process(intent("sell", 19, n=10 + i, order_type="limit", limit_price=150.0))
        for i in range(5)
    ]
    assert [r.status for r in results] == [OrderStatus.SUBMITTED] + [OrderStatus.REJECTED] * 4
    assert results[1].reason == (
        "risk: position limit: BTC/USDT would reach -28 (limit 10, incl. working orders)"
    )
    prices.set("BTC/USDT", 150.0)
    for changed in eng.broker.on_price("BTC/USDT", 150.0):  # type: ignore[attr-defined]
        eng.on_broker_update(changed)
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(-9.0)


def test_flip_after_daily_loss_limit_is_rejected(db_engine: Engine, prices: StaticPrices) -> None:
    eng = engine(db_engine, prices, daily_loss_limit=50)
    eng.start()
    eng.process(intent("buy", 10, n=1))
    prices.set("BTC/USDT", 90.0)  # unrealised -100: the limit is reached
    flip = eng.process(intent("sell", 19, n=2))
    assert flip.status is OrderStatus.REJECTED
    assert flip.reason == "risk: daily loss limit reached (-100.00 <= -50)"
    assert eng.process(intent("sell", 10, n=3)).status is OrderStatus.FILLED
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(0.0)
