"""sma, ema, bollinger_bands against TA-Lib (real data, random data, 1M bars) and
against independent textbook computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from talib_reference import assert_matches, call_ours, call_talib, random_ohlcv

from algotrendy.indicators import bollinger_bands, ema, sma

PARAMS = {
    "sma": [{"period": p} for p in (1, 2, 5, 30, 200)],
    "ema": [{"period": p} for p in (1, 2, 12, 30, 200)],
    "bollinger_bands": [
        {"period": 5, "nbdev_up": 2.0, "nbdev_dn": 2.0},
        {"period": 20, "nbdev_up": 2.0, "nbdev_dn": 2.0},
        {"period": 20, "nbdev_up": 1.5, "nbdev_dn": 2.5},
        {"period": 50, "nbdev_up": 3.0, "nbdev_dn": -1.0},
    ],
}
CASES = [(name, params) for name, sets in PARAMS.items() for params in sets]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_matches_talib_on_real_data(
    market: dict[str, np.ndarray], name: str, params: dict[str, float]
) -> None:
    assert_matches(call_ours(name, market, params), call_talib(name, market, params))


@settings(deadline=None, max_examples=100)
@given(bars=random_ohlcv(), period=st.integers(1, 40), name=st.sampled_from(["sma", "ema"]))
def test_moving_averages_match_talib_on_random_data(
    bars: dict[str, np.ndarray], period: int, name: str
) -> None:
    params = {"period": period}
    assert_matches(call_ours(name, bars, params), call_talib(name, bars, params))


@settings(deadline=None, max_examples=100)
@given(
    bars=random_ohlcv(),
    period=st.integers(2, 40),
    up=st.sampled_from([2.0, 1.0, 0.5, 3.25]),
    dn=st.sampled_from([2.0, 1.0, 0.0, -1.5]),
)
def test_bollinger_matches_talib_on_random_data(
    bars: dict[str, np.ndarray], period: int, up: float, dn: float
) -> None:
    params = {"period": period, "nbdev_up": up, "nbdev_dn": dn}
    # Bands are price-scaled: compare them relative to the data's own scale, so a band
    # that crosses zero is not held to a relative bound on a value of ~0.
    scale = float(np.max(np.abs(bars["x"]), initial=0.0))
    ours, ref = (
        call_ours("bollinger_bands", bars, params),
        call_talib("bollinger_bands", bars, params),
    )
    assert_matches(ours, ref, atol=1e-12 * scale)


def test_sma_is_the_window_mean(goog_arrays: dict[str, np.ndarray]) -> None:
    x = goog_arrays["x"]
    expected = sliding_window_view(x, 10).mean(axis=1)
    out = sma(x, 10)
    assert np.isnan(out[:9]).all()
    np.testing.assert_allclose(out[9:], expected, rtol=1e-12)


def test_ema_is_seeded_with_the_sma_then_recursive() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 0.0])
    k = 2.0 / (3 + 1)
    seed = (1.0 + 2.0 + 3.0) / 3
    e3 = seed + k * (4.0 - seed)
    e4 = e3 + k * (10.0 - e3)
    e5 = e4 + k * (0.0 - e4)
    np.testing.assert_allclose(ema(x, 3), [np.nan, np.nan, seed, e3, e4, e5], rtol=1e-15)


def test_bollinger_uses_the_population_std(goog_arrays: dict[str, np.ndarray]) -> None:
    x = goog_arrays["x"]
    upper, middle, lower = bollinger_bands(x, 20, 2.0, 1.0)
    windows = sliding_window_view(x, 20)
    sd = windows.std(axis=1, ddof=0)
    np.testing.assert_allclose(middle[19:], windows.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(upper[19:] - middle[19:], 2.0 * sd, rtol=1e-7)
    np.testing.assert_allclose(middle[19:] - lower[19:], sd, rtol=1e-7)


def test_bollinger_stays_accurate_far_from_zero() -> None:
    """Prices near 1e6 moving by 1e-3: E[x^2] - E[x]^2 would lose every digit (squares
    ~1e12, variance ~1e-6); the shifted sums keep the deviation as exact as a two-pass
    computation, over enough bars to go through several reseeds."""
    rng = np.random.default_rng(7)
    x = 1e6 + np.cumsum(rng.normal(0.0, 1e-3, 5_000))
    upper, middle, _ = bollinger_bands(x, 20, 1.0, 1.0)
    sd = sliding_window_view(x, 20).std(axis=1, ddof=0)
    # upper - middle is sd up to the rounding of a 1e6 sum (1.2e-10 / ~3e-3 relative).
    np.testing.assert_allclose(upper[19:] - middle[19:], sd, rtol=1e-6)
    assert_matches((upper, middle), talib.BBANDS(x, 20, 1.0, 1.0, 0)[:2])


def test_bollinger_recovers_after_a_huge_value_leaves_the_window() -> None:
    x = np.concatenate([np.linspace(1.0, 2.0, 50), [1e12], np.linspace(2.0, 1.0, 100)])
    upper, middle, _ = bollinger_bands(x, 10, 1.0, 1.0)
    sd = sliding_window_view(x, 10).std(axis=1, ddof=0)  # sd[j]: window ending on bar j+9
    # The spike (bar 50) is in the windows ending on bars 50..59. The middle band is
    # TA-Lib's running sum and keeps the spike's rounding residue exactly as talib.SMA
    # does; the deviation is rebuilt and is exact again from bar 60.
    np.testing.assert_array_equal(middle, talib.SMA(x, 10))
    np.testing.assert_allclose((upper - middle)[60:], sd[51:], rtol=1e-9)


def test_flat_window_has_zero_width() -> None:
    x = np.array([5.0] * 30 + [5.5, 4.5] + [5.0] * 30)
    upper, middle, lower = bollinger_bands(x, 5)
    flat = np.r_[4:30, 36:62]
    np.testing.assert_array_equal(upper[flat], middle[flat])
    np.testing.assert_array_equal(lower[flat], middle[flat])
    assert np.all(upper[30:36] > middle[30:36])


@pytest.mark.parametrize("name", ["sma", "ema"])
def test_moving_averages_equal_talib_on_a_million_bars(name: str) -> None:
    """The running sum over 1M bars drifts exactly like TA-Lib's (no cumsum)."""
    rng = np.random.default_rng(1)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, 1_000_000)))
    data = {"x": x}
    assert_matches(call_ours(name, data, {"period": 30}), call_talib(name, data, {"period": 30}))


def test_bollinger_equals_talib_on_a_million_bars() -> None:
    rng = np.random.default_rng(2)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, 1_000_000)))
    assert_matches(bollinger_bands(x, 20), talib.BBANDS(x, 20, 2.0, 2.0, 0))


def test_pandas_in_pandas_out(goog_arrays: dict[str, np.ndarray]) -> None:
    idx = pd.date_range("2020-01-01", periods=len(goog_arrays["x"]), freq="D", tz="UTC")
    s = pd.Series(goog_arrays["x"], index=idx)
    out = sma(s, 5)
    assert isinstance(out, pd.Series)
    assert out.index.equals(idx)
    np.testing.assert_array_equal(out.to_numpy(), sma(goog_arrays["x"], 5))
    bands = bollinger_bands(s)
    assert isinstance(bands, tuple)
    assert [b.name for b in bands] == ["bb_upper", "bb_middle", "bb_lower"]
    assert all(isinstance(b, pd.Series) and b.index.equals(idx) for b in bands)
