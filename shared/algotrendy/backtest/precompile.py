"""Compile every numba kernel a sweep chunk reaches, ahead of time, into numba's disk cache.

Why: a Lambda execution environment starts with an empty /tmp, so the backtest worker
(a container image with numba) would compile its kernels again on the first chunk of every
new environment: ~2 s measured, paid by each of the Distributed Map's concurrent workers.
The worker's image runs this once at build time (`python -m algotrendy.backtest.precompile`)
into a seed cache that `algotrendy.compiled` copies to NUMBA_CACHE_DIR at start, so a cold
worker loads machine code instead of compiling it. The image also sets
NUMBA_CPU_NAME=generic: numba keys its cache on the CPU it compiled for, and the machine
that builds the image is not the one Lambda runs it on.

The path is the worker's own: candles read from a CSV file by `load_ohlcv`, then
`run_chunk` with every registered strategy at its default parameters on the default
config, both sides allowed where the strategy has the switch (the argument types are what
numba specialises on, and they do not change with the values).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.sweep import SweepChunk, run_chunk
from algotrendy.compiled import HAVE_NUMBA
from algotrendy.data import load_ohlcv
from algotrendy.strategies import get_strategy, strategy_names


def _candles(n: int) -> pd.DataFrame:
    """A deterministic random walk of hourly candles (no data file ships in the image)."""
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    spread = np.abs(rng.normal(0.0, 0.005, n)) * close
    return pd.DataFrame(
        {
            "time": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "open": close,
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.uniform(1.0, 10.0, n),
        }
    )


def precompile(n_bars: int = 600) -> list[str]:
    """Run one chunk per registered strategy through the worker's path; returns the
    strategies run. Without numba (zip functions, `ALGOTRENDY_DISABLE_NUMBA`) it still
    runs, and compiles nothing."""
    done: list[str] = []
    with tempfile.TemporaryDirectory(prefix="algotrendy-precompile-") as tmp:
        path = Path(tmp) / "candles.csv"
        _candles(n_bars).to_csv(path, index=False)
        frame = load_ohlcv(path)
        for index, name in enumerate(strategy_names()):
            defaults = get_strategy(name).params().model_dump()
            variants = [defaults]
            if "allow_short" in defaults:
                variants.append({**defaults, "allow_short": not defaults["allow_short"]})
            chunk = SweepChunk(
                id=f"precompile-{name}",
                index=index,
                strategy=name,
                symbols=["PRECOMPILE"],
                params=variants,
                first_task=0,
                config=BacktestConfig(),
            )
            rows = run_chunk(chunk, lambda _symbol: frame)
            if len(rows) != len(variants):
                raise RuntimeError(f"precompile of {name}: {len(rows)} rows for {len(variants)}")
            done.append(name)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bars", type=int, default=600)
    args = parser.parse_args(argv)
    names = precompile(args.bars)
    state = "compiled into numba's cache" if HAVE_NUMBA else "run uncompiled (no numba)"
    print(f"precompile: {len(names)} strategies {state}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
