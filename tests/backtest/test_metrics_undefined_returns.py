"""Volatility of a curve whose per-bar return is undefined (equity touching zero): NaN,
like the standard deviation it stands for, and ranked last by a sweep."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from algotrendy.backtest.metrics import compute_metrics
from algotrendy.backtest.ranking import SweepRow, default_ascending, rank_rows


def _metrics(equity: list[float]) -> dict[str, float]:
    n = len(equity)
    return compute_metrics(
        equity=np.asarray(equity, dtype=np.float64),
        times=pd.date_range("2024-01-01", periods=n).to_numpy(),
        position=np.ones(n),
        trade_pnl=np.empty(0),
        trade_returns=np.empty(0),
        cash=100.0,
        periods_per_year=252.0,
    )


@pytest.mark.parametrize(
    "equity",
    [
        [100.0, 50.0, 0.0, 0.0, 10.0],  # returns -0.5, -1, 0/0, 10/0
        [100.0, 0.0, 5.0, 7.0],  # 5/0 = inf
        [100.0, 60.0, 0.0, -20.0, -10.0],  # -20/0 = -inf
    ],
)
def test_undefined_return_gives_nan_volatility_not_zero(equity: list[float]) -> None:
    with np.errstate(all="ignore"):
        r = np.diff(equity) / np.asarray(equity[:-1])
        reference = float(np.std(r, ddof=1))
    assert math.isnan(reference)
    m = _metrics(equity)
    assert math.isnan(m["volatility_ann"]), m["volatility_ann"]
    assert math.isnan(m["sharpe"])


def test_flat_curve_still_has_zero_volatility() -> None:
    # The clamp that must stay: round-off can make a zero spread slightly negative.
    assert _metrics([100.0, 100.0, 100.0, 100.0])["volatility_ann"] == 0.0


def test_blown_up_curve_ranks_last_by_volatility() -> None:
    # volatility ranks ascending: a 0.0 for the blown-up curve would rank it first.
    assert default_ascending("volatility_ann")
    curves = {0: [100.0, 50.0, 0.0, 0.0, 10.0], 1: [100.0, 101.0, 99.0, 102.0, 103.0]}
    rows = [
        SweepRow(chunk_id="c", task=k, symbol="A", params={"id": k}, metrics=_metrics(eq))
        for k, eq in curves.items()
    ]
    ranked = rank_rows(rows, metric="volatility_ann")
    order = [r[ranked.columns.index("id")] for r in ranked.rows]
    assert order == [1, 0]
