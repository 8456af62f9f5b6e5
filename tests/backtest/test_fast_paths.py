"""The fused fast paths give the very numbers of the plain numpy forms they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.backtest.metrics import _bar_pass, compute_metrics, drawdown
from algotrendy.backtest.runner import _SIDES, _trade_frame
from algotrendy.errors import ParameterError
from algotrendy.indicators import sma
from algotrendy.strategies.base import crossover
from algotrendy.strategies.kernels import cross_directional, directional, sma_cross_signals

DAY = np.timedelta64(1, "D")
MONDAY = np.datetime64("2021-01-04T00:00", "ns")

equity_values = st.lists(
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False), min_size=1, max_size=60
)


def _reference_drawdown_stats(eq: np.ndarray) -> tuple[float, int]:
    """max drawdown and longest underwater span in bars, straight from the definitions
    (numpy running peak; underwater from the peak bar to the first bar back at it)."""
    peak = np.maximum.accumulate(eq)
    max_dd = float(min(0.0, (eq / peak - 1.0).min()))
    longest = 0
    start = 0
    for i in range(1, len(eq)):
        if eq[i] >= peak[i - 1]:
            longest = max(longest, i - start if start < i - 1 else 0)
            start = i
    if start < len(eq) - 1:
        longest = max(longest, len(eq) - 1 - start)
    return max_dd, longest


@settings(max_examples=200, deadline=None)
@given(equity_values, st.booleans())
def test_bar_pass_matches_the_definitions(values: list[float], write: bool) -> None:
    eq = np.array(values)
    n = len(eq)
    pos = np.where(np.arange(n) % 3 == 0, 0.0, 2.0)
    t = (MONDAY + np.arange(n) * DAY).view(np.int64)
    out = np.full(n if write else 0, np.nan)
    shift, rf_pp = 0.001, 0.0002
    result = _bar_pass(eq, pos, t, out, shift, rf_pp)
    bad_eq, bad_pos, total, max_dd, bars, span, held, dev, dev_sq, down = result
    assert (bad_eq, bad_pos) == (-1, -1)
    ref_dd, ref_bars = _reference_drawdown_stats(eq)
    assert max_dd == ref_dd  # bit for bit: the skipped divisions never held the minimum
    assert bars == ref_bars
    assert span == ref_bars * DAY.astype("timedelta64[ns]").astype(np.int64)
    assert held == np.count_nonzero(pos)
    # Sequential sum in bar order, exactly as a plain loop over the returns adds them.
    expected_total = 0.0
    for r in eq[1:] / eq[:-1] - 1.0:
        expected_total += float(r)
    assert total == expected_total
    r = eq[1:] / eq[:-1] - 1.0
    assert dev == pytest.approx(float(np.sum(r - shift)), rel=1e-12, abs=1e-15)
    assert dev_sq == pytest.approx(float(np.sum((r - shift) ** 2)), rel=1e-12, abs=1e-15)
    assert down == pytest.approx(float(np.sum(np.minimum(0.0, r - rf_pp) ** 2)), rel=1e-12)
    if write:
        np.testing.assert_array_equal(out, drawdown(eq))


returns = st.lists(st.floats(-0.2, 0.2), min_size=2, max_size=200)


@settings(max_examples=300, deadline=None)
@given(returns, st.floats(-0.5, 3.0), st.floats(1e-12, 1.0))
def test_one_pass_volatility_equals_the_two_pass_definition(
    rs: list[float], first: float, scale: float
) -> None:
    """The shifted one-pass variance must give the textbook (two-pass, ddof=1) figure,
    also with an outlying first return, tiny spreads and a constant curve."""
    r = np.array([first, *rs]) * scale
    eq = 100.0 * np.cumprod(1.0 + r)
    got = _metrics(eq, periods_per_year=252.0)
    realised = eq[1:] / eq[:-1] - 1.0
    two_pass = float(np.std(realised, ddof=1)) * np.sqrt(252.0)
    assert got["volatility_ann"] == pytest.approx(two_pass, rel=1e-9, abs=1e-15)


def test_a_constant_return_curve_has_no_sharpe_ratio() -> None:
    eq = 100.0 * 1.001 ** np.arange(5000)  # returns equal up to round-off
    got = _metrics(eq, periods_per_year=252.0)
    assert got["volatility_ann"] < 1e-12
    assert np.isnan(got["sharpe"])


def test_bar_pass_reports_the_first_non_finite_values() -> None:
    t = np.arange(5, dtype=np.int64)
    eq = np.array([1.0, 2.0, np.inf, np.nan, 1.0])
    pos = np.array([0.0, np.nan, 1.0, np.inf, 0.0])
    assert _bar_pass(eq, pos, t, np.empty(0))[:2] == (2, 1)
    assert _bar_pass(np.ones(5), pos, t, np.empty(0))[:2] == (-1, 1)


def _metrics(eq: np.ndarray, **kw: object) -> dict[str, float]:
    n = len(eq)
    return compute_metrics(
        equity=eq,
        times=MONDAY + np.arange(n) * DAY,
        position=np.ones(n),
        trade_pnl=np.array([1.0]),
        trade_returns=np.array([0.01]),
        cash=100.0,
        **kw,  # type: ignore[arg-type]
    )


def test_drawdown_out_receives_the_drawdown_and_changes_no_metric() -> None:
    eq = 100.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, 500)))
    out = np.empty(500)
    with_out = _metrics(eq, drawdown_out=out)
    np.testing.assert_array_equal(out, drawdown(eq))
    assert with_out == _metrics(eq)
    assert with_out["max_drawdown"] == out.min()


@pytest.mark.parametrize("bad", [np.empty(3), np.empty(4, dtype=np.float32), np.empty((4, 1))])
def test_a_wrong_drawdown_out_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(ParameterError, match="drawdown_out: expected float64 of shape"):
        _metrics(np.ones(4), drawdown_out=bad)


lines = st.lists(
    st.one_of(st.just(np.nan), st.sampled_from([1.0, 2.0, 3.0]), st.floats(-5, 5)),
    min_size=0,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(lines, lines, st.booleans())
def test_cross_directional_equals_the_numpy_form(
    a_values: list[float], b_values: list[float], allow_short: bool
) -> None:
    n = min(len(a_values), len(b_values))
    a = np.array(a_values[:n], dtype=np.float64)
    b = np.array(b_values[:n], dtype=np.float64)
    expected = directional(crossover(a, b), crossover(b, a), allow_short)
    got = cross_directional(a, b, allow_short)
    np.testing.assert_array_equal(got, expected)  # NaN in the same places, same values


prices = st.lists(
    st.one_of(st.just(np.nan), st.floats(1.0, 1.05), st.floats(0.01, 1e6)),
    min_size=0,
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(prices, st.integers(0, 10), st.integers(2, 12), st.integers(1, 15), st.booleans())
def test_fused_sma_cross_equals_two_smas_and_their_crossings(
    values: list[float], nan_head: int, fast: int, extra: int, allow_short: bool
) -> None:
    """The one-pass kernel must give the signals of talib-identical `sma` + crossings bit
    for bit: leading NaNs (the SMAs start later), NaNs inside (they poison the running
    sums, as in TA-Lib), windows longer than the data, ties."""
    x = np.array([np.nan] * nan_head + values, dtype=np.float64)
    slow = fast + extra
    expected = directional(
        crossover(sma(x, fast), sma(x, slow)), crossover(sma(x, slow), sma(x, fast)), allow_short
    )
    got = sma_cross_signals(x, fast, slow, allow_short)
    np.testing.assert_array_equal(got, expected)


def test_side_column_is_the_default_string_column() -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    trades = np.array(
        [[0, 1, 2.0, 10.0, 11.0, 2.0, 0.0], [1, 3, -1.0, 11.0, 9.0, 2.0, 0.0]], dtype=float
    )
    frame = _trade_frame(trades, np.array([0.1, 0.18]), index)
    expected = pd.Series(_SIDES[[1, 0]], name="side")
    pd.testing.assert_series_equal(frame["side"], expected)
    assert list(frame["side"]) == ["long", "short"]
    empty = _trade_frame(np.empty((0, 7)), np.empty(0), index)
    pd.testing.assert_series_equal(empty["side"], pd.Series(_SIDES[:0], name="side"))
