"""Scheduled ingest of a channel group: real BTC 1m bars served by a fake channel (no
network), the real pipeline into a local store, `candles.closed` on an in-process queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from algotrendy.data.channels.base import ChannelInfo
from algotrendy.data.manager import all_health
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import SourceUnavailableError
from algotrendy.messaging import Envelope, InMemoryQueue
from algotrendy.signals import CandlesClosed, IngestGroup, run_ingest_group
from algotrendy.storage.base import get_latest_price
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore


class FrameChannel:
    """Serves candles from a frame per symbol; `down` symbols raise as a dead source."""

    def __init__(
        self, name: str, frames: dict[str, pd.DataFrame], down: frozenset[str] = frozenset()
    ) -> None:
        self.info = ChannelInfo(
            name=name,
            asset_classes=(AssetClass.CRYPTO,),
            kinds=(DataKind.OHLCV,),
            timeframes=("1m",),
        )
        self.frames = frames
        self.down = down
        self.calls: list[tuple[str, datetime, datetime | None]] = []

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
        *,
        progress: Any = None,
    ) -> pd.DataFrame:
        self.calls.append((symbol, since, until))
        if symbol in self.down:
            raise SourceUnavailableError(f"{self.info.name}: {symbol}: connection reset")
        frame = self.frames[symbol]
        index = frame.index
        mask = (index >= pd.Timestamp(since)) & (
            index < pd.Timestamp(until) if until is not None else True
        )
        return frame[mask]


@pytest.fixture
def btc(btc_1m: pd.DataFrame) -> pd.DataFrame:
    return btc_1m.iloc[:3000]


def group(**overrides: Any) -> IngestGroup:
    raw: dict[str, Any] = {
        "group": "crypto-1m",
        "channels": [{"source": "fakex", "symbols": ["BTC/USDT"], "timeframes": ["1m"]}],
        "backfill_bars": 300,
    }
    raw.update(overrides)
    return IngestGroup.model_validate(raw)


def received(queue: InMemoryQueue) -> list[CandlesClosed]:
    return [CandlesClosed.from_envelope(Envelope.parse(b)) for b in queue.bodies()]


def test_runs_resume_and_announce_only_new_closed_bars(tmp_path: Path, btc: pd.DataFrame) -> None:
    store = LocalCandleStore(tmp_path, fsync=False)
    cache = MemoryCache()
    queue = InMemoryQueue("signals")
    channel = FrameChannel("fakex", {"BTC/USDT": btc})
    t = btc.index
    # Mid-way through the bar after t[1000]: that bar is forming, t[1000] is the newest closed.
    clock = [t[1001].to_pydatetime() + timedelta(seconds=20)]

    def run() -> dict[str, Any]:
        return run_ingest_group(
            group(),
            stores=[store],
            cache=cache,
            signals=queue,
            channel_factory=lambda name, settings: channel,
            now=lambda: clock[0],
        ).as_dict()

    first = run()
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
    second = run()
    assert second["outcomes"][0]["status"] == "new_bars"
    msg = received(queue)[-1]
    assert msg.last_bar == newest.to_pydatetime()
    assert msg.new_since == t[1000].to_pydatetime() + timedelta(minutes=1)
    assert store.read("fakex", "BTC/USDT", "1m").index[-1] == newest

    # Same minute again: nothing new, nothing announced.
    third = run()
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
