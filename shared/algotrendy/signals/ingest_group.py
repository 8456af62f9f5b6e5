"""Scheduled ingest of one channel group, and the `candles.closed` news it produces.

An EventBridge rule per channel group runs the ingest function with the group as input::

    {"group": "crypto-1m",
     "channels": [{"source": "binance", "symbols": ["BTC/USDT", "ETH/USDT"],
                   "timeframes": ["1m", "1h"]}],
     "backfill_bars": 500}

Each series (channel x symbol x timeframe) runs through the same `IngestService` and
`CandlePipeline` as `algotrendy ingest`: resume after the store's last bar, closed bars
only, validate, write every store, publish the latest close to the cache, record the
channel's health. A series that gained a newer closed bar gets one `candles.closed`
message on the signals queue.

Failures stay local: a channel that cannot be built fails its series, a series that
fails does not stop the next; the result lists every series' outcome.

`new_since`: the first bar after the one stored before this run, so an ingest catching up
after an outage announces all its new bars in one message. On a series' first run the
backfilled history is not news: `new_since` is the newest bar alone, so enabling a series
never trades on a crossover from months ago.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from algotrendy.errors import ParameterError
from algotrendy.signals.messages import CandlesClosed, send_candles_closed

if TYPE_CHECKING:
    from algotrendy.data.channels.base import Channel
    from algotrendy.messaging.base import Queue
    from algotrendy.storage.base import Cache, CandleStore

log = logging.getLogger(__name__)


class ChannelSeries(BaseModel):
    """One channel of a group and the series it fetches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1, max_length=64, description="channel name (get_channel)")
    exchange: str | None = Field(
        None, min_length=1, max_length=64, description="series key; default: the source"
    )
    symbols: tuple[str, ...] = Field(min_length=1)
    timeframes: tuple[str, ...] = Field(min_length=1)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="channel constructor settings (no secrets here)"
    )

    @field_validator("source")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("timeframes")
    @classmethod
    def _timeframes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from algotrendy.data.normalise import timeframe_seconds

        for tf in value:
            timeframe_seconds(tf)  # ParameterError names the bad one
        return value

    @property
    def series_exchange(self) -> str:
        return self.exchange or self.source


class IngestGroup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field(min_length=1, max_length=64)
    channels: tuple[ChannelSeries, ...] = Field(min_length=1)
    backfill_bars: int = Field(
        500, ge=1, le=1_000_000, description="bars fetched on a series' first run"
    )


SeriesStatus = Literal["new_bars", "up_to_date", "failed"]


@dataclass(frozen=True)
class SeriesOutcome:
    source: str
    exchange: str
    symbol: str
    timeframe: str
    status: SeriesStatus
    fetched: int = 0
    written: int = 0
    last_bar: str | None = None
    message_id: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestGroupResult:
    group: str
    outcomes: list[SeriesOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[SeriesOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "series": len(self.outcomes),
            "new_bars": sum(o.status == "new_bars" for o in self.outcomes),
            "failed": len(self.failed),
            "outcomes": [o.as_dict() for o in self.outcomes],
        }


ChannelFactory = Callable[[str, dict[str, Any]], "Channel"]


def default_channel_factory(source: str, settings: dict[str, Any]) -> Channel:
    from algotrendy.data.channels import get_channel

    return get_channel(source, **settings)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_ingest_group(
    group: IngestGroup,
    *,
    stores: Sequence[CandleStore],
    cache: Cache | None,
    signals: Queue | None,
    channel_factory: ChannelFactory = default_channel_factory,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> IngestGroupResult:
    """Ingest every series of `group`; emit `candles.closed` for each that advanced."""
    from algotrendy.data.ingest import IngestService
    from algotrendy.data.pipeline import CandlePipeline

    if not stores:
        raise ParameterError("ingest needs at least one candle store")
    pipeline = CandlePipeline(stores, cache=cache, now=now)
    outcomes: list[SeriesOutcome] = []
    for entry in group.channels:
        series = [(s, tf) for s in entry.symbols for tf in entry.timeframes]
        try:
            channel = channel_factory(entry.source, dict(entry.settings))
            service = IngestService(channel, pipeline, now=now)
        except Exception as exc:  # this channel's series fail; the next channel runs
            log.exception("ingest %s: channel %s unavailable", group.group, entry.source)
            outcomes.extend(
                SeriesOutcome(
                    entry.source,
                    entry.series_exchange,
                    symbol,
                    tf,
                    "failed",
                    error=f"channel {entry.source}: {_one_line(exc)}",
                )
                for symbol, tf in series
            )
            continue
        for symbol, tf in series:
            outcomes.append(_run_series(service, entry, symbol, tf, group, cache, signals, now))
    return IngestGroupResult(group.group, outcomes)


def _run_series(
    service: Any,
    entry: ChannelSeries,
    symbol: str,
    timeframe: str,
    group: IngestGroup,
    cache: Cache | None,
    signals: Queue | None,
    now: Callable[[], datetime],
) -> SeriesOutcome:
    from algotrendy.data.ingest import IngestRequest
    from algotrendy.data.manager import track_health
    from algotrendy.data.normalise import default_until
    from algotrendy.signals.evaluator import bar_length

    exchange = entry.series_exchange
    label = f"{exchange} {symbol} {timeframe}"
    try:
        since = default_until(timeframe, now()) - bar_length(timeframe) * group.backfill_bars
        request = IngestRequest(
            source=entry.source, symbol=symbol, timeframe=timeframe, since=since, exchange=exchange
        )
        if cache is not None:
            with track_health(cache, entry.source):
                plan = service.plan(request)
                result = service.run(request, plan=plan)
        else:
            plan = service.plan(request)
            result = service.run(request, plan=plan)
        before = plan.resumed_from
        after = service.resume_store.last_timestamp(exchange, symbol, timeframe)
    except Exception as exc:  # reported in the outcome; the next series runs
        log.exception("ingest %s: %s failed", group.group, label)
        return SeriesOutcome(
            entry.source, exchange, symbol, timeframe, "failed", error=_one_line(exc)
        )
    advanced = after is not None and (before is None or after > before)
    if not advanced:
        return SeriesOutcome(
            entry.source,
            exchange,
            symbol,
            timeframe,
            "up_to_date",
            fetched=result.fetched,
            written=result.written,
            last_bar=None if after is None else after.isoformat(),
        )
    assert after is not None
    message = CandlesClosed.for_bars(
        exchange,
        symbol,
        timeframe,
        last_bar=after,
        new_since=after if before is None else min(plan.start, after),
    )
    message_id: str | None = None
    error: str | None = None
    if signals is not None:
        try:
            send_candles_closed(signals, message)
            message_id = message.message_id()
        except Exception as exc:  # the candles are stored; say the news was not sent
            log.exception("ingest %s: %s: candles.closed not sent", group.group, label)
            error = f"candles stored, candles.closed not sent: {_one_line(exc)}"
    return SeriesOutcome(
        entry.source,
        exchange,
        symbol,
        timeframe,
        "failed" if error else "new_bars",
        fetched=result.fetched,
        written=result.written,
        last_bar=after.isoformat(),
        message_id=message_id,
        error=error,
    )
