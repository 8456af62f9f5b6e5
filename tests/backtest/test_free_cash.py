"""Entries never spend more than the free cash, and round-off residue is not free cash
(fills.py "Sizing"): the portfolio's dust entries and the event engine's repeated
all-in orders."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from engine_helpers import FixedSignals, Scripted, frame

from algotrendy.backtest import run_backtest
from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.fills import (
    CASH_DUST,
    SIZING_FRACTION,
    fill_price,
    order_units,
    spendable,
)
from algotrendy.backtest.portfolio import Sleeve, run_portfolio

NAN = math.nan


def test_spendable_drops_round_off_residue_only() -> None:
    equity = 10_000.0
    assert spendable(1.5e-12, equity) == 0.0  # what spending "all" the cash leaves
    assert spendable(-1e-12, equity) == 0.0
    assert spendable(CASH_DUST * equity, equity) == 0.0
    assert spendable(0.01, equity) == 0.01  # a cent is money
    assert spendable(2.0 * CASH_DUST * equity, equity) == 2.0 * CASH_DUST * equity


def test_portfolio_skips_an_entry_on_residue_and_takes_the_later_real_one(
    goog: pd.DataFrame,
) -> None:
    # A (weight 1) spends all the cash at bar 1 and exits at bar 5; B's entry at bar 2
    # finds only round-off (~1.5e-12) and must be skipped, so that B's signal on bar 6
    # enters for real at bar 7's open on the then-free cash.
    g = goog.iloc[:12]
    sa = [1, NAN, NAN, NAN, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN]
    sb = [NAN, 1, NAN, NAN, NAN, NAN, 1, NAN, NAN, NAN, NAN, NAN]
    cfg = BacktestConfig(sizing="fraction", size=1.0, fee=0.001, slippage=0.0005)
    res = run_portfolio(
        [
            Sleeve("A", g, FixedSignals(sa), weight=1.0, name="A"),
            Sleeve("B", g, FixedSignals(sb), weight=1.0, name="B"),
        ],
        config=cfg,
    )
    adj = res.adjustments
    assert adj[["sleeve", "bar", "filled_units", "action"]].values.tolist() == [
        ["B", 2, 0.0, "skipped"]
    ]
    assert abs(adj["free_cash"].iloc[0]) < 1e-9  # residue, not money
    b = res.trades[res.trades["sleeve"] == "B"]
    assert b[["entry_bar", "exit_bar"]].values.tolist() == [[7, 11]]
    cash_before = float(res.equity["cash"].iloc[6])  # all cash: A is flat, B not in yet
    px = fill_price(float(g["open"].iloc[7]), 1.0, 0.0005)
    expected = order_units(SIZING_FRACTION, 1.0, cash_before, px, 0.001, 0.0)
    assert b["size"].iloc[0] == pytest.approx(expected, rel=1e-12)
    assert expected > 90.0
    assert res.sleeve_metrics["B"]["num_trades"] == 1.0
    assert (res.positions["B"].iloc[:7] == 0.0).all()


def test_portfolio_random_sleeves_never_hold_dust(goog: pd.DataFrame) -> None:
    # Random long signals on three all-in sleeves: every entry that competes with an
    # all-in one finds only residue. No trade may be a sliver of the account.
    rng = np.random.default_rng(7)
    g = goog.iloc[:300]
    sleeves = []
    for k in range(3):
        sig = rng.choice([1.0, 0.0, NAN, NAN, NAN], size=len(g))
        sleeves.append(Sleeve("GOOG", g, FixedSignals(sig), weight=1.0, name=f"S{k}"))
    cfg = BacktestConfig(sizing="fraction", size=1.0, fee=0.001, slippage=0.0005)
    res = run_portfolio(sleeves, config=cfg)
    assert len(res.trades) > 10
    notional = res.trades["size"] * res.trades["entry_price"]
    assert (notional > 1e-6 * cfg.cash).all(), res.trades[notional <= 1e-6 * cfg.cash]
    assert (res.adjustments["action"] == "skipped").any()


def _backtesting_py_final(g: pd.DataFrame, bars: tuple[int, ...], side: str) -> tuple[float, float]:
    from backtesting import Backtest, Strategy

    class Repeat(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            pass

        def next(self) -> None:
            if len(self.data) - 1 in bars:
                getattr(self, side)()

    df = g.rename(columns=str.capitalize).tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cancelled order's warning, and open trades
        stats = Backtest(df, Repeat, cash=10_000, commission=0.002).run()
    return float(stats._strategy.position.size), float(stats["Equity Final [$]"])


def test_repeated_all_in_buy_is_cancelled_like_backtesting_py(goog: pd.DataFrame) -> None:
    # The first unsized buy() goes all-in (90 units); the second finds only the ~12 of
    # cash left and is cancelled, as backtesting.py's broker cancels it. It used to be
    # sized on equity: 179 units on cash of -9,347 (2x leverage).
    g = goog.iloc[:10]
    buy = [lambda c: c.buy()]
    res = run_backtest(g, Scripted({1: buy, 3: buy}), None, cash=10_000, fee=0.002)
    bt_pos, bt_final = _backtesting_py_final(g, (1, 3), "buy")
    pos = res.equity["position"].to_numpy()
    assert bt_pos == 90.0
    assert np.all(pos[2:] == bt_pos)  # the second order changed nothing
    assert len(res.trades) == 1
    assert res.metrics["final_equity"] == pytest.approx(bt_final, rel=1e-12)


@pytest.mark.parametrize(
    ("second_open", "added"),
    [
        # Price unchanged: E = 1988.02 - 990 = 998.02, but the short's proceeds and as
        # much again as collateral are not free: F = 1988.02 - 2 * 990 = 8.02 < one unit.
        (10.0, 0.0),
        # Price fell to 9 (the short gained): F = 1988.02 - 2 * 99 * 9 = 206.02, which
        # covers floor(206.02 / (9 * 1.002)) = 22 more units.
        (9.0, 22.0),
    ],
)
def test_repeated_all_in_sell_adds_only_what_free_cash_covers(
    second_open: float, added: float
) -> None:
    # First sell() at 10 with fee 0.002: floor(1000 / 10.02) = 99 units short, cash
    # 1000 + 990 - 1.98 = 1988.02.
    p = second_open
    rows = [(10.0, 10.0, 10.0, 10.0)] * 3 + [(p, p, p, p)] * 3
    sell = [lambda c: c.sell()]
    res = run_backtest(frame(rows), Scripted({0: sell, 2: sell}), None, cash=1000.0, fee=0.002)
    assert res.equity["position"].iloc[-1] == -(99.0 + added)


def test_fraction_orders_pyramid_only_into_free_cash() -> None:
    # 0.6 of equity, twice: the second would need 0.6 E but only ~0.4 E is free, so it
    # is reduced to what that covers and the cash never goes below zero.
    rows = [(10.0, 10.0, 10.0, 10.0)] * 2 + [(11.0, 11.0, 11.0, 11.0)] * 4
    buy = [lambda c: c.buy()]
    res = run_backtest(
        frame(rows), Scripted({0: buy, 2: buy}), None, cash=1000.0, sizing="fraction", size=0.6
    )
    sizes = res.trades["size"].tolist()
    assert sizes == pytest.approx([60.0, 400.0 / 11.0], rel=1e-12)
    cash = res.equity["equity"] - res.equity["position"] * frame(rows)["close"].to_numpy()
    assert cash.min() >= -1e-9
