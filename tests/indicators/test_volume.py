"""obv against TA-Lib; vwap (which TA-Lib lacks) against pandas' rolling/cumulative
sums, exact sums, and a tiny example computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from talib_reference import assert_matches, call_ours, call_talib, random_ohlcv

from algotrendy.indicators import obv, vwap


def test_obv_matches_talib_on_real_data(market: dict[str, np.ndarray]) -> None:
    assert_matches(call_ours("obv", market, {}), call_talib("obv", market, {}))


@settings(deadline=None, max_examples=100)
@given(bars=random_ohlcv())
def test_obv_matches_talib_on_random_data(bars: dict[str, np.ndarray]) -> None:
    assert_matches(call_ours("obv", bars, {}), call_talib("obv", bars, {}))


def test_obv_by_hand() -> None:
    close = np.array([10.0, 11.0, 11.0, 10.0, 12.0])
    volume = np.array([100.0, 200.0, 300.0, 400.0, 500.0])
    # Starts at the first volume (TA-Lib), +200 up, unchanged, -400 down, +500 up.
    np.testing.assert_array_equal(obv(close, volume), [100.0, 300.0, 300.0, -100.0, 400.0])


# ---------------------------------------------------------------------------- VWAP

# Four bars: (high, low, close, volume) -> typical price (h + l + c) / 3.
HAND = {
    "high": np.array([12.0, 13.0, 15.0, 11.0]),  # tp: 10, 12, 12, 10
    "low": np.array([8.0, 11.0, 9.0, 9.0]),
    "close": np.array([10.0, 12.0, 12.0, 10.0]),
    "volume": np.array([100.0, 200.0, 0.0, 50.0]),
}


def test_vwap_cumulative_by_hand() -> None:
    expected = [
        10.0,  # 10*100 / 100
        (1000.0 + 2400.0) / 300.0,  # 11.33..
        (1000.0 + 2400.0 + 0.0) / 300.0,  # no volume: unchanged
        (1000.0 + 2400.0 + 0.0 + 500.0) / 350.0,  # 11.14..
    ]
    np.testing.assert_allclose(
        vwap(HAND["high"], HAND["low"], HAND["close"], HAND["volume"]), expected, rtol=1e-15
    )


def test_vwap_rolling_by_hand() -> None:
    expected = [np.nan, 3400.0 / 300.0, 2400.0 / 200.0, 500.0 / 50.0]
    np.testing.assert_allclose(
        vwap(HAND["high"], HAND["low"], HAND["close"], HAND["volume"], period=2),
        expected,
        rtol=1e-15,
    )


def _pandas_vwap(bars: dict[str, np.ndarray], period: int | None) -> np.ndarray:
    """The straightforward computation: pandas sums of tp * v and of v, each window summed
    afresh (rolling `.sum()` adds and subtracts as it slides, which leaves a residue of the
    largest value that passed through: volumes [1e-3, 65536, 0, 1e-3] gave a last window
    off by 7e-9 relative, a wrong reference, not a wrong VWAP)."""
    h, lo, c, v = (pd.Series(bars[k]) for k in ("high", "low", "close", "volume"))
    pv = (h + lo + c) / 3.0 * v
    v = v.where(pv.notna())  # a bar with a NaN input counts in neither sum
    if period is None:
        return (pv.cumsum() / v.cumsum()).to_numpy()
    return (
        pv.rolling(period).apply(np.sum, raw=True) / v.rolling(period).apply(np.sum, raw=True)
    ).to_numpy()


def _call(bars: dict[str, np.ndarray], period: int | None) -> np.ndarray:
    return vwap(bars["high"], bars["low"], bars["close"], bars["volume"], period)


@pytest.mark.parametrize("period", [None, 1, 5, 20, 390])
def test_vwap_matches_pandas_on_real_data(
    market: dict[str, np.ndarray], period: int | None
) -> None:
    assert_matches(_call(market, period), _pandas_vwap(market, period))


@settings(deadline=None, max_examples=100)
@given(bars=random_ohlcv(), period=st.one_of(st.none(), st.integers(1, 30)))
def test_vwap_matches_pandas_on_random_data(
    bars: dict[str, np.ndarray], period: int | None
) -> None:
    # Compared on the price scale: tp * v / v rounds relative to the prices, not to each VWAP.
    scale = float(np.max(np.abs(bars["close"]), initial=0.0))
    ours, ref = _call(bars, period), _pandas_vwap(bars, period)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * scale)


def test_vwap_nan_bars_are_skipped_like_pandas() -> None:
    bars = {k: v.copy() for k, v in HAND.items()}
    bars = {k: np.concatenate([v, v]) for k, v in bars.items()}
    bars["close"][1] = np.nan
    bars["volume"][5] = np.nan
    for period in (None, 2, 3):
        ours, ref = _call(bars, period), _pandas_vwap(bars, period)
        np.testing.assert_allclose(ours, ref, rtol=1e-15)
        assert np.isnan(ours[1])
        assert np.isnan(ours[5])


def test_vwap_without_volume_is_nan() -> None:
    bars = {k: v.copy() for k, v in HAND.items()}
    bars["volume"][:] = 0.0
    assert np.isnan(_call(bars, None)).all()
    assert np.isnan(_call(bars, 2)).all()


def test_vwap_rolling_forgets_a_huge_bar_exactly() -> None:
    """A bar with 1e12 times the usual volume passes through a 5-bar window: a plain
    running sum (or a cumsum difference) keeps ~1e-4 of absolute residue afterwards;
    the compensated sums give the exactly rounded sums again."""
    rng = np.random.default_rng(3)
    n = 300
    close = 100.0 + np.cumsum(rng.normal(0.0, 1.0, n))
    high, low = close + 0.5, close - 0.5
    volume = rng.uniform(1.0, 2.0, n)
    volume[100] = 1e12
    out = vwap(high, low, close, volume, period=5)
    tp = (high + low + close) / 3.0
    for i in range(105, n):
        window = slice(i - 4, i + 1)
        exact = math.fsum(tp[window] * volume[window]) / math.fsum(volume[window])
        assert out[i] == pytest.approx(exact, rel=1e-14)


def test_vwap_pandas_in_pandas_out() -> None:
    idx = pd.date_range("2024-01-01 09:30", periods=4, freq="min", tz="UTC")
    s = {k: pd.Series(v, index=idx) for k, v in HAND.items()}
    out = vwap(s["high"], s["low"], s["close"], s["volume"], period=2)
    assert isinstance(out, pd.Series)
    assert out.index.equals(idx)
    assert out.name == "vwap"
