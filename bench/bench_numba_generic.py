"""What the worker image's portable kernels cost: `run_backtest` on 1M one-minute bars with
numba code for this machine's CPU (numba's default) and for generic x86-64
(`NUMBA_CPU_NAME=generic`, which the image sets so that the kernels it compiles at build
time stay valid on whatever CPU Lambda runs it; see functions/backtest_worker/Dockerfile).

Each variant runs in its own fresh process with its own numba cache (compiled once first,
not timed), alternating, best of N calls each; the two must give the same final equity.

Run: .venv/bin/python bench/bench_numba_generic.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_backtest import make_bars
from algotrendy.backtest import run_backtest
df = make_bars(1_000_000)
first = run_backtest(df, "sma_cross", {"fast": 10, "slow": 50})
best = float("inf")
for _ in range(7):
    t = time.perf_counter()
    run_backtest(df, "sma_cross", {"fast": 10, "slow": 50})
    best = min(best, time.perf_counter() - t)
print(json.dumps({"ms": best * 1e3, "final_equity": float(first.metrics["final_equity"])}))
"""


def run(cpu: str | None, cache: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["NUMBA_CACHE_DIR"] = str(cache)
    env.pop("ALGOTRENDY_DISABLE_NUMBA", None)
    if cpu:
        env["NUMBA_CPU_NAME"] = cpu
    bench_dir = str(Path(__file__).resolve().parent)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, bench_dir], env=env, capture_output=True, text=True,
        timeout=600, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-numba-generic-") as tmp:
        caches = {"host": Path(tmp) / "host", "generic": Path(tmp) / "generic"}
        best = {"host": float("inf"), "generic": float("inf")}
        equity: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, cpu in (("host", None), ("generic", "generic")):
                result = run(cpu, caches[name])
                best[name] = min(best[name], result["ms"])
                equity[name] = result["final_equity"]
        if equity["host"] != equity["generic"]:
            raise SystemExit(f"the two codes disagree: final equity {equity}")
        print(f"run_backtest, 1M bars, best of {args.rounds} processes x 7 calls:")
        print(f"  code for this CPU      {best['host']:8.1f} ms")
        print(f"  generic x86-64 code    {best['generic']:8.1f} ms")
        print(f"  generic / this CPU     {best['generic'] / best['host']:8.2f}x "
              f"(same final equity {equity['host']:.6f})")  # fmt: skip


if __name__ == "__main__":
    main()
