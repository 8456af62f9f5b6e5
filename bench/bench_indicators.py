"""AlgoTrendy indicators vs TA-Lib's C on 1M bars, in one process.

Data: a seeded synthetic random walk (OHLCV, 1M bars by default). Each indicator is
called once to warm up (numba loads its cached machine code, pages are touched), then
ours and TA-Lib are timed alternately `--repeat` times; the best time of each counts. The ratio is
ours / TA-Lib (target: <= 1.5). The same run checks the values: NaN at the same bars and
the largest relative difference after the warm-up (target: <= 1e-9).

VWAP has no TA-Lib counterpart; it is timed against the straightforward pandas
expression (rolling / cumulative sums) instead, for scale only.

Run: .venv/bin/python bench/bench_indicators.py [--bars 1000000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import talib

from algotrendy import indicators as ind

TARGET_RATIO = 1.5
TARGET_REL = 1e-9


def random_walk(n: int, seed: int = 42) -> dict[str, np.ndarray]:
    """OHLCV whose close is a geometric random walk (0.1 % per bar), with wicks."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 5e-4, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = rng.lognormal(10.0, 1.0, n)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def best_ms(ours: Callable[[], Any], ref: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best-of-`repeat` wall time of each, in ms, the two timed alternately so that a
    burst of load from elsewhere on the machine hits both sides alike."""
    ours()  # warm-up: JIT cache load, page faults
    ref()
    t_ours, t_ref = [], []
    gc.disable()
    try:
        for _ in range(repeat):
            for fn, times in ((ours, t_ours), (ref, t_ref)):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return min(t_ours) * 1e3, min(t_ref) * 1e3


def max_rel_diff(ours: Any, ref: Any) -> tuple[bool, float]:
    """(same NaN bars, largest |ours - ref| / |ref| over the bars where ref is a number)."""
    a = np.atleast_2d(np.asarray(ours, dtype=np.float64))
    b = np.atleast_2d(np.asarray(ref, dtype=np.float64))
    same_nan = bool(np.array_equal(np.isnan(a), np.isnan(b)))
    mask = ~np.isnan(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(a[mask] - b[mask]) / np.abs(b[mask])
    rel = np.where(a[mask] == b[mask], 0.0, rel)
    return same_nan, float(rel.max()) if rel.size else 0.0


def cases(d: dict[str, np.ndarray]) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    h, lo, c, v = d["high"], d["low"], d["close"], d["volume"]
    hs, ls, cs, vs = (pd.Series(a) for a in (h, lo, c, v))

    def pandas_vwap(period: int | None) -> Callable[[], Any]:
        def run() -> Any:
            pv = (hs + ls + cs) / 3.0 * vs
            if period is None:
                return (pv.cumsum() / vs.cumsum()).to_numpy()
            return (pv.rolling(period).sum() / vs.rolling(period).sum()).to_numpy()

        return run

    return [
        ("sma(30)", lambda: ind.sma(c, 30), lambda: talib.SMA(c, 30)),
        ("ema(30)", lambda: ind.ema(c, 30), lambda: talib.EMA(c, 30)),
        ("rsi(14)", lambda: ind.rsi(c, 14), lambda: talib.RSI(c, 14)),
        ("macd(12,26,9)", lambda: ind.macd(c), lambda: talib.MACD(c, 12, 26, 9)),
        (
            "bollinger(20,2)",
            lambda: ind.bollinger_bands(c, 20, 2.0, 2.0),
            lambda: talib.BBANDS(c, 20, 2.0, 2.0, 0),
        ),
        ("atr(14)", lambda: ind.atr(h, lo, c, 14), lambda: talib.ATR(h, lo, c, 14)),
        (
            "stochastic(5,3,3)",
            lambda: ind.stochastic(h, lo, c, 5, 3, 3),
            lambda: talib.STOCH(h, lo, c, fastk_period=5, slowk_period=3, slowd_period=3),
        ),
        ("obv", lambda: ind.obv(c, v), lambda: talib.OBV(c, v)),
        ("adx(14)", lambda: ind.adx(h, lo, c, 14), lambda: talib.ADX(h, lo, c, 14)),
        ("vwap (cumulative)*", lambda: ind.vwap(h, lo, c, v), pandas_vwap(None)),
        ("vwap(20)*", lambda: ind.vwap(h, lo, c, v, 20), pandas_vwap(20)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)

    data = random_walk(args.bars)
    print(f"{args.bars:,} bars, best of {args.repeat} warm runs; ratio = ours / reference")
    header = (
        f"{'indicator':<20}{'ours ms':>10}{'ref ms':>10}{'ratio':>8}{'NaN ok':>8}{'max rel':>11}"
    )
    print(header)
    print("-" * len(header))
    bad_values = []
    slow = []
    for name, ours, ref in cases(data):
        t_ours, t_ref = best_ms(ours, ref, args.repeat)
        same_nan, rel = max_rel_diff(ours(), ref())
        ratio = t_ours / t_ref
        flag = "" if ratio <= TARGET_RATIO else "  <- over 1.5x"
        print(
            f"{name:<20}{t_ours:>10.2f}{t_ref:>10.2f}{ratio:>8.2f}{same_nan!s:>8}{rel:>11.1e}{flag}"
        )
        if not same_nan or rel > TARGET_REL:
            bad_values.append(name)
        if ratio > TARGET_RATIO and not name.endswith("*"):
            slow.append(name)
    print("* reference is pandas (TA-Lib has no VWAP); not part of the 1.5x target")
    if slow:
        print(f"over the 1.5x target: {', '.join(slow)}")
    if bad_values:
        print(f"VALUES DIFFER: {', '.join(bad_values)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
