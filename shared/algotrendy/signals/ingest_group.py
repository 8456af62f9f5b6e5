"""Scheduled ingest of one channel group, and the `candles.closed` news it produces.

An EventBridge rule per channel group runs the ingest function with the group as input::

    {"group": "crypto-1m",
     "channels": [{"source": "binance", "symbols": ["BTC/USDT", "ETH/USDT"],
                   "timeframes": ["1m", "1h"]}],
     "backfill_bars": 500}

Each series (channel x symbol x timeframe) runs through the same `IngestService` and
`CandlePipeline` as `algotrendy ingest`: resume after the stores' last bar (however long
ago: `backfill_bars` bounds a series' first run only), closed bars only, validate, write
every store, publish the latest close to the cache, record the channel's health. A series
that has closed bars not yet announced gets one `candles.closed` message on the signals
queue.

Failures stay local: a channel that cannot be built fails its series, a series that
fails does not stop the next; the result lists every series' outcome (the ingest function
then fails the invocation, `IngestGroupFailedError`).

`new_since`: the bar after the last one announced (the `announced` watermark in the
cache), so an ingest catching up after an outage, or after a run whose send failed,
announces all those bars in one message. Without a watermark it is the first bar this run
stored. On a series' first run the backfilled history is not news: `new_since` is the
newest bar alone, so enabling a series never trades on a crossover from months ago.

News channels (sources `news` and `news-<feed>`, the registry's names) take no
timeframes: each symbol's latest items (`news_limit` of them) are fetched, tagged with
that symbol and written to the news store, which keeps each story once; the outcome
counts what was fetched and what was new. News announces nothing on the signals queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from algotrendy.errors import AlgoTrendyError, ParameterError
from algotrendy.signals.messages import CandlesClosed, send_candles_closed
from algotrendy.storage.base import utc

if TYPE_CHECKING:
    from algotrendy.data.channels.base import Channel, NewsChannel
    from algotrendy.data.ingest import IngestService
    from algotrendy.messaging.base import Queue
    from algotrendy.storage.base import Cache, CandleStore, NewsStore

log = logging.getLogger(__name__)


def is_news_source(source: str) -> bool:
    """Whether `source` names a news channel: `news` (the aggregator) or `news-<feed>`,
    as `algotrendy.data.channels` registers them. Decided by name so a group is
    validated when it is parsed, before any channel is built."""
    return source == "news" or source.startswith("news-")


class ChannelSeries(BaseModel):
    """One channel of a group and the series it fetches: candles per symbol and
    timeframe, or, for a news source, news per symbol (no timeframes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1, max_length=64, description="channel name (get_channel)")
    exchange: str | None = Field(
        None, min_length=1, max_length=64, description="series key; default: the source"
    )
    symbols: tuple[str, ...] = Field(min_length=1)
    timeframes: tuple[str, ...] = Field(
        (), description="bar timeframes; required for candles, none for a news source"
    )
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

    @model_validator(mode="after")
    def _timeframes_match_the_source(self) -> ChannelSeries:
        if self.is_news and self.timeframes:
            raise ValueError(
                f"source {self.source} serves news items, which have no timeframe: "
                "leave timeframes out"
            )
        if not self.is_news and not self.timeframes:
            raise ValueError(
                f"source {self.source} serves candles: timeframes needs at least one "
                "(news sources are named news or news-<feed>)"
            )
        return self

    @property
    def is_news(self) -> bool:
        return is_news_source(self.source)

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
    news_limit: int = Field(
        50, ge=1, le=1000, description="news items asked per symbol of a news channel per run"
    )


SeriesStatus = Literal["new_bars", "new_items", "up_to_date", "failed"]


