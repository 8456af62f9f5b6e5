"""Technical indicators on numpy arrays or pandas Series, with TA-Lib's conventions.

Every function returns what it was given (numpy in, numpy out; a Series in, a Series on
the same index out; several outputs as a tuple). Warm-up bars are NaN exactly where
TA-Lib puts NaN, and the values after them are TA-Lib's (tested against the installed
`talib` on real market data and on random input). Each indicator is a compiled numba
kernel doing TA-Lib's arithmetic in TA-Lib's order; see `_kernels` for why.

`INDICATORS` is the catalogue (description, parameters and defaults, outputs, TA-Lib
equivalent) printed by `algotrendy indicators`.

Bad input -- a period below its minimum, inputs of different lengths, anything but 1-D
numbers -- raises `algotrendy.errors.ParameterError` naming the argument and the value.
"""

from __future__ import annotations

from algotrendy.indicators.catalog import INDICATORS, IndicatorInfo, Parameter
from algotrendy.indicators.momentum import adx, macd, rsi, stochastic
from algotrendy.indicators.overlap import bollinger_bands, ema, sma
from algotrendy.indicators.volatility import atr
from algotrendy.indicators.volume import obv, vwap

__all__ = [
    "INDICATORS",
    "IndicatorInfo",
    "Parameter",
    "adx",
    "atr",
    "bollinger_bands",
    "ema",
    "macd",
    "obv",
    "rsi",
    "sma",
    "stochastic",
    "vwap",
]
