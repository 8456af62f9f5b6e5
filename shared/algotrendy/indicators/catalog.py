"""The catalogue of indicators: what `algotrendy indicators` prints, and what the tests
use to check every claimed TA-Lib equivalence (so the table cannot drift from the code).

Parameter defaults are read from the functions' signatures, not restated here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from algotrendy.indicators.momentum import adx, macd, rsi, stochastic
from algotrendy.indicators.overlap import bollinger_bands, ema, sma
from algotrendy.indicators.volatility import atr
from algotrendy.indicators.volume import obv, vwap


@dataclass(frozen=True, slots=True)
class Parameter:
    """One tunable parameter: its default (from the signature), smallest accepted value
    (None when not an integer period) and meaning."""

    name: str
    default: Any
    minimum: int | None
    description: str


@dataclass(frozen=True, slots=True)
class IndicatorInfo:
    """One catalogue entry.

    `talib_function` / `talib_params` / `talib_fixed` name the TA-Lib call that gives the
    same outputs: talib.<function>(*inputs, **{talib name: our value}, **fixed), or None
    when TA-Lib has no equivalent. `lookback(**params)` is the number of leading NaN bars
    (TA-Lib's lookback) on input without leading NaNs.
    """

    name: str
    function: Callable[..., Any]
    description: str
    group: str
    inputs: tuple[str, ...]
    params: tuple[Parameter, ...]
    outputs: tuple[str, ...]
    lookback: Callable[..., int]
    talib_function: str | None
    talib_params: Mapping[str, str] = field(default_factory=dict)
    talib_fixed: Mapping[str, int] = field(default_factory=dict)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (what `algotrendy indicators --json` prints)."""
        return {
            "name": self.name,
            "description": self.description,
            "group": self.group,
            "inputs": list(self.inputs),
            "params": [
                {
                    "name": p.name,
                    "default": p.default,
                    "minimum": p.minimum,
                    "description": p.description,
                }
                for p in self.params
            ],
            "outputs": list(self.outputs),
            "talib": self.talib_call,
        }

    @property
    def talib_call(self) -> str:
        """The equivalent TA-Lib call as text, e.g. 'talib.SMA(x, timeperiod=period)'."""
        if self.talib_function is None:
            return "none (TA-Lib has no equivalent)"
        args = list(self.inputs)
        args += [f"{ta}={ours}" for ta, ours in self.talib_params.items()]
        args += [f"{ta}={value}" for ta, value in self.talib_fixed.items()]
        return f"talib.{self.talib_function}({', '.join(args)})"


def _params(
    function: Callable[..., Any], **described: tuple[int | None, str]
) -> tuple[Parameter, ...]:
    """Parameters of `function` after its inputs, defaults taken from its signature."""
    signature = inspect.signature(function)
    return tuple(
        Parameter(name, signature.parameters[name].default, minimum, text)
        for name, (minimum, text) in described.items()
    )


_ENTRIES = (
    IndicatorInfo(
        name="sma",
        function=sma,
        description="Simple moving average of the last period values",
        group="overlap",
        inputs=("x",),
        params=_params(sma, period=(1, "window length in bars")),
        outputs=("sma",),
        lookback=lambda period: period - 1,
        talib_function="SMA",
        talib_params={"timeperiod": "period"},
    ),
    IndicatorInfo(
        name="ema",
        function=ema,
        description="Exponential moving average, k = 2/(period+1), seeded with an SMA",
        group="overlap",
        inputs=("x",),
        params=_params(ema, period=(1, "span in bars")),
        outputs=("ema",),
        lookback=lambda period: period - 1,
        talib_function="EMA",
        talib_params={"timeperiod": "period"},
    ),
    IndicatorInfo(
        name="bollinger_bands",
        function=bollinger_bands,
        description="SMA middle band +/- multiples of the population standard deviation",
        group="overlap",
        inputs=("x",),
        params=_params(
            bollinger_bands,
            period=(2, "window length in bars"),
            nbdev_up=(None, "upper band distance in standard deviations"),
            nbdev_dn=(None, "lower band distance in standard deviations"),
        ),
        outputs=("bb_upper", "bb_middle", "bb_lower"),
        lookback=lambda period, nbdev_up, nbdev_dn: period - 1,
        talib_function="BBANDS",
        talib_params={"timeperiod": "period", "nbdevup": "nbdev_up", "nbdevdn": "nbdev_dn"},
        talib_fixed={"matype": 0},
    ),
    IndicatorInfo(
        name="rsi",
        function=rsi,
        description="Relative Strength Index (Wilder smoothing), 0..100",
        group="momentum",
        inputs=("x",),
        params=_params(rsi, period=(2, "smoothing period in bars")),
        outputs=("rsi",),
        lookback=lambda period: period,
        talib_function="RSI",
        talib_params={"timeperiod": "period"},
    ),
    IndicatorInfo(
        name="macd",
        function=macd,
        description="EMA(fast) - EMA(slow), its EMA signal line and their difference",
        group="momentum",
        inputs=("x",),
        params=_params(
            macd,
            fast=(2, "fast EMA period"),
            slow=(2, "slow EMA period (swapped with fast if smaller)"),
            signal=(1, "signal-line EMA period"),
        ),
        outputs=("macd", "macd_signal", "macd_hist"),
        lookback=lambda fast, slow, signal: max(fast, slow) - 1 + signal - 1,
        talib_function="MACD",
        talib_params={"fastperiod": "fast", "slowperiod": "slow", "signalperiod": "signal"},
    ),
    IndicatorInfo(
        name="stochastic",
        function=stochastic,
        description="Slow stochastic %K and %D (SMA smoothing), 0..100",
        group="momentum",
        inputs=("high", "low", "close"),
        params=_params(
            stochastic,
            fastk_period=(1, "high/low window of the raw %K"),
            slowk_period=(1, "SMA period smoothing %K"),
            slowd_period=(1, "SMA period of %D over the smoothed %K"),
        ),
        outputs=("slowk", "slowd"),
        lookback=lambda fastk_period, slowk_period, slowd_period: (
            fastk_period - 1 + slowk_period - 1 + slowd_period - 1
        ),
        talib_function="STOCH",
        talib_params={
            "fastk_period": "fastk_period",
            "slowk_period": "slowk_period",
            "slowd_period": "slowd_period",
        },
        talib_fixed={"slowk_matype": 0, "slowd_matype": 0},
    ),
    IndicatorInfo(
        name="adx",
        function=adx,
        description="Average Directional Movement Index (Wilder), trend strength 0..100",
        group="momentum",
        inputs=("high", "low", "close"),
        params=_params(adx, period=(2, "smoothing period in bars")),
        outputs=("adx",),
        lookback=lambda period: 2 * period - 1,
        talib_function="ADX",
        talib_params={"timeperiod": "period"},
    ),
    IndicatorInfo(
        name="atr",
        function=atr,
        description="Average True Range (Wilder smoothing), in price units",
        group="volatility",
        inputs=("high", "low", "close"),
        params=_params(atr, period=(1, "smoothing period in bars")),
        outputs=("atr",),
        lookback=lambda period: period,
        talib_function="ATR",
        talib_params={"timeperiod": "period"},
    ),
    IndicatorInfo(
        name="obv",
        function=obv,
        description="On-Balance Volume: running volume total signed by the close's move",
        group="volume",
        inputs=("close", "volume"),
        params=(),
        outputs=("obv",),
        lookback=lambda: 0,
        talib_function="OBV",
    ),
    IndicatorInfo(
        name="vwap",
        function=vwap,
        description="Volume-weighted average of (high+low+close)/3, cumulative or rolling",
        group="volume",
        inputs=("high", "low", "close", "volume"),
        params=_params(vwap, period=(1, "rolling window in bars; None = cumulative")),
        outputs=("vwap",),
        lookback=lambda period: 0 if period is None else period - 1,
        talib_function=None,
    ),
)

INDICATORS: Mapping[str, IndicatorInfo] = MappingProxyType({e.name: e for e in _ENTRIES})
"""Every indicator by name, in display order (overlap, momentum, volatility, volume)."""
