"""Summary metrics of a backtest, computed the same way whichever engine produced it.

Both engines, sweeps and the report call `compute_metrics`, so every figure a user sees
has exactly one definition, written down here. Sweeps call it once per parameter combo,
so there is no pandas and no Python loop over bars: the per-bar passes are small numba
kernels that allocate nothing (about 0.5 ms for 100k bars).

Definitions (n bars, equity E_0..E_{n-1} at each bar's close, starting cash C, trades
with net pnl p_j and return q_j = p_j / entry notional):

* periodic returns r_t = E_t / E_{t-1} - 1, t = 1..n-1 (simple returns per bar);
* total_return = E_{n-1} / C - 1. C, not E_0, is the start: E_0 is already marked after
  any fill on the first bar, so its fees would otherwise vanish from the return;
* cagr = (E_{n-1} / C) ^ (1 / years) - 1, years = (t_{n-1} - t_0) / 365.25 days, the
  elapsed calendar time (the compound annual growth rate; 365.25 days = one Julian year,
  as in backtesting.py's `CAGR [%]`). A final equity <= 0 is a total loss: cagr = -1;
* volatility_ann = stdev(r, ddof=1) * sqrt(ppy) (square-root-of-time annualisation of an
  i.i.d. per-period volatility);
* sharpe = mean(r - rf_pp) / stdev(r, ddof=1) * sqrt(ppy), rf_pp = (1 + rf)^(1/ppy) - 1,
  the ex-post Sharpe ratio of per-period excess returns (Sharpe 1994, "The Sharpe Ratio",
  J. Portfolio Management 21(1)), annualised by sqrt(ppy) as in Lo (2002), "The
  Statistics of Sharpe Ratios", FAJ 58(4). The annual risk-free rate is de-compounded to
  one period so that ppy periods at rf_pp compound to exactly rf;
* sortino = mean(r - rf_pp) / DD * sqrt(ppy), DD = sqrt(mean(min(0, r - rf_pp)^2)) over
  *all* periods (periods above target count as zero), with the risk-free rate as target:
  Sortino & Price (1994), "Performance Measurement in a Downside Risk Framework",
  J. Investing 3(3); Rollinger & Hoffman (2013), "Sortino: A 'Sharper' Ratio", Red Rock
  Capital, who stress that periods above the target enter the mean as zeros rather than
  being left out (leaving them out is the common error they describe);
* drawdown_t = E_t / max(E_0..E_t) - 1 (<= 0); max_drawdown = min_t drawdown_t. The peak
  is taken over the equity curve only (so `max_drawdown` equals the minimum of the
  `drawdown` column the engines store);
* calmar = cagr / |max_drawdown| (Young 1991, "Calmar Ratio: A Smoother Tool", Futures
  20(1); over the whole backtest rather than Young's trailing 36 months, as backtesting.py
  and vectorbt do);
* max_drawdown_duration: an underwater period runs from the bar that set the peak to the
  first bar back at or above it, or to the last bar if equity never recovers (the
  convention of backtesting.py's `compute_drawdown_duration_peaks`). Its length in bars
  is the difference of the two bar positions, in days the difference of their times. The
  longest in bars and the longest in days are taken independently, so on irregular bars
  (weekends, gaps) they may come from different underwater periods;
* profit_factor = sum(p_j > 0) / |sum(p_j < 0)|, win_rate = #(p_j > 0) / #trades (a
  break-even trade is not a win), expectancy = mean(p_j) in cash; avg_trade, best_trade,
  worst_trade = mean, max, min of q_j (arithmetic mean; backtesting.py's `Avg. Trade`
  is a geometric mean instead);
* exposure_time = #(position_t != 0) / n, measured in bars, not in calendar time.

Degenerate cases never raise and never invent a number: a ratio whose denominator is
zero is +inf when its numerator is positive (gains without any measured risk, the usual
profit-factor convention) and NaN otherwise, except Sharpe, which is NaN whenever the
standard deviation is zero (a constant or deterministic curve has no Sharpe ratio, and
an inf would top every sweep ranking). Metrics needing two returns (volatility, Sharpe)
are NaN with fewer; trade metrics are NaN without trades.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

# Re-exported: the catalogue lives apart so name checks need no numpy (see there).
from algotrendy.backtest.metric_names import METRICS as METRICS
from algotrendy.compiled import njit
from algotrendy.errors import DataError, ParameterError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NS_PER_DAY = 86_400 * 10**9
DAYS_PER_YEAR = 365.25
TRADING_DAYS_PER_YEAR = 252
_SATURDAY = 5  # Monday = 0
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday
# At most this share of bars may fall on a Saturday (UTC) for a series to count as being
# on an exchange calendar: tolerates a few stray bars, while a 24/7 market has ~1/7.
_MAX_SATURDAY_SHARE = 0.01
# Bars this long or longer are weekly/monthly/quarterly/yearly: a week holds the same
# number of them whether or not the market trades at weekends.
_LONG_BAR_FACTORS = (  # (min days, max days, periods per year), empyrical's conventions
    (6.0, 8.0, 52.0),
    (27.0, 35.0, 12.0),
    (85.0, 95.0, 4.0),
    (350.0, 380.0, 1.0),
)


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Compile with numba, caching the machine code next to the source when it can.

    numba refuses `cache=True` (RuntimeError) where no cache directory is writable, e.g. a
    read-only Lambda package without NUMBA_CACHE_DIR; compiling per process still works.
    `error_model="numpy"` makes x / 0 give inf/NaN as in numpy instead of raising.
    """
    compiled: Callable[..., Any] = njit(fn, nogil=True, error_model="numpy")
    return compiled


