"""Momentum indicators (TA-Lib's group name): RSI, MACD, Stochastic, ADX.

Each function takes numpy float arrays or pandas Series and returns the same type (a
Series keeps the input's index; several outputs come back as a tuple). Warm-up bars are
NaN exactly where TA-Lib's are; values after them are TA-Lib's (the tests compare them
with the installed `talib`).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from algotrendy.indicators import _kernels as _k
from algotrendy.indicators._common import (
    Values,
    as_float_array,
    as_float_arrays,
    check_int,
    series_index,
    wrap,
)


def rsi(x: Values, period: int = 14) -> Values:
    """Relative Strength Index (Wilder, 1978), in [0, 100].

    avg_gain and avg_loss start as the plain means of the first `period` up and down
    moves, then follow Wilder's smoothing avg = (avg * (period - 1) + today) / period;
    RSI = 100 * avg_gain / (avg_gain + avg_loss). First value on bar `period` (it needs
    `period` changes), as talib.RSI. A series that has not moved at all gives 0, which
    is what TA-Lib answers for 0/0.
    """
    p = check_int("period", period, 2)
    arr = as_float_array("x", x)
    out = np.empty(arr.shape[0])
    _k.rsi(arr, p, out)
    return cast(Values, wrap(series_index(x=x), out, "rsi"))


def macd(
    x: Values, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[Values, Values, Values]:
    """Moving Average Convergence/Divergence (Appel): (macd, signal, hist).

    macd = EMA(fast) - EMA(slow); signal = EMA(macd, signal); hist = macd - signal; EMAs
    with k = 2 / (period + 1) seeded by a simple mean, as talib.MACD computes them,
    quirks included:

    * both price EMAs are seeded on bar slow-1, the fast one with the mean of the last
      `fast` of the first `slow` values, so early values differ from
      ema(x, fast) - ema(x, slow), which seeds the fast EMA on bar fast-1;
    * all three outputs, the MACD line too, are NaN until bar (slow - 1) + (signal - 1);
    * a `fast` period larger than `slow` is swapped with it, as TA-Lib does.
    """
    f = check_int("fast", fast, 2)
    s = check_int("slow", slow, 2)
    g = check_int("signal", signal, 1)
    if s < f:
        f, s = s, f
    arr = as_float_array("x", x)
    n = arr.shape[0]
    line, sig, hist = np.empty(n), np.empty(n), np.empty(n)
    _k.macd(arr, f, s, g, line, sig, hist)
    index = series_index(x=x)
    return (
        cast(Values, wrap(index, line, "macd")),
        cast(Values, wrap(index, sig, "macd_signal")),
        cast(Values, wrap(index, hist, "macd_hist")),
    )


def stochastic(
    high: Values,
    low: Values,
    close: Values,
    fastk_period: int = 5,
    slowk_period: int = 3,
    slowd_period: int = 3,
) -> tuple[Values, Values]:
    """Slow stochastic oscillator (Lane): (slowk, slowd), in [0, 100].

    fast %K = 100 * (close - lowest low) / (highest high - lowest low) over the last
    `fastk_period` bars (0 when that range is zero); slow %K = SMA(fast %K, slowk_period);
    slow %D = SMA(slow %K, slowd_period). TA-Lib's STOCH with its defaults (5, 3, SMA,
    3, SMA); both outputs are NaN until bar (fastk-1) + (slowk-1) + (slowd-1).
    """
    fk = check_int("fastk_period", fastk_period, 1)
    sk = check_int("slowk_period", slowk_period, 1)
    sd = check_int("slowd_period", slowd_period, 1)
    h, lo, c = as_float_arrays(high=high, low=low, close=close)
    index = series_index(high=high, low=low, close=close)
    n = c.shape[0]
    slowk, slowd = np.empty(n), np.empty(n)
    _k.stochastic(h, lo, c, fk, sk, sd, slowk, slowd)
    return (
        cast(Values, wrap(index, slowk, "slowk")),
        cast(Values, wrap(index, slowd, "slowd")),
    )


def adx(high: Values, low: Values, close: Values, period: int = 14) -> Values:
    """Average Directional Movement Index (Wilder, 1978), in [0, 100].

    +DM/-DM (the part of today's range beyond yesterday's, the larger side only) and the
    true range are Wilder-smoothed as running sums; +DI/-DI = 100 * DM / TR;
    DX = 100 * |DI+ - DI-| / (DI+ + DI-); the first ADX is the mean of the first `period`
    DX values and later ones ADX = (ADX_prev * (period - 1) + DX) / period. First value on
    bar 2 * period - 1, as talib.ADX. A bar without any range keeps the previous ADX.
    """
    p = check_int("period", period, 2)
    h, lo, c = as_float_arrays(high=high, low=low, close=close)
    index = series_index(high=high, low=low, close=close)
    out = np.empty(c.shape[0])
    _k.adx(h, lo, c, p, out)
    return cast(Values, wrap(index, out, "adx"))
