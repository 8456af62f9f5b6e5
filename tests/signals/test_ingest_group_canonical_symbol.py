"""A scheduled group names a market by any spelling its channel accepts: the series is
stored, priced, announced and watermarked under the channel's canonical symbol, so
switching the group to the other spelling resumes the same series."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from ingest_group_helpers import FrameChannel, group, received, scheduled

from algotrendy.errors import ParameterError
from algotrendy.messaging import InMemoryQueue
from algotrendy.signals import run_ingest_group
from algotrendy.signals.ingest_group import last_announced
from algotrendy.storage.base import get_latest_price
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore


class ResolvingFrameChannel(FrameChannel):
    """FrameChannel that also accepts the exchange's id (BTCUSDT) for its markets."""

    def canonical_symbol(self, symbol: str) -> str:
        unified = {s.replace("/", ""): s for s in self.frames} | {s: s for s in self.frames}
        if symbol not in unified:
            raise ParameterError(f"{self.info.name}: unknown symbol {symbol!r}")
        return unified[symbol]


def channels(symbols: list[str]) -> list[dict[str, Any]]:
    return [{"source": "fakex", "symbols": symbols, "timeframes": ["1m"]}]


@pytest.fixture
def btc(btc_1m: pd.DataFrame) -> pd.DataFrame:
    return btc_1m.iloc[:1500]


def test_a_group_keys_the_series_by_the_canonical_symbol(
    store: LocalCandleStore, cache: MemoryCache, btc: pd.DataFrame, clock: list[datetime]
) -> None:
    queue = InMemoryQueue("signals")
    channel = ResolvingFrameChannel("fakex", {"BTC/USDT": btc})
    t = btc.index
    scheduled_run = scheduled(channel, store, cache, queue, clock)

    def run(symbols: list[str]) -> dict[str, Any]:
        return scheduled_run(channels=channels(symbols)).as_dict()

    first = run(["BTCUSDT"])
    (outcome,) = first["outcomes"]
    assert outcome["status"] == "new_bars"
    assert outcome["symbol"] == "BTC/USDT"
    assert store.read("fakex", "BTC/USDT", "1m").index[-1] == t[1000]
    assert store.last_timestamp("fakex", "BTCUSDT", "1m") is None
    assert get_latest_price(cache, "fakex", "BTC/USDT") is not None
    assert get_latest_price(cache, "fakex", "BTCUSDT") is None
    (msg,) = received(queue)
    assert msg.symbol == "BTC/USDT"
    assert last_announced(cache, "fakex", "BTC/USDT", "1m") == t[1000].to_pydatetime()

    # The group switches to the unified spelling: the same series resumes, and only the
    # bars closed since are fetched and announced.
    clock[0] += timedelta(minutes=3)
    fetches = len(channel.calls)
    second = run(["BTC/USDT"])
    assert second["outcomes"][0]["status"] == "new_bars"
    assert channel.calls[fetches][1] == t[1001].to_pydatetime()  # resumed after t[1000]
    msg = received(queue)[-1]
    assert msg.new_since == t[1001].to_pydatetime()
    assert msg.last_bar == t[1003].to_pydatetime()


def test_an_unknown_symbol_fails_its_series_with_the_channel_error(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    channel = ResolvingFrameChannel("fakex", {"BTC/USDT": btc})
    result = run_ingest_group(
        group(channels=channels(["ETHUSDT", "BTCUSDT"])),
        stores=[LocalCandleStore(tmp_path, fsync=False)],
        cache=MemoryCache(),
        signals=InMemoryQueue("signals"),
        channel_factory=lambda name, settings: channel,
        now=lambda: btc.index[1001].to_pydatetime(),
    )
    failed, ok = result.outcomes
    assert failed.status == "failed"
    assert failed.symbol == "ETHUSDT"
    assert failed.error == "fakex: unknown symbol 'ETHUSDT'"
    assert ok.status == "new_bars"
    assert ok.symbol == "BTC/USDT"
