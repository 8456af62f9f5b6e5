"""Backtest engines against vectorbt, backtesting.py and a bare fused numba loop.

Everyone gets the same seeded synthetic 1M one-minute random-walk bars and the same
strategy: SMA(10) / SMA(20) crossover, long on the cross up, short on the cross down,
filled at the next bar's open, all-in whole units, no fees (with fees, the thousands of
round trips of a 1-minute crossover ruin every account long before the end and the
engines then stop trading, which would time nothing).

Measured in one process (warm = best of --repeat runs after one untimed call):

* ours, vectorised: `run_backtest` (load/validate the frame, signals, kernel, all metrics,
  trade and equity frames) and `evaluate` (metrics only, the sweep path);
* vectorbt: `Portfolio.from_signals` warm, given precomputed entries (the most generous
  timing for it), and the same with its signal computation and `stats()`; plus its
  first call (numba compilation);
* backtesting.py: the README `SmaCross` on all bars (one run, it is slow);
* a bare fused numba loop computing both SMAs, the crossings, the fills and the equity
  curve in one pass: the floor for this computation;
* ours, event-driven: sma_cross (default on_bar, visited on signal bars), the same with
  `on_bar` overridden (called on all bars), and with a protective stop order on every
  entry (stop orders working on every bar);
* ours, cold: a fresh subprocess that imports algotrendy and backtests a Parquet file
  of the bars (numba cache warm on disk), as is and with scipy hidden (the Lambda layer
  ships no scipy; numba imports scipy.linalg at start-up when it is installed).

Results are cross-checked (same final equity / trade count) before any ratio is shown.

Run: .venv/bin/python bench/bench_backtest.py [--bars 1000000] [--repeat 5] [--write]
(--write rewrites the figures section of bench/backtest.md).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FAST, SLOW = 10, 20
CASH = 10_000.0
COLD_SAMPLES = 3


def make_bars(n: int, seed: int = 42) -> pd.DataFrame:
    """Random walk: 1-minute log returns ~ N(0, 0.001), open = previous close with a small
    gap, high/low beyond open/close by |N(0, 0.0005)|."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, 0.0002, n - 1))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.0005, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.0005, n)))
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="time")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index
    )


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm
    best = math.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def once(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


class _Inline:
    """An executor that runs each job at once on the calling thread."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        from concurrent.futures import Future

        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args))
        except Exception as exc:  # handed to the caller through the future, as a pool does
            done.set_exception(exc)
        return done


def one_thread(timed: Callable[[], tuple[float, Any]]) -> float:
    """`run_backtest`'s timing with its side jobs (data check, trade frame) run inline:
    what one core gets, e.g. a Lambda worker below 1,769 MB."""
    from algotrendy.backtest import runner

    original = runner._side_thread
    runner._side_thread = lambda: _Inline()  # type: ignore[assignment,return-value]
    try:
        return timed()[0]
    finally:
        runner._side_thread = original


# ------------------------------------------------------------------------- bare loop


def bare_loop() -> Callable[..., Any]:
    from numba import njit

    @njit(cache=True)
    def sma_cross_bare(o, c, fast, slow, cash0):  # type: ignore[no-untyped-def]
        """Running-sum SMAs, strict crossings, next-open whole-unit all-in reversals,
        equity at each close: the whole backtest in one pass, nothing else."""
        n = c.shape[0]
        eq = np.empty(n)
        sf = 0.0
        ss = 0.0
        prev = np.nan
        pending = 0.0
        pos = 0.0
        cash = cash0
        fills = 0
        for i in range(n):
            if pending != 0.0:
                px = o[i]
                if pos != 0.0:
                    cash += pos * px
                    pos = 0.0
                    fills += 1
                units = math.floor(cash / px)
                if units > 0:
                    pos = pending * units
                    cash -= pos * px
                    fills += 1
                pending = 0.0
            x = c[i]
            sf += x
            ss += x
            if i >= fast:
                sf -= c[i - fast]
            if i >= slow:
                ss -= c[i - slow]
            if i >= slow - 1:
                d = sf / fast - ss / slow
                cur = 1.0 if pos > 0 else (-1.0 if pos < 0 else 0.0)
                if prev < 0.0 and d > 0.0 and cur != 1.0:
                    pending = 1.0
                elif prev > 0.0 and d < 0.0 and cur != -1.0:
                    pending = -1.0
                prev = d
            eq[i] = cash + pos * x
        return eq, fills

    return sma_cross_bare  # type: ignore[no-any-return]


# ------------------------------------------------------------------------- peers


def run_vectorbt(df: pd.DataFrame, repeat: int) -> dict[str, Any]:
    import vectorbt as vbt

    close, open_ = df["close"], df["open"]

    def signals() -> tuple[pd.Series, pd.Series]:
        fast = vbt.MA.run(close, FAST).ma
        slow = vbt.MA.run(close, SLOW).ma
        # Decided on bar i's close, executed at bar i+1's open, as everywhere else here.
        up = fast.vbt.crossed_above(slow).to_numpy()
        down = fast.vbt.crossed_below(slow).to_numpy()
        shift = lambda a: pd.Series(np.r_[False, a[:-1]], index=close.index)  # noqa: E731
        return shift(up), shift(down)

    def portfolio(up: pd.Series, down: pd.Series) -> Any:
        return vbt.Portfolio.from_signals(
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

    first, (up, down) = once(signals)
    t_pf_first, pf = once(lambda: portfolio(up, down))
    warm_pf, pf = best_of(lambda: portfolio(up, down), repeat)
    warm_sig, _ = best_of(signals, max(1, repeat // 2))
    t_stats_first, _ = once(pf.stats)
    warm_stats, stats = best_of(pf.stats, max(1, repeat // 2))
    return {
        "first_call": first + t_pf_first,
        "from_signals": warm_pf,
        "signals": warm_sig,
        "stats": warm_stats,
        "stats_first": t_stats_first,
        "final_value": float(pf.final_value()),
        "trades": int(stats["Total Trades"]),
    }


def run_backtesting_py(df: pd.DataFrame) -> dict[str, Any]:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.sma1 = self.I(SMA, self.data.Close, FAST)
            self.sma2 = self.I(SMA, self.data.Close, SLOW)

        def next(self) -> None:
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    data = df.rename(columns=str.capitalize).tz_convert(None)
    bt = Backtest(data, SmaCross, cash=CASH, commission=0.0, exclusive_orders=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, stats = once(bt.run)
    return {
        "seconds": seconds,
        "final_equity": float(stats["Equity Final [$]"]),
        "closed_trades": int(stats["# Trades"]),
    }


# ------------------------------------------------------------------------- ours


def event_strategies() -> tuple[Any, Any]:
    from algotrendy.domain.bars import Bars
    from algotrendy.strategies.base import BarContext, FloatArray
    from algotrendy.strategies.builtin import SmaCross, SmaCrossParams

    class SmaCrossEveryBar(SmaCross):
        """sma_cross with on_bar overridden (same rule): the engine calls it on every bar."""

        def on_bar(self, ctx: BarContext, i: int, signals: FloatArray) -> None:
            s = signals[i]
            if s == s:
                ctx.target(float(s))

    class SmaCrossStops(SmaCross):
        """sma_cross plus a 1% protective stop order on every entry (units sizing)."""

        units = 50.0

        def signals(self, bars: Bars, params: SmaCrossParams) -> FloatArray:
            self._close = bars.close.tolist()
            return super().signals(bars, params)

        def on_bar(self, ctx: BarContext, i: int, signals: FloatArray) -> None:
            s = signals[i]
            if s == s:
                ctx.target(float(s))
                c = self._close[i]
                if s > 0:
                    ctx.sell(size=self.units, stop=c * 0.99)
                elif s < 0:
                    ctx.buy(size=self.units, stop=c * 1.01)

    return SmaCrossEveryBar(), SmaCrossStops()


COLD_CODE = """
import sys, time
t0 = time.perf_counter()
{block}
from algotrendy.backtest import run_backtest
t1 = time.perf_counter()
r = run_backtest({path!r}, "sma_cross", {{"fast": {fast}, "slow": {slow}}})
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, r.metrics["final_equity"], "numba_scipy" if "scipy" in sys.modules else "")
"""

BLOCK_SCIPY = """
import importlib.abc
class _NoScipy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError("scipy hidden (as in the Lambda layer)")
        return None
