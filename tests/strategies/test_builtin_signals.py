"""Each built-in's signals checked against an independent computation with TA-Lib."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from algotrendy.domain import Bars
from algotrendy.strategies import get_strategy


@pytest.fixture(scope="module")
def bars(goog: pd.DataFrame) -> Bars:
    return Bars.from_frame(goog)


def _cross_up(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    idx = [i for i in range(1, len(a)) if a[i - 1] < b[i - 1] and a[i] > b[i]]
    return np.array(idx, dtype=np.int64)


def _where(sig: np.ndarray, value: float) -> np.ndarray:
    return np.flatnonzero(sig == value)


def test_sma_cross_matches_talib_crossings(bars: Bars) -> None:
    s = get_strategy("sma_cross")
    sig = s.signals(bars, s.params({"fast": 10, "slow": 20}))
    f, sl = talib.SMA(bars.close, 10), talib.SMA(bars.close, 20)
    np.testing.assert_array_equal(_where(sig, 1.0), _cross_up(f, sl))
    np.testing.assert_array_equal(_where(sig, -1.0), _cross_up(sl, f))
    assert np.isnan(sig[:20]).all()
    assert len(_where(sig, 1.0)) > 20


def test_sma_cross_long_only_exits_flat(bars: Bars) -> None:
    s = get_strategy("sma_cross")
    sig = s.signals(bars, s.params({"allow_short": False}))
    assert not (sig == -1).any()
    f, sl = talib.SMA(bars.close, 10), talib.SMA(bars.close, 20)
    np.testing.assert_array_equal(_where(sig, 0.0), _cross_up(sl, f))


def test_momentum_rule(bars: Bars) -> None:
    s = get_strategy("momentum")
    p = s.params({"lookback": 20, "threshold": 0.05, "allow_short": True})
    sig = s.signals(bars, p)
    roc = talib.ROCR(bars.close, 20) - 1.0
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(sig == 1.0, roc > 0.05)
        np.testing.assert_array_equal(sig == -1.0, roc < -0.05)


def test_rsi_reversion_entries(bars: Bars) -> None:
    s = get_strategy("rsi_reversion")
    sig = s.signals(bars, s.params({"period": 14, "lower": 30, "upper": 70, "exit": 50}))
    r = talib.RSI(bars.close, 14)
    lower = np.full_like(r, 30.0)
    np.testing.assert_array_equal(_where(sig, 1.0), _cross_up(lower, r))
    mid = np.full_like(r, 50.0)
    exits = np.union1d(_cross_up(r, mid), _cross_up(mid, r))
    np.testing.assert_array_equal(_where(sig, 0.0), np.setdiff1d(exits, _cross_up(lower, r)))
    assert not (sig == -1).any()


def test_macd_cross_matches_talib(bars: Bars) -> None:
    s = get_strategy("macd_cross")
    sig = s.signals(bars, s.params({}))
    line, signal, _ = talib.MACD(bars.close, 12, 26, 9)
    np.testing.assert_array_equal(_where(sig, 1.0), _cross_up(line, signal))
    np.testing.assert_array_equal(_where(sig, 0.0), _cross_up(signal, line))


def test_bollinger_breakout_matches_talib(bars: Bars) -> None:
    s = get_strategy("bollinger_breakout")
    sig = s.signals(bars, s.params({"period": 20, "nbdev": 2.0}))
    upper, middle, _ = talib.BBANDS(bars.close, 20, 2.0, 2.0)
    np.testing.assert_array_equal(_where(sig, 1.0), _cross_up(bars.close, upper))
    assert len(_where(sig, 1.0)) > 5
    exits = np.union1d(_cross_up(middle, bars.close), _cross_up(bars.close, middle))
    np.testing.assert_array_equal(
        _where(sig, 0.0), np.setdiff1d(exits, _cross_up(bars.close, upper))
    )


@pytest.mark.parametrize("name", ["sma_cross", "momentum", "bollinger_breakout"])
def test_live_window_agrees_with_full_history(bars: Bars, name: str) -> None:
    """Live evaluation on the last N bars sees what the backtest saw (SMA-based: exact)."""
    s = get_strategy(name)
    p = s.params({})
    full = s.signals(bars, p)
    n = s.warmup(p) + 1
    for end in range(len(bars) - 300, len(bars) + 1):
        window = Bars(
            *(
                arr[end - n : end]
                for arr in (bars.time, bars.open, bars.high, bars.low, bars.close, bars.volume)
            )
        )
        latest = s.latest_signal(window, p)
        expected = full[end - 1]
        if np.isnan(expected):
            assert latest is None
        else:
            assert latest == expected


@pytest.mark.parametrize(
    "name", ["sma_cross", "momentum", "rsi_reversion", "macd_cross", "bollinger_breakout"]
)
def test_signal_values_are_directions(bars: Bars, name: str) -> None:
    s = get_strategy(name)
    sig = s.signals(bars, s.params({}))
    assert sig.shape == bars.close.shape
    values = set(np.unique(sig[~np.isnan(sig)]).tolist())
    assert values <= {-1.0, 0.0, 1.0}
    assert values, f"{name} never signals on GOOG"