# Kernels: single passes without temporaries. On 100k bars numpy's equivalents spend most
# of their time allocating and faulting in ~1 MB temporaries (and np.maximum.accumulate
# is a slow scalar loop), which dominated a sweep's cost. Each pass over a 1M-bar curve
# costs ~0.5 ms of memory traffic alone, so `compute_metrics` reads the bars once
# (`_bar_pass`), the spread around the mean included (`_shifted_variance`).


def _first_nonfinite_py(x: FloatArray) -> int:
    """Position of the first NaN/inf in `x`, or -1 (no boolean temporary)."""
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            return i
    return -1


def _drawdown_py(eq: FloatArray, out: FloatArray) -> None:
    peak = -np.inf
    for i in range(eq.shape[0]):
        if eq[i] > peak:  # peak = max(peak, eq[i])
            peak = eq[i]
        out[i] = eq[i] / peak - 1.0


def _dd_floor_py(peak: float, max_dd: float) -> float:
    """Equity below which x / peak - 1 might fall under `max_dd` (+inf for a peak <= 0)."""
    if peak <= 0.0:
        return math.inf
    return peak * (1.0 + max_dd) + peak * (1.0 - max_dd) * 1e-12


def _bar_pass_py(
    eq: FloatArray,
    pos: FloatArray,
    t: IntArray,
    dd_out: FloatArray,
    shift: float = 0.0,
    rf_pp: float = 0.0,
) -> tuple[int, int, float, float, int, int, int, float, float, float]:
    """One pass over the bars: (first non-finite equity position or -1, first non-finite
    position or -1, sum of the returns r_t, max drawdown, longest underwater period in
    bars, longest in time units, bars with a non-zero position, sum of (r_t - shift), sum of
    (r_t - shift)^2, sum of min(0, r_t - rf_pp)^2). When `dd_out` has one cell per bar
    it receives the drawdown series, exactly as `_drawdown_py` computes it.

    Stops at the first non-finite equity (its figures are then meaningless). An
    underwater period starts at the bar that set the peak and ends at the first bar back
    at or above it, or at the last bar if equity never recovers. The sums run in bar
    order. The shifted sums give the variance in this same pass (`_shifted_variance`).
    """
    n = eq.shape[0]
    write = dd_out.shape[0] == n
    bad_pos = -1
    held = 0
    total = 0.0
    dev = 0.0
    dev_sq = 0.0
    down = 0.0
    top = -np.inf
    peak = eq[0]
    peak_i = 0
    max_dd = 0.0
    # Divisions bound this loop, so x / peak - 1 is computed only when it may set a new
    # max_dd: below `floor` = peak * (1 + max_dd) widened by 1e-12 relative, far more
    # than the few ulps of rounding in the exact test, so no bar that sets it is skipped.
    floor = _dd_floor(peak, max_dd)
    bars = 0
    span = 0
    for i in range(n):
        x = eq[i]
        if not math.isfinite(x):
            return i, bad_pos, total, max_dd, bars, span, held, dev, dev_sq, down
        p = pos[i]
        if p != 0.0:
            held += 1
            if bad_pos < 0 and not math.isfinite(p):
                bad_pos = i
        d = 0.0
        if write:
            if x > top:  # max(top, x) as a select: numba's min/max are NaN-aware, slow
                top = x
            d = x / top - 1.0
            dd_out[i] = d
        if i == 0:
            continue
        r = x / eq[i - 1] - 1.0
        total += r
        e = r - shift
        dev += e
        dev_sq += e * e
        e = r - rf_pp
        if e < 0.0:
            down += e * e
        if x >= peak:
            if peak_i < i - 1:
                bars = max(bars, i - peak_i)
                span = max(span, t[i] - t[peak_i])
            peak = x
            peak_i = i
            floor = _dd_floor(peak, max_dd)
        elif x < floor:
            # `top` is the same number as `peak` (both the running maximum), so the
            # drawdown just stored is x / peak - 1 bit for bit; a zero peak could differ
            # in sign, so it divides afresh.
            if not (write and top == peak and peak != 0.0):
                d = x / peak - 1.0
            if d < max_dd:  # min(max_dd, d), ~3x faster compiled
                max_dd = d
                floor = _dd_floor(peak, max_dd)
    if peak_i < n - 1:
        bars = max(bars, n - 1 - peak_i)
        span = max(span, t[n - 1] - t[peak_i])
    return -1, bad_pos, total, max_dd, bars, span, held, dev, dev_sq, down


