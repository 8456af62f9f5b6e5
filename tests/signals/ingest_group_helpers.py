"""What the scheduled-ingest tests share (imported by name: test folders have no __init__):
a fake channel serving real bars from frames, the group config, the messages a run sent,
and a scheduled run of a group at a clock the test moves on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd

from algotrendy.data.channels.base import ChannelInfo
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import SourceUnavailableError
from algotrendy.messaging import Envelope, InMemoryQueue
from algotrendy.signals import CandlesClosed, IngestGroup, run_ingest_group
from algotrendy.signals.ingest_group import IngestGroupResult
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


def scheduled(
    channel: Any,
    store: LocalCandleStore,
    cache: MemoryCache | None,
    queue: InMemoryQueue,
    clock: list[datetime],
) -> Callable[..., IngestGroupResult]:
    """`run(**group_overrides)`: one scheduled run of `group(**group_overrides)` served by
    `channel` into `store`, `cache` and `queue`, at `clock[0]` (a list the test moves on)."""

    def run(**overrides: Any) -> IngestGroupResult:
        return run_ingest_group(
            group(**overrides),
            stores=[store],
            cache=cache,
            signals=queue,
            channel_factory=lambda name, settings: channel,
            now=lambda: clock[0],
        )

    return run
