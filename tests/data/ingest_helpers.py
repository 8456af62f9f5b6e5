"""The fake candle channel the ingest tests share (imported by name: test folders have no
__init__): deterministic candles on the timeframe grid, pages reported through `progress`,
a failure that can be set to strike in the middle of a given call, and optionally a clock
at which the newest bar is still forming."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from algotrendy.data.channels.base import ChannelInfo
from algotrendy.data.normalise import bar_close, parse_timeframe
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import SourceUnavailableError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
# The close so far of a bar still forming at the channel's clock.
PARTIAL = 100.5


def price(t: datetime) -> float:
    hours = (t - T0).total_seconds() / 3600
    return 100.0 + 10.0 * math.sin(hours / 7.0) + hours * 0.01


class FakeChannel:
    """Candles for every grid time in [since, until) except `skip`: the grid is every
    timeframe step from T0, or the bar opens `opens` (weeks, months, bars at :30). With a
    `clock`, a bar not yet open is not served and one not yet closed is served with its
    close so far (`PARTIAL`), as an exchange serves the bar still forming."""

    def __init__(
        self,
        name: str = "fakex",
        *,
        timeframes: tuple[str, ...] = ("1h", "1d"),
        page: int = 4,
        fail_on_call: int | None = None,
        fail_after_pages: int = 1,
        skip: frozenset[datetime] = frozenset(),
        weekdays_only: bool = False,
        extra_bar: bool = False,
        opens: Sequence[datetime] | None = None,
        clock: Callable[[], datetime] | None = None,
        close: Callable[[datetime], float] = price,
    ) -> None:
        self.info = ChannelInfo(
            name=name,
            asset_classes=(AssetClass.CRYPTO,),
            kinds=(DataKind.OHLCV,),
            timeframes=timeframes,
        )
        self.page = page
        self.fail_on_call = fail_on_call
        self.fail_after_pages = fail_after_pages
        self.skip = skip
        self.weekdays_only = weekdays_only
        self.extra_bar = extra_bar
        self.opens = opens
        self.clock = clock
        self.close = close
        self.calls: list[tuple[str, str, datetime, datetime | None]] = []

    def grid(self, timeframe: str, since: datetime, until: datetime) -> list[datetime]:
        if self.opens is not None:
            return [t for t in self.opens if since <= t < until]
        step = parse_timeframe(timeframe)
        assert step is not None
        times = []
        t = T0 + math.ceil((since - T0) / step) * step
        while t < until:
            if t not in self.skip and not (self.weekdays_only and t.weekday() >= 5):
                times.append(t)
            t += step
        if self.extra_bar:
            times.append(t)  # one bar past `until`, as a careless source might send
        return times

    def frame(self, timeframe: str, since: datetime, until: datetime) -> pd.DataFrame:
        times = self.grid(timeframe, since, until)
        now = None if self.clock is None else self.clock()
        if now is not None:
            times = [t for t in times if t <= now]
        close = np.array(
            [
                self.close(t) if now is None or bar_close(t, timeframe) <= now else PARTIAL
                for t in times
            ]
        )
        index = pd.DatetimeIndex(times, dtype="datetime64[ns, UTC]", name="time")
        return pd.DataFrame(
            {
                "open": close - 0.5,
                "high": close + 1.0,
                "low": close - 1.0,
                "close": close,
                "volume": np.full(len(times), 5.0),
            },
            index=index,
        )

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        self.calls.append((symbol, timeframe, since, until))
        assert until is not None
        # A channel that resolves symbols (a `canonical_symbol` method) is asked by the
        # canonical one.
        resolve = getattr(self, "canonical_symbol", None)
        assert resolve is None or symbol == resolve(symbol)
        frame = self.frame(timeframe, since, until)
        for k, start in enumerate(range(0, len(frame), self.page)):
            if len(self.calls) == self.fail_on_call and k == self.fail_after_pages:
                raise SourceUnavailableError(
                    f"{self.info.name}: fetch {symbol} {timeframe} refused "
                    "(NetworkError: connection reset by peer)"
                )
            if progress is not None:
                progress(len(frame.iloc[start : start + self.page]))
        return frame
