"""Closed bars only, on any grid (Monday weeks, calendar months, equity hours at :30), and
every store catching up after one of them failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from ingest_helpers import FakeChannel

from algotrendy.data.ingest import IngestRequest, IngestService
from algotrendy.data.normalise import bar_close, closed_bars, default_until
from algotrendy.data.pipeline import CandlePipeline
from algotrendy.storage.base import StoreError, get_latest_price
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore

FINAL = 150.0


def grid_channel(timeframe: str, opens: list[datetime], clock: list[datetime]) -> FakeChannel:
    """Bars opening at `opens`, each `FINAL` once closed at `clock[0]` (`PARTIAL` before)."""
    return FakeChannel(
        "gridx", timeframes=(timeframe,), opens=opens, clock=lambda: clock[0], close=lambda t: FINAL
    )


def ingest(
    timeframe: str, opens: list[datetime], store: LocalCandleStore, clock: list[datetime]
) -> None:
    channel = grid_channel(timeframe, opens, clock)
    service = IngestService(channel, CandlePipeline([store]), now=lambda: clock[0])
    service.run(IngestRequest("gridx", "BTC/USDT", timeframe, since=opens[0]))


@pytest.mark.parametrize(
    ("timeframe", "now", "forming_opened"),
    [
        ("5m", datetime(2024, 1, 17, 12, 7, tzinfo=UTC), datetime(2024, 1, 17, 12, 5, tzinfo=UTC)),
        ("1d", datetime(2024, 1, 17, 12, tzinfo=UTC), datetime(2024, 1, 17, tzinfo=UTC)),
        # Binance's 3d bars are epoch-aligned: one opened 2024-01-15 (day 19737 = 3 x 6579).
        ("3d", datetime(2024, 1, 17, 12, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC)),
        # Wednesday: the week opened on Monday.
        ("1w", datetime(2024, 1, 17, 12, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC)),
        ("1w", datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC)),
        ("1M", datetime(2024, 1, 17, 12, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),
        ("3M", datetime(2024, 5, 17, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)),
        ("1y", datetime(2024, 5, 17, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_default_until_is_the_open_of_the_bar_still_forming(
    timeframe: str, now: datetime, forming_opened: datetime
) -> None:
    assert default_until(timeframe, now) == forming_opened


def test_bar_close_counts_months_on_the_calendar() -> None:
    assert bar_close(datetime(2024, 1, 1, tzinfo=UTC), "1M") == datetime(2024, 2, 1, tzinfo=UTC)
    assert bar_close(datetime(2024, 2, 1, tzinfo=UTC), "1M") == datetime(2024, 3, 1, tzinfo=UTC)
    assert bar_close(datetime(2024, 11, 1, tzinfo=UTC), "3M") == datetime(2025, 2, 1, tzinfo=UTC)
    assert bar_close(datetime(2024, 1, 15, tzinfo=UTC), "1w") == datetime(2024, 1, 22, tzinfo=UTC)


def test_closed_bars_keeps_a_bar_closing_exactly_now() -> None:
    index = pd.DatetimeIndex(
        ["2024-01-01", "2024-02-01", "2024-03-01"], dtype="datetime64[ns, UTC]", name="time"
    )
    frame = pd.DataFrame({"close": [1.0, 2.0, 3.0]}, index=index)
    kept = closed_bars(frame, "1M", datetime(2024, 3, 1, tzinfo=UTC))
    assert kept.index.tolist() == index[:2].tolist()


@pytest.mark.parametrize(
    ("timeframe", "opens", "first_now", "later_now", "forming"),
    [
        (
            "1w",  # Monday weeks
            [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(weeks=k) for k in range(4)],
            datetime(2024, 1, 17, 12, tzinfo=UTC),
            datetime(2024, 1, 24, 12, tzinfo=UTC),
            datetime(2024, 1, 15, tzinfo=UTC),
        ),
        (
            "1M",
            [
                datetime(y, m, 1, tzinfo=UTC)
                for y, m in ((2023, 11), (2023, 12), (2024, 1), (2024, 2))
            ],
            datetime(2024, 1, 17, 12, tzinfo=UTC),
            datetime(2024, 2, 17, 12, tzinfo=UTC),
            datetime(2024, 1, 1, tzinfo=UTC),
        ),
        (
            "1h",  # US-equity hours: 09:30 ET = 14:30 UTC (EST)
            [datetime(2024, 3, 5, 14, 30, tzinfo=UTC) + timedelta(hours=k) for k in range(6)],
            datetime(2024, 3, 5, 16, 10, tzinfo=UTC),  # the 15:30 bar is forming
            datetime(2024, 3, 5, 16, 40, tzinfo=UTC),
            datetime(2024, 3, 5, 15, 30, tzinfo=UTC),
        ),
    ],
)
def test_the_forming_bar_is_not_stored_and_is_stored_final_once_closed(
    tmp_path: Path,
    timeframe: str,
    opens: list[datetime],
    first_now: datetime,
    later_now: datetime,
    forming: datetime,
) -> None:
    store = LocalCandleStore(tmp_path, fsync=False)
    clock = [first_now]
    ingest(timeframe, opens, store, clock)
    stored = store.read("gridx", "BTC/USDT", timeframe)
    assert stored.index[-1] < pd.Timestamp(forming)
    assert (stored["close"] == FINAL).all()
    clock[0] = later_now
    ingest(timeframe, opens, store, clock)
    stored = store.read("gridx", "BTC/USDT", timeframe)
    assert stored.loc[pd.Timestamp(forming), "close"] == FINAL


class FailingOnceStore(LocalCandleStore):
    """A second store whose writes fail while `down` (QuestDB rejecting a flush)."""

    down = False

    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
        if self.down:
            raise StoreError(f"{self.name} store {exchange} {symbol} {timeframe}: rejected")
        return super().write(frame, exchange, symbol, timeframe)


def test_a_store_that_missed_a_window_catches_up_on_the_next_run(tmp_path: Path) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    opens = [t0 + timedelta(hours=k) for k in range(40)]
    first = LocalCandleStore(tmp_path / "a", fsync=False)
    second = FailingOnceStore(tmp_path / "b", fsync=False)
    second.name = "mirror"
    clock = [t0 + timedelta(hours=10)]
    channel = grid_channel("1h", opens, clock)
    service = IngestService(channel, CandlePipeline([first, second]), now=lambda: clock[0])
    request = IngestRequest("gridx", "BTC/USDT", "1h", since=t0)
    service.run(request)
    clock[0] = t0 + timedelta(hours=20)
    second.down = True
    with pytest.raises(StoreError, match="rejected"):
        service.run(request)  # the first store took hours 10..19, the second did not
    second.down = False
    clock[0] = t0 + timedelta(hours=30)
    result = service.run(request)
    assert result.plan.resumed_from == t0 + timedelta(hours=9)
    pd.testing.assert_frame_equal(
        first.read("gridx", "BTC/USDT", "1h"), second.read("gridx", "BTC/USDT", "1h")
    )
    assert len(second.read("gridx", "BTC/USDT", "1h")) == 30


def test_a_monthly_price_is_stamped_at_the_bar_close(tmp_path: Path) -> None:
    cache = MemoryCache()
    pipeline = CandlePipeline([LocalCandleStore(tmp_path, fsync=False)], cache=cache)
    index = pd.DatetimeIndex([datetime(2024, 1, 1, tzinfo=UTC)], name="time").as_unit("ns")
    frame = pd.DataFrame(
        {"open": [1.0], "high": [4.0], "low": [1.0], "close": [3.0], "volume": [1.0]},
        index=index,
    )
    pipeline.process(frame, exchange="binance", symbol="BTC/USDT", timeframe="1M")
    price = get_latest_price(cache, "binance", "BTC/USDT")
    assert price is not None
    assert price.time == datetime(2024, 2, 1, tzinfo=UTC)
