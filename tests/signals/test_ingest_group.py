"""Scheduled ingest of a channel group: real BTC 1m bars served by a fake channel (no
network), the real pipeline into a local store, `candles.closed` on an in-process queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ingest_group_helpers import FrameChannel, group, received, scheduled

from algotrendy.data.manager import all_health
from algotrendy.errors import SourceUnavailableError
from algotrendy.messaging import InMemoryQueue
from algotrendy.signals import run_ingest_group
from algotrendy.storage.base import get_latest_price
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore


def test_runs_resume_and_announce_only_new_closed_bars(
    store: LocalCandleStore, cache: MemoryCache, btc: pd.DataFrame, clock: list[datetime]
) -> None:
    # The clock is mid-way through the bar after t[1000]: that bar is forming, t[1000] is
    # the newest closed.
    queue = InMemoryQueue("signals")
    t = btc.index
    run = scheduled(FrameChannel("fakex", {"BTC/USDT": btc}), store, cache, queue, clock)

    first = run().as_dict()
    assert first["failed"] == 0
    (outcome,) = first["outcomes"]
    assert outcome["status"] == "new_bars"
    stored = store.read("fakex", "BTC/USDT", "1m")
    assert stored.index[-1] == t[1000]
    assert stored.index[0] == t[1001] - timedelta(minutes=300)  # backfill_bars before now
    assert outcome["written"] == len(stored)
    (msg,) = received(queue)
    # First run: the backfilled history is not news, only the newest bar is.
    assert msg.last_bar == t[1000].to_pydatetime()
    assert msg.new_since == msg.last_bar
    assert msg.close_time == msg.last_bar + timedelta(minutes=1)
    assert outcome["message_id"] == msg.message_id()
    price = get_latest_price(cache, "fakex", "BTC/USDT")
    assert price is not None
    assert price.price == btc["close"].iloc[1000]
    assert all_health(cache)["fakex"].status == "ok"

    # Five minutes later: the bars that closed since, announced in one message.
    clock[0] += timedelta(minutes=5)
    newest = t[t < pd.Timestamp(clock[0]).floor("1min")][-1]
    second = run().as_dict()
    assert second["outcomes"][0]["status"] == "new_bars"
    msg = received(queue)[-1]
    assert msg.last_bar == newest.to_pydatetime()
    assert msg.new_since == t[1000].to_pydatetime() + timedelta(minutes=1)
    assert store.read("fakex", "BTC/USDT", "1m").index[-1] == newest

    # Same minute again: nothing new, nothing announced.
    third = run().as_dict()
    assert third["outcomes"][0]["status"] == "up_to_date"
    assert len(queue) == 2


def test_one_failing_channel_or_symbol_does_not_stop_the_others(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    store = LocalCandleStore(tmp_path, fsync=False)
    cache = MemoryCache()
    queue = InMemoryQueue("signals")
    good = FrameChannel("fakex", {"BTC/USDT": btc, "ETH/USDT": btc}, down=frozenset({"ETH/USDT"}))

    def factory(name: str, settings: dict[str, Any]) -> Any:
        if name == "brokenx":
            raise SourceUnavailableError("brokenx: exchange is under maintenance")
        return good

    g = group(
        channels=[
            {"source": "brokenx", "symbols": ["SOL/USDT"], "timeframes": ["1m", "5m"]},
            {"source": "fakex", "symbols": ["ETH/USDT", "BTC/USDT"], "timeframes": ["1m"]},
        ]
    )
    now = btc.index[500].to_pydatetime() + timedelta(seconds=1)
    result = run_ingest_group(
        g, stores=[store], cache=cache, signals=queue, channel_factory=factory, now=lambda: now
    ).as_dict()
    statuses = {(o["source"], o["symbol"], o["timeframe"]): o for o in result["outcomes"]}
    assert {k: o["status"] for k, o in statuses.items()} == {
        ("brokenx", "SOL/USDT", "1m"): "failed",
        ("brokenx", "SOL/USDT", "5m"): "failed",
        ("fakex", "ETH/USDT", "1m"): "failed",
        ("fakex", "BTC/USDT", "1m"): "new_bars",
    }
    assert "under maintenance" in statuses[("brokenx", "SOL/USDT", "1m")]["error"]
    assert "connection reset" in statuses[("fakex", "ETH/USDT", "1m")]["error"]
    assert result["failed"] == 3
    assert [m.symbol for m in received(queue)] == ["BTC/USDT"]
    health = all_health(cache)["fakex"]
    assert health.failures == 1
    assert health.runs == 2


def test_group_input_is_validated() -> None:
    with pytest.raises(ValueError, match="timeframe '2q'"):
        group(channels=[{"source": "x", "symbols": ["A"], "timeframes": ["2q"]}])
    with pytest.raises(ValueError, match="channels"):
        group(channels=[])