def _variance_shift(eq: FloatArray) -> float:
    """A value near the mean return, known before the pass: the per-bar geometric mean
    return (the first return when that is undefined, e.g. equity <= 0)."""
    n = eq.shape[0]
    if n < 2:
        return 0.0
    growth = eq[-1] / eq[0]
    if math.isfinite(growth) and growth > 0.0:
        return float(growth ** (1.0 / (n - 1)) - 1.0)
    first = eq[1] / eq[0] - 1.0
    return float(first) if math.isfinite(first) else 0.0


def _shifted_variance(dev: float, dev_sq: float, m: int) -> float:
    """Sample variance (ddof=1) of m values from their sums about a shift K:
    (sum (r-K)^2 - (sum (r-K))^2 / m) / (m - 1). This is the "shifted data" one-pass
    algorithm (Chan, Golub & LeVeque 1983, "Algorithms for Computing the Sample
    Variance", The American Statistician 37(3)): exact in exact arithmetic for any K,
    and as accurate as the two-pass formula when K is near the mean, which the
    geometric mean return is (it differs from the arithmetic mean by about var / 2). It
    saves a second pass over the curve (~1.4 ms per 1M bars). Round-off can leave a
    tiny negative value where the spread is zero: that is zero. An undefined return
    (0/0 or x/0 once equity touches zero) makes the sums NaN or inf and the variance NaN,
    which must stay NaN (`max(0.0, nan)` is 0.0: a blown-up curve would rank as the
    least volatile)."""
    if m < 2:
        return math.nan
    dev, dev_sq = float(dev), float(dev_sq)  # Python floats: inf - inf is NaN, quietly
    var = (dev_sq - dev * dev / m) / (m - 1)
    return 0.0 if var < 0.0 else var


