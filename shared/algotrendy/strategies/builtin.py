"""Built-in strategies. Each rule is stated in its docstring so a trade can be checked by
hand against the indicator values on the chart.

Only the declarations live here (names, parameter models, warm-up): expanding and
validating a sweep's grid needs nothing else. The array code is in
`algotrendy.strategies.kernels`, imported by each `signals` when it runs, so the sweep's
plan step does not load numpy, numba and the indicators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from pydantic import Field, model_validator

from algotrendy.strategies.base import Strategy, StrategyParams
from algotrendy.strategies.registry import register

if TYPE_CHECKING:
    from algotrendy.domain.bars import Bars
    from algotrendy.strategies.kernels import FloatArray


class SmaCrossParams(StrategyParams):
    fast: int = Field(10, ge=2, le=500, description="fast SMA period (bars)")
    slow: int = Field(20, ge=3, le=2000, description="slow SMA period (bars)")
    allow_short: bool = Field(True, description="go short on the cross down instead of flat")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Self:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


@register
class SmaCross(Strategy[SmaCrossParams]):
    """Long when SMA(fast) crosses above SMA(slow), short (or flat) when it crosses below.

    Same rule as backtesting.py's documented `SmaCross` example.
    """

    name = "sma_cross"
    description = "SMA(fast) crossing SMA(slow): long on the cross up, short on the cross down"
    Params = SmaCrossParams

    def signals(self, bars: Bars, params: SmaCrossParams) -> FloatArray:
        from algotrendy.strategies.kernels import sma_cross_signals

        return sma_cross_signals(bars.close, params.fast, params.slow, params.allow_short)

    def warmup(self, params: SmaCrossParams) -> int:
        return params.slow + 1


class MomentumParams(StrategyParams):
    lookback: int = Field(20, ge=1, le=1000, description="rate-of-change lookback (bars)")
    threshold: float = Field(0.0, ge=0.0, le=1.0, description="min |return| to act, fraction")
    allow_short: bool = Field(False, description="short when momentum is negative")


@register
class Momentum(Strategy[MomentumParams]):
    """Time-series momentum: long while close/close[lookback]-1 > threshold, short (or
    flat) while it is < -threshold, unchanged in between."""

    name = "momentum"
    description = "long while the lookback return exceeds +threshold, short/flat below -threshold"
    Params = MomentumParams

    def signals(self, bars: Bars, params: MomentumParams) -> FloatArray:
        from algotrendy.strategies.kernels import momentum_signals

        return momentum_signals(bars.close, params.lookback, params.threshold, params.allow_short)

    def warmup(self, params: MomentumParams) -> int:
        return params.lookback + 1


class RsiReversionParams(StrategyParams):
    period: int = Field(14, ge=2, le=500, description="RSI period (Wilder)")
    lower: float = Field(30.0, gt=0.0, lt=100.0, description="oversold level: buy below")
    upper: float = Field(70.0, gt=0.0, lt=100.0, description="overbought level: sell above")
    exit: float = Field(50.0, gt=0.0, lt=100.0, description="flatten when RSI crosses this")
    allow_short: bool = Field(False, description="short above `upper` instead of only exiting")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.lower < self.exit < self.upper:
            raise ValueError(
                f"need lower < exit < upper (got {self.lower}, {self.exit}, {self.upper})"
            )
        return self


@register
class RsiReversion(Strategy[RsiReversionParams]):
    """Mean reversion: long when RSI crosses below `lower`, flat when it crosses back above
    `exit`; with shorts on, short when RSI crosses above `upper`, flat below `exit`."""

    name = "rsi_reversion"
    description = "buy RSI oversold, exit at the midline; optionally short overbought"
    Params = RsiReversionParams

    def signals(self, bars: Bars, params: RsiReversionParams) -> FloatArray:
        from algotrendy.strategies.kernels import rsi_reversion_signals

        return rsi_reversion_signals(
            bars.close,
            params.period,
            params.lower,
            params.upper,
            params.exit,
            params.allow_short,
        )

    def warmup(self, params: RsiReversionParams) -> int:
        return params.period + 2


class MacdCrossParams(StrategyParams):
    fast: int = Field(12, ge=2, le=500, description="fast EMA period")
    slow: int = Field(26, ge=3, le=1000, description="slow EMA period")
    signal: int = Field(9, ge=1, le=500, description="signal-line EMA period")
    allow_short: bool = Field(False, description="short on the cross down instead of flat")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Self:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


@register
class MacdCross(Strategy[MacdCrossParams]):
    """Long when the MACD line crosses above its signal line, flat (or short) below."""

    name = "macd_cross"
    description = "MACD line crossing its signal line"
    Params = MacdCrossParams

    def signals(self, bars: Bars, params: MacdCrossParams) -> FloatArray:
        from algotrendy.strategies.kernels import macd_cross_signals

        return macd_cross_signals(
            bars.close, params.fast, params.slow, params.signal, params.allow_short
        )

    def warmup(self, params: MacdCrossParams) -> int:
        return params.slow + params.signal


class BollingerBreakoutParams(StrategyParams):
    period: int = Field(20, ge=2, le=1000, description="middle-band SMA period")
    nbdev: float = Field(2.0, gt=0.0, le=10.0, description="band width in standard deviations")
    allow_short: bool = Field(False, description="short on a close below the lower band")


@register
class BollingerBreakout(Strategy[BollingerBreakoutParams]):
    """Breakout: long on a close crossing above the upper band, exit on a close crossing
    below the middle band; with shorts on, the mirror image on the lower band."""

    name = "bollinger_breakout"
    description = "close breaking out of the Bollinger Bands, exit at the middle band"
    Params = BollingerBreakoutParams

    def signals(self, bars: Bars, params: BollingerBreakoutParams) -> FloatArray:
        from algotrendy.strategies.kernels import bollinger_breakout_signals

        return bollinger_breakout_signals(
            bars.close, params.period, params.nbdev, params.allow_short
        )

    def warmup(self, params: BollingerBreakoutParams) -> int:
        return params.period + 1
