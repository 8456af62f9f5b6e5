"""Volatility indicators (TA-Lib's group name): ATR.

Takes numpy float arrays or pandas Series and returns the same type (a Series keeps the
input's index). Warm-up bars are NaN exactly where TA-Lib's are; values after them are
TA-Lib's (the tests compare them with the installed `talib`).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from algotrendy.indicators import _kernels as _k
from algotrendy.indicators._common import Values, as_float_arrays, check_int, series_index, wrap


def atr(high: Values, low: Values, close: Values, period: int = 14) -> Values:
    """Average True Range (Wilder, 1978), in price units.

    true range = max(high - low, |high - prev close|, |low - prev close|), defined from
    the second bar; ATR starts as the mean of the first `period` true ranges (on bar
    `period`) and then follows Wilder's smoothing ATR = (ATR_prev * (period - 1) + TR) /
    period, as talib.ATR. Period 1 gives the true range itself.
    """
    p = check_int("period", period, 1)
    h, lo, c = as_float_arrays(high=high, low=low, close=close)
    index = series_index(high=high, low=low, close=close)
    out = np.empty(c.shape[0])
    _k.atr(h, lo, c, p, out)
    return cast(Values, wrap(index, out, "atr"))