def _scan_times_py(t: IntArray, unit_day: int) -> tuple[int, int, int, int, IntArray]:
    """One pass over increasing integer times, `unit_day` of them per day: (first
    position not after its predecessor or -1, smallest spacing, how many spacings equal
    it, bars on Saturdays (UTC), bars per UTC Monday-Friday date that has bars)."""
    n = t.shape[0]
    smallest = np.iinfo(np.int64).max
    ties = 0
    per_day = np.empty(n, np.int64)
    k = 0
    saturday = 0
    day = t[0] // unit_day
    day_end = (day + 1) * unit_day
    run = 1
    for i in range(1, n + 1):
        if i < n:
            d = t[i] - t[i - 1]
            if d <= 0:
                return i, 0, 0, 0, np.empty(0, np.int64)
            if d < smallest:
                smallest = d
                ties = 1
            elif d == smallest:
                ties += 1
        if i == n or t[i] >= day_end:
            weekday = (day + _EPOCH_WEEKDAY) % 7
            if weekday == _SATURDAY:
                saturday += run
            elif weekday < _SATURDAY:
                per_day[k] = run
                k += 1
            if i == n:
                break
            day = t[i] // unit_day
            day_end = (day + 1) * unit_day
            run = 0
        run += 1
    return -1, smallest, ties, saturday, per_day[:k]


_first_nonfinite = _jit(_first_nonfinite_py)
_dd_floor = _jit(_dd_floor_py)
_drawdown_kernel = _jit(_drawdown_py)
_bar_pass = _jit(_bar_pass_py)
_scan_times = _jit(_scan_times_py)


def drawdown(equity: FloatArray) -> FloatArray:
    """Fraction below the running peak at each bar, E_t / max(E_0..E_t) - 1 (<= 0; below
    -1 only if equity turns negative). The engines store it as the equity frame's
    `drawdown`; `compute_metrics`'s max_drawdown is its minimum."""
    eq = _finite_1d(equity, "equity")
    out = np.empty_like(eq)
    _drawdown_kernel(eq, out)
    return out


def infer_periods_per_year(times: npt.NDArray[np.datetime64]) -> float:
    """Bars per year implied by the bar times, for annualising per-bar statistics.

    The rule, from the median spacing s of consecutive bars (robust to gaps):

    1. s >= 6 days: weekly 52, monthly 12, quarterly 4, yearly 1 (empyrical's
       `ANNUALIZATION_FACTORS`, also backtesting.py's), since a week holds the same number
       of such bars whether or not the market trades at weekends; other long spacings
       get 365.25 days / s.
    2. Otherwise, if the series is on an exchange calendar, 252 trading days per year
       (the usual US equity count, as in empyrical and backtesting.py) times the bars per
       trading day: 1 / s in days for daily-or-longer bars (daily -> 252), and for
       intraday bars the median number of bars per UTC weekday date (Mon-Fri dates that
       have bars; the median ignores half days, holidays and a partial first or last
       day, and Sunday-evening bars of FX/futures sessions belong to Monday's session).
       EURUSD hourly -> 252 x 24 = 6048; a 6.5-hour equity session of 1m bars -> 252 x
       390 = 98,280.
    3. Otherwise (markets trading every day, e.g. crypto): 365.25 days / s. Daily ->
       365.25, hourly -> 8766, 5m -> 105,192, 1m -> 525,960.

    A series is on an exchange calendar when its span covers at least one whole UTC
    Saturday and at most 1% of its bars fall on a Saturday: Saturday is the one day every
    major exchange and the FX market are closed in UTC (FX reopens on Sunday evening UTC,
    so Sunday bars do not disqualify), and the 1% tolerates a few stray bars. A span
    shorter than that cannot show a weekend and is treated as trading every day.

    Raises DataError when there are fewer than two bars or the times do not increase.
    """
    t, unit_day = _times_int(times)
    n = t.shape[0]
    if n < 2:
        raise DataError(f"times: need at least 2 bars to infer the bar interval (got {n})")
    bad, smallest, ties, saturday_bars, weekday_counts = _scan_times(t, unit_day)
    if bad >= 0:
        raise DataError(
            f"times: must be strictly increasing to infer the bar interval (bar {bad} is "
            f"not after bar {bad - 1})"
        )
    # When more than half the gaps equal the smallest one, that is the median: no sort
    # (and np.median's partition is slow on many ties, hence the sort otherwise).
    regular = 2 * ties > n - 1
    s_days = (smallest if regular else float(np.median(np.sort(np.diff(t))))) / unit_day

    if s_days >= _LONG_BAR_FACTORS[0][0]:
        for lo, hi, ppy in _LONG_BAR_FACTORS:
            if lo <= s_days <= hi:
                return ppy
        return DAYS_PER_YEAR / s_days
    on_calendar = _spans_whole_saturday(t, unit_day) and saturday_bars <= _MAX_SATURDAY_SHARE * n
    if not on_calendar or weekday_counts.shape[0] == 0:
        return DAYS_PER_YEAR / s_days
    if s_days >= 1.0:
        return TRADING_DAYS_PER_YEAR / s_days
    return float(TRADING_DAYS_PER_YEAR * np.median(weekday_counts))


