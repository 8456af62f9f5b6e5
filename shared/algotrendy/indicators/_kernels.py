"""Compiled kernels behind the public indicator functions.

Every indicator here is a recursion over the bars (a running window sum, an EMA, Wilder's
smoothing, a tracked window extreme), so each is one numba loop rather than a chain of
numpy temporaries: one pass over memory, no catastrophic cancellation from a global
`cumsum`, and the same floating-point operations in the same order as TA-Lib's C, which
is what makes the results equal to TA-Lib's bit for bit (checked against the installed
TA-Lib 0.8 by the tests) rather than merely close.

Conventions shared by all kernels (all taken from TA-Lib and its Python wrapper,
`talib/_func.pxi`):

* Leading NaNs are skipped: computation starts at the first bar where every input is a
  number (the wrapper's `check_begidx*`); the warm-up (TA-Lib's "lookback") counts from
  there and every output bar before its end is NaN. If no bar is complete the wrapper
  starts at the last bar, and so do we.
* A NaN met later is not skipped: it propagates the way the C arithmetic propagates it
  (a running sum or an EMA stays NaN from then on), as in TA-Lib. The exception is also
  TA-Lib's: a moving average of period 1 (EMA, STOCH's smoothings) is the input itself,
  so there a NaN stays on its own bar.
* `error_model="numpy"`: a float division by zero gives inf/NaN like C instead of
  raising; `fastmath` stays off so NaN comparisons and the operation order are IEEE's.
* Outputs are allocated by the caller with numpy (`np.empty`) and filled here: numpy
  asks the kernel for huge pages on large arrays, numba's allocator does not, and the
  page faults of three fresh 8 MB arrays cost more than a whole MACD pass.

All kernels live in this one module on purpose: numba's on-disk cache is invalidated by
the source file of the cached function only, so a helper kept in another file could
leave a stale compiled caller behind after an edit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from algotrendy.compiled import HAVE_NUMBA, njit

FloatArray = npt.NDArray[np.float64]
_F = TypeVar("_F", bound=Callable[..., Any])

NAN = math.nan

# TA-Lib's TA_EPSILON (ta_utility.h, 0.8 series): the dead band of TA_IS_ZERO (ADX, on
# the dimensionless sum of the two DIs) and the relative band of TA_IS_ZERO_SCALED
# (STOCH, on the window's range against its extremes).
TA_EPSILON = 1e-14


def jit(fn: _F) -> _F:
    """`numba.njit` with the on-disk cache, C-like division and no GIL, keeping the
    Python signature visible to mypy (numba itself is untyped).

    Where numba finds no writable cache location (a read-only deployment such as a
    Lambda package without NUMBA_CACHE_DIR pointing at /tmp) it refuses `cache=True`
    with a RuntimeError at decoration time; the kernels then compile in memory on first
    use instead of making the whole package unimportable.
    """
    return njit(fn, nogil=True, error_model="numpy")


# --------------------------------------------------------------------------- helpers


if HAVE_NUMBA:
    from llvmlite import ir  # type: ignore[import-untyped]
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def _fma_intrinsic(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
        sig = types.float64(types.float64, types.float64, types.float64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            dbl = ir.DoubleType()
            fnty = ir.FunctionType(dbl, [dbl, dbl, dbl])
            fn = builder.module.globals.get("llvm.fma.f64")
            if fn is None:
                fn = ir.Function(builder.module, fnty, "llvm.fma.f64")
            return builder.call(fn, args)

        return sig, codegen

    _fma_any: Any = _fma_intrinsic  # numba's annotations do not describe an intrinsic call
else:

    def _fma_any(a: float, b: float, c: float) -> float:
        """Exact a*b+c rounded once, in rationals (uncompiled path; Python 3.11 has no
        math.fma). Slow but bit-identical to the hardware instruction."""
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
            return a * b + c
        return float(Fraction(a) * Fraction(b) + Fraction(c))


@jit
def fma(a: float, b: float, c: float) -> float:
    """a * b + c rounded once (IEEE fused multiply-add: one instruction on x86-64 with
    FMA3, an exact software fallback elsewhere). TA-Lib 0.8 fuses its EMA and ATR
    steps; fusing the same ones keeps EMA/MACD/ATR bit-identical to it, and the shorter
    dependency chain is what keeps these loops as fast as the C."""
    result: float = _fma_any(a, b, c)
    return result


@jit
def first_valid1(a: FloatArray) -> int:
    """First index where `a` is not NaN; n-1 when there is none (talib check_begidx1)."""
    n: int = a.shape[0]
    for i in range(n):
        if a[i] == a[i]:
            return i
    return n - 1


@jit
def first_valid2(a: FloatArray, b: FloatArray) -> int:
    """First index where neither input is NaN; n-1 when there is none."""
    n: int = a.shape[0]
    for i in range(n):
        if a[i] == a[i] and b[i] == b[i]:
            return i
    return n - 1


@jit
def first_valid3(a: FloatArray, b: FloatArray, c: FloatArray) -> int:
    """First index where none of the three inputs is NaN; n-1 when there is none."""
    n: int = a.shape[0]
    for i in range(n):
        if a[i] == a[i] and b[i] == b[i] and c[i] == c[i]:
            return i
    return n - 1


@jit
def _nan_head(out: FloatArray, start: int) -> None:
    """Mark the warm-up: the first `start` cells of `out` become NaN."""
    out[: min(start, out.shape[0])] = NAN


@jit
def _true_range(high: float, low: float, prev_close: float) -> float:
    """Wilder's true range in TA-Lib's comparison order (ta_TRANGE.c): start from
    high-low, replace by |prev_close-high|, then |prev_close-low| when strictly larger."""
    # Written as selects, not ifs, so LLVM emits branch-free max (same result, NaN
    # included: a comparison with NaN is false and keeps the current value).
    greatest = high - low
    v = abs(prev_close - high)
    greatest = v if v > greatest else greatest
    v = abs(prev_close - low)
    return v if v > greatest else greatest


# ------------------------------------------------------------------ overlap studies


@jit
def sma(x: FloatArray, period: int, out: FloatArray) -> None:
    """ta_SMA.c: the window sum is carried forward -- add the new bar, emit sum/period,
    subtract the bar leaving -- in exactly TA-Lib's order, so the result is
    bit-identical to talib.SMA, including the running sum's rounding drift."""
    n = x.shape[0]
    if n == 0:
        return
    b = first_valid1(x)
    start = b + period - 1
    _nan_head(out, start)
    total = 0.0
    for i in range(b, min(start, n)):
        total += x[i]
    trailing = b
    for i in range(start, n):
        total += x[i]
        out[i] = total / period
        total -= x[trailing]
        trailing += 1


