"""Execution engine on the paper broker and the in-process queue (the local shape).

Measures, in one process: intent -> order submitted latency (risk check, persist NEW,
broker submit) percentiles, and end-to-end throughput of the consumer loop (receive,
process incl. fills/positions persistence, delete). SQLite in a temp dir, WAL mode.
Targets (DESIGN §6 / issue 4): p99 < 2 ms, >= 5,000 intents/s.

The loop is `ExecutionEngine.poll`, exactly what `run()` repeats: receive up to 10
messages, handle them as one batch (group commit), delete the done ones, housekeeping
(the periodic SQLite WAL checkpoint). An intent's latency is counted from the start of
its batch's handling (right after the receive), so it includes parsing, risk checks and
the NEW-order commit of the whole batch and the submits before its own; the clock stops
when its broker submit returned. The throughput covers everything, checkpoints included.

Run: .venv/bin/python bench/bench_engine.py [--n 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from algotrendy.domain.orders import OrderIntent
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import MemoryPublisher, StaticPrices
from algotrendy.execution.risk import RiskConfig, RiskLimits, RiskManager
from algotrendy.messaging import InMemoryQueue, send_intent
from algotrendy.storage.relational import create_db_engine, upgrade_database
from algotrendy.storage.relational.repositories import SqlExecutionRepository


def build(tmp: Path) -> ExecutionEngine:
    db = create_db_engine(f"sqlite:///{tmp / 'bench.db'}")
    upgrade_database(db)
    prices = StaticPrices({f"SYM{i}/USDT": 100.0 + i for i in range(20)})
    return ExecutionEngine(
        repo=SqlExecutionRepository(db),
        broker=PaperBroker(prices, fee=0.001),
        risk=RiskManager(RiskConfig(account=RiskLimits(max_position=1e12, max_open_orders=10_000))),
        prices=prices,
        publisher=MemoryPublisher(),
        record_latency=True,
    )


def intents(n: int, offset: int = 0) -> list[OrderIntent]:
    return [
        OrderIntent(intent_id=f"bench-{offset + i:08d}", symbol=f"SYM{i % 20}/USDT",
                    side="buy" if i % 2 else "sell", quantity=1.0, strategy="bench")
        for i in range(n)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        eng = build(Path(tmp))
        eng.start()
        for it in intents(200, offset=10_000_000):  # warm-up
            eng.process(it)
        eng.stats.submit_latencies.clear()

        q = InMemoryQueue("orders.fifo")
        batch = intents(args.n)
        for it in batch:
            send_intent(q, it)
        t0 = time.perf_counter()
        while len(q):
            eng.poll(q)  # the consumer loop's step: receive 10, handle as a batch, delete
        elapsed = time.perf_counter() - t0
        assert eng.stats.processed == 200 + args.n, eng.stats
        assert eng.stats.errors == 0, eng.stats
        assert len(eng.repo.list_orders(limit=args.n + 200)) == args.n + 200
        lat = sorted(eng.stats.submit_latencies)
        p50 = statistics.median(lat) * 1e3
        p99 = lat[int(len(lat) * 0.99) - 1] * 1e3
        rate = args.n / elapsed
        print(f"intents: {args.n}  elapsed: {elapsed:.2f} s")
        print(f"intent -> submitted: p50 {p50:.3f} ms  p99 {p99:.3f} ms  (target p99 < 2 ms)"
              f"  {'MET' if p99 < 2 else 'MISSED'}")  # fmt: skip
        print(f"throughput (queue -> filled, persisted, deleted): {rate:,.0f} intents/s "
              f"(target >= 5,000)  {'MET' if rate >= 5000 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
