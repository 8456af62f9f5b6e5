"""Small strategies and bar builders shared by the engine tests (not a conftest, so it
cannot clash with fixtures of the other backtest test modules)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from algotrendy.domain.bars import Bars
from algotrendy.strategies.base import BarContext, FloatArray, Strategy, StrategyParams


class NoParams(StrategyParams):
    pass


class FixedSignals(Strategy[NoParams]):
    """Returns the signals it was built with, whatever the bars."""

    name = "fixed_signals"
    Params = NoParams

    def __init__(self, signals: Sequence[float] | np.ndarray) -> None:
        self._signals = np.asarray(signals, dtype=np.float64)

    def signals(self, bars: Bars, params: NoParams) -> FloatArray:
        return self._signals.copy()


class FixedSignalsEveryBar(FixedSignals):
    """Same signals, but overriding `on_bar` (with the default's rule), which makes the
    event engine call it on every bar instead of only on signal bars."""

    def on_bar(self, ctx: BarContext, i: int, signals: FloatArray) -> None:
        s = signals[i]
        if s == s:
            ctx.target(float(s))


Action = Callable[[BarContext], None]


class Scripted(Strategy[NoParams]):
    """Overrides `on_bar`: runs the actions listed for each bar, and records what the
    strategy saw (position at each call) so tests can check the context too."""

    name = "scripted"
    Params = NoParams

    def __init__(self, script: dict[int, list[Action]]) -> None:
        self.script = script
        self.seen: list[tuple[int, float]] = []

    def signals(self, bars: Bars, params: NoParams) -> FloatArray:
        return np.full(len(bars), np.nan)

    def on_bar(self, ctx: BarContext, i: int, signals: FloatArray) -> None:
        self.seen.append((i, ctx.position))
        for action in self.script.get(i, []):
            action(ctx)


def frame(rows: Sequence[tuple[float, float, float, float]], freq: str = "1D") -> pd.DataFrame:
    """OHLC rows (open, high, low, close) on a UTC daily index from 2024-01-01."""
    arr = np.asarray(rows, dtype=np.float64)
    index = pd.date_range("2024-01-01", periods=len(rows), freq=freq, tz="UTC", name="time")
    return pd.DataFrame(
        {
            "open": arr[:, 0],
            "high": arr[:, 1],
            "low": arr[:, 2],
            "close": arr[:, 3],
            "volume": np.ones(len(rows)),
        },
        index=index,
    )


def trades_as_tuples(trades: pd.DataFrame) -> list[tuple[Any, ...]]:
    cols = ["side", "size", "entry_price", "exit_price", "entry_bar", "exit_bar"]
    return [tuple(r) for r in trades[cols].itertuples(index=False)]