@jit
def ema(x: FloatArray, period: int, out: FloatArray) -> None:
    """ta_EMA.c, default compatibility: seeded on bar period-1 with the plain mean of
    the first `period` values, then prev = (x - prev) * k + prev, k = 2 / (period + 1).
    Period 1 is the input itself, as in TA-Lib (its moving averages return a copy for
    period 1): a NaN then stays on its own bar instead of poisoning the recursion."""
    n = x.shape[0]
    if n == 0:
        return
    if period == 1:
        out[:] = x
        return
    b = first_valid1(x)
    start = b + period - 1
    _nan_head(out, start)
    if start >= n:
        return
    k = 2.0 / (period + 1)
    total = 0.0
    for i in range(b, start + 1):
        total += x[i]
    prev = total / period
    out[start] = prev
    for i in range(start + 1, n):
        prev = fma(x[i] - prev, k, prev)
        out[i] = prev


@jit
def bollinger(
    x: FloatArray,
    period: int,
    nbdev_up: float,
    nbdev_dn: float,
    upper: FloatArray,
    middle: FloatArray,
    lower: FloatArray,
) -> None:
    """Middle band: TA-Lib's SMA running sum (bit-identical to talib.SMA). Deviation:
    population standard deviation of the same window (TA-Lib's STDDEV).

    The variance comes from running sums of d = x - shift and d*d, where `shift` is a
    recent window mean: subtracting it first keeps E[d^2] - E[d]^2 away from the
    catastrophic cancellation that E[x^2] - E[x]^2 suffers on prices far from zero.
    The sums are rebuilt exactly over the window (two-pass, shift = window mean) when
    cancellation shows (variance < 1e-6 of E[d^2]), when a value large against the
    window leaves it, and every 32 windows to bound drift -- the scheme of TA-Lib 0.8's
    var.c -- so a flat window gives exactly 0 and a finely quoted one keeps its width.
    """
    n = x.shape[0]
    if n == 0:
        return
    b = first_valid1(x)
    start = b + period - 1
    _nan_head(upper, start)
    _nan_head(middle, start)
    _nan_head(lower, start)
    if start >= n:
        return
    inv = 1.0 / period
    shift = x[b]
    ma_total = 0.0
    s1 = 0.0
    s2 = 0.0
    for j in range(b, start):
        ma_total += x[j]
        d = x[j] - shift
        s1 += d
        s2 += d * d
    reseed_every = 32 * period
    since = 0
    force = False
    trailing = b
    for i in range(start, n):
        xi = x[i]
        ma_total += xi
        mean = ma_total / period
        d = xi - shift
        s1 += d
        s2 += d * d
        m1 = s1 * inv
        m2 = s2 * inv
        var = m2 - m1 * m1
        since += 1
        if force or since >= reseed_every or var < 1e-6 * m2:
            since = 0
            force = False
            lo = i - period + 1
            acc = 0.0
            for j in range(lo, i + 1):
                acc += x[j]
            shift = acc * inv
            s1 = 0.0
            s2 = 0.0
            for j in range(lo, i + 1):
                d = x[j] - shift
                s1 += d
                s2 += d * d
            m1 = s1 * inv
            m2 = s2 * inv
            var = m2 - m1 * m1
            if var < 1e-12 * m2:
                var = 0.0
        sd = math.sqrt(var) if var != 0.0 else 0.0
        middle[i] = mean
        upper[i] = mean + sd * nbdev_up
        lower[i] = mean - sd * nbdev_dn
        xt = x[trailing]
        ma_total -= xt
        d = xt - shift
        s1 -= d
        d2 = d * d
        s2 -= d2
        if d2 > 1e6 * s2:
            force = True
        trailing += 1


