"""Portfolio backtests: parity with the single-asset engine, hand-checked cash sharing,
attribution and roll-ups."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.portfolio import Sleeve, run_portfolio
from algotrendy.backtest.result import TRADE_COLUMNS
from algotrendy.backtest.runner import run_backtest
from algotrendy.domain import Bars
from algotrendy.errors import DataError, ParameterError
from algotrendy.strategies import Strategy, StrategyParams
from algotrendy.strategies.base import FloatArray

NAN = float("nan")


class _NoParams(StrategyParams):
    pass


class Fixed(Strategy[_NoParams]):
    """Plays back the signals it was built with."""

    name = "test_fixed"
    Params = _NoParams

    def __init__(self, signals: list[float]) -> None:
        self._signals = np.asarray(signals, dtype=np.float64)

    def signals(self, bars: Bars, params: _NoParams) -> FloatArray:
        return self._signals


def _frame(opens: list[float], closes: list[float], days: list[int] | None = None) -> pd.DataFrame:
    o, c = np.asarray(opens), np.asarray(closes)
    day = days if days is not None else list(range(len(o)))
    idx = pd.DatetimeIndex(
        [pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=d) for d in day], name="time"
    )
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c) + 1,
            "low": np.minimum(o, c) - 1,
            "close": c,
            "volume": 1.0,
        },
        index=idx,
    )


CFG = BacktestConfig(cash=1000.0, sizing="fraction", size=1.0)


# ------------------------------------------------------------------ single-asset parity


@pytest.mark.parametrize(
    "settings",
    [
        {"sizing": "fraction", "size": 1.0, "fee": 0.001, "slippage": 0.0005, "fixed_fee": 1.0},
        {"sizing": "fraction", "size": 0.5, "fee": 0.002},
        {"sizing": "fraction", "size": 1.0, "fee": 0.001, "trade_on_close": True},
        {"sizing": "whole", "fee": 0.001, "fixed_fee": 2.0},
    ],
)
@pytest.mark.parametrize("strategy", ["sma_cross", "rsi_reversion"])
def test_one_sleeve_at_weight_one_is_run_backtest(
    goog: pd.DataFrame, settings: dict[str, Any], strategy: str
) -> None:
    cfg = BacktestConfig(cash=10_000.0, **settings)
    params = {"fast": 10, "slow": 30} if strategy == "sma_cross" else {"allow_short": True}
    single = run_backtest(goog, strategy, params, **cfg.model_dump())
    port = run_portfolio([Sleeve("GOOG", goog, strategy, params, 1.0)], config=cfg)
    assert len(single.trades) > 10
    trades = port.trades.drop(columns=["sleeve", "symbol", "strategy"])
    pd.testing.assert_frame_equal(trades, single.trades)
    np.testing.assert_array_equal(port.equity["equity"].to_numpy(), single.equity["equity"])
    np.testing.assert_array_equal(port.positions.iloc[:, 0].to_numpy(), single.equity["position"])
    assert list(port.equity.index) == list(single.equity.index)
    assert port.metrics == pytest.approx(single.metrics, nan_ok=True, rel=0, abs=0)
    assert port.adjustments.empty


# ------------------------------------------------------------------------ hand-checked


def test_two_sleeves_competing_for_cash_by_hand() -> None:
    """Cash 1000, weights 0.6 + 0.6, both buy at t1's open.

    A first: E = 1000, 0.6 * 1000 / 10 = 60 units, cash 400. B: E = 400 + 60 * 10 = 1000,
    wants 0.6 * 1000 / 20 = 30 units (600) but only 400 is free: 20 units, cash 0.
    Equity t1 = 60 * 10.5 + 20 * 20.5 = 1040; t2 = 60 * 11.5 + 20 * 20 = 1090;
    t3 = 60 * 12 + 20 * 19 = 1100.
    """
    a = _frame([10, 10, 11, 12], [10, 10.5, 11.5, 12])
    b = _frame([20, 20, 21, 19], [20, 20.5, 20, 19])
    res = run_portfolio(
        [
            Sleeve("A", a, Fixed([1, NAN, NAN, NAN]), weight=0.6),
            Sleeve("B", b, Fixed([1, NAN, NAN, NAN]), weight=0.6),
        ],
        config=CFG,
    )
    np.testing.assert_allclose(res.equity["equity"], [1000, 1040, 1090, 1100], rtol=1e-12)
    np.testing.assert_allclose(res.equity["cash"], [1000, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(res.positions["A/test_fixed"], [0, 60, 60, 60], rtol=1e-12)
    np.testing.assert_allclose(res.positions["B/test_fixed"], [0, 20, 20, 20], rtol=1e-12)
    adj = res.adjustments
    assert len(adj) == 1
    row = adj.iloc[0]
    assert (row["sleeve"], row["action"], row["side"], row["bar"]) == (
        "B/test_fixed",
        "reduced",
        "long",
        1,
    )
    assert row["requested_units"] == pytest.approx(30)
    assert row["filled_units"] == pytest.approx(20)
    assert row["equity"] == pytest.approx(1000)
    assert row["free_cash"] == pytest.approx(400)
    assert row["time"] == a.index[1]
    # Open at the end: valued at the last close, as the single-asset engine reports it.
    np.testing.assert_allclose(res.trades["pnl"], [60 * 2, 20 * -1], rtol=1e-12)
    # Contributions: A moved -600 cash and holds 60 x close; B -400 and 20 x close.
    np.testing.assert_allclose(res.contributions["A/test_fixed"], [0, 30, 90, 120], atol=1e-9)
    np.testing.assert_allclose(res.contributions["B/test_fixed"], [0, 10, 0, -20], atol=1e-9)
    # Sleeve metrics on allocation 600 each.
    assert res.sleeves.loc["A/test_fixed", "total_return"] == pytest.approx(120 / 600)
    assert res.sleeves.loc["B/test_fixed", "total_return"] == pytest.approx(-20 / 600)
    assert res.metrics["total_return"] == pytest.approx(0.1)


def test_skipped_entry_and_exit_before_entry_in_one_instant() -> None:
    """A (weight 1) buys 100 @ 10 at t1 and leaves nothing: B's entry (0.5 of E = 1000,
    25 units @ 20) is skipped and not retried on its NaN signal at t1. A exits at t3's
    open (100 @ 12 -> cash 1200) and, in the same instant, B's new signal buys
    0.5 * 1200 / 19 units: exits go first, so the freed cash funds it."""
    a = _frame([10, 10, 11, 12, 12], [10, 10.5, 11.5, 12.5, 13])
    b = _frame([20, 20, 21, 19, 18], [20, 20.5, 20, 19, 18.5])
    res = run_portfolio(
        [
            Sleeve("A", a, Fixed([1, NAN, 0, NAN, NAN]), weight=1.0),
            Sleeve("B", b, Fixed([1, NAN, 1, NAN, NAN]), weight=0.5),
        ],
        config=CFG,
    )
    units_b = 600 / 19
    np.testing.assert_allclose(
        res.equity["equity"],
        [1000, 1050, 1150, 600 + units_b * 19, 600 + units_b * 18.5],
        rtol=1e-12,
    )
    assert res.adjustments["action"].tolist() == ["skipped"]
    assert res.adjustments["requested_units"].iloc[0] == pytest.approx(25)
    assert res.adjustments["filled_units"].iloc[0] == 0
    assert res.adjustments["free_cash"].iloc[0] == pytest.approx(0, abs=1e-9)
    t = res.trades.set_index("sleeve")
    assert t.loc["A/test_fixed", "pnl"] == pytest.approx(200)
    assert t.loc["B/test_fixed", "entry_bar"] == 3
    assert t.loc["B/test_fixed", "size"] == pytest.approx(units_b)


def test_short_locks_proceeds_and_collateral() -> None:
    """A shorts 0.5 * 1000 / 10 = 50 units at t1 (cash 1500, of which 2 * 500 locked).
    B (weight 1) then sees E = 1500 - 50 * 10 = 1000 and wants 50 units @ 20, but the
    free cash is 500: 25 units."""
    a = _frame([10, 10, 9], [10, 9.5, 9])
    b = _frame([20, 20, 21], [20, 20.5, 22])
    res = run_portfolio(
        [
            Sleeve("A", a, Fixed([-1, NAN, NAN]), weight=0.5),
            Sleeve("B", b, Fixed([1, NAN, NAN]), weight=1.0),
        ],
        config=CFG,
    )
    np.testing.assert_allclose(res.positions.iloc[1].to_numpy(), [-50, 25], rtol=1e-12)
    assert res.adjustments["action"].tolist() == ["reduced"]
    assert res.adjustments["free_cash"].iloc[0] == pytest.approx(500)
    assert res.adjustments["equity"].iloc[0] == pytest.approx(1000)
    np.testing.assert_allclose(
        res.equity["equity"], [1000, 1000 - 50 * 9.5 + 25 * 20.5, 1000 - 50 * 9 + 25 * 22]
    )


def test_union_clock_carries_last_close_and_sizes_on_total_equity() -> None:
    """A trades daily, B only on days 0, 2, 4. A (0.4) buys 40 @ 10 at day 1 (cash 600).
    B's day-0 signal fills at its next bar, day 2's open 21, sized on E = 600 + 40 * 11
    (A marked at its day-2 open) = 1040: 0.5 * 1040 / 21 units. On day 3 B has no bar and
    is marked at its day-2 close 21.5."""
    a = _frame([10, 10, 11, 12, 12], [10, 10.5, 11.5, 12.5, 13])
    b = _frame([20, 21, 22], [20, 21.5, 23], days=[0, 2, 4])
    res = run_portfolio(
        [
            Sleeve("A", a, Fixed([1, NAN, NAN, NAN, NAN]), weight=0.4),
            Sleeve("B", b, Fixed([1, NAN, NAN]), weight=0.5),
        ],
        config=CFG,
    )
    ub = 0.5 * 1040 / 21
    cash = 600 - ub * 21
    np.testing.assert_allclose(
        res.equity["equity"],
        [
            1000,
            600 + 40 * 10.5,
            cash + 40 * 11.5 + ub * 21.5,
            cash + 40 * 12.5 + ub * 21.5,
            cash + 40 * 13 + ub * 23,
        ],
        rtol=1e-12,
    )
    assert len(res.equity) == 5
    tb = res.trades[res.trades["symbol"] == "B"].iloc[0]
    assert (tb["entry_bar"], tb["exit_bar"]) == (1, 2)
    assert tb["entry_time"] == b.index[1]
    assert res.adjustments.empty


# ------------------------------------------------------------------ attribution, roll-ups


def test_attribution_and_rollups_add_up(goog: pd.DataFrame) -> None:
    half = goog.iloc[len(goog) // 2 :]
    cfg = BacktestConfig(cash=100_000.0, fee=0.001, sizing="fraction")
    res = run_portfolio(
        [
            Sleeve("GOOG", goog, "sma_cross", {"fast": 10, "slow": 30, "allow_short": False}, 0.4),
            Sleeve("GOOG", goog, "momentum", {"lookback": 20}, 0.3),
            Sleeve("LATE", half, "sma_cross", {"fast": 5, "slow": 20, "allow_short": False}, 0.3),
        ],
        config=cfg,
    )
    eq = res.equity["equity"].to_numpy()
    np.testing.assert_allclose(res.contributions.sum(axis=1), eq - 100_000.0, atol=1e-6)
    # Each sleeve's PnL is its trades' PnL (open positions are valued at the last close).
    by_sleeve = res.trades.groupby("sleeve")["pnl"].sum()
    np.testing.assert_allclose(res.sleeves["pnl"], by_sleeve[res.sleeves.index], rtol=1e-9)
    assert res.by_symbol.loc["GOOG", "pnl"] == pytest.approx(
        res.sleeves.loc[["GOOG/sma_cross", "GOOG/momentum"], "pnl"].sum()
    )
    assert res.by_strategy.loc["sma_cross", "pnl"] == pytest.approx(
        res.sleeves.loc[["GOOG/sma_cross", "LATE/sma_cross"], "pnl"].sum()
    )
    assert res.by_symbol.loc["GOOG", "allocation"] == pytest.approx(70_000.0)
    assert (
        res.by_strategy.loc["momentum", "num_trades"]
        == (res.trades["strategy"] == "momentum").sum()
    )
    # Long-only and no leverage: cash never below zero.
    assert (res.equity["cash"] >= -1e-6).all()
    # LATE starts halfway: flat (and unmarked) before its first bar.
    assert (res.positions["LATE/sma_cross"].iloc[: len(goog) // 2] == 0).all()
    assert res.metrics["final_equity"] == pytest.approx(eq[-1])
    assert res.metrics["num_trades"] == len(res.trades)
    assert set(TRADE_COLUMNS) <= set(res.trades.columns)
    out = res.to_dict()
    assert out["sleeves"][0]["sleeve"] == "GOOG/sma_cross"


@pytest.mark.parametrize(
    ("sleeves", "settings", "error", "fragment"),
    [
        ([], {}, ParameterError, "at least one sleeve"),
        (
            [Sleeve("A", _frame([5, 5], [5, 5]), Fixed([NAN, NAN]), weight=1.5)],
            {},
            ParameterError,
            r"weight must be in \(0, 1\]",
        ),
        (
            [
                Sleeve("A", _frame([5, 5], [5, 5]), Fixed([NAN, NAN])),
                Sleeve("A", _frame([5, 5], [5, 5]), Fixed([NAN, NAN])),
            ],
            {},
            ParameterError,
            "'A/test_fixed' is used twice",
        ),
        (
            [Sleeve("A", _frame([5, 5], [5, 5]), Fixed([NAN, NAN]))],
            {"sizing": "units"},
            ParameterError,
            "use sizing=fraction or whole",
        ),
        (
            [Sleeve("A", _frame([5, 5], [5, 5]), Fixed([NAN, 2.0]))],
            {},
            ParameterError,
            r"sleeve 'A/test_fixed': signals must be \+1, -1, 0 or NaN \(got 2.0 at bar 1\)",
        ),
        (
            [Sleeve("A", _frame([5, -1], [5, 5]), Fixed([NAN, NAN]))],
            {},
            DataError,
            r"sleeve 'A/test_fixed': .*row 2.*column open",
        ),
    ],
)
def test_bad_portfolios_are_named(
    sleeves: list[Sleeve], settings: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        run_portfolio(sleeves, config=BacktestConfig(**settings))


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    n=st.integers(3, 40),
    weights=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=3),
    fee=st.sampled_from([0.0, 0.001, 0.01]),
)
def test_random_long_only_portfolios_never_borrow(
    data: st.DataObject, n: int, weights: list[float], fee: float
) -> None:
    """Whatever the signals and weights: long-only sleeves never take cash below zero,
    and the contributions add up to the equity gain at every bar."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    sleeves = []
    for k, w in enumerate(weights):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.05, n)))
        opens = close * np.exp(rng.normal(0, 0.01, n))
        sig = data.draw(st.lists(st.sampled_from([1.0, 0.0, NAN]), min_size=n, max_size=n))
        sleeves.append(Sleeve(f"S{k}", _frame(list(opens), list(close)), Fixed(sig), weight=w))
    cfg = BacktestConfig(cash=1000.0, fee=fee, sizing="fraction")
    res = run_portfolio(sleeves, config=cfg)
    assert (res.equity["cash"] >= -1e-9).all()
    np.testing.assert_allclose(
        res.contributions.sum(axis=1), res.equity["equity"] - 1000.0, atol=1e-7
    )
    filled = res.adjustments["filled_units"].to_numpy()
    assert (filled <= res.adjustments["requested_units"].to_numpy()).all()
