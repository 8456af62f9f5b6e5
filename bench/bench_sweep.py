"""Parameter sweep: 100 sma_cross combinations x 100k bars, ours against vectorbt.

Both sides get the same seeded synthetic one-minute random walk and the same 100
combinations (fast 5..50 step 5 x slow 60..240 step 20, every one valid), the same rule
(long on the SMA cross up, short on the cross down, decided at a bar's close, filled at
the next bar's open, all-in whole units, no fees, 100,000 cash), and each produces a
ranked table of per-combination metrics:

* ours: `run_sweep(df, "sma_cross", grid, workers=1)`: grid expansion and validation,
  data validation, per combination the signals, the fill kernel and all 19 metrics of
  `compute_metrics`, then the ranking. Also with workers=2 (a process pool; on a busy
  or 2-core machine the pool start-up can eat the gain at this size);
* vectorbt: the documented broadcasting sweep, `MA.run` with the 100 fast and the 100
  slow windows as parameter lists, `ma_crossed_above` / `ma_crossed_below`, shifted one
  bar, `Portfolio.from_signals(close, entries, short_entries=..., price=open,
  size=inf, size_granularity=1)` over all 100 columns at once, then total return,
  Sharpe, max drawdown and trade count (4 metrics; ours computes 19). Also a generous
  variant computing the crossings and the shift in plain numpy (vectorbt's pandas
  accessors for those take most of its time under pandas 3).

Both are warmed up first (numba compilation is not timed) and timed best of --repeat.
Results are cross-checked per combination before any ratio is printed: final equity and
number of trades must agree for every one of the 100 combinations.

Run: .venv/bin/python bench/bench_sweep.py [--bars 100000] [--repeat 3]
Figures and how to read them: bench/sweep.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from bench_backtest import make_bars  # the same bars as the backtest benchmark

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.sweep import run_sweep

FAST = list(range(5, 51, 5))
SLOW = list(range(60, 241, 20))
GRID = ["fast=5:50:5", "slow=60:240:20"]
CASH = 100_000.0


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best = math.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def ours(df: pd.DataFrame, workers: int) -> pd.DataFrame:
    res = run_sweep(
        df,
        "sma_cross",
        GRID,
        config=BacktestConfig(cash=CASH),
        workers=workers,
        top=None,
        progress=False,
    )
    return res.ranked.set_index(["fast", "slow"]).sort_index()


def vectorbt_sweep(df: pd.DataFrame, numpy_signals: bool = False) -> pd.DataFrame:
    import vectorbt as vbt

    close, open_ = df["close"], df["open"]
    fw = [f for f in FAST for _ in SLOW]
    sw = [s for _ in FAST for s in SLOW]
    fast = vbt.MA.run(close, window=fw, short_name="fast")
    slow = vbt.MA.run(close, window=sw, short_name="slow")
    # Decided on bar i's close, executed at bar i+1's open.
    up: Any
    down: Any
    if numpy_signals:
        # The generous variant: crossings and the one-bar shift in plain numpy, skipping
        # vectorbt's pandas-level accessors (most of its time under pandas 3).
        f, s = fast.ma.to_numpy(), slow.ma.to_numpy()
        up = np.zeros(f.shape, dtype=bool)
        down = np.zeros(f.shape, dtype=bool)
        up[2:] = (f[:-2] < s[:-2]) & (f[1:-1] > s[1:-1])
        down[2:] = (f[:-2] > s[:-2]) & (f[1:-1] < s[1:-1])
        up = pd.DataFrame(up, index=close.index)
        down = pd.DataFrame(down, index=close.index)
    else:
        up = fast.ma_crossed_above(slow).vbt.fshift(1).fillna(False).astype(bool)
        down = fast.ma_crossed_below(slow).vbt.fshift(1).fillna(False).astype(bool)
    pf = vbt.Portfolio.from_signals(
        close,
        entries=up,
        short_entries=down,
        price=open_,
        size=np.inf,
        size_granularity=1.0,
        init_cash=CASH,
        fees=0.0,
        freq="1min",
    )
    out = pd.DataFrame(
        {
            "total_return": pf.total_return().to_numpy(),
            "sharpe": pf.sharpe_ratio().to_numpy(),
            "max_drawdown": pf.max_drawdown().to_numpy(),
            "num_trades": pf.trades.count().to_numpy(),
            "final_equity": pf.final_value().to_numpy(),
        },
        index=pd.MultiIndex.from_arrays([fw, sw], names=["fast", "slow"]),
    )
    return out.sort_values("sharpe", ascending=False).sort_index()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    df = make_bars(args.bars)
    small = make_bars(2_000, seed=1)
    print(
        f"{len(FAST) * len(SLOW)} combinations x {len(df):,} bars | python "
        f"{platform.python_version()} | {platform.machine()} | {os.cpu_count()} cpus | "
        f"load avg {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    # Warm up (numba compilation, imports): not timed.
    ours(small, 1)
    vectorbt_sweep(small)
    vectorbt_sweep(small, True)

    t_ours, ranked = best_of(lambda: ours(df, 1), args.repeat)
    print(f"ours, workers=1   {t_ours:8.3f} s", flush=True)
    t_vbt, vbt_table = best_of(lambda: vectorbt_sweep(df), args.repeat)
    print(f"vectorbt          {t_vbt:8.3f} s", flush=True)
    t_vbt_np, vbt_np_table = best_of(lambda: vectorbt_sweep(df, True), args.repeat)
    print(f"vectorbt, numpy crossings {t_vbt_np:8.3f} s", flush=True)
    t_ours2, _ = best_of(lambda: ours(df, 2), args.repeat)
    print(f"ours, workers=2   {t_ours2:8.3f} s", flush=True)

    # Same run? Every combination: same trade count and final equity.
    for label, table in (("vectorbt", vbt_table), ("vectorbt, numpy", vbt_np_table)):
        joined = ranked.join(table, rsuffix="_vbt")
        same_trades = int((joined["num_trades"] == joined["num_trades_vbt"]).sum())
        eq_rel = (joined["final_equity"] / joined["final_equity_vbt"] - 1.0).abs().max()
        print(
            f"cross-check {label}: trades equal in {same_trades}/{len(joined)} combinations, "
            f"max relative final-equity difference {eq_rel:.2e}"
        )
        if same_trades != len(joined) or eq_rel > 1e-9:
            print("MISMATCH: the two sweeps did not compute the same backtests")
            return 1
    best = ranked.sort_values("sharpe", ascending=False).index[0]
    print(f"best by sharpe: fast={best[0]}, slow={best[1]}")
    print(f"ratio vectorbt / ours (workers=1):        {t_vbt / t_ours:6.1f}x  (target >= 5x)")
    print(f"ratio vectorbt numpy / ours (workers=1):  {t_vbt_np / t_ours:6.1f}x")
    print(f"ratio vectorbt / ours (workers=2):        {t_vbt / t_ours2:6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