def _spans_whole_saturday(t: IntArray, unit_day: int) -> bool:
    first_whole = -(-int(t[0]) // unit_day)  # first day starting at or after t_0
    last_whole = int(t[-1]) // unit_day - 1  # last day ending at or before t_last
    return any(
        (d + _EPOCH_WEEKDAY) % 7 == _SATURDAY for d in range(first_whole, last_whole + 1)[:7]
    )


def compute_metrics(
    *,
    equity: FloatArray,
    times: npt.NDArray[np.datetime64],
    position: FloatArray,
    trade_pnl: FloatArray,
    trade_returns: FloatArray,
    cash: float,
    risk_free: float = 0.0,
    periods_per_year: float | None = None,
    drawdown_out: FloatArray | None = None,
) -> dict[str, float]:
    """All summary metrics, keys in `METRICS` order (definitions in the module docstring).

    `equity`, `times` (UTC datetime64) and `position` are per bar; `trade_pnl` (net cash,
    fees included) and `trade_returns` (pnl / entry notional) are per closed trade.
    `periods_per_year=None` infers it with `infer_periods_per_year` (NaN for one bar).
    `drawdown_out` (float64, one cell per bar), when given, receives `drawdown(equity)`
    from the pass that computes the metrics, so the engines' equity frame does not read
    the curve once more.

    Raises ParameterError naming the argument when inputs are inconsistent.
    """
    eq = _float_1d(equity, "equity")
    n = eq.shape[0]
    if n == 0:
        raise ParameterError("equity: need at least one bar (got an empty array)")
    t, unit_day = _times_int(times)
    pos = _float_1d(position, "position")
    for name, arr in (("times", t), ("position", pos)):
        if arr.shape[0] != n:
            raise ParameterError(f"{name}: length {arr.shape[0]} differs from equity's {n}")
    if drawdown_out is None:
        dd_out = np.empty(0)
    elif drawdown_out.shape == (n,) and drawdown_out.dtype == np.float64:
        dd_out = drawdown_out
    else:
        raise ParameterError(
            f"drawdown_out: expected float64 of shape ({n},) "
            f"(got {drawdown_out.dtype}, shape {drawdown_out.shape})"
        )
    if not (math.isfinite(cash) and cash > 0):
        raise ParameterError(f"cash: must be a positive number (got {cash})")
    if not (math.isfinite(risk_free) and risk_free > -1):
        raise ParameterError(f"risk_free: must be an annual rate above -1 (got {risk_free})")
    if periods_per_year is None:
        ppy = infer_periods_per_year(times) if n >= 2 else math.nan
    elif math.isfinite(periods_per_year) and periods_per_year > 0:
        ppy = float(periods_per_year)
    else:
        raise ParameterError(f"periods_per_year: must be positive (got {periods_per_year})")
    rf_pp = (1.0 + risk_free) ** (1.0 / ppy) - 1.0 if math.isfinite(ppy) else math.nan
    (bad_eq, bad_pos, total_r, dd_min, dd_bars, dd_span, held, dev, dev_sq, down) = _bar_pass(
        eq, pos, t, dd_out, _variance_shift(eq), rf_pp
    )
    _raise_nonfinite(eq, bad_eq, "equity")
    _raise_nonfinite(pos, bad_pos, "position")
    pnl = _finite_1d(trade_pnl, "trade_pnl")
    tret = _finite_1d(trade_returns, "trade_returns")
    if tret.shape[0] != pnl.shape[0]:
        raise ParameterError(
            f"trade_returns: length {tret.shape[0]} differs from trade_pnl's {pnl.shape[0]}"
        )

    final = float(eq[-1])
    growth = final / cash
    years = float(t[-1] - t[0]) / (unit_day * DAYS_PER_YEAR)
    if years <= 0:
        cagr = math.nan
    elif growth <= 0:
        cagr = -1.0
    else:
        with np.errstate(over="ignore"):
            cagr = float(np.power(growth, 1.0 / years)) - 1.0

    vol = sharpe = sortino = math.nan
    if n >= 2 and math.isfinite(ppy):
        m = n - 1
        mean_r = total_r / m
        down_sq = down / m
        mean_ex = mean_r - rf_pp
        root = math.sqrt(ppy)
        sd = math.sqrt(_shifted_variance(dev, dev_sq, m))
        vol = sd * root
        # Round-off leaves ~1e-17 of spread on a deterministic curve: still zero.
        if sd > 1e-12 * abs(mean_r):
            sharpe = mean_ex / sd * root
        sortino = _ratio(mean_ex, math.sqrt(down_sq)) * root

    max_dd = float(dd_min)
    calmar = _ratio(cagr, -max_dd)

    k = pnl.shape[0]
    if k:
        profit_factor = _ratio(float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum()))
        win_rate = float(np.count_nonzero(pnl > 0)) / k
        expectancy = float(pnl.mean())
        avg_trade = float(tret.mean())
        best_trade = float(tret.max())
        worst_trade = float(tret.min())
    else:
        profit_factor = win_rate = expectancy = math.nan
        avg_trade = best_trade = worst_trade = math.nan

    return {
        "final_equity": final,
        "total_return": growth - 1.0,
        "cagr": cagr,
        "volatility_ann": vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar,
        "max_drawdown": max_dd,
        "max_drawdown_duration_bars": float(dd_bars),
        "max_drawdown_duration_days": dd_span / unit_day,
        "profit_factor": profit_factor,
        "win_rate": win_rate,
        "expectancy": expectancy,
        "exposure_time": float(held) / n,
        "num_trades": float(k),
        "avg_trade": avg_trade,
        "best_trade": best_trade,
        "worst_trade": worst_trade,
        "periods_per_year": ppy,
    }


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return float(num) / float(den)  # inf / inf is NaN, without numpy's warning
    if den == 0 and num > 0:
        return math.inf
    return math.nan


