"""Overlap studies (TA-Lib's group name): indicators drawn on the price scale.

Each function takes a numpy float array or a pandas Series and returns the same type
(a Series keeps the input's index). Warm-up bars are NaN exactly where TA-Lib's are;
values after them are TA-Lib's (the tests compare them with the installed `talib`).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from algotrendy.indicators import _kernels as _k
from algotrendy.indicators._common import (
    Values,
    as_float_array,
    check_float,
    check_int,
    series_index,
    wrap,
)


def sma(x: Values, period: int = 30) -> Values:
    """Simple moving average: the arithmetic mean of the last `period` values.

    Same as talib.SMA(x, timeperiod=period): NaN for the first period-1 bars, and the
    window sum is carried forward (add the new bar, drop the oldest) in TA-Lib's order,
    so the values are TA-Lib's bit for bit, on 1M bars too.
    """
    p = check_int("period", period, 1)
    arr = as_float_array("x", x)
    out = np.empty(arr.shape[0])
    _k.sma(arr, p, out)
    return cast(Values, wrap(series_index(x=x), out, "sma"))


def ema(x: Values, period: int = 30) -> Values:
    """Exponential moving average with k = 2 / (period + 1).

    TA-Lib's convention (talib.EMA, default compatibility): the first value, on bar
    period-1, is the simple mean of the first `period` values; after that
    EMA = EMA_prev + k * (x - EMA_prev). Earlier bars are NaN.
    """
    p = check_int("period", period, 1)
    arr = as_float_array("x", x)
    out = np.empty(arr.shape[0])
    _k.ema(arr, p, out)
    return cast(Values, wrap(series_index(x=x), out, "ema"))


def bollinger_bands(
    x: Values, period: int = 20, nbdev_up: float = 2.0, nbdev_dn: float = 2.0
) -> tuple[Values, Values, Values]:
    """Bollinger Bands (John Bollinger): (upper, middle, lower).

    middle = SMA(x, period); upper = middle + nbdev_up * sd; lower = middle - nbdev_dn * sd,
    where sd is the *population* standard deviation of the same `period` values (divide by
    period, not period-1), as talib.BBANDS(x, period, nbdev_up, nbdev_dn, matype=SMA)
    computes it. NaN for the first period-1 bars. The deviation is computed from sums
    shifted by a recent mean and rebuilt exactly when cancellation shows, so it stays
    accurate for prices far from zero and is exactly 0 on a flat window.
    """
    p = check_int("period", period, 2)
    up = check_float("nbdev_up", nbdev_up)
    dn = check_float("nbdev_dn", nbdev_dn)
    arr = as_float_array("x", x)
    n = arr.shape[0]
    upper, middle, lower = np.empty(n), np.empty(n), np.empty(n)
    _k.bollinger(arr, p, up, dn, upper, middle, lower)
    index = series_index(x=x)
    return (
        cast(Values, wrap(index, upper, "bb_upper")),
        cast(Values, wrap(index, middle, "bb_middle")),
        cast(Values, wrap(index, lower, "bb_lower")),
    )
