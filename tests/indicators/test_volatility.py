"""atr against TA-Lib (real and random data) and against the textbook true range."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from talib_reference import assert_matches, call_ours, call_talib, random_ohlcv

from algotrendy.indicators import atr


@pytest.mark.parametrize("period", [1, 2, 14, 50])
def test_matches_talib_on_real_data(market: dict[str, np.ndarray], period: int) -> None:
    params = {"period": period}
    assert_matches(call_ours("atr", market, params), call_talib("atr", market, params))


@settings(deadline=None, max_examples=100)
@given(bars=random_ohlcv(), period=st.integers(1, 40))
def test_matches_talib_on_random_data(bars: dict[str, np.ndarray], period: int) -> None:
    params = {"period": period}
    assert_matches(call_ours("atr", bars, params), call_talib("atr", bars, params))


def test_period_one_is_the_true_range(goog_arrays: dict[str, np.ndarray]) -> None:
    h, lo, c = goog_arrays["high"], goog_arrays["low"], goog_arrays["close"]
    tr = np.maximum.reduce([h[1:] - lo[1:], np.abs(h[1:] - c[:-1]), np.abs(lo[1:] - c[:-1])])
    out = atr(h, lo, c, 1)
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], tr)


def test_wilder_smoothing_by_hand() -> None:
    # True ranges from bar 1: 2, 4 (gap up: |high - prev close|), 3, 1.
    high = np.array([11.0, 11.0, 14.0, 14.0, 12.5])
    low = np.array([9.0, 9.0, 12.0, 11.0, 11.5])
    close = np.array([10.0, 10.0, 14.0, 12.0, 12.0])
    seed = (2.0 + 4.0) / 2
    a3 = (seed * 1 + 3.0) / 2
    a4 = (a3 * 1 + 1.0) / 2
    np.testing.assert_allclose(atr(high, low, close, 2), [np.nan, np.nan, seed, a3, a4], rtol=1e-15)
