"""Volume indicators: OBV (TA-Lib's) and VWAP (which TA-Lib does not have).

Each function takes numpy float arrays or pandas Series and returns the same type (a
Series keeps the input's index).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from algotrendy.indicators import _kernels as _k
from algotrendy.indicators._common import Values, as_float_arrays, check_int, series_index, wrap


def obv(close: Values, volume: Values) -> Values:
    """On-Balance Volume (Granville): a running total of volume, added on a bar that
    closes higher than the previous one, subtracted on a lower close, unchanged on an
    equal close.

    As talib.OBV the total starts at the first bar's volume (not at 0), so there is no
    warm-up; only leading bars where close or volume is NaN are NaN.
    """
    c, v = as_float_arrays(close=close, volume=volume)
    index = series_index(close=close, volume=volume)
    out = np.empty(c.shape[0])
    _k.obv(c, v, out)
    return cast(Values, wrap(index, out, "obv"))


def vwap(
    high: Values, low: Values, close: Values, volume: Values, period: int | None = None
) -> Values:
    """Volume-Weighted Average Price of the typical price.

    VWAP = sum(tp * volume) / sum(volume) with tp = (high + low + close) / 3, the
    bar-data approximation of the trade-by-trade VWAP (no intrabar trades here). With
    `period=None` the sums run from the first bar (cumulative VWAP, anchored at the start
    of the data: pass one session's bars for a session VWAP); with an integer they cover
    the last `period` bars and the first period-1 bars are NaN.

    Edge cases: a bar with a NaN input is NaN and counts in neither sum; a rolling window
    holding such a bar is NaN (as pandas' `rolling(period).sum()` with its default
    min_periods); a window without volume is NaN (0 / 0). The sums are compensated
    (Neumaier), so a rolling window does not keep the rounding residue of a huge bar
    that left it, as a plain running sum or a difference of cumsums would.
    """
    p = 0 if period is None else check_int("period", period, 1)
    h, lo, c, v = as_float_arrays(high=high, low=low, close=close, volume=volume)
    index = series_index(high=high, low=low, close=close, volume=volume)
    out = np.empty(c.shape[0])
    _k.vwap(h, lo, c, v, p, out)
    return cast(Values, wrap(index, out, "vwap"))
