"""Ingest service: fetch a candle range from a channel, run it through the pipeline, and
resume where the store left off.

The range is fetched in windows of `window_bars` bars; each window goes through the
pipeline and is committed on its own (the local store renames whole files into place,
QuestDB applies each ILP/HTTP request as one transaction). So a source failing mid-way
leaves only whole windows behind, and running the same command again fetches only what
is missing: it starts one bar after the store's `last_timestamp`.

Only closed bars are stored: the range ends at the open of the bar still forming
(`algotrendy.data.normalise.default_until`), and every fetched bar whose own close (open +
one bar, calendar-aware) is after now is dropped (`closed_bars`: Monday weeks, calendar
months, equity hours opening at :30), because a bar still moving would be stored with a
wrong close and the resume would then skip it.

With several stores the resume point is the earliest of their last bars, so a store that
missed a window (its write failed after another store's succeeded) catches up on the next
run; the stores upsert by open time, so the others simply rewrite the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from algotrendy.data.channels.base import CandleChannel, Channel, canonical_symbol
from algotrendy.data.normalise import (
    closed_bars,
    default_until,
    parse_timeframe,
    timeframe_seconds,
)
from algotrendy.data.validation import ValidationReport, find_gaps
from algotrendy.errors import ParameterError
from algotrendy.storage.base import utc

if TYPE_CHECKING:
    from algotrendy.data.pipeline import CandlePipeline
    from algotrendy.storage.base import CandleStore

log = logging.getLogger(__name__)

DEFAULT_WINDOW_BARS = 50_000
# Calendar timeframes (1M) have no fixed length: resume one microsecond after the last
# bar (QuestDB's timestamp resolution) and let the source return the next bar.
_CALENDAR_STEP = timedelta(microseconds=1)


@dataclass(frozen=True)
class IngestRequest:
    """One series and range to ingest. `exchange` keys the stored series; it defaults to
    the source name (`binance`, `yfinance`). `symbol` may be any spelling the channel
    accepts: `IngestService.resolve` turns it into the channel's canonical symbol, the one
    the series is stored, cached and announced under."""

    source: str
    symbol: str
    timeframe: str
    since: datetime
    until: datetime | None = None
    exchange: str | None = None
    # True: `since` only bounds a series' first run (the scheduled ingest's backfill); a
    # series with stored bars resumes right after its last one however far back that is,
    # so an outage longer than the backfill leaves no gap. False (the CLI's --since):
    # nothing before `since` is fetched.
    since_first_run_only: bool = False

    @property
    def series(self) -> str:
        return self.exchange or self.source


@dataclass(frozen=True)
class IngestPlan:
    """What a run will fetch: [start, end), or nothing when the store is up to date."""

    start: datetime
    end: datetime
    resumed_from: datetime | None
    expected_bars: int

    @property
    def up_to_date(self) -> bool:
        return self.start >= self.end


@dataclass(frozen=True, eq=False)
class IngestResult:
    request: IngestRequest
    plan: IngestPlan
    fetched: int = 0
    written: int = 0
    windows: int = 0
    report: ValidationReport | None = None
    written_by_store: dict[str, int] = field(default_factory=dict)
    # Open time of the newest bar this run wrote: what "new bars arrived" is judged on,
    # since a store may not show its own write yet (QuestDB applies WAL asynchronously).
    last_written: datetime | None = None


def resume_step(timeframe: str) -> timedelta:
    """From the last stored open time to the first one to fetch."""
    return parse_timeframe(timeframe) or _CALENDAR_STEP


def _nominal_bar(timeframe: str) -> timedelta:
    """Bar length for sizing windows and progress (ccxt's: a month is 30 days)."""
    return timedelta(seconds=timeframe_seconds(timeframe))


def _seam_gaps(
    previous: datetime | None, first: pd.Timestamp | None, timeframe: str, source: str
) -> ValidationReport | None:
    """A gap between the last bar already stored (or of the previous window) and the
    first bar of this window: neither window's own validation can see it."""
    step = parse_timeframe(timeframe)
    if step is None or previous is None or first is None:
        return None
    edges = np.array([pd.Timestamp(previous).as_unit("ns").value, first.as_unit("ns").value])
    gaps = find_gaps(edges, int(step.total_seconds()) * 10**9)
    if not len(gaps):
        return None
    return ValidationReport(source=source, timeframe=timeframe, rows_in=0, rows_out=0, gaps=gaps)


class IngestService:
    """Fetches through one candle channel into a `CandlePipeline`; resumes from
    `resume_store`, by default the earliest last bar of all the pipeline's stores."""

    def __init__(
        self,
        channel: Channel,
        pipeline: CandlePipeline,
        *,
        resume_store: CandleStore | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        window_bars: int = DEFAULT_WINDOW_BARS,
    ) -> None:
        if not isinstance(channel, CandleChannel):
            name = getattr(getattr(channel, "info", None), "name", type(channel).__name__)
            raise ParameterError(f"source {name} does not serve candles (no fetch_ohlcv)")
        if resume_store is None and not pipeline.stores:
            raise ParameterError("ingest needs at least one candle store")
        if window_bars <= 0:
            raise ParameterError(f"window_bars must be positive, got {window_bars}")
        self.channel: CandleChannel = channel
        self.pipeline = pipeline
        self.resume_stores: tuple[CandleStore, ...] = (
            (resume_store,) if resume_store is not None else tuple(pipeline.stores)
        )
        self._now = now
        self.window_bars = window_bars

    def _check(self, request: IngestRequest) -> None:
        parse_timeframe(request.timeframe)  # raises ParameterError naming the timeframe
        served = self.channel.info.timeframes
        if served and request.timeframe not in served:
            raise ParameterError(
                f"source {request.source} has no {request.timeframe} candles; "
                f"it serves {', '.join(served)}"
            )
        if request.until is not None and utc(request.until) <= utc(request.since):
            raise ParameterError(
                f"--until {utc(request.until):%Y-%m-%d %H:%M} must be after "
                f"--since {utc(request.since):%Y-%m-%d %H:%M}"
            )

    def resolve(self, request: IngestRequest) -> IngestRequest:
        """`request` keyed by the channel's canonical symbol (`BTCUSDT` -> `BTC/USDT` on
        a ccxt exchange, `aapl` -> `AAPL` on yfinance), so two spellings of one market
        share one stored series and resume. Raises the channel's error for an unknown
        symbol; a channel that does not resolve symbols keeps the symbol as typed."""
        symbol = canonical_symbol(self.channel, request.symbol)
        return request if symbol == request.symbol else replace(request, symbol=symbol)

    def plan(self, request: IngestRequest) -> IngestPlan:
        self._check(request)  # a bad timeframe or range is refused before any source call
        return self._plan(self.resolve(request))

    def _plan(self, request: IngestRequest) -> IngestPlan:
        """`plan` for a checked request already keyed by the canonical symbol."""
        bar = _nominal_bar(request.timeframe)
        since = utc(request.since)
        forming = default_until(request.timeframe, utc(self._now()))
        end = forming if request.until is None else min(utc(request.until), forming)
        last = self._last_stored(request)
        if last is None:
            start = since
        elif request.since_first_run_only:
            start = utc(last) + resume_step(request.timeframe)
        else:
            start = max(since, utc(last) + resume_step(request.timeframe))
        expected = max(0, int((end - start) / bar)) if end > start else 0
        return IngestPlan(start=start, end=end, resumed_from=last, expected_bars=expected)

    def _last_stored(self, request: IngestRequest) -> datetime | None:
        """The bar to resume after: the earliest of the stores' last bars (None when any
        store has none), so every store receives what it missed."""
        lasts = [
            store.last_timestamp(request.series, request.symbol, request.timeframe)
            for store in self.resume_stores
        ]
        if not lasts or any(last is None for last in lasts):
            return None
        return min(utc(last) for last in lasts if last is not None)

    def run(
        self,
        request: IngestRequest,
        *,
        progress: Callable[[int], None] | None = None,
        plan: IngestPlan | None = None,
    ) -> IngestResult:
        """Fetch, validate and store the missing part of `request`'s range.

        `progress` is called with the number of candles just fetched (the channel's own
        pagination reports through it). A `SourceUnavailableError` from the channel
        propagates after the windows already stored; nothing of the failing window is.
        """
        request = self.resolve(request)
        if plan is None:
            self._check(request)
            plan = self._plan(request)
        if plan.up_to_date:
            return IngestResult(request=request, plan=plan)
        window = _nominal_bar(request.timeframe) * self.window_bars
        fetched = written = windows = 0
        report: ValidationReport | None = None
        by_store: dict[str, int] = {}
        previous = None if plan.resumed_from is None else utc(plan.resumed_from)
        last_written: datetime | None = None
        now = utc(self._now())
        cursor = plan.start
        while cursor < plan.end:
            upper = min(cursor + window, plan.end)
            counted = 0

            def count(n: int) -> None:
                nonlocal counted
                counted += n
                if progress is not None:
                    progress(n)

            frame = self.channel.fetch_ohlcv(
                request.symbol, request.timeframe, cursor, upper, progress=count
            )
            if progress is not None and len(frame) > counted:
                progress(len(frame) - counted)  # a channel that does not report pages
            fetched += len(frame)
            frame = closed_bars(_in_window(frame, cursor, upper), request.timeframe, now)
            result = self.pipeline.process(
                frame, exchange=request.series, symbol=request.symbol, timeframe=request.timeframe
            )
            windows += 1
            first = result.frame.index[0] if len(result.frame) else None
            window_report = result.report
            seam = _seam_gaps(previous, first, request.timeframe, window_report.source)
            if seam is not None:
                window_report = window_report.merge(seam)
            report = window_report if report is None else report.merge(window_report)
            if len(result.frame):
                previous = result.frame.index[-1].to_pydatetime()
                if result.written:
                    last_written = previous
            for name, rows in result.written.items():
                by_store[name] = by_store.get(name, 0) + rows
            written += max(result.written.values(), default=0)
            cursor = upper
        return IngestResult(
            request=request,
            plan=plan,
            fetched=fetched,
            written=written,
            windows=windows,
            report=report,
            written_by_store=by_store,
            last_written=last_written,
        )


def _in_window(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows whose open time is in [start, end), the window asked for.

    This scopes the request (a source may return a page edge twice or the bar still
    forming); it is not validation, which happens after, in the pipeline.
    """
    if not len(frame) or not isinstance(frame.index, pd.DatetimeIndex):
        return frame  # the normaliser names what is wrong with a non-time index
    index = frame.index if frame.index.tz is not None else frame.index.tz_localize("UTC")
    mask = (index >= pd.Timestamp(start)) & (index < pd.Timestamp(end))
    return frame if bool(mask.all()) else frame[mask]


def candle_poll(service: IngestService, request: IngestRequest) -> Callable[[], IngestResult]:
    """A `ChannelManager` job: each call ingests whatever closed since the last stored bar
    (the resume rule makes a repeated full request incremental). `request.until` is
    normally None, so every run reaches the newest closed bar."""

    def poll() -> IngestResult:
        return service.run(request)

    return poll
