"""Scheduled ingest after something went wrong: a failed `candles.closed` send, a store that
shows its write late (QuestDB WAL), an outage longer than the backfill, a news channel in
a group. Real BTC 1m bars from a fake channel (no network), a local store, an in-process
queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ingest_group_helpers import FrameChannel, received, scheduled

from algotrendy.data.channels.base import ChannelInfo
from algotrendy.domain.market import AssetClass, DataKind, NewsItem
from algotrendy.messaging import InMemoryQueue
from algotrendy.signals.ingest_group import (
    ANNOUNCED_NAMESPACE,
    IngestGroupResult,
    last_announced,
)
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore

MINUTE = timedelta(minutes=1)


class FlakyQueue(InMemoryQueue):
    """An in-process queue whose sends fail while `down` (SQS throttling)."""

    down = False

    def send(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise RuntimeError("An error occurred (ThrottlingException) when calling SendMessage")
        return super().send(*args, **kwargs)


class LaggingStore(LocalCandleStore):
    """A local store whose `last_timestamp` keeps answering what it held before the last
    write until `apply()`, as a QuestDB WAL table does until its writer applies it."""

    lagging = False

    def __init__(self, root: Path) -> None:
        super().__init__(root, fsync=False)
        self._seen: dict[tuple[str, str, str], datetime | None] = {}

    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
        key = (exchange, symbol, timeframe)
        if self.lagging and key not in self._seen:
            self._seen[key] = super().last_timestamp(*key)
        return super().write(frame, exchange, symbol, timeframe)

    def apply(self) -> None:
        self._seen.clear()

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> datetime | None:
        key = (exchange, symbol, timeframe)
        if key in self._seen:
            return self._seen[key]
        return super().last_timestamp(exchange, symbol, timeframe)


Runner = Callable[..., Callable[[], IngestGroupResult]]


@pytest.fixture
def runner(
    btc: pd.DataFrame, clock: list[datetime], store: LocalCandleStore, cache: MemoryCache
) -> Runner:
    """`runner(queue, store=, cache=, **group_overrides)`: a scheduled run of the group over
    `btc` served by a fake channel, at `clock[0]`, into the `store` and `cache` fixtures
    unless told otherwise."""
    default_store, default_cache = store, cache

    def make(
        queue: InMemoryQueue,
        *,
        store: LocalCandleStore = default_store,
        cache: MemoryCache | None = default_cache,
        **overrides: Any,
    ) -> Callable[[], IngestGroupResult]:
        run = scheduled(FrameChannel("fakex", {"BTC/USDT": btc}), store, cache, queue, clock)
        return partial(run, **overrides)

    return make


def test_bars_whose_announcement_failed_are_announced_by_the_next_run(
    cache: MemoryCache, btc: pd.DataFrame, clock: list[datetime], runner: Runner
) -> None:
    queue = FlakyQueue("signals")
    t = btc.index
    run = runner(queue)
    run()  # first run: t[1000] announced
    assert last_announced(cache, "fakex", "BTC/USDT", "1m") == t[1000].to_pydatetime()

    # Three bars close, are stored, but the send fails: the series fails, nothing moves.
    queue.down = True
    clock[0] += 3 * MINUTE
    failed = run()
    (outcome,) = failed.outcomes
    assert outcome.status == "failed"
    assert outcome.written == 3
    assert "candles.closed not sent" in (outcome.error or "")
    assert "ThrottlingException" in failed.failure_summary()
    assert last_announced(cache, "fakex", "BTC/USDT", "1m") == t[1000].to_pydatetime()

    # Next run, one more bar: its message covers the three unannounced ones too.
    queue.down = False
    clock[0] += MINUTE
    ok = run()
    assert ok.outcomes[0].status == "new_bars"
    assert ok.outcomes[0].written == 1
    msg = received(queue)[-1]
    assert msg.new_since == t[1001].to_pydatetime()
    assert msg.last_bar == t[1004].to_pydatetime()
    assert last_announced(cache, "fakex", "BTC/USDT", "1m") == t[1004].to_pydatetime()


def test_a_failed_announcement_is_retried_even_when_no_new_bar_closed(
    btc: pd.DataFrame, clock: list[datetime], runner: Runner
) -> None:
    queue = FlakyQueue("signals")
    t = btc.index
    run = runner(queue)
    run()
    queue.down = True
    clock[0] += 2 * MINUTE
    assert run().outcomes[0].status == "failed"
    queue.down = False
    clock[0] += timedelta(seconds=10)  # same minute: nothing new to fetch
    retry = run().outcomes[0]
    assert (retry.status, retry.written) == ("new_bars", 0)
    msg = received(queue)[-1]
    assert (msg.new_since, msg.last_bar) == (t[1001].to_pydatetime(), t[1002].to_pydatetime())
    assert run().outcomes[0].status == "up_to_date"  # announced once, not again


def test_without_a_watermark_a_run_announces_its_own_new_bars(
    cache: MemoryCache, btc: pd.DataFrame, clock: list[datetime], runner: Runner
) -> None:
    """The cache lost the watermark (or holds garbage): the pre-watermark rule applies."""
    queue = InMemoryQueue("signals")
    t = btc.index
    run = runner(queue)
    run()
    cache.put(ANNOUNCED_NAMESPACE, "fakex:BTC/USDT:1m", {"last_bar": "garbled"})
    clock[0] += 2 * MINUTE
    assert run().outcomes[0].status == "new_bars"
    msg = received(queue)[-1]
    assert (msg.new_since, msg.last_bar) == (t[1001].to_pydatetime(), t[1002].to_pydatetime())


def test_new_bars_count_even_before_the_store_shows_them(
    tmp_path: Path, btc: pd.DataFrame, clock: list[datetime], runner: Runner
) -> None:
    store = LaggingStore(tmp_path)
    queue = InMemoryQueue("signals")
    t = btc.index
    run = runner(queue, store=store, cache=None)  # no cache: no watermark either
    run()
    store.lagging = True
    clock[0] += 3 * MINUTE
    second = run().outcomes[0]
    assert store.last_timestamp("fakex", "BTC/USDT", "1m") == t[1000]  # not applied yet
    assert (second.status, second.written) == ("new_bars", 3)
    msg = received(queue)[-1]
    assert (msg.new_since, msg.last_bar) == (t[1001].to_pydatetime(), t[1003].to_pydatetime())


def test_an_outage_longer_than_the_backfill_leaves_no_gap(
    store: LocalCandleStore, btc: pd.DataFrame, clock: list[datetime], runner: Runner
) -> None:
    queue = InMemoryQueue("signals")
    t = btc.index
    run = runner(queue, backfill_bars=120)
    run()
    clock[0] += timedelta(hours=3)  # 180 bars > backfill_bars
    outcome = run().outcomes[0]
    assert outcome.status == "new_bars"
    stored = store.read("fakex", "BTC/USDT", "1m")
    expected = btc[(btc.index >= stored.index[0]) & (btc.index <= t[1180])]
    assert stored.index[-1] == t[1180]
    pd.testing.assert_index_equal(stored.index, expected.index)
    assert outcome.written == 180
    msg = received(queue)[-1]
    assert (msg.new_since, msg.last_bar) == (t[1001].to_pydatetime(), t[1180].to_pydatetime())


class FakeNews:
    info = ChannelInfo(
        name="news", asset_classes=(AssetClass.EQUITY,), kinds=(DataKind.NEWS,), timeframes=()
    )

    def fetch_news(self, symbols: tuple[str, ...] = (), limit: int = 50) -> list[NewsItem]:
        raise AssertionError("the candle ingest must not fetch news it cannot store")
