"""`run_backtest` / `evaluate`: inputs, engine choice, result shape and error messages."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from engine_helpers import FixedSignals, Scripted, frame

from algotrendy.backtest import BacktestConfig, BacktestResult, evaluate, run_backtest
from algotrendy.backtest.metrics import compute_metrics
from algotrendy.backtest.result import TRADE_COLUMNS
from algotrendy.domain.bars import Bars
from algotrendy.errors import DataError, ParameterError, UnknownStrategyError

NAN = math.nan
ROWS = [
    (10.0, 11.0, 9.0, 10.0),
    (10.0, 12.0, 9.5, 11.0),
    (11.0, 13.0, 10.0, 12.0),
    (12.0, 12.5, 11.0, 11.5),
]


def test_result_shape(goog_path: Path, goog: pd.DataFrame) -> None:
    res = run_backtest(goog_path, "sma_cross", {"fast": 10, "slow": 30}, symbol="GOOG")
    assert isinstance(res, BacktestResult)
    assert (res.strategy, res.symbol) == ("sma_cross", "GOOG")
    assert res.params == {"fast": 10, "slow": 30, "allow_short": True}
    assert tuple(res.trades.columns) == TRADE_COLUMNS
    assert list(res.equity.columns) == ["equity", "position", "drawdown"]
    assert res.equity.index.equals(goog.index)
    assert res.data is not None
    assert res.data.index.equals(goog.index)
    assert res.final_equity == res.equity["equity"].iloc[-1]
    assert res.trades.entry_time.iloc[0] == goog.index[res.trades.entry_bar.iloc[0]]
    assert (res.equity["drawdown"] <= 0).all()
    assert res.metrics["num_trades"] == len(res.trades)


def test_dataframe_csv_and_parquet_inputs_give_the_same_result(
    goog_path: Path, goog: pd.DataFrame, tmp_path: Path
) -> None:
    pq = tmp_path / "goog.parquet"
    goog.reset_index().to_parquet(pq)  # a "time" column (the loader reads columns)
    results = [run_backtest(src, "sma_cross", fee=0.001) for src in (goog, goog_path, pq)]
    for other in results[1:]:
        pd.testing.assert_frame_equal(results[0].trades, other.trades)
        assert results[0].metrics == other.metrics


def test_auto_engine_matches_both_engines_on_real_data(goog: pd.DataFrame) -> None:
    kwargs = {"fee": 0.001, "slippage": 0.0005, "sizing": "fraction", "size": 0.9}
    runs = [
        run_backtest(goog, "macd_cross", engine=engine, **kwargs)  # type: ignore[arg-type]
        for engine in ("auto", "vectorized", "event")
    ]
    for other in runs[1:]:
        pd.testing.assert_frame_equal(runs[0].trades, other.trades, check_exact=True)
        pd.testing.assert_frame_equal(runs[0].equity, other.equity, check_exact=True)
    assert len(runs[0].trades) > 10


def test_auto_engine_runs_an_on_bar_strategy_on_the_event_engine() -> None:
    strat = Scripted({0: [lambda c: c.buy(size=1, limit=9.6)]})
    res = run_backtest(frame(ROWS), strat)
    assert res.trades.entry_price.tolist() == [9.6]
    assert [i for i, _ in strat.seen] == [0, 1, 2, 3]  # called on every bar


def test_evaluate_returns_the_same_metrics_as_run_backtest(goog: pd.DataFrame) -> None:
    cfg = BacktestConfig(fee=0.002, fixed_fee=1.0, sizing="fraction", size=0.5)
    full = run_backtest(goog, "rsi_reversion", {"period": 10}, **cfg.model_dump())
    lean = evaluate(Bars.from_frame(goog), "rsi_reversion", {"period": 10}, cfg)
    assert lean.keys() == full.metrics.keys()
    for k, v in lean.items():
        assert v == full.metrics[k] or (math.isnan(v) and math.isnan(full.metrics[k]))


def test_metrics_are_compute_metrics_of_the_curve_and_trades(goog: pd.DataFrame) -> None:
    res = run_backtest(goog, "sma_cross", fee=0.002, risk_free=0.02)
    t = res.trades
    expected = compute_metrics(
        equity=res.equity["equity"].to_numpy(),
        times=goog.index.tz_convert(None).to_numpy(),
        position=res.equity["position"].to_numpy(),
        trade_pnl=t.pnl.to_numpy(),
        trade_returns=(t.pnl / (t["size"] * t.entry_price)).to_numpy(),
        cash=10_000.0,
        risk_free=0.02,
    )
    assert res.metrics == pytest.approx(expected, rel=1e-12, nan_ok=True)


# --- errors ---------------------------------------------------------------------------


def test_unknown_strategy_names_the_known_ones(goog: pd.DataFrame) -> None:
    with pytest.raises(UnknownStrategyError, match=r"unknown strategy 'nope'; known: .*sma_cross"):
        run_backtest(goog, "nope")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fast": 1}, "sma_cross: fast: Input should be greater than or equal to 2"),
        ({"fast": 30, "slow": 20}, "fast (30) must be below slow (20)"),
        ({"speed": 3}, "speed: unknown parameter"),
        ({"fast": "ten"}, "fast: Input should be a valid integer"),
    ],
)
def test_bad_strategy_parameter(
    goog: pd.DataFrame, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        run_backtest(goog, "sma_cross", params)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fee": -0.1}, "backtest: fee: Input should be greater than or equal to 0"),
        ({"cash": 0}, "backtest: cash: Input should be greater than 0"),
        ({"sizing": "all"}, "backtest: sizing: Input should be 'whole', 'fraction' or 'units'"),
        ({"sizing": "fraction", "size": 2.0}, "size is a fraction of equity"),
        ({"engine": "turbo"}, "engine: must be one of auto, vectorized, event (got 'turbo')"),
    ],
)
def test_bad_backtest_setting(
    goog: pd.DataFrame, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        run_backtest(goog, "sma_cross", **settings)  # type: ignore[arg-type]


def test_vectorized_engine_refuses_an_on_bar_strategy() -> None:
    with pytest.raises(ParameterError, match="scripted overrides on_bar"):
        run_backtest(frame(ROWS), Scripted({}), engine="vectorized")


@pytest.mark.parametrize(
    ("signals", "message"),
    [
        ([1, 0.5, NAN, NAN], "fixed_signals: signals must be +1, -1, 0 or NaN (got 0.5 at bar 1)"),
        ([1, 0, math.inf, NAN], "(got inf at bar 2)"),
        ([1, 0], "signals must be one value per bar, shape (4,) (got shape (2,))"),
    ],
)
def test_bad_signals_are_refused(signals: list[float], message: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        run_backtest(frame(ROWS), FixedSignals(signals))


def test_bad_data_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        run_backtest(tmp_path / "missing.csv", "sma_cross")
    bad = frame(ROWS)
    bad.iloc[2, bad.columns.get_loc("high")] = 1.0  # high below the open
    with pytest.raises(DataError, match="row 3"):
        run_backtest(bad, "sma_cross")


def test_signals_are_not_changed_by_the_engines() -> None:
    sig = np.array([1.0, NAN, -1.0, NAN])
    strat = FixedSignals(sig)
    for engine in ("vectorized", "event"):
        run_backtest(frame(ROWS), strat, engine=engine)
    np.testing.assert_array_equal(strat._signals, sig)


def test_a_frame_in_another_shape_goes_through_the_loader(goog: pd.DataFrame) -> None:
    # backtesting.py's shape: capitalised columns, naive index.
    raw = goog.rename(columns=str.capitalize).tz_convert(None)
    a = run_backtest(raw, "sma_cross", fee=0.002)
    b = run_backtest(goog, "sma_cross", fee=0.002)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    assert a.equity.index.equals(goog.index)


def test_bad_data_win_over_what_they_break_in_the_strategy() -> None:
    """The data are checked beside the strategy run: when the run itself fails on them
    (a zero price makes whole-unit sizing divide by zero), the data error is reported."""
    bad = frame(ROWS)
    bad.iloc[1, bad.columns.get_loc("open")] = 0.0
    with pytest.raises(DataError, match=r"row 2 .*column open: price must be a positive"):
        run_backtest(bad, FixedSignals([1.0, NAN, NAN, NAN]))
    with pytest.raises(DataError, match="row 2"):
        run_backtest(bad, FixedSignals([1.0, NAN, NAN, NAN]), engine="event")


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_coarser_time_units_give_the_same_result(goog: pd.DataFrame, unit: str) -> None:
    coarse = goog.copy()
    coarse.index = coarse.index.as_unit(unit)
    a = run_backtest(coarse, "sma_cross", fee=0.002)
    b = run_backtest(goog, "sma_cross", fee=0.002)
    assert a.metrics == b.metrics
    assert a.metrics["periods_per_year"] == 252.0


def _backtest_in_child(path: str, queue: object) -> None:
    res = run_backtest(path, "sma_cross")
    queue.put(res.metrics["final_equity"])  # type: ignore[attr-defined]


def test_a_forked_child_runs_backtests_after_the_parent(goog_path: Path) -> None:
    """The parent's helper thread does not survive a fork; the child must start its own
    rather than wait forever on the inherited executor (sweeps fork worker processes)."""
    import multiprocessing

    expected = run_backtest(goog_path, "sma_cross").metrics["final_equity"]  # thread started
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_backtest_in_child, args=(str(goog_path), queue))
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child hung on the inherited helper thread"
    assert queue.get(timeout=5) == expected


def test_bar_by_bar_code_never_sees_unchecked_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from algotrendy.backtest import runner

    check = runner._check

    def slow_check(*args: Any) -> float | None:
        time.sleep(0.3)  # a check still running when the strategy would start
        return check(*args)

    monkeypatch.setattr(runner, "_check", slow_check)
    bad = frame(ROWS)
    bad.iloc[2, bad.columns.get_loc("high")] = 1.0
    strat = Scripted({})
    with pytest.raises(DataError, match="row 3"):
        run_backtest(bad, strat)
    assert strat.seen == []  # on_bar never ran