@dataclass(frozen=True)
class SeriesOutcome:
    """One series' run. For news `timeframe` is None, `written` counts items not stored
    before and `last_published` is the newest publication time fetched."""

    source: str
    exchange: str
    symbol: str
    timeframe: str | None
    status: SeriesStatus
    fetched: int = 0
    written: int = 0
    last_bar: str | None = None
    message_id: str | None = None
    error: str | None = None
    last_published: str | None = None

    @property
    def label(self) -> str:
        parts = (self.exchange, self.symbol, self.timeframe or "news")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestGroupResult:
    group: str
    outcomes: list[SeriesOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[SeriesOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def failure_summary(self) -> str:
        """One line naming every failed series and its error."""
        parts = [f"{o.label}: {o.error}" for o in self.failed]
        return (
            f"ingest {self.group}: {len(parts)} of {len(self.outcomes)} series failed: "
            + "; ".join(parts)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "series": len(self.outcomes),
            "new_bars": sum(o.status == "new_bars" for o in self.outcomes),
            "new_items": sum(o.status == "new_items" for o in self.outcomes),
            "failed": len(self.failed),
            "outcomes": [o.as_dict() for o in self.outcomes],
        }


class IngestGroupFailedError(AlgoTrendyError):
    """Raised by the ingest function after every series ran when any of them failed, so
    the invocation fails and the Lambda Errors metric (and its alarm) sees it; the message
    is the result's one-line failure summary, `result` the whole outcome."""

    def __init__(self, result: IngestGroupResult) -> None:
        super().__init__(result.failure_summary())
        self.result = result


# The newest bar announced per series: the durable part of "announced up to". Kept in the
# cache (a Redis hash in production, no expiry) next to the latest prices. Losing it costs
# only the retry of a failed announcement: without it a run announces its own new bars,
# as before the watermark existed.
ANNOUNCED_NAMESPACE = "announced"


def _announced_key(exchange: str, symbol: str, timeframe: str) -> str:
    return f"{exchange}:{symbol}:{timeframe}"


def last_announced(cache: Cache, exchange: str, symbol: str, timeframe: str) -> datetime | None:
    """Open time of the newest bar of the series announced on `candles.closed`, or None
    when unknown (never announced, or the cache lost or garbled the record)."""
    key = _announced_key(exchange, symbol, timeframe)
    raw = cache.get(ANNOUNCED_NAMESPACE, key)
    if raw is None:
        return None
    try:
        return utc(datetime.fromisoformat(str(raw["last_bar"])))
    except (KeyError, TypeError, ValueError):
        log.warning("announced watermark %s unreadable (%r): announcing this run's bars", key, raw)
        return None


def mark_announced(
    cache: Cache, exchange: str, symbol: str, timeframe: str, last_bar: datetime
) -> None:
    cache.put(
        ANNOUNCED_NAMESPACE,
        _announced_key(exchange, symbol, timeframe),
        {"last_bar": utc(last_bar).isoformat()},
    )


ChannelFactory = Callable[[str, dict[str, Any]], "Channel"]


def default_channel_factory(source: str, settings: dict[str, Any]) -> Channel:
    from algotrendy.data.channels import get_channel

    return get_channel(source, **settings)


def _health(cache: Cache | None, source: str) -> AbstractContextManager[None]:
    """`track_health` of `source` in `cache`; nothing recorded without a cache."""
    if cache is None:
        return nullcontext()
    from algotrendy.data.manager import track_health

    return track_health(cache, source)


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
    news_store: NewsStore | None = None,
) -> IngestGroupResult:
    """Ingest every series of `group`; emit `candles.closed` for each candle series that
    advanced; news goes to `news_store`."""
    from algotrendy.data.ingest import IngestService
    from algotrendy.data.pipeline import CandlePipeline

    candle_entries = [e for e in group.channels if not e.is_news]
    news_entries = [e.source for e in group.channels if e.is_news]
    if candle_entries and not stores:
        raise ParameterError("ingest needs at least one candle store")
    if news_entries and news_store is None:
        raise ParameterError(
            f"ingest {group.group}: news source(s) {', '.join(news_entries)} but no news store"
        )
    pipeline = CandlePipeline(stores, cache=cache, now=now) if candle_entries else None
    outcomes: list[SeriesOutcome] = []
    for entry in group.channels:
        if entry.is_news:
            assert news_store is not None  # checked above
            outcomes.extend(_run_news(entry, group, news_store, cache, channel_factory))
            continue
        assert pipeline is not None  # built when the group has a candle entry
        series = [(s, tf) for s in entry.symbols for tf in entry.timeframes]
        try:
            channel = channel_factory(entry.source, dict(entry.settings))
            _require_candles(entry.source, channel)
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


def _require_candles(source: str, channel: Channel) -> None:
    """Refuse a news channel under a candle source's name by what it is."""
    from algotrendy.data.channels.base import CandleChannel, NewsChannel

    if isinstance(channel, NewsChannel) and not isinstance(channel, CandleChannel):
        raise ParameterError(
            f"source {source} serves news items, not candles: news is ingested from "
            "sources named news or news-<feed>, without timeframes"
        )


def _run_news(
    entry: ChannelSeries,
    group: IngestGroup,
    store: NewsStore,
    cache: Cache | None,
    channel_factory: ChannelFactory,
) -> list[SeriesOutcome]:
    """Each symbol of a news channel: its own fetch (so `news_limit` is per symbol and one
    symbol's failure leaves the others), its own outcome."""
    from algotrendy.data.channels.base import NewsChannel

    try:
        channel = channel_factory(entry.source, dict(entry.settings))
        if not isinstance(channel, NewsChannel):
            raise ParameterError(f"source {entry.source} is not a news channel (no fetch_news)")
    except Exception as exc:  # this channel's symbols fail; the next channel runs
        log.exception("ingest %s: channel %s unavailable", group.group, entry.source)
        return [
            SeriesOutcome(
                entry.source,
                entry.series_exchange,
                symbol,
                None,
                "failed",
                error=f"channel {entry.source}: {_one_line(exc)}",
            )
            for symbol in entry.symbols
        ]
    return [_run_news_symbol(channel, entry, s, group, store, cache) for s in entry.symbols]


def _run_news_symbol(
    channel: NewsChannel,
    entry: ChannelSeries,
    symbol: str,
    group: IngestGroup,
    store: NewsStore,
    cache: Cache | None,
) -> SeriesOutcome:
    from algotrendy.data.normalise import parse_symbol_list
    from algotrendy.storage.news import with_symbols

    exchange = entry.series_exchange
    try:
        # Health times the source alone: a store failure is not the feed's.
        with _health(cache, entry.source):
            items = channel.fetch_news((symbol,), group.news_limit)
        # Tagged with the symbol asked for: a feed may tag a story by another code
        # (CryptoPanic: BTC for BTC-USD), and the operator reads news by the group's symbols.
        tags = parse_symbol_list([symbol])
        written = store.write([with_symbols(i, tags) for i in items])
    except Exception as exc:  # reported in the outcome; the next symbol runs
        log.exception("ingest %s: %s %s news failed", group.group, exchange, symbol)
        return SeriesOutcome(entry.source, exchange, symbol, None, "failed", error=_one_line(exc))
    newest = max((utc(i.published_at) for i in items), default=None)
    return SeriesOutcome(
        entry.source,
        exchange,
        symbol,
        None,
        "new_items" if written else "up_to_date",
        fetched=len(items),
        written=written,
        last_published=None if newest is None else newest.isoformat(),
    )


def _run_series(
    service: IngestService,
    entry: ChannelSeries,
    symbol: str,
    timeframe: str,
    group: IngestGroup,
    cache: Cache | None,
    signals: Queue | None,
    now: Callable[[], datetime],
) -> SeriesOutcome:
    from algotrendy.data.ingest import IngestRequest, resume_step
    from algotrendy.data.normalise import default_until
    from algotrendy.signals.evaluator import bar_length

    exchange = entry.series_exchange
    label = f"{exchange} {symbol} {timeframe}"
    try:
        since = default_until(timeframe, now()) - bar_length(timeframe) * group.backfill_bars
        request = IngestRequest(
            source=entry.source,
            symbol=symbol,
            timeframe=timeframe,
            since=since,
            exchange=exchange,
            since_first_run_only=True,  # backfill_bars bounds the first run only
        )
        with _health(cache, entry.source):
            result = service.run(request)
        plan = result.plan
        # The series is stored under the channel's canonical symbol (BTCUSDT -> BTC/USDT),
        # which `run` resolved; the watermark, the message and the outcome name it too.
        canonical = result.request.symbol
        if canonical != symbol:
            # Strategy configs match the announced symbol exactly: say which one it is.
            log.warning(
                "ingest %s: %s %s is stored and announced as %s; strategy configs must name %s",
                group.group, exchange, symbol, canonical, canonical,
            )  # fmt: skip
        symbol = canonical
        label = f"{exchange} {symbol} {timeframe}"
        announced = None if cache is None else last_announced(cache, exchange, symbol, timeframe)
    except Exception as exc:  # reported in the outcome; the next series runs
        log.exception("ingest %s: %s failed", group.group, label)
        return SeriesOutcome(
            entry.source, exchange, symbol, timeframe, "failed", error=_one_line(exc)
        )
    before: datetime | None = plan.resumed_from
    written: datetime | None = result.last_written
    # Judged on what this run wrote, never by re-reading the store: QuestDB applies a
    # write asynchronously (WAL), so the store may not show it yet.
    newest = max((t for t in (before, written) if t is not None), default=None)
    new_since: datetime | None
    if announced is not None:
        # Everything stored after the last bar announced is news, including bars a
        # previous run stored but failed to announce.
        advanced = newest is not None and newest > announced
        new_since = announced + resume_step(timeframe)
    else:
        # No watermark (first run, no cache, or the cache lost it): this run's bars.
        advanced = written is not None and (before is None or written > before)
        new_since = written if before is None else plan.start
    if not advanced or newest is None or new_since is None:
        return SeriesOutcome(
            entry.source,
            exchange,
            symbol,
            timeframe,
            "up_to_date",
            fetched=result.fetched,
            written=result.written,
            last_bar=None if newest is None else newest.isoformat(),
        )
    message = CandlesClosed.for_bars(
        exchange, symbol, timeframe, last_bar=newest, new_since=min(new_since, newest)
    )
    message_id: str | None = None
    error: str | None = None
    if signals is not None:
        try:
            send_candles_closed(signals, message)
            message_id = message.message_id()
        except Exception as exc:  # the candles are stored; the next run announces them
            log.exception("ingest %s: %s: candles.closed not sent", group.group, label)
            error = f"candles stored, candles.closed not sent: {_one_line(exc)}"
        if cache is not None and error is None:
            try:
                mark_announced(cache, exchange, symbol, timeframe, newest)
            except Exception as exc:  # the next run would announce these bars again
                log.exception("ingest %s: %s: announced watermark not saved", group.group, label)
                error = (
                    "candles.closed sent, announced watermark not saved "
                    f"(the next run announces these bars again): {_one_line(exc)}"
                )
    return SeriesOutcome(
        entry.source,
        exchange,
        symbol,
        timeframe,
        "failed" if error else "new_bars",
        fetched=result.fetched,
        written=result.written,
        last_bar=newest.isoformat(),
        message_id=message_id,
        error=error,
    )
