"""Sweeps: planning, chunk execution, aggregation and the local process-pool runner."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.metrics import METRICS
from algotrendy.backtest.runner import evaluate, run_backtest
from algotrendy.backtest.sweep import (
    LOWER_IS_BETTER,
    SweepChunk,
    SweepPlan,
    SweepRow,
    aggregate,
    plan_sweep,
    run_chunk,
    run_sweep,
)
from algotrendy.domain import Bars
from algotrendy.errors import DataError, ParameterError
from algotrendy.strategies import get_strategy

GRID = ["fast=5:20:5", "slow=10:40:10"]  # 16 pairs, 4 with fast >= slow
CONFIG = BacktestConfig(cash=10_000.0, fee=0.001, sizing="fraction", size=1.0)


@pytest.fixture(scope="module")
def two_symbols(goog: pd.DataFrame) -> dict[str, pd.DataFrame]:
    # A second, different series: GOOG's later half.
    return {"GOOG": goog, "GOOG2": goog.iloc[len(goog) // 2 :]}


# ---------------------------------------------------------------------------------- plan


def test_plan_counts_valid_and_skipped() -> None:
    plan = plan_sweep("sma_cross", GRID, ["A", "B"], config=CONFIG, chunk_size=5)
    valid = [(f, s) for f in (5, 10, 15, 20) for s in (10, 20, 30, 40) if f < s]
    assert plan.n_total == 16
    assert plan.n_combos == len(valid) == 12
    assert plan.n_skipped == 4
    assert plan.n_tasks == 24
    assert plan.param_names == ["fast", "slow"]
    # 12 combos, chunks of 5: 3 chunks per symbol, each one symbol.
    assert [c.symbols for c in plan.chunks] == [["A"]] * 3 + [["B"]] * 3
    assert [len(c.params) for c in plan.chunks] == [5, 5, 2] * 2
    assert [c.first_task for c in plan.chunks] == [0, 5, 10, 12, 17, 22]
    assert [c.id for c in plan.chunks] == [f"chunk-{i:05d}" for i in range(6)]
    flat = [(p["fast"], p["slow"]) for c in plan.chunks[:3] for p in c.params]
    assert flat == valid


def test_plan_packs_symbols_when_the_grid_is_small() -> None:
    plan = plan_sweep("sma_cross", ["fast=5,10", "slow=30"], list("ABCDE"), chunk_size=5)
    # 2 combos per symbol, 5 tasks per chunk: 2 symbols (4 tasks) per chunk.
    assert [c.symbols for c in plan.chunks] == [["A", "B"], ["C", "D"], ["E"]]
    assert [c.first_task for c in plan.chunks] == [0, 4, 8]
    assert all(c.n_tasks <= 5 for c in plan.chunks)


@settings(max_examples=60, deadline=None)
@given(
    n_symbols=st.integers(1, 7),
    n_fast=st.integers(1, 6),
    chunk_size=st.integers(1, 13),
)
def test_plan_covers_every_task_once_in_order(n_symbols: int, n_fast: int, chunk_size: int) -> None:
    syms = [f"S{i}" for i in range(n_symbols)]
    grid = [f"fast=2:{1 + n_fast}:1", "slow=50,60"]
    plan = plan_sweep("sma_cross", grid, syms, chunk_size=chunk_size)
    tasks: list[tuple[int, str, dict[str, Any]]] = []
    for c in plan.chunks:
        assert 1 <= c.n_tasks <= chunk_size
        t = c.first_task
        for s in c.symbols:
            for p in c.params:
                tasks.append((t, s, p))
                t += 1
    expected = [(s, p) for s in syms for p in plan_sweep("sma_cross", grid, ["x"]).chunks[0].params]
    assert [t for t, _, _ in tasks] == list(range(plan.n_tasks))
    assert [(s, p) for _, s, p in tasks] == expected


def test_plan_round_trips_through_json() -> None:
    plan = plan_sweep(
        "sma_cross", [*GRID, "allow_short=true,false"], ["A"], config=CONFIG, chunk_size=7
    )
    text = plan.model_dump_json()
    again = SweepPlan.model_validate_json(text)
    assert again == plan
    chunk = SweepChunk.model_validate(json.loads(plan.chunks[0].model_dump_json()))
    assert chunk == plan.chunks[0]
    assert chunk.params[0] == {"fast": 5, "slow": 10, "allow_short": True}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"symbols": []}, "at least one symbol"),
        ({"symbols": ["A", "A"]}, "'A' is listed twice"),
        ({"symbols": "AB"}, "got the string"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"grid": ["fsat=3"]}, "no parameter 'fsat'"),
    ],
)
def test_plan_refuses_bad_input(kwargs: dict[str, Any], fragment: str) -> None:
    args: dict[str, Any] = {"grid": GRID, "symbols": ["A"], "chunk_size": 5, **kwargs}
    with pytest.raises(ParameterError, match=fragment):
        plan_sweep("sma_cross", args["grid"], args["symbols"], chunk_size=args["chunk_size"])


# ------------------------------------------------------------------------------- aggregate


def _row(task: int, value: float, metric: str = "sharpe", symbol: str = "A") -> SweepRow:
    return SweepRow(
        chunk_id="c", task=task, symbol=symbol, params={"fast": task}, metrics={metric: value}
    )


def test_aggregate_ranks_best_first_nan_last_ties_in_plan_order() -> None:
    rows = [_row(3, 0.5), _row(0, math.nan), _row(1, 1.5), _row(2, 0.5), _row(4, -1.0)]
    frame = aggregate(rows, metric="sharpe")
    assert list(frame["fast"]) == [1, 2, 3, 4, 0]
    assert list(frame["rank"]) == [1, 2, 3, 4, 5]
    asc = aggregate(rows, metric="sharpe", ascending=True)
    assert list(asc["fast"]) == [4, 2, 3, 1, 0]  # NaN still last
    assert list(aggregate(rows, metric="sharpe", top=2)["fast"]) == [1, 2]


def test_aggregate_default_directions() -> None:
    dd = [_row(0, -0.30, "max_drawdown"), _row(1, -0.05, "max_drawdown")]
    assert list(aggregate(dd, metric="max_drawdown")["fast"]) == [1, 0]
    vol = [_row(0, 0.3, "volatility_ann"), _row(1, 0.1, "volatility_ann")]
    assert list(aggregate(vol, metric="volatility_ann")["fast"]) == [1, 0]
    assert set(LOWER_IS_BETTER) <= set(METRICS)
    pf = [_row(0, 2.0, "profit_factor"), _row(1, math.inf, "profit_factor")]
    assert list(aggregate(pf, metric="profit_factor")["fast"]) == [1, 0]


def test_aggregate_refuses_unknown_metric_and_bad_top() -> None:
    with pytest.raises(ParameterError, match="metric: unknown 'sharp'"):
        aggregate([_row(0, 1.0)], metric="sharp")
    with pytest.raises(ParameterError, match="top"):
        aggregate([_row(0, 1.0)], metric="sharpe", top=0)


def test_rows_round_trip_non_finite_metrics_through_json() -> None:
    row = SweepRow(
        chunk_id="c",
        task=0,
        symbol="A",
        params={"fast": 5},
        metrics={"sharpe": math.nan, "profit_factor": math.inf, "cagr": 0.1},
    )
    text = row.model_dump_json()
    json.loads(text)  # strict JSON: no bare NaN/Infinity tokens
    assert "NaN" in text
    assert "Infinity" in text
    again = SweepRow.model_validate(json.loads(text))
    assert math.isnan(again.metrics["sharpe"])
    assert again.metrics["profit_factor"] == math.inf
    assert again.metrics["cagr"] == 0.1


# ------------------------------------------------------------------------- run + integrate


def test_run_chunk_equals_direct_evaluate(goog: pd.DataFrame) -> None:
    plan = plan_sweep("sma_cross", GRID, ["GOOG"], config=CONFIG, chunk_size=4)
    chunk = plan.chunks[1]
    rows = run_chunk(chunk, {"GOOG": goog})
    s = get_strategy("sma_cross")
    bars = Bars.from_frame(goog)
    assert [r.task for r in rows] == [4, 5, 6, 7]
    for r, p in zip(rows, chunk.params, strict=True):
        direct = evaluate(bars, s, s.params(p), CONFIG)
        assert r.params == p
        assert r.symbol == "GOOG"
        assert r.metrics.keys() == direct.keys()
        np.testing.assert_array_equal(list(r.metrics.values()), list(direct.values()))


def test_sweep_metrics_equal_run_backtest(goog: pd.DataFrame) -> None:
    result = run_sweep(goog, "sma_cross", GRID, config=CONFIG, workers=1, top=3, progress=False)
    best = result.best_params
    full = run_backtest(goog, "sma_cross", best, **CONFIG.model_dump())
    row = result.ranked.iloc[0]
    for k, v in full.metrics.items():
        assert row[k] == pytest.approx(v, nan_ok=True, rel=1e-12), k


def test_plan_chunks_aggregate_equal_direct_sweep(two_symbols: dict[str, pd.DataFrame]) -> None:
    """The AWS path (plan -> JSON chunks -> run each -> JSON rows -> aggregate) gives the
    same frame as the local in-process sweep."""
    plan = plan_sweep("sma_cross", GRID, list(two_symbols), config=CONFIG, chunk_size=3)
    manifest = json.loads(plan.model_dump_json())
    rows_json: list[dict[str, Any]] = []
    for item in reversed(manifest["chunks"]):  # finishing order must not matter
        rows_json.extend(json.loads(r.model_dump_json()) for r in run_chunk(item, two_symbols))
    aws = aggregate(rows_json, metric="sharpe")
    local = run_sweep(
        two_symbols, "sma_cross", GRID, config=CONFIG, workers=1, top=None, progress=False
    )
    assert local.n_combos == 12
    assert local.n_skipped == 4
    assert len(aws) == 24
    pd.testing.assert_frame_equal(aws, local.ranked)
    # Independent check of the ranking: the best sharpe over all 24 direct evaluations.
    s = get_strategy("sma_cross")
    best = max(
        (
            evaluate(Bars.from_frame(df), s, s.params(p), CONFIG)["sharpe"]
            for df in two_symbols.values()
            for p in plan.chunks[0].params
            + plan.chunks[1].params
            + plan.chunks[2].params
            + plan.chunks[3].params
        ),
        key=lambda v: -math.inf if math.isnan(v) else v,
    )
    assert aws.iloc[0]["sharpe"] == best


def test_workers_two_equals_workers_one(two_symbols: dict[str, pd.DataFrame]) -> None:
    kw: dict[str, Any] = {"config": CONFIG, "top": None, "progress": False}
    one = run_sweep(two_symbols, "sma_cross", GRID, workers=1, **kw)
    two = run_sweep(two_symbols, "sma_cross", GRID, workers=2, chunk_size=3, **kw)
    pd.testing.assert_frame_equal(one.ranked, two.ranked)
    assert len(two.plan.chunks) != len(one.plan.chunks)  # really split differently

    def key(r: SweepRow) -> tuple[Any, ...]:
        return (r.task, r.symbol, r.params, repr(r.metrics))  # repr: NaN == NaN

    assert [key(r) for r in one.rows] == [key(r) for r in two.rows]


def test_loader_is_called_once_per_symbol_per_chunk(goog: pd.DataFrame) -> None:
    calls: list[str] = []

    def loader(symbol: str) -> pd.DataFrame:
        calls.append(symbol)
        return goog

    plan = plan_sweep("sma_cross", ["fast=5,10", "slow=30"], ["A", "B"], chunk_size=10)
    assert len(plan.chunks) == 1
    rows = run_chunk(plan.chunks[0], loader)
    assert calls == ["A", "B"]
    assert len(rows) == 4


def test_missing_symbol_and_bad_data_are_named(goog: pd.DataFrame) -> None:
    plan = plan_sweep("sma_cross", ["fast=5"], ["MSFT"], chunk_size=10)
    with pytest.raises(DataError, match="no data for symbol 'MSFT'"):
        run_chunk(plan.chunks[0], {"GOOG": goog})
    bad = goog.copy()
    bad.iloc[3, bad.columns.get_loc("high")] = -1.0
    with pytest.raises(DataError, match=r"MSFT: .*row 4.*column (high|low)"):
        run_chunk(plan.chunks[0], {"MSFT": bad})


def test_run_sweep_result_shape(goog: pd.DataFrame) -> None:
    res = run_sweep(goog, "sma_cross", GRID, config=CONFIG, workers=1, top=3, progress=False)
    assert list(res.ranked.columns[:4]) == ["rank", "symbol", "fast", "slow"]
    assert list(res.ranked.columns[4:]) == list(METRICS)
    assert len(res.ranked) == 3
    assert len(res.rows) == 12
    assert res.ranked["sharpe"].is_monotonic_decreasing
    assert res.elapsed > 0
    out = res.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["n_combos"] == 12
    assert out["n_skipped"] == 4
    assert res.best_params == {
        "fast": int(res.ranked.iloc[0]["fast"]),
        "slow": int(res.ranked.iloc[0]["slow"]),
    }
    assert type(res.best_params["fast"]) is int


def test_run_sweep_refuses_unknown_metric_and_workers(goog: pd.DataFrame) -> None:
    with pytest.raises(ParameterError, match="metric: unknown 'sharp'"):
        run_sweep(goog, "sma_cross", GRID, metric="sharp", progress=False)
    with pytest.raises(ParameterError, match="workers"):
        run_sweep(goog, "sma_cross", GRID, workers=0, progress=False)
