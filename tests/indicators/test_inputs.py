"""What the indicators accept and refuse (algotrendy.indicators._common): numpy, pandas,
lists; NaN handling like TA-Lib's wrapper; one clear ParameterError per bad input."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib

from algotrendy.errors import ParameterError
from algotrendy.indicators import (
    adx,
    atr,
    bollinger_bands,
    ema,
    macd,
    obv,
    rsi,
    sma,
    stochastic,
    vwap,
)

X = np.linspace(10.0, 20.0, 60)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sma(X, 0), "period must be >= 1, got 0"),
        (lambda: ema(X, -3), "period must be >= 1, got -3"),
        (lambda: rsi(X, 1), "period must be >= 2, got 1"),
        (lambda: bollinger_bands(X, 1), "period must be >= 2, got 1"),
        (lambda: macd(X, fast=1), "fast must be >= 2, got 1"),
        (lambda: macd(X, slow=1), "slow must be >= 2, got 1"),
        (lambda: macd(X, signal=0), "signal must be >= 1, got 0"),
        (lambda: stochastic(X, X, X, slowd_period=0), "slowd_period must be >= 1, got 0"),
        (lambda: adx(X, X, X, 1), "period must be >= 2, got 1"),
        (lambda: atr(X, X, X, 0), "period must be >= 1, got 0"),
        (lambda: vwap(X, X, X, X, 0), "period must be >= 1, got 0"),
        (lambda: sma(X, 2.5), "period must be an integer >= 1, got 2.5"),
        (lambda: sma(X, "10"), "period must be an integer >= 1, got '10'"),
        (lambda: sma(X, True), "period must be an integer >= 1, got True"),
        (lambda: bollinger_bands(X, 20, float("nan")), "nbdev_up must be finite, got nan"),
        (lambda: bollinger_bands(X, 20, 2.0, "2"), "nbdev_dn must be a number, got '2'"),
        (lambda: sma(X.reshape(6, 10), 3), "x must be 1-D, got an array of shape (6, 10)"),
        (lambda: sma(3.0, 3), "x must be 1-D, got an array of shape ()"),
        (lambda: sma(["a", "b"], 1), "x must be numeric, got list"),
        (
            lambda: atr(X, X[:-1], X, 14),
            "high, low, close must have the same length, got high=60, low=59, close=60",
        ),
        (
            lambda: obv(X, X[:10]),
            "close, volume must have the same length, got close=60, volume=10",
        ),
    ],
)
def test_bad_input_names_argument_and_value(call: Any, message: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        call()


def test_numpy_integer_period_and_int_or_list_input() -> None:
    ints = np.arange(1, 40)
    expected = sma(ints.astype(np.float64), 5)
    np.testing.assert_array_equal(sma(ints, np.int64(5)), expected)
    np.testing.assert_array_equal(sma(list(ints), 5), expected)


def test_noncontiguous_input_is_accepted() -> None:
    wide = np.linspace(1.0, 2.0, 80)
    np.testing.assert_array_equal(ema(wide[::2], 5), ema(wide[::2].copy(), 5))


def test_empty_and_too_short_inputs() -> None:
    assert sma(np.array([]), 5).shape == (0,)
    assert all(o.shape == (0,) for o in macd(np.array([])))
    assert np.isnan(rsi(X[:14], 14)).all()
    assert all(np.isnan(o).all() for o in stochastic(X[:8], X[:8], X[:8]))
    assert np.isnan(adx(X[:27], X[:27], X[:27], 14)).all()


def test_leading_nans_are_skipped_like_talib() -> None:
    x = X.copy()
    x[:5] = np.nan
    h, lo = x + 1.0, x - 1.0
    lo[5] = np.nan  # first complete bar of (high, low, close) is 6
    np.testing.assert_array_equal(sma(x, 3), talib.SMA(x, 3))
    np.testing.assert_array_equal(ema(x, 3), talib.EMA(x, 3))
    np.testing.assert_array_equal(rsi(x, 3), talib.RSI(x, 3))
    np.testing.assert_array_equal(atr(h, lo, x, 3), talib.ATR(h, lo, x, 3))
    np.testing.assert_array_equal(adx(h, lo, x, 3), talib.ADX(h, lo, x, 3))
    np.testing.assert_array_equal(obv(x, np.ones(60)), talib.OBV(x, np.ones(60)))
    for ours, ref in zip(stochastic(h, lo, x), talib.STOCH(h, lo, x), strict=True):
        np.testing.assert_array_equal(ours, ref)
    assert np.isnan(sma(x, 3)[:7]).all()
    assert not np.isnan(sma(x, 3)[7])


def test_a_later_nan_propagates_like_talib() -> None:
    x = X.copy()
    x[30] = np.nan
    for ours, ref in [
        (sma(x, 5), talib.SMA(x, 5)),
        (ema(x, 5), talib.EMA(x, 5)),
        (rsi(x, 5), talib.RSI(x, 5)),
        (obv(x, np.ones(60)), talib.OBV(x, np.ones(60))),
    ]:
        np.testing.assert_array_equal(ours, ref)


def test_all_nan_input_gives_all_nan() -> None:
    nan = np.full(20, np.nan)
    assert np.isnan(sma(nan, 3)).all()
    assert all(np.isnan(o).all() for o in bollinger_bands(nan, 3))


def test_series_in_series_out_with_index_and_names() -> None:
    idx = pd.date_range("2024-01-01", periods=60, freq="h", tz="UTC")
    s = pd.Series(X, index=idx)
    out = rsi(s, 5)
    assert isinstance(out, pd.Series)
    assert out.index is idx or out.index.equals(idx)
    assert out.name == "rsi"
    lines = macd(s, 3, 6, 2)
    assert [o.name for o in lines] == ["macd", "macd_signal", "macd_hist"]
    assert all(o.index.equals(idx) for o in lines)
    k, d = stochastic(s + 1, s - 1, s)
    assert (k.name, d.name) == ("slowk", "slowd")


def test_series_with_nullable_dtype_and_pd_na() -> None:
    s = pd.Series([1.0, 2.0, None, 4.0, 5.0, 6.0], dtype="Float64")
    out = sma(s, 2)
    expected = talib.SMA(np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0]), 2)
    np.testing.assert_array_equal(out.to_numpy(dtype=np.float64, na_value=np.nan), expected)


def test_mixed_series_and_array_gives_series() -> None:
    s = pd.Series(X, index=pd.RangeIndex(100, 160))
    out = atr(s + 1.0, (X - 1.0), s, 5)
    assert isinstance(out, pd.Series)
    assert out.index.equals(s.index)


def test_series_on_different_indexes_are_refused() -> None:
    a = pd.Series(X)
    b = pd.Series(X, index=pd.RangeIndex(1, 61))
    with pytest.raises(ParameterError, match="low and high must share the same index"):
        atr(a, b, a, 5)


def test_input_is_not_modified() -> None:
    x = X.copy()
    bollinger_bands(x)
    macd(x)
    np.testing.assert_array_equal(x, X)


def test_kernels_still_compile_where_numba_cannot_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only deployment makes numba refuse cache=True at decoration time."""
    import numba

    from algotrendy.indicators import _kernels

    real_njit = numba.njit

    def njit(**options: Any) -> Any:
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return real_njit(**options)

    monkeypatch.setattr(numba, "njit", njit)

    def double(a: float) -> float:
        return a * 2.0

    assert _kernels.jit(double)(2.5) == 5.0