# -------------------------------------------------------------- momentum indicators


@jit
def rsi(x: FloatArray, period: int, out: FloatArray) -> None:
    """ta_RSI.c: Wilder's average gain and loss, seeded with the plain mean of the first
    `period` changes, then avg = (avg * (period-1) + change) * (1/period) (TA-Lib 0.8
    scales by the hoisted reciprocal). RSI = 100 * (gain / (gain + loss)), first on bar
    `period`; 0 unless gain + loss > 0 -- no movement at all, or a NaN met on the way
    (which then stays) -- as the installed TA-Lib answers."""
    n = x.shape[0]
    if n == 0:
        return
    b = first_valid1(x)
    start = b + period
    _nan_head(out, start)
    if start >= n:
        return
    prev = x[b]
    gain = 0.0
    loss = 0.0
    for i in range(b + 1, start + 1):
        cur = x[i]
        d = cur - prev
        prev = cur
        g = d if d > 0.0 else 0.0
        gain += g
        loss += g - d
    inv = 1.0 / period
    gain *= inv
    loss *= inv
    total = gain + loss
    out[start] = 100.0 * (gain / total) if total > 0.0 else 0.0
    pm1 = float(period - 1)
    for i in range(start + 1, n):
        cur = x[i]
        d = cur - prev
        prev = cur
        g = d if d > 0.0 else 0.0
        gain = (gain * pm1 + g) * inv
        loss = (loss * pm1 + (g - d)) * inv
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total > 0.0 else 0.0


