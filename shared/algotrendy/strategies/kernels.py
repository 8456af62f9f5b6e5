"""The built-in strategies' numeric code: signal arrays from price arrays.

Apart from `builtin`, which declares the strategies (names, parameter models, warm-up),
because validating a sweep's grid needs only those, and the plan step (a Lambda of its
own) should not load numpy, numba and the indicators to do it. Each strategy's
`signals` imports its function from here when called.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from algotrendy.compiled import HAVE_NUMBA, njit
from algotrendy.indicators import bollinger_bands, macd, rsi, sma

FloatArray = npt.NDArray[np.float64]


def crossover(a: FloatArray, b: FloatArray) -> npt.NDArray[np.bool_]:
    """True on bars where `a` crosses above `b`: a[i-1] < b[i-1] and a[i] > b[i].

    Strict on both bars, exactly as backtesting.py's `crossover`, so a touch is not a cross.
    NaN compares False, so warm-up bars never signal.
    """
    out = np.zeros(a.shape[0], dtype=np.bool_)
    if a.shape[0] > 1:
        out[1:] = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    return out


def directional(
    up: npt.NDArray[np.bool_], down: npt.NDArray[np.bool_], allow_short: bool
) -> FloatArray:
    """+1 where `up`, -1 (or 0 when shorts are off) where `down`, NaN elsewhere."""
    out = np.full(up.shape[0], np.nan)
    out[down] = -1.0 if allow_short else 0.0
    out[up] = 1.0
    return out


def _cross_directional_py(a: FloatArray, b: FloatArray, down: float, out: FloatArray) -> None:
    """`directional(crossover(a, b), crossover(b, a), ...)` in one pass: +1 where `a`
    crosses above `b`, `down` where it crosses below, NaN elsewhere (same strict
    comparisons, so NaN and touches never signal)."""
    n = a.shape[0]
    if n == 0:
        return
    a0 = a[0]
    b0 = b[0]
    out[0] = np.nan
    for i in range(1, n):
        a1 = a[i]
        b1 = b[i]
        signal = np.nan  # one store per bar (see `_sma_cross_py`)
        if a0 < b0 and a1 > b1:
            signal = 1.0
        elif b0 < a0 and b1 > a1:
            signal = down
        out[i] = signal
        a0 = a1
        b0 = b1


_cross_directional_kernel = njit(_cross_directional_py, nogil=True)


def cross_directional(a: FloatArray, b: FloatArray, allow_short: bool) -> FloatArray:
    """Signals of a line crossing another: long on the cross up, short (or flat) on the
    cross down. Compiled, one pass without the three temporaries of the numpy form
    (~3x faster on 1M bars); without numba the numpy form, which gives the same array."""
    if not HAVE_NUMBA:
        return directional(crossover(a, b), crossover(b, a), allow_short)
    out = np.empty(a.shape[0])
    _cross_directional_kernel(a, b, -1.0 if allow_short else 0.0, out)
    return out


def _sma_cross_py(x: FloatArray, fast: int, slow: int, down: float, out: FloatArray) -> None:
    """`cross_directional(sma(x, fast), sma(x, slow), ...)` in one pass over `x`.

    Why fused: the two SMAs' running sums and divisions overlap in one loop, and neither
    SMA is written to memory (2.6 ms per 1M bars instead of 3.7). The arithmetic is
    `indicators._kernels.sma`'s, operation for operation (window sums started at the first
    non-NaN value, `sum / period` emitted, then the leaving value subtracted), so the
    signals equal the two-step form's bit for bit (tests/backtest/test_fast_paths.py).
    """
    n = x.shape[0]
    b = n - 1  # first non-NaN bar, n - 1 when there is none (as `first_valid1`)
    for i in range(n):
        if x[i] == x[i]:
            b = i
            break
    start_f = b + fast - 1
    start_s = b + slow - 1
    sum_f = 0.0
    sum_s = 0.0
    f0 = np.nan
    s0 = np.nan
    # Warm-up: the slow SMA is still NaN, so no bar can signal.
    warm = min(start_s, n)
    for i in range(warm):
        out[i] = np.nan
        if i >= b:
            sum_f += x[i]
            sum_s += x[i]
            if i >= start_f:
                f0 = sum_f / fast
                sum_f -= x[i - fast + 1]
    per_f = float(fast)  # the divisor `sum / period` uses: the same quotient
    per_s = float(slow)
    for i in range(warm, n):
        v = x[i]
        sum_f += v
        sum_s += v
        f1 = sum_f / per_f
        s1 = sum_s / per_s
        sum_f -= x[i - fast + 1]
        sum_s -= x[i - slow + 1]
        signal = np.nan  # one store per bar: a store in each branch costs ~40% more
        if f0 < s0 and f1 > s1:
            signal = 1.0
        elif s0 < f0 and s1 > f1:
            signal = down
        out[i] = signal
        f0 = f1
        s0 = s1


_sma_cross_kernel = njit(_sma_cross_py, nogil=True)


def sma_cross_signals(x: FloatArray, fast: int, slow: int, allow_short: bool) -> FloatArray:
    """Signals of SMA(fast) crossing SMA(slow); compiled in one pass, or without numba the
    two-step numpy form, which gives the same array."""
    if not HAVE_NUMBA:
        return directional(
            crossover(sma(x, fast), sma(x, slow)),
            crossover(sma(x, slow), sma(x, fast)),
            allow_short,
        )
    out = np.empty(x.shape[0])
    _sma_cross_kernel(
        np.ascontiguousarray(x, dtype=np.float64), fast, slow, -1.0 if allow_short else 0.0, out
    )
    return out


def momentum_signals(
    close: FloatArray, lookback: int, threshold: float, allow_short: bool
) -> FloatArray:
    """+1 while close/close[lookback] - 1 > threshold, -1 (or 0) while it is < -threshold."""
    n = lookback
    roc = np.full(close.shape[0], np.nan)
    if close.shape[0] > n:
        roc[n:] = close[n:] / close[:-n] - 1.0
    with np.errstate(invalid="ignore"):
        return directional(roc > threshold, roc < -threshold, allow_short)


def rsi_reversion_signals(
    close: FloatArray,
    period: int,
    lower: float,
    upper: float,
    exit_level: float,
    allow_short: bool,
) -> FloatArray:
    """+1 when RSI crosses below `lower`, 0 when it crosses `exit_level` either way, -1 when it
    crosses above `upper` (shorts on)."""
    r = rsi(close, period)
    n = r.shape[0]
    lower_line = np.full(n, lower)
    upper_line = np.full(n, upper)
    mid = np.full(n, exit_level)
    out = np.full(n, np.nan)
    # Exits first so an entry on the same bar wins.
    out[crossover(r, mid) | crossover(mid, r)] = 0.0
    if allow_short:
        out[crossover(r, upper_line)] = -1.0
    out[crossover(lower_line, r)] = 1.0
    return out


def macd_cross_signals(
    close: FloatArray, fast: int, slow: int, signal: int, allow_short: bool
) -> FloatArray:
    """The MACD line crossing its signal line: +1 up, -1 (or 0) down."""
    line, sig, _ = macd(close, fast, slow, signal)
    return cross_directional(line, sig, allow_short)


def bollinger_breakout_signals(
    close: FloatArray, period: int, nbdev: float, allow_short: bool
) -> FloatArray:
    """+1 on a close crossing above the upper band, 0 on one crossing the middle band
    either way, -1 on one crossing below the lower band (shorts on)."""
    upper, middle, lower = bollinger_bands(close, period, nbdev, nbdev)
    out = np.full(close.shape[0], np.nan)
    out[crossover(middle, close) | crossover(close, middle)] = 0.0
    if allow_short:
        out[crossover(lower, close)] = -1.0
    out[crossover(close, upper)] = 1.0
    return out
