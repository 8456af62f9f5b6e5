"""`algotrendy.backtest.precompile`: the worker image compiles its kernels at build time so
that a cold worker loads them. Checked here as the image uses it, in fresh processes: the
precompile fills an empty NUMBA_CACHE_DIR; a later process seeded with that cache runs a
sweep chunk of every strategy through the worker's path and compiles nothing (numba
writes a cache file for each kernel it compiles, so an unchanged folder proves it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from algotrendy.compiled import HAVE_NUMBA

CANDLES = Path(__file__).resolve().parents[1] / "fixtures" / "ohlcv" / "backtesting_GOOG_1d.csv"

# The worker's path on real candles, one chunk per strategy with its documented defaults
# and a second set of values (numba specialises on types, not values).
RUN_CHUNKS = r"""
import json, sys
from algotrendy.compiled import HAVE_NUMBA
from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.sweep import SweepChunk, run_chunk
from algotrendy.data import load_ohlcv
from algotrendy.strategies import get_strategy, strategy_names
frame = load_ohlcv(sys.argv[1])
rows = 0
for i, name in enumerate(strategy_names()):
    defaults = get_strategy(name).params().model_dump()
    chunk = SweepChunk(id=name, index=i, strategy=name, symbols=["GOOG"], params=[defaults],
                       first_task=0, config=BacktestConfig(fee=0.001, sizing="fraction", size=0.5))
    rows += len(run_chunk(chunk, lambda _s: frame))
print(json.dumps({"numba": HAVE_NUMBA, "strategies": strategy_names(), "rows": rows}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "ALGOTRENDY_"))}
    return {**env, "NUMBA_CPU_NAME": "generic", **extra}


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed: nothing to precompile")
def test_precompiled_cache_serves_every_strategys_chunk_without_compiling(
    tmp_path: Path,
) -> None:
    seed = tmp_path / "seed"
    proc = subprocess.run(
        [sys.executable, "-m", "algotrendy.backtest.precompile", "--bars", "400"],
        env=_env(NUMBA_CACHE_DIR=str(seed)), capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    precompiled = proc.stdout.strip()
    cached = _files(seed)
    # One cache folder per source file holding kernels the worker reaches.
    folders = {name.split("/", 1)[0].rsplit("_", 1)[0] for name in cached}
    assert {"strategies", "backtest", "indicators", "data"} <= folders, folders

    cache = tmp_path / "run" / "numba"  # absent, as /tmp/numba at a cold start
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CHUNKS, str(CANDLES)],
        env=_env(NUMBA_CACHE_DIR=str(cache), ALGOTRENDY_NUMBA_CACHE_SEED=str(seed)),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = json.loads(proc.stdout)
    # Every registered strategy (in a fresh process: the built-in ones) was precompiled,
    # and each gave its row on the seeded run.
    assert ran["numba"] is True
    assert len(ran["strategies"]) >= 5
    assert ran["rows"] == len(ran["strategies"])
    assert precompiled == (
        f"precompile: {len(ran['strategies'])} strategies compiled into numba's cache: "
        + ", ".join(ran["strategies"])
    )
    assert _files(cache) == cached, "a kernel was compiled although the seed had it"


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed: nothing to precompile")
def test_without_the_seed_the_same_run_compiles(tmp_path: Path) -> None:
    """The counter-check: the folder comparison above can fail."""
    cache = tmp_path / "numba"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CHUNKS, str(CANDLES)],
        env=_env(NUMBA_CACHE_DIR=str(cache)), capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _files(cache), "numba compiled kernels but wrote no cache files"