@jit
def macd(
    x: FloatArray,
    fast: int,
    slow: int,
    signal: int,
    line: FloatArray,
    sig: FloatArray,
    hist: FloatArray,
) -> None:
    """ta_MACD.c, default compatibility, fast <= slow (the caller swaps like TA-Lib).

    TA-Lib's quirk: the fast EMA is *not* seeded on bar fast-1 as talib.EMA(fast) is.
    Both EMAs are seeded on the same bar, slow-1, the fast one with the mean of the
    last `fast` of the `slow` seed values, so MACD != EMA(fast) - EMA(slow) early on.
    The signal EMA is seeded with the mean of the first `signal` MACD values, and all
    three outputs start on bar (slow-1) + (signal-1) -- the MACD line too, although it
    exists `signal - 1` bars earlier.
    """
    n = x.shape[0]
    if n == 0:
        return
    b = first_valid1(x)
    start = b + (slow - 1) + (signal - 1)
    _nan_head(line, start)
    _nan_head(sig, start)
    _nan_head(hist, start)
    if start >= n:
        return
    k_fast = 2.0 / (fast + 1)
    k_slow = 2.0 / (slow + 1)
    k_sig = 2.0 / (signal + 1)
    today = b
    slow_total = 0.0
    for _ in range(slow - fast):
        slow_total += x[today]
        today += 1
    fast_total = 0.0
    for _ in range(fast):
        fast_total += x[today]
        slow_total += x[today]
        today += 1
    prev_slow = slow_total / slow
    prev_fast = fast_total / fast
    value = prev_fast - prev_slow
    sig_total = value
    for _ in range(signal - 1):
        xt = x[today]
        today += 1
        prev_fast = fma(xt - prev_fast, k_fast, prev_fast)
        prev_slow = fma(xt - prev_slow, k_slow, prev_slow)
        value = prev_fast - prev_slow
        sig_total += value
    prev_sig = sig_total / signal
    line[start] = value
    sig[start] = prev_sig
    hist[start] = value - prev_sig
    for i in range(start + 1, n):
        xt = x[i]
        prev_fast = fma(xt - prev_fast, k_fast, prev_fast)
        prev_slow = fma(xt - prev_slow, k_slow, prev_slow)
        value = prev_fast - prev_slow
        prev_sig = fma(value - prev_sig, k_sig, prev_sig)
        line[i] = value
        sig[i] = prev_sig
        hist[i] = value - prev_sig


@jit
def stochastic(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    fastk_period: int,
    slowk_period: int,
    slowd_period: int,
    slowk: FloatArray,
    slowd: FloatArray,
) -> None:
    """ta_STOCH.c with SMA smoothing, in one pass.

    Fast %K = 100 * ((close - lowest low) / (highest high - lowest low)) over
    `fastk_period` bars (TA-Lib 0.8's operation order), 0 when the range is zero within
    1e-14 of its own extremes (TA_IS_ZERO_SCALED). The window extremes are tracked with
    their index and rescanned only when the extreme leaves the window, as TA-Lib does
    (same NaN behaviour, O(n) on typical data). Slow %K = SMA(fast %K, slowk_period)
    and slow %D = SMA(slow %K, slowd_period), each a TA-Lib running sum fed from a small
    ring buffer instead of a full-length temporary; both outputs start on %D's first bar.
    """
    n = close.shape[0]
    if n == 0:
        return
    b = first_valid3(high, low, close)
    first_k = b + fastk_period - 1
    first_slowk = first_k + slowk_period - 1
    start = first_slowk + slowd_period - 1
    _nan_head(slowk, start)
    _nan_head(slowd, start)
    if start >= n:
        return
    ring_k = np.empty(slowk_period)
    ring_s = np.empty(slowd_period)
    pos_k = 0
    pos_s = 0
    sum_k = 0.0
    sum_s = 0.0
    trailing = b
    lowest_idx = -1
    highest_idx = -1
    lowest = 0.0
    highest = 0.0
    for today in range(first_k, n):
        tmp = low[today]
        if lowest_idx < trailing:
            lowest_idx = trailing
            lowest = low[lowest_idx]
            for j in range(lowest_idx + 1, today + 1):
                tmp = low[j]
                if tmp < lowest:
                    lowest_idx = j
                    lowest = tmp
        elif tmp <= lowest:
            lowest_idx = today
            lowest = tmp
        tmp = high[today]
        if highest_idx < trailing:
            highest_idx = trailing
            highest = high[highest_idx]
            for j in range(highest_idx + 1, today + 1):
                tmp = high[j]
                if tmp > highest:
                    highest_idx = j
                    highest = tmp
        elif tmp >= highest:
            highest_idx = today
            highest = tmp
        trailing += 1
        rng = highest - lowest
        if abs(rng) <= TA_EPSILON * (abs(highest) + abs(lowest)):
            fk = 0.0
        else:
            fk = 100.0 * ((close[today] - lowest) / rng)
        # Slow %K: TA-Lib's SMA running sum over fast %K. Period 1 is fast %K itself
        # (TA_MA's period-1 copy): a running sum would keep a NaN forever.
        if slowk_period == 1:
            sk = fk
        else:
            sum_k += fk
            ring_k[pos_k] = fk
            pos_k += 1
            if pos_k == slowk_period:
                pos_k = 0
            if today < first_slowk:
                continue
            sk = sum_k / slowk_period
            sum_k -= ring_k[pos_k]
        # Slow %D: the same over slow %K.
        if slowd_period == 1:
            sd = sk
        else:
            sum_s += sk
            ring_s[pos_s] = sk
            pos_s += 1
            if pos_s == slowd_period:
                pos_s = 0
            if today < start:
                continue
            sd = sum_s / slowd_period
            sum_s -= ring_s[pos_s]
        slowk[today] = sk
        slowd[today] = sd


