"""Walk-forward: window splitting, a hand-computed run, and consistency on real data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.metrics import compute_metrics
from algotrendy.backtest.sweep import run_sweep
from algotrendy.backtest.walkforward import Window, split_windows, walk_forward
from algotrendy.domain import Bars
from algotrendy.errors import ParameterError
from algotrendy.strategies import Strategy, StrategyParams
from algotrendy.strategies.base import FloatArray

# ------------------------------------------------------------------------------- windows


def test_rolling_windows_by_hand() -> None:
    assert split_windows(11, train=4, test=2) == [
        Window(0, 0, 4, 4, 6),
        Window(1, 2, 6, 6, 8),
        Window(2, 4, 8, 8, 10),
    ]


def test_anchored_windows_by_hand() -> None:
    assert split_windows(10, train=4, test=3, mode="anchored") == [
        Window(0, 0, 4, 4, 7),
        Window(1, 0, 7, 7, 10),
    ]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"train": 8, "test": 3}, r"train \(8\) \+ test \(3\) = 11 bars exceed the data's 10"),
        ({"train": 1, "test": 3}, "train: must be at least 2"),
        ({"train": 4, "test": 1}, "test: must be at least 2"),
        ({"train": 4.5, "test": 2}, "train: must be an integer"),
        ({"train": True, "test": 2}, "train: must be an integer"),
        ({"train": 4, "test": 2, "mode": "expanding"}, "mode: must be 'rolling' or 'anchored'"),
    ],
)
def test_bad_window_sizes_are_named(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ParameterError, match=fragment):
        split_windows(10, **kwargs)


@given(
    n=st.integers(4, 400),
    train=st.integers(2, 200),
    test=st.integers(2, 100),
    anchored=st.booleans(),
)
def test_windows_tile_the_out_of_sample_period(
    n: int, train: int, test: int, anchored: bool
) -> None:
    mode = "anchored" if anchored else "rolling"
    if train + test > n:
        with pytest.raises(ParameterError):
            split_windows(n, train=train, test=test, mode=mode)
        return
    ws = split_windows(n, train=train, test=test, mode=mode)
    assert len(ws) == (n - train) // test
    assert ws[0].oos_start == train
    for k, w in enumerate(ws):
        assert w.index == k
        assert w.is_end == w.oos_start
        assert w.oos_end - w.oos_start == test
        assert w.is_start == (0 if anchored else k * test)
        assert w.is_end - w.is_start == (train + k * test if anchored else train)
        if k:
            assert w.oos_start == ws[k - 1].oos_end
    assert n - ws[-1].oos_end < test


# --------------------------------------------------------------------------- hand-checked


class TrendParams(StrategyParams):
    lag: int = Field(1, ge=1)


class Trend(Strategy[TrendParams]):
    """+1 when close > close[lag], -1 when below, 0 when equal; NaN for the first `lag`
    bars. Signals near a window start need the bars before it."""

    name = "test_trend"
    Params = TrendParams

    def signals(self, bars: Bars, params: TrendParams) -> FloatArray:
        c = bars.close
        out = np.full(c.shape[0], np.nan)
        out[params.lag :] = np.sign(c[params.lag :] - c[: -params.lag])
        return out


CLOSE = [10.0, 11.0, 12.0, 11.0, 13.0, 14.0, 12.0, 15.0]
OPEN = [10.0, 10.5, 11.5, 12.0, 11.5, 13.5, 13.0, 13.0]


def _frame() -> pd.DataFrame:
    o, c = np.array(OPEN), np.array(CLOSE)
    idx = pd.date_range("2024-01-01", periods=len(c), freq="D", tz="UTC", name="time")
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c) + 0.5,
            "low": np.minimum(o, c) - 0.5,
            "close": c,
            "volume": 1.0,
        },
        index=idx,
    )


def test_walk_forward_by_hand() -> None:
    """8 bars, train 4, test 2, grid lag 1,2, fraction sizing, no fees.

    Window 0, in-sample bars 0-3 (cash 100):
      lag 1: signals [., +1, +1, -1]: buy 100/11.5 at open[2], marked at close[3] = 11
             -> total return 11/11.5 - 1 = -4.35%
      lag 2: signals [., ., +1, 0]: buy 100/12 at open[3], marked at 11 -> -8.33%
      best: lag 1. Out-of-sample bars 4-5 with lag 1 on the history: sig[4] = +1 (13 > 11;
      needs bar 3, before the window), sig[5] = +1. Buy 100/13.5 at open[5]; the window
      ends on bar 5: closed at close[5] = 14 -> equity 100 * 14 / 13.5.
    Window 1, in-sample bars 2-5:
      lag 1: [., -1, +1, +1]: short 100/11.5 at open[4] (cash 200), cover at 13.5, long
             with what is left, marked at 14 -> (200 - 100*13.5/11.5) * 14/13.5 < 100
      lag 2: [., ., +1, +1]: buy 100/13.5 at open[5], marked at 14 -> +3.7%
      best: lag 2. Out-of-sample bars 6-7, cash E1 = 100*14/13.5: sig[6] = -1 (12 < 13):
      short E1/13 at open[7] = 13 (cash 2*E1), closed at close[7] = 15.
    """
    cfg = BacktestConfig(cash=100.0, sizing="fraction", size=1.0)
    res = walk_forward(
        _frame(), Trend(), ["lag=1,2"], config=cfg, train=4, test=2, metric="total_return"
    )
    w = res.windows
    assert list(w["lag"]) == [1, 2]
    assert w["is_total_return"].tolist() == pytest.approx([11 / 11.5 - 1, 14 / 13.5 - 1])
    e1 = 100 * 14 / 13.5
    u1 = e1 / 13.0
    e2 = 2 * e1 - u1 * 15.0
    np.testing.assert_allclose(res.equity.to_numpy(), [100.0, e1, e1, e2], rtol=1e-12)
    assert list(res.equity.index) == list(_frame().index[4:])
    t = res.trades
    assert list(t["window"]) == [0, 1]
    assert list(t["side"]) == ["long", "short"]
    assert list(t["entry_bar"]) == [5, 7]
    assert list(t["exit_bar"]) == [5, 7]
    np.testing.assert_allclose(t["entry_price"], [13.5, 13.0])
    np.testing.assert_allclose(t["exit_price"], [14.0, 15.0])
    np.testing.assert_allclose(t["pnl"], [e1 - 100.0, -u1 * 2.0], rtol=1e-12)
    np.testing.assert_allclose(w["oos_final_equity"], [e1, e2], rtol=1e-12)
    assert res.metrics["final_equity"] == pytest.approx(e2, rel=1e-12)
    assert res.metrics["total_return"] == pytest.approx(e2 / 100 - 1, rel=1e-12)
    assert res.metrics["num_trades"] == 2
    assert (res.position.to_numpy() == 0.0).tolist() == [True, True, True, True]
    assert res.unused_bars == 0


def test_open_position_at_window_end_pays_exit_costs() -> None:
    """Same data and windows with a 1% fee and 0.1% slippage: the long of window 0 is
    bought at 13.5 * 1.001 and sold at the window's last close 14 * 0.999, each fill
    paying 1% of its notional."""
    cfg = BacktestConfig(cash=100.0, sizing="fraction", size=1.0, fee=0.01, slippage=0.001)
    res = walk_forward(
        _frame(), Trend(), ["lag=1,2"], config=cfg, train=4, test=2, metric="total_return"
    )
    assert res.windows["lag"].iloc[0] == 1
    buy, sell = 13.5 * 1.001, 14.0 * 0.999
    units = 100.0 / (buy + buy * 0.01)
    fees = units * buy * 0.01 + units * sell * 0.01
    first = res.trades.iloc[0]
    assert first["exit_price"] == pytest.approx(sell, rel=1e-15)
    assert first["fees"] == pytest.approx(fees, rel=1e-12)
    assert first["pnl"] == pytest.approx(units * (sell - buy) - fees, rel=1e-12)
    end0 = 100.0 + units * (sell - buy) - fees
    assert res.equity.iloc[1] == pytest.approx(end0, rel=1e-12)
    assert res.windows["oos_final_equity"].iloc[0] == pytest.approx(end0, rel=1e-12)


def test_anchored_in_sample_starts_at_zero() -> None:
    cfg = BacktestConfig(cash=100.0, sizing="fraction", size=1.0)
    res = walk_forward(
        _frame(),
        Trend(),
        ["lag=1,2"],
        config=cfg,
        train=4,
        test=2,
        mode="anchored",
        metric="total_return",
    )
    assert list(res.windows["is_start"]) == [0, 0]
    assert list(res.windows["is_end"]) == [4, 6]
    # Anchored window 1 (bars 0-5): lag 1 ends 200 - 100*13.5/11.5 then * 14/13.5 below
    # 100, lag 2 ends 100/12*11.5/13.5*14 = 99.38: lag 2 again.
    assert list(res.windows["lag"]) == [1, 2]
    assert res.windows["is_total_return"].iloc[1] == pytest.approx(
        100 / 12 * 11.5 / 13.5 * 14 / 100 - 1
    )


def test_bad_sizes_against_data_are_refused() -> None:
    with pytest.raises(ParameterError, match="exceed the data's 8 bars"):
        walk_forward(_frame(), Trend(), ["lag=1,2"], train=7, test=2)
    with pytest.raises(ParameterError, match="metric: unknown"):
        walk_forward(_frame(), Trend(), ["lag=1,2"], train=4, test=2, metric="sharp")


# ------------------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def goog_wf(goog: pd.DataFrame) -> Any:
    cfg = BacktestConfig(cash=10_000.0, fee=0.001, sizing="fraction", size=1.0)
    grid = ["fast=5:20:5", "slow=20:60:20"]
    return cfg, grid, walk_forward(goog, "sma_cross", grid, config=cfg, train=500, test=250)


def test_in_sample_choice_equals_a_sweep_on_the_window(goog: pd.DataFrame, goog_wf: Any) -> None:
    cfg, grid, res = goog_wf
    assert len(res.windows) == (len(goog) - 500) // 250
    ppy = res.config.periods_per_year
    for _, w in res.windows.iterrows():
        sweep = run_sweep(
            goog.iloc[int(w["is_start"]) : int(w["is_end"])],
            "sma_cross",
            grid,
            config=cfg.model_copy(update={"periods_per_year": ppy}),
            workers=1,
            top=1,
            progress=False,
        )
        assert sweep.best_params == {"fast": w["fast"], "slow": w["slow"]}
        assert sweep.ranked.iloc[0]["sharpe"] == w["is_sharpe"]


def test_out_of_sample_trades_stay_inside_their_window(goog_wf: Any) -> None:
    _, _, res = goog_wf
    t = res.trades.merge(res.windows[["window", "oos_start", "oos_end"]], on="window")
    assert (t["entry_bar"] > t["oos_start"]).all()  # first fill: the bar after a signal
    assert (t["exit_bar"] < t["oos_end"]).all()
    assert (t["entry_bar"] <= t["exit_bar"]).all()
    # Each window ends flat, and the stitched curve is chained: a window starts from the
    # previous window's last equity (flat on its first bar: its first fill is on bar 2).
    ends = res.windows["oos_end"].to_numpy() - res.windows["oos_start"].iloc[0] - 1
    assert (res.position.to_numpy()[ends] == 0.0).all()
    starts = ends[:-1] + 1
    np.testing.assert_array_equal(res.equity.to_numpy()[starts], res.equity.to_numpy()[ends[:-1]])
    np.testing.assert_allclose(res.windows["oos_final_equity"], res.equity.to_numpy()[ends])


def test_stitched_metrics_are_those_of_the_stitched_curve(goog_wf: Any) -> None:
    _, _, res = goog_wf
    expected = compute_metrics(
        equity=res.equity.to_numpy(),
        times=res.equity.index.tz_localize(None).to_numpy(dtype="datetime64[ns]"),
        position=res.position.to_numpy(),
        trade_pnl=res.trades["pnl"].to_numpy(),
        trade_returns=res.trades["return_pct"].to_numpy(),
        cash=10_000.0,
        periods_per_year=252.0,
    )
    assert res.config.periods_per_year == 252.0
    assert res.metrics == pytest.approx(expected, nan_ok=True)
    # Sum of trade PnL is the stitched curve's gain: every window ends flat.
    assert res.trades["pnl"].sum() == pytest.approx(res.equity.iloc[-1] - 10_000.0, rel=1e-9)


def test_walk_forward_workers_two_equals_one(goog: pd.DataFrame, goog_wf: Any) -> None:
    cfg, grid, res = goog_wf
    two = walk_forward(goog, "sma_cross", grid, config=cfg, train=500, test=250, workers=2)
    pd.testing.assert_frame_equal(two.windows, res.windows)
    pd.testing.assert_series_equal(two.equity, res.equity)
