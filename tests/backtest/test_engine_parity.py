"""Property: the vectorised kernel and the event engine give the same trades and the same
equity curve for any valid bars, any target-direction signals and any fill settings.

The event engine gets there by a different route (Python objects, working orders, FIFO
lots, an equity curve rebuilt from its fill log afterwards), so agreement here is what
lets `engine="auto"` pick the fast path without changing a single number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from engine_helpers import FixedSignals, FixedSignalsEveryBar, frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algotrendy.backtest import BacktestResult, run_backtest

SIGNAL_VALUES = st.sampled_from([math.nan, math.nan, math.nan, -1.0, 0.0, 1.0])


@st.composite
def ohlc_rows(draw: st.DrawFn) -> list[tuple[float, float, float, float]]:
    n = draw(st.integers(min_value=1, max_value=40))
    price = draw(st.floats(min_value=0.5, max_value=500.0))
    rows = []
    for _ in range(n):
        o = price * draw(st.floats(min_value=0.8, max_value=1.25))
        c = price * draw(st.floats(min_value=0.8, max_value=1.25))
        h = max(o, c) * draw(st.floats(min_value=1.0, max_value=1.1))
        lo = min(o, c) * draw(st.floats(min_value=0.9, max_value=1.0))
        rows.append((o, h, lo, c))
        price = c
    return rows


@st.composite
def settings_(draw: st.DrawFn) -> dict[str, object]:
    sizing = draw(st.sampled_from(["whole", "fraction", "units"]))
    if sizing == "fraction":
        size = draw(st.floats(min_value=0.05, max_value=1.0))
    elif sizing == "units":
        size = draw(st.floats(min_value=0.01, max_value=50.0))
    else:
        size = 1.0
    return {
        "cash": draw(st.floats(min_value=1.0, max_value=1e6)),
        "fee": draw(st.sampled_from([0.0, 0.001, 0.002]) | st.floats(0.0, 0.05)),
        "fixed_fee": draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 20.0)),
        "slippage": draw(st.sampled_from([0.0, 0.0005]) | st.floats(0.0, 0.05)),
        "sizing": sizing,
        "size": size,
        "trade_on_close": draw(st.booleans()),
    }


def _engines(df: pd.DataFrame, sig: list[float], cfg: dict[str, object]) -> list[BacktestResult]:
    """Vectorised kernel; event engine calling on_bar on signal bars; on every bar."""
    return [
        run_backtest(df, FixedSignals(sig), None, engine="vectorized", **cfg),  # type: ignore[arg-type]
        run_backtest(df, FixedSignals(sig), None, engine="event", **cfg),  # type: ignore[arg-type]
        run_backtest(df, FixedSignalsEveryBar(sig), None, engine="event", **cfg),  # type: ignore[arg-type]
    ]


PROPERTY = given(rows=ohlc_rows(), data=st.data(), cfg=settings_())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@PROPERTY
def test_vectorized_and_event_engines_agree(
    rows: list[tuple[float, float, float, float]], data: st.DataObject, cfg: dict[str, object]
) -> None:
    _check_agreement(rows, data, cfg)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@PROPERTY
def test_vectorized_and_event_engines_agree_many(
    rows: list[tuple[float, float, float, float]], data: st.DataObject, cfg: dict[str, object]
) -> None:
    _check_agreement(rows, data, cfg)


def _check_agreement(
    rows: list[tuple[float, float, float, float]], data: st.DataObject, cfg: dict[str, object]
) -> None:
    sig = data.draw(st.lists(SIGNAL_VALUES, min_size=len(rows), max_size=len(rows)))
    vec, *events = _engines(frame(rows), sig, cfg)

    for evt in events:
        pd.testing.assert_frame_equal(vec.trades, evt.trades, check_exact=True)
        pd.testing.assert_frame_equal(vec.equity, evt.equity, check_exact=True)
        assert vec.metrics.keys() == evt.metrics.keys()
        for key, value in vec.metrics.items():
            other = evt.metrics[key]
            assert (value == other) or (math.isnan(value) and math.isnan(other))

    # Accounting identity, independent of either engine's bookkeeping: starting cash
    # plus every round trip's net PnL is the last equity point (open positions are
    # valued at the last close without exit costs, like the curve itself).
    eq = vec.equity["equity"].to_numpy()
    total = float(cfg["cash"]) + float(vec.trades["pnl"].sum())  # type: ignore[arg-type]
    assert math.isclose(total, eq[-1], rel_tol=1e-9, abs_tol=1e-9 * float(cfg["cash"]))  # type: ignore[arg-type]
    # The position changes only on the fill bar of a signal, towards its direction
    # (or to flat, when the sizing rule cannot afford a single unit).
    pos = vec.equity["position"].to_numpy()
    before = np.concatenate([[0.0], pos[:-1]])
    lag = 0 if cfg["trade_on_close"] else 1
    for j in np.flatnonzero(pos != before):
        assert j - lag >= 0
        s = sig[j - lag]
        assert not math.isnan(s)
        assert np.sign(pos[j]) in (s, 0.0)
