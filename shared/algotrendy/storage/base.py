"""Ports of the storage layer: where candles live and where the latest prices and channel
health are kept for quick reads.

Adapters: `LocalCandleStore` (Parquet files, the embedded default) and `QuestDBCandleStore`
(ILP over HTTP for writes, PostgreSQL wire for reads) implement `CandleStore`;
`MemoryCache` and `RedisCache` implement `Cache`. Both candle stores pass one contract suite
(`tests/storage/test_candle_store_contract.py`), so the pipeline and the ingest service
never care which one they were handed.

`NewsStore` is the same idea for news items (`LocalNewsStore` in JSON Lines files,
`QuestDBNewsStore` in the `news` table), with its own contract suite
(`tests/storage/test_news_store_contract.py`).

A candle frame here is the shape `algotrendy.domain.market.CANDLE_FRAME_COLUMNS` names:
a DatetimeIndex named `time` (UTC, bar open time) and float64 open/high/low/close/volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict

from algotrendy.domain.market import CANDLE_FRAME_COLUMNS
from algotrendy.errors import AlgoTrendyError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from algotrendy.domain.bars import Bars
    from algotrendy.domain.market import NewsItem


class StoreError(AlgoTrendyError):
    """A store refused or failed an operation (bad schema, rejected write). The message
    names the store and the series."""


class StoreUnavailableError(StoreError):
    """A store could not be reached (server down, connection refused, timeout). The
    message names the store's address and the cause in one line."""


@runtime_checkable
class CandleStore(Protocol):
    """Where normalised, validated candles are kept, one series per
    (exchange, symbol, timeframe).

    Guarantees every adapter keeps (checked by the shared contract suite):
    - `write` is idempotent: writing a range again, in whole or overlapping, leaves one
      row per timestamp, the last write winning;
    - `read` returns the rows with open time in [start, end), sorted, in the candle-frame
      shape (an empty frame of that shape when there is nothing);
    - `read_bars` returns the same rows as `Bars` (`Bars.from_frame(read(...))`, times
      datetime64[ns]): consumers that only run strategies (the signal evaluator) then
      need no pandas, and an adapter that reads rows (QuestDB) builds the arrays directly;
    - `last_timestamp` is the open time of the newest stored bar, so an ingest can resume.
    """

    name: str

    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
        """Store `frame` (candle frame, optionally an `ingested_at` column); return rows
        written."""
        ...

    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame: ...

    def read_bars(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Bars: ...

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> datetime | None: ...


@runtime_checkable
class NewsStore(Protocol):
    """Where fetched news items are kept, whatever feed they came from.

    Guarantees every adapter keeps (checked by the shared contract suite):
    - an item is identified by its canonical URL (`algotrendy.storage.news.news_item_id`,
      the rule the feeds de-duplicate by), so the same story from two feeds, or from one
      feed on every poll, is stored once: the first version stored stays, and symbols a
      later copy adds are merged in (a story fetched for AAPL, then for MSFT, is found by
      both);
    - `write` returns how many items were new, so an ingest can tell news from a re-poll;
    - `read` returns items published in [since, until), those tagged `symbol` only when
      given, newest first (ties by URL), at most `limit` of them.
    """

    name: str

    def write(self, items: Sequence[NewsItem]) -> int:
        """Store `items`; return how many were not stored before."""
        ...

    def read(
        self,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[NewsItem]: ...


JSONDict = dict[str, Any]


@runtime_checkable
class Cache(Protocol):
    """A small keyed cache of JSON documents grouped by namespace (`price`, `health`).

    Kept deliberately generic so Redis (a hash per namespace) and an in-process dict
    implement it in a few lines; typed records (`LatestPrice`, `ChannelHealth`) are
    converted at the edges with pydantic.
    """

    name: str

    def put(self, namespace: str, key: str, value: Mapping[str, Any]) -> None: ...

    def get(self, namespace: str, key: str) -> JSONDict | None: ...

    def get_all(self, namespace: str) -> dict[str, JSONDict]: ...

    def delete(self, namespace: str, key: str) -> None: ...


PRICE_NAMESPACE = "price"
HEALTH_NAMESPACE = "health"


class LatestPrice(BaseModel):
    """The last price seen for a symbol on an exchange.

    `time` is when that price was current: for a candle, its close time (open time + one
    bar), so prices from different timeframes of one symbol compare correctly.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str
    symbol: str
    timeframe: str
    price: float
    time: AwareDatetime
    updated_at: AwareDatetime


def price_key(exchange: str, symbol: str) -> str:
    return f"{exchange}:{symbol}"


def put_latest_price(cache: Cache, price: LatestPrice) -> None:
    cache.put(
        PRICE_NAMESPACE, price_key(price.exchange, price.symbol), price.model_dump(mode="json")
    )


def get_latest_price(cache: Cache, exchange: str, symbol: str) -> LatestPrice | None:
    raw = cache.get(PRICE_NAMESPACE, price_key(exchange, symbol))
    return None if raw is None else LatestPrice.model_validate(raw)


def utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; a naive value is taken to be UTC already (the
    convention of every channel and of QuestDB's PG wire, which sends TIMESTAMP without
    a zone)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def check_candle_frame(frame: pd.DataFrame, where: str) -> None:
    """Refuse a frame a store cannot keep faithfully, naming the series and what is wrong.

    Stores check shape only; OHLC consistency, duplicates and gaps are the validator's job
    (`algotrendy.data.validation`), which runs before any store in the pipeline.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{where}: expected a DataFrame, got {type(frame).__name__}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError(f"{where}: index must be a DatetimeIndex (bar open time, UTC)")
    if frame.index.tz is None or str(frame.index.tz) != "UTC":
        raise DataError(f"{where}: index must be UTC, got tz={frame.index.tz}")
    missing = [c for c in CANDLE_FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}")
    for col in CANDLE_FRAME_COLUMNS:
        if frame[col].dtype != "float64":
            raise DataError(f"{where}: column {col} must be float64, got {frame[col].dtype}")


def empty_candle_frame() -> pd.DataFrame:
    """The candle-frame shape with no rows: what `read` returns for an unknown series."""
    import numpy as np
    import pandas as pd

    index = pd.DatetimeIndex(np.array([], dtype="datetime64[ns]"), name="time").tz_localize("UTC")
    return pd.DataFrame(
        {c: np.array([], dtype=np.float64) for c in CANDLE_FRAME_COLUMNS}, index=index
    )