@jit
def adx(high: FloatArray, low: FloatArray, close: FloatArray, period: int, out: FloatArray) -> None:
    """ta_ADX.c (Wilder, "New Concepts in Technical Trading Systems", 1978).

    +DM/-DM and TR are summed over the first period-1 changes, then Wilder-smoothed as
    running sums (S = S - S/period + today); DI = 100 * (DM / TR); DX = 100 * (|DI- -
    DI+| / (DI- + DI+)). The first ADX is the mean of the first `period` DX values,
    later ones ADX = (ADX * (period-1) + DX) / period. A bar whose smoothed TR is not
    positive, or whose DI sum is within TA_EPSILON of 0, leaves the ADX unchanged
    (TA-Lib 0.8). First output on bar 2*period - 1.
    """
    n = close.shape[0]
    if n == 0:
        return
    b = first_valid3(high, low, close)
    start = b + 2 * period - 1
    _nan_head(out, start)
    if start >= n:
        return
    prev_high = high[b]
    prev_low = low[b]
    prev_close = close[b]
    minus_dm = 0.0
    plus_dm = 0.0
    tr = 0.0
    today = b
    for _ in range(period - 1):
        today += 1
        h = high[today]
        lo = low[today]
        diff_p = h - prev_high
        diff_m = prev_low - lo
        prev_high = h
        prev_low = lo
        minus_dm += diff_m if (diff_m > 0.0 and diff_p < diff_m) else 0.0
        plus_dm += diff_p if (diff_p > 0.0 and diff_p > diff_m) else 0.0
        tr += _true_range(h, lo, prev_close)
        prev_close = close[today]
    sum_dx = 0.0
    for _ in range(period):
        today += 1
        h = high[today]
        lo = low[today]
        diff_p = h - prev_high
        diff_m = prev_low - lo
        prev_high = h
        prev_low = lo
        minus_dm = minus_dm - minus_dm / period
        plus_dm = plus_dm - plus_dm / period
        minus_dm += diff_m if (diff_m > 0.0 and diff_p < diff_m) else 0.0
        plus_dm += diff_p if (diff_p > 0.0 and diff_p > diff_m) else 0.0
        tr = tr - tr / period + _true_range(h, lo, prev_close)
        prev_close = close[today]
        if tr > 0.0:
            minus_di = 100.0 * (minus_dm / tr)
            plus_di = 100.0 * (plus_dm / tr)
            di_sum = minus_di + plus_di
            if not (-TA_EPSILON < di_sum < TA_EPSILON):
                sum_dx += 100.0 * (abs(minus_di - plus_di) / di_sum)
    value = sum_dx / period
    out[start] = value
    pm1 = float(period - 1)
    for i in range(start + 1, n):
        h = high[i]
        lo = low[i]
        diff_p = h - prev_high
        diff_m = prev_low - lo
        prev_high = h
        prev_low = lo
        minus_dm = minus_dm - minus_dm / period
        plus_dm = plus_dm - plus_dm / period
        minus_dm += diff_m if (diff_m > 0.0 and diff_p < diff_m) else 0.0
        plus_dm += diff_p if (diff_p > 0.0 and diff_p > diff_m) else 0.0
        tr = tr - tr / period + _true_range(h, lo, prev_close)
        prev_close = close[i]
        if tr > 0.0:
            minus_di = 100.0 * (minus_dm / tr)
            plus_di = 100.0 * (plus_dm / tr)
            di_sum = minus_di + plus_di
            if not (-TA_EPSILON < di_sum < TA_EPSILON):
                dx = 100.0 * (abs(minus_di - plus_di) / di_sum)
                value = (value * pm1 + dx) / period
        out[i] = value


# ----------------------------------------------------------------------- volatility