sys.meta_path.insert(0, _NoScipy())
"""


def _first_call(sample: tuple[float, float, float]) -> float:
    return sample[0] + sample[1]


def cold(path: Path, hide_scipy: bool) -> tuple[float, float, float]:
    """(imports, first run_backtest call, process wall time) of one fresh process."""
    code = COLD_CODE.format(
        block=BLOCK_SCIPY if hide_scipy else "", path=str(path), fast=FAST, slow=SLOW
    )
    env = dict(os.environ)
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    wall = time.perf_counter() - t
    return float(out[0]), float(out[1]), wall


# ------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="write figures to bench/backtest.md")
    args = ap.parse_args()
    n = args.bars

    from algotrendy.backtest import BacktestConfig, evaluate, run_backtest
    from algotrendy.domain.bars import Bars

    df = make_bars(n)
    bars = Bars.from_frame(df)
    cfg = BacktestConfig(cash=CASH)
    params = {"fast": FAST, "slow": SLOW}
    rows: list[tuple[str, str]] = []
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"bars: {n:,} synthetic 1-minute random walk (seed 42); sma_cross({FAST}, {SLOW})")
    say(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load avg {os.getloadavg()[0]:.1f} at start; python {platform.python_version()}"
    )

    # -- ours, vectorised
    t_run, res = best_of(lambda: run_backtest(df, "sma_cross", params), args.repeat)
    t_eval, lean = best_of(lambda: evaluate(bars, "sma_cross", params, cfg), args.repeat)
    t_run1 = one_thread(lambda: best_of(lambda: run_backtest(df, "sma_cross", params), args.repeat))
    from algotrendy.backtest.vectorized import signal_kernel
    from algotrendy.strategies import get_strategy

    strat = get_strategy("sma_cross")
    p = strat.params(params)
    t_sig, sig = best_of(lambda: strat.signals(bars, p), args.repeat)
    eq_buf, pos_buf = np.empty(n), np.empty(n)
    t_kernel, _ = best_of(
        lambda: signal_kernel(
            bars.open, bars.close, sig, CASH, 0.0, 0.0, 0.0, 0, 1.0, False, eq_buf, pos_buf
        ),
        args.repeat,
    )
    ours_final = res.metrics["final_equity"]
    ours_trades = len(res.trades)
    say(
        f"ours run_backtest (vectorised, full result+metrics): {t_run * 1e3:8.1f} ms  "
        f"final equity {ours_final:,.2f}, {ours_trades:,} round trips"
    )
    say(
        f"ours run_backtest on one thread (side jobs inline):  {t_run1 * 1e3:8.1f} ms  "
        "(the data check and the trade frame otherwise run beside the strategy / metrics)"
    )
    say(f"ours evaluate (metrics only):                        {t_eval * 1e3:8.1f} ms")
    say(f"  of which strategy signals {t_sig * 1e3:.1f} ms, kernel {t_kernel * 1e3:.1f} ms")

    # -- bare loop
    bare = bare_loop()
    t_bare, (bare_eq, bare_fills) = best_of(
        lambda: bare(bars.open, bars.close, FAST, SLOW, CASH), args.repeat
    )
    say(
        f"bare fused numba loop (SMAs+crossings+fills+equity): {t_bare * 1e3:8.1f} ms  "
        f"final equity {bare_eq[-1]:,.2f}, {bare_fills:,} fills"
    )

    # -- ours, event engine
    every, stops = event_strategies()
    t_evt, r_evt = best_of(
        lambda: run_backtest(df, "sma_cross", params, engine="event"), max(1, args.repeat // 2)
    )
    t_evt_all, r_all = best_of(
        lambda: run_backtest(df, every, params, engine="event"), max(1, args.repeat // 2)
    )
    t_evt_stop, r_stop = best_of(
        lambda: run_backtest(df, stops, params, engine="event", sizing="units", size=50.0),
        max(1, args.repeat // 2),
    )
    assert r_evt.metrics["final_equity"] == ours_final == r_all.metrics["final_equity"]
    say(f"ours event engine, sma_cross (signal bars):          {t_evt * 1e3:8.1f} ms")
    say(
        f"ours event engine, on_bar on every bar:              {t_evt_all * 1e3:8.1f} ms  "
        f"({t_evt_all / n * 1e6:.2f} us/bar)"
    )
    say(
        f"ours event engine, + stop order on every entry:      {t_evt_stop * 1e3:8.1f} ms  "
        f"({t_evt_stop / n * 1e6:.2f} us/bar, {len(r_stop.trades):,} round trips)"
    )

    # -- vectorbt
    vb = run_vectorbt(df, args.repeat)
    say(
        f"vectorbt from_signals warm (entries given):          {vb['from_signals'] * 1e3:8.1f} ms  "
        f"final value {vb['final_value']:,.2f}, {vb['trades']:,} trades"
    )
    say(f"vectorbt signals (MA.run x2 + crossings) warm:       {vb['signals'] * 1e3:8.1f} ms")
    say(f"vectorbt stats() warm:                               {vb['stats'] * 1e3:8.1f} ms")
    say(
        f"vectorbt first call (signals + from_signals):        {vb['first_call']:8.2f} s "
        f"(+ first stats() {vb['stats_first']:.2f} s)"
    )

    # -- backtesting.py
    bt = run_backtesting_py(df)
    say(
        f"backtesting.py SmaCross, {n:,} bars, one run:        {bt['seconds']:8.2f} s  "
        f"final equity {bt['final_equity']:,.2f}, {bt['closed_trades']:,} closed trades"
    )

    # -- cold: each sample is a genuine first call in a new process; the machine is
    # shared, so the best of COLD_SAMPLES is reported (with the worst beside it).
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.parquet"
        df.reset_index().to_parquet(path)
        cold(path, hide_scipy=False)  # make sure the numba cache is on disk
        plain = sorted((cold(path, hide_scipy=False) for _ in range(COLD_SAMPLES)), key=_first_call)
        hidden = sorted((cold(path, hide_scipy=True) for _ in range(COLD_SAMPLES)), key=_first_call)
    imp, call, wall = plain[0]
    imp2, call2, wall2 = hidden[0]
    say(
        f"ours cold, fresh process, Parquet -> result: imports {imp:.2f} s + call {call:.2f} s "
        f"= {imp + call:.2f} s (process wall {wall:.2f} s; worst of {COLD_SAMPLES}: "
        f"{plain[-1][0] + plain[-1][1]:.2f} s)"
    )
    say(
        f"  same with scipy hidden (Lambda layer): imports {imp2:.2f} s + call {call2:.2f} s "
        f"= {imp2 + call2:.2f} s (process wall {wall2:.2f} s; worst of {COLD_SAMPLES}: "
        f"{hidden[-1][0] + hidden[-1][1]:.2f} s)"
    )

    # -- cross-checks
    say()
    checks = {
        "event engine == vectorised (final equity)": r_evt.metrics["final_equity"] == ours_final,
        "evaluate == run_backtest (final equity)": lean["final_equity"] == ours_final,
        "backtesting.py final equity == ours": math.isclose(
            bt["final_equity"], ours_final, rel_tol=1e-9
        ),
        "backtesting.py closed trades == ours - open": bt["closed_trades"]
        in (ours_trades, ours_trades - 1),
        "vectorbt final value == ours": math.isclose(vb["final_value"], ours_final, rel_tol=1e-9),
        "bare loop final equity == ours": math.isclose(
            float(bare_eq[-1]), ours_final, rel_tol=1e-9
        ),
    }
    for name, ok in checks.items():
        say(f"check: {name}: {'ok' if ok else 'DIFFERS'}")

    # -- ratios vs targets
    say()
    targets = [
        ("run_backtest vs vectorbt from_signals warm", vb["from_signals"] / t_run, ">= 5x"),
        (
            "run_backtest vs vectorbt signals+from_signals+stats",
            (vb["signals"] + vb["from_signals"] + vb["stats"]) / t_run,
            "(info)",
        ),
        ("run_backtest vs backtesting.py", bt["seconds"] / t_run, ">= 500x"),
        ("evaluate vs backtesting.py", bt["seconds"] / t_eval, "(info)"),
        ("run_backtest / bare loop (slower by)", t_run / t_bare, "<= 3x"),
        ("run_backtest on one thread / bare loop (slower by)", t_run1 / t_bare, "(info)"),
        ("run_backtest on one thread vs backtesting.py", bt["seconds"] / t_run1, "(info)"),
        ("evaluate / bare loop (slower by)", t_eval / t_bare, "(info)"),
        ("signals+kernel / bare loop (slower by)", (t_sig + t_kernel) / t_bare, "(info)"),
        ("event engine vs backtesting.py", bt["seconds"] / t_evt, ">= 10x"),
        ("event engine, on_bar every bar, vs backtesting.py", bt["seconds"] / t_evt_all, ">= 10x"),
        ("event engine, + stops, vs backtesting.py", bt["seconds"] / t_evt_stop, ">= 10x"),
        ("cold first call (s)", imp + call, "< 1.5 s"),
        ("cold first call, no scipy (s)", imp2 + call2, "< 1.5 s"),
    ]
    for name, value, target in targets:
        say(f"{name:55s} {value:10.2f}   target {target}")
        rows.append((name, f"{value:.2f} (target {target})"))

    if args.write:
        write_markdown(lines, args)
    return 0


def write_markdown(lines: list[str], args: argparse.Namespace) -> None:
    md = HERE / "backtest.md"
    text = md.read_text() if md.exists() else ""
    marker = "<!-- figures -->"
    head = text.split(marker)[0] if marker in text else text
    cmd = ".venv/bin/python bench/bench_backtest.py"
    if args.bars != 1_000_000:
        cmd += f" --bars {args.bars}"
    body = "\n".join(lines)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md.write_text(
        f"{head.rstrip()}\n\n{marker}\n\nLast run ({when}), `{cmd} --write`:\n\n```\n{body}\n```\n"
    )


if __name__ == "__main__":
    sys.exit(main())