def _float_1d(values: FloatArray, name: str) -> FloatArray:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ParameterError(f"{name}: expected a 1-D array (got shape {arr.shape})")
    return arr


def _raise_nonfinite(arr: FloatArray, bad: int, name: str) -> None:
    if bad >= 0:
        raise ParameterError(f"{name}: value at position {bad} is not finite ({arr[bad]})")


def _finite_1d(values: FloatArray, name: str) -> FloatArray:
    arr = _float_1d(values, name)
    _raise_nonfinite(arr, int(_first_nonfinite(arr)), name)
    return arr


_UNITS_PER_DAY = {"s": 86_400, "ms": 86_400 * 10**3, "us": 86_400 * 10**6, "ns": NS_PER_DAY}


def _times_int(times: npt.NDArray[np.datetime64]) -> tuple[IntArray, int]:
    """(times as int64 in their own unit, that unit per day).

    Seconds to nanoseconds are read as they are: pandas 3 makes microsecond indexes by
    default, and converting 1M of them to ns would copy 8 MB for nothing. Other units
    (days, minutes, ...) are converted to ns."""
    arr = np.asarray(times)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.datetime64):
        raise ParameterError(
            f"times: expected a 1-D numpy datetime64 array (got {arr.dtype}, shape {arr.shape})"
        )
    unit, count = np.datetime_data(arr.dtype)
    if count != 1 or unit not in _UNITS_PER_DAY:
        arr, unit = arr.astype("datetime64[ns]"), "ns"
    ints: IntArray = np.ascontiguousarray(arr.view(np.int64))
    return ints, _UNITS_PER_DAY[unit]
