"""rsi, macd, stochastic, adx against TA-Lib (real and random data) and against
independent textbook computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from talib_reference import assert_matches, call_ours, call_talib, random_ohlcv

from algotrendy.indicators import adx, ema, macd, rsi, stochastic

PARAMS = {
    "rsi": [{"period": p} for p in (2, 6, 14, 50)],
    "macd": [
        {"fast": 12, "slow": 26, "signal": 9},
        {"fast": 5, "slow": 35, "signal": 5},
        {"fast": 2, "slow": 3, "signal": 1},
        {"fast": 10, "slow": 10, "signal": 3},
        {"fast": 26, "slow": 12, "signal": 9},
    ],
    "stochastic": [
        {"fastk_period": 5, "slowk_period": 3, "slowd_period": 3},
        {"fastk_period": 14, "slowk_period": 3, "slowd_period": 3},
        {"fastk_period": 1, "slowk_period": 1, "slowd_period": 1},
        {"fastk_period": 9, "slowk_period": 1, "slowd_period": 5},
        {"fastk_period": 21, "slowk_period": 7, "slowd_period": 7},
    ],
    "adx": [{"period": p} for p in (2, 7, 14, 30)],
}
CASES = [(name, params) for name, sets in PARAMS.items() for params in sets]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_matches_talib_on_real_data(
    market: dict[str, np.ndarray], name: str, params: dict[str, int]
) -> None:
    assert_matches(call_ours(name, market, params), call_talib(name, market, params))


@settings(deadline=None, max_examples=100)
@given(bars=random_ohlcv(), period=st.integers(2, 40))
def test_rsi_matches_talib_on_random_data(bars: dict[str, np.ndarray], period: int) -> None:
    assert_matches(
        call_ours("rsi", bars, {"period": period}), call_talib("rsi", bars, {"period": period})
    )


@settings(deadline=None, max_examples=100)
@given(
    bars=random_ohlcv(),
    fast=st.integers(2, 30),
    slow=st.integers(2, 40),
    signal=st.integers(1, 15),
)
def test_macd_matches_talib_on_random_data(
    bars: dict[str, np.ndarray], fast: int, slow: int, signal: int
) -> None:
    params = {"fast": fast, "slow": slow, "signal": signal}
    # MACD and its histogram cross zero, where a relative bound means nothing: compare
    # relative to the price scale there.
    scale = float(np.max(np.abs(bars["x"]), initial=0.0))
    assert_matches(
        call_ours("macd", bars, params), call_talib("macd", bars, params), atol=1e-12 * scale
    )


@settings(deadline=None, max_examples=100)
@given(
    bars=random_ohlcv(),
    fastk=st.integers(1, 20),
    slowk=st.integers(1, 8),
    slowd=st.integers(1, 8),
)
def test_stochastic_matches_talib_on_random_data(
    bars: dict[str, np.ndarray], fastk: int, slowk: int, slowd: int
) -> None:
    params = {"fastk_period": fastk, "slowk_period": slowk, "slowd_period": slowd}
    assert_matches(
        call_ours("stochastic", bars, params), call_talib("stochastic", bars, params), atol=1e-9
    )


@settings(deadline=None, max_examples=100)
@given(bars=random_ohlcv(), period=st.integers(2, 30))
def test_adx_matches_talib_on_random_data(bars: dict[str, np.ndarray], period: int) -> None:
    assert_matches(
        call_ours("adx", bars, {"period": period}), call_talib("adx", bars, {"period": period})
    )


# ------------------------------------------------------------------- independent checks


def _wilder_rsi(x: list[float], period: int) -> list[float]:
    """Textbook RSI, written out plainly (Wilder 1978)."""
    changes = [b - a for a, b in itertools.pairwise(x)]
    gain = sum(max(c, 0.0) for c in changes[:period]) / period
    loss = sum(max(-c, 0.0) for c in changes[:period]) / period
    out = [float("nan")] * period + [100.0 * gain / (gain + loss)]
    for c in changes[period:]:
        gain = (gain * (period - 1) + max(c, 0.0)) / period
        loss = (loss * (period - 1) + max(-c, 0.0)) / period
        out.append(100.0 * gain / (gain + loss))
    return out


def test_rsi_is_wilders(goog_arrays: dict[str, np.ndarray]) -> None:
    x = goog_arrays["x"][:400]
    np.testing.assert_allclose(rsi(x, 14), _wilder_rsi(list(x), 14), rtol=1e-12)


def test_rsi_extremes() -> None:
    rising = np.arange(1.0, 40.0)
    assert np.all(rsi(rising, 14)[14:] == 100.0)
    assert np.all(rsi(-rising, 14)[14:] == 0.0)
    flat = np.full(40, 3.0)  # 0/0: TA-Lib (0.8.1) answers 0, and so do we
    assert np.all(rsi(flat, 14)[14:] == 0.0)
    assert np.all(talib.RSI(flat, 14)[14:] == 0.0)


def test_rsi_bounded_on_real_data(market: dict[str, np.ndarray]) -> None:
    r = rsi(market["x"], 14)
    valid = r[~np.isnan(r)]
    assert valid.size > 0
    assert np.all((valid >= 0.0) & (valid <= 100.0))


def test_macd_seeds_both_emas_on_the_slow_bar(goog_arrays: dict[str, np.ndarray]) -> None:
    """TA-Lib's quirk, computed independently: the fast EMA starts on bar slow-1 from the
    mean of the last `fast` of the first `slow` values, not on bar fast-1."""
    x = goog_arrays["x"][:300]
    fast, slow, signal = 12, 26, 9

    def ema_from(seed_bar: int, period: int) -> np.ndarray:
        k = 2.0 / (period + 1)
        out = np.full(len(x), np.nan)
        out[seed_bar] = x[seed_bar - period + 1 : seed_bar + 1].mean()
        for i in range(seed_bar + 1, len(x)):
            out[i] = out[i - 1] + k * (x[i] - out[i - 1])
        return out

    line = ema_from(slow - 1, fast) - ema_from(slow - 1, slow)
    k = 2.0 / (signal + 1)
    first = slow - 1 + signal - 1
    sig = np.full(len(x), np.nan)
    sig[first] = line[slow - 1 : first + 1].mean()
    for i in range(first + 1, len(x)):
        sig[i] = sig[i - 1] + k * (line[i] - sig[i - 1])
    ours_line, ours_sig, ours_hist = macd(x, fast, slow, signal)
    assert np.isnan(ours_line[:first]).all()
    np.testing.assert_allclose(ours_line[first:], line[first:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours_sig[first:], sig[first:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours_hist[first:], (line - sig)[first:], rtol=1e-9, atol=1e-12)
    # ...which is why it differs from the difference of two talib-style EMAs at first,
    # the gap fading as the fast EMA forgets its seed.
    naive = ema(x, fast) - ema(x, slow)
    assert abs(ours_line[first] - naive[first]) > 1e-6
    np.testing.assert_allclose(ours_line[-10:], naive[-10:], rtol=1e-9, atol=1e-9)


def test_macd_swaps_fast_and_slow_like_talib(goog_arrays: dict[str, np.ndarray]) -> None:
    x = goog_arrays["x"]
    for ours, swapped in zip(macd(x, 26, 12, 9), macd(x, 12, 26, 9), strict=True):
        np.testing.assert_array_equal(ours, swapped)


def test_stochastic_is_lanes(goog_arrays: dict[str, np.ndarray]) -> None:
    h, lo, c = goog_arrays["high"], goog_arrays["low"], goog_arrays["close"]
    hh = sliding_window_view(h, 5).max(axis=1)
    ll = sliding_window_view(lo, 5).min(axis=1)
    fastk = 100.0 * (c[4:] - ll) / (hh - ll)
    slowk = sliding_window_view(fastk, 3).mean(axis=1)
    slowd = sliding_window_view(slowk, 3).mean(axis=1)
    k, d = stochastic(h, lo, c)
    assert np.isnan(k[:8]).all()
    assert np.isnan(d[:8]).all()
    np.testing.assert_allclose(k[8:], slowk[2:], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(d[8:], slowd, rtol=1e-9, atol=1e-9)


def test_stochastic_of_a_flat_window_is_zero() -> None:
    flat = np.full(20, 7.0)
    k, d = stochastic(flat, flat, flat)
    assert np.all(k[8:] == 0.0)
    assert np.all(d[8:] == 0.0)


def test_adx_of_a_steady_uptrend_is_100() -> None:
    """Every bar's high and low above the previous bar's: only +DM, so DX = 100."""
    base = np.arange(60.0)
    assert np.all(adx(base + 1.0, base - 1.0, base, 14)[27:] == 100.0)


def test_adx_bounded_on_real_data(market: dict[str, np.ndarray]) -> None:
    a = adx(market["high"], market["low"], market["close"], 14)
    valid = a[~np.isnan(a)]
    assert valid.size > 0
    assert np.all((valid >= 0.0) & (valid <= 100.0))
