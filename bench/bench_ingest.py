"""Ingestion budget: normalise + validate + serialise 1M candles to ILP in under a second,
and the local candle store's write and range read of the same 1M candles.

Data: a seeded synthetic geometric random walk of 1M one-minute bars (about 1.9 years, so
the local store writes two yearly partitions), handed over as ccxt's raw rows
`[epoch_ms, o, h, l, c, v]` in an (n, 6) float array: the heaviest shape the normaliser
accepts. A canonical frame, what the channels return, is also timed through the hand-off
(a check, no copy).

Stages, each timed `--repeat` times after one warm-up, best time kept:
- normalise: `candles_from_ohlcv_rows` (raw rows -> candle frame);
- validate: `validate_candles` (OHLC checks, order, duplicates, gaps, outliers);
- serialise: `enrich_candles` + `questdb` Buffer(protocol_version=2).dataframe in chunks
  of 100k rows through one reused buffer (`ilp_batches`), the exact path
  `QuestDBCandleStore.write` takes, minus the HTTP requests;
- pipeline total: the three in a row, timed as one (the budget line);
- local store: write 1M rows to an empty folder (fsync on, as in production), read all
  back, read one day (1,440 rows) from the middle.

Run: .venv/bin/python bench/bench_ingest.py [--bars 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_indicators import random_walk  # the same walk as the indicator benchmark

from algotrendy.data.enrich import enrich_candles
from algotrendy.data.pipeline import candles_from_ohlcv_rows, normalise_candles
from algotrendy.data.validation import validate_candles
from algotrendy.storage.local import LocalCandleStore
from algotrendy.storage.questdb_store import DEFAULT_CHUNK_ROWS, ilp_batches

with warnings.catch_warnings():  # questdb 6 keeps Buffer at its 4.x path, deprecated
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Buffer

BUDGET_S = 1.0
START = datetime(2023, 3, 1, tzinfo=UTC)
INGESTED = datetime(2025, 1, 1, tzinfo=UTC)


def raw_rows(n: int, seed: int = 42) -> np.ndarray:
    """(n, 6) ccxt rows: epoch ms, then OHLCV of a 0.1 %-per-bar geometric random walk."""
    walk = random_walk(n, seed)
    ms = int(START.timestamp() * 1000) + np.arange(n, dtype=np.int64) * 60_000
    columns = (walk[k] for k in ("open", "high", "low", "close", "volume"))
    return np.column_stack([ms.astype(np.float64), *columns])


def timed(fn: Callable[[], Any], repeat: int, setup: Callable[[], None] | None = None) -> float:
    """Best wall time in seconds over `repeat` runs after one warm-up."""
    if setup:
        setup()
    fn()
    best = float("inf")
    for _ in range(repeat):
        if setup:
            setup()
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, repeat = args.bars, args.repeat
    rows = raw_rows(n)

    frame = candles_from_ohlcv_rows(rows)
    clean, report = validate_candles(frame, "1m", source="bench")
    assert report.rows_out == n, report.summary()

    def to_ilp(valid: pd.DataFrame, version: int = 2) -> int:
        """ILP bytes for every row, produced as QuestDBCandleStore.write produces them
        (chunks of DEFAULT_CHUNK_ROWS in one reused buffer; each would be one request)."""
        buffer = Buffer(protocol_version=version)
        enriched = enrich_candles(
            valid, exchange="binance", symbol="BTC/USDT", timeframe="1m", ingested_at=INGESTED
        )
        size = 0
        for _ in ilp_batches(buffer, enriched, DEFAULT_CHUNK_ROWS):
            size += len(buffer)
        return size

    def serialise() -> int:
        return to_ilp(clean)

    def pipeline() -> int:
        candles = candles_from_ohlcv_rows(rows)
        valid, _ = validate_candles(candles, "1m", source="bench")
        return to_ilp(valid)

    ilp_bytes = serialise()
    results: list[tuple[str, float]] = [
        (
            "normalise (raw ccxt rows -> frame)",
            timed(lambda: candles_from_ohlcv_rows(rows), repeat),
        ),
        ("normalise (canonical frame hand-off)", timed(lambda: normalise_candles(frame), repeat)),
        ("validate", timed(lambda: validate_candles(frame, "1m"), repeat)),
        (
            "enrich",
            timed(
                lambda: enrich_candles(
                    clean,
                    exchange="binance",
                    symbol="BTC/USDT",
                    timeframe="1m",
                    ingested_at=INGESTED,
                ),
                repeat,
            ),
        ),
        (
            "serialise to ILP v2 (enrich + Buffer.dataframe, 100k-row chunks)",
            timed(serialise, repeat),
        ),
    ]
    results.append(
        ("(for comparison) serialise to ILP v1, text floats", timed(lambda: to_ilp(clean, 1), 3))
    )
    total = timed(pipeline, repeat)

    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    store_dir = folder / "store"

    def fresh() -> None:
        shutil.rmtree(store_dir, ignore_errors=True)

    store = LocalCandleStore(store_dir)
    write_s = timed(lambda: store.write(clean, "binance", "BTC/USDT", "1m"), repeat, setup=fresh)
    store.write(clean, "binance", "BTC/USDT", "1m")
    read_all_s = timed(lambda: store.read("binance", "BTC/USDT", "1m"), repeat)
    day = START + timedelta(days=300)
    read_day_s = timed(
        lambda: store.read("binance", "BTC/USDT", "1m", day, day + timedelta(days=1)), repeat
    )
    back = store.read("binance", "BTC/USDT", "1m")
    assert back.index.equals(clean.index)
    assert np.array_equal(back.to_numpy(), clean.to_numpy())
    size_mb = sum(p.stat().st_size for p in store_dir.rglob("*.parquet")) / 1e6
    shutil.rmtree(folder, ignore_errors=True)

    print(f"{n:,} one-minute candles, best of {repeat}; cores: {os.cpu_count()}")
    print()
    print("| stage | time |")
    print("|---|---:|")
    for name, seconds in results:
        print(f"| {name} | {seconds * 1e3:.0f} ms |")
    verdict = "within" if total < BUDGET_S else "OVER"
    print(
        f"| **normalise + validate + serialise (one pass)** | **{total * 1e3:.0f} ms** "
        f"({verdict} the {BUDGET_S:.0f} s budget) |"
    )
    print(f"| ILP v2 payload | {ilp_bytes / 1e6:.0f} MB |")
    print(f"| local store: write {n:,} rows (2 yearly files, fsync) | {write_s * 1e3:.0f} ms |")
    print(f"| local store: read all {n:,} rows | {read_all_s * 1e3:.0f} ms |")
    print(f"| local store: read one day (1,440 rows) | {read_day_s * 1e3:.1f} ms |")
    print(f"| local store: size on disk | {size_mb:.0f} MB |")
    return 0 if total < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