@jit
def atr(high: FloatArray, low: FloatArray, close: FloatArray, period: int, out: FloatArray) -> None:
    """ta_ATR.c: true range from bar 1, seeded with the mean of the first `period` true
    ranges (first output on bar `period`), then Wilder's smoothing ATR = beta * ATR +
    alpha * TR with beta = (period-1)/period and alpha = 1 - beta, fused as TA-Lib 0.8
    does (fma(beta, ATR, alpha * TR)). At period 1 (alpha, beta) = (1, 0): the true
    range itself, TA-Lib's TRANGE."""
    n = close.shape[0]
    if n == 0:
        return
    b = first_valid3(high, low, close)
    start = b + period
    _nan_head(out, start)
    if start >= n:
        return
    beta = float(period - 1) / float(period)
    alpha = 1.0 - beta
    total = 0.0
    for i in range(b + 1, start + 1):
        total += _true_range(high[i], low[i], close[i - 1])
    prev = total / period
    out[start] = prev
    # Loop over slices from 0: a provably non-negative index spares numba's negative-
    # index wrap-around test on each of the four accesses (measurably faster here).
    hi, lo, prev_close, dst = high[start + 1 :], low[start + 1 :], close[start:], out[start + 1 :]
    for i in range(dst.shape[0]):
        prev = fma(beta, prev, alpha * _true_range(hi[i], lo[i], prev_close[i]))
        dst[i] = prev


# --------------------------------------------------------------------------- volume


@jit
def obv(close: FloatArray, volume: FloatArray, out: FloatArray) -> None:
    """ta_OBV.c: starts at the first bar's volume, then adds the volume of an up close,
    subtracts that of a down close and keeps the total on an unchanged close.

    The step is written branch-free (total += up - down, one of them 0): a random close
    mispredicts a branch half the time, which costs TA-Lib's C more than the addition.
    The sums are the same floating-point operations (x - 0 and 0 - x are exact)."""
    n = close.shape[0]
    if n == 0:
        return
    b = first_valid2(close, volume)
    _nan_head(out, b)
    total = volume[b]
    prev = close[b]
    for i in range(b, n):
        cur = close[i]
        v = volume[i]
        up = v if cur > prev else 0.0
        down = v if cur < prev else 0.0
        total += up - down
        out[i] = total
        prev = cur


@jit
def _two_sum(total: float, comp: float, value: float) -> tuple[float, float]:
    """Neumaier's compensated addition: the new (sum, compensation) pair, where the
    compensation collects exactly the rounding error of each addition."""
    t = total + value
    if abs(total) >= abs(value):
        comp += (total - t) + value
    else:
        comp += (value - t) + total
    return t, comp


@jit
def vwap(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    period: int,
    out: FloatArray,
) -> None:
    """sum(tp * v) / sum(v) with tp = (h + l + c) / 3, over all bars so far (period <= 0)
    or over the last `period` bars.

    Both sums are Neumaier-compensated, so a rolling window that drops a huge bar does
    not keep its rounding residue (the cancellation that a plain running sum, or a
    difference of two cumsums, suffers). A bar with any NaN input contributes nothing
    and is NaN itself, and a rolling window holding such a bar is NaN (the semantics of
    pandas' cumsum and rolling(period).sum()). No volume in the window gives 0/0 = NaN.
    """
    n = close.shape[0]
    pv_sum = 0.0
    pv_comp = 0.0
    v_sum = 0.0
    v_comp = 0.0
    missing = 0
    for i in range(n):
        v = volume[i]
        pv = (high[i] + low[i] + close[i]) / 3.0 * v
        ok = pv == pv
        if ok:
            pv_sum, pv_comp = _two_sum(pv_sum, pv_comp, pv)
            v_sum, v_comp = _two_sum(v_sum, v_comp, v)
        else:
            missing += 1
        if period > 0 and i >= period:
            j = i - period
            old_v = volume[j]
            old_pv = (high[j] + low[j] + close[j]) / 3.0 * old_v
            if old_pv == old_pv:
                pv_sum, pv_comp = _two_sum(pv_sum, pv_comp, -old_pv)
                v_sum, v_comp = _two_sum(v_sum, v_comp, -old_v)
            else:
                missing -= 1
        if not ok or (period > 0 and (i < period - 1 or missing > 0)):
            out[i] = NAN
        else:
            out[i] = (pv_sum + pv_comp) / (v_sum + v_comp)
