"""Market-data records in one shape whatever the source: UTC times, unified symbols
(`BTC/USDT`, `AAPL`), floats for prices and sizes.

Hot paths move candles as DataFrames/arrays (see `CANDLE_FRAME_COLUMNS`); these models are
for single records crossing a boundary (API replies, queue messages, news).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl

# A normalised candle frame: DatetimeIndex named "time" (UTC, bar open time) + these columns.
CANDLE_FRAME_COLUMNS = ("open", "high", "low", "close", "volume")


class AssetClass(StrEnum):
    CRYPTO = "crypto"
    EQUITY = "equity"
    FOREX = "forex"
    FUTURES = "futures"
    ECONOMIC = "economic"


class DataKind(StrEnum):
    OHLCV = "ohlcv"
    TICKER = "ticker"
    TRADES = "trades"
    ORDER_BOOK = "order_book"
    NEWS = "news"
    FUNDAMENTALS = "fundamentals"
    OPTIONS = "options"
    ECONOMIC = "economic"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Candle(_Record):
    exchange: str
    symbol: str
    timeframe: str
    time: AwareDatetime = Field(description="bar open time, UTC")
    open: float
    high: float
    low: float
    close: float
    volume: float = Field(ge=0)


class Tick(_Record):
    """Top of book / last price snapshot."""

    exchange: str
    symbol: str
    time: AwareDatetime
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None


class Trade(_Record):
    exchange: str
    symbol: str
    time: AwareDatetime
    trade_id: str | None = None
    side: str | None = Field(None, description="taker side: buy | sell")
    price: float
    amount: float


class OrderBookLevel(_Record):
    price: float
    amount: float


class OrderBook(_Record):
    exchange: str
    symbol: str
    time: AwareDatetime
    bids: tuple[OrderBookLevel, ...] = Field(description="best first (highest price)")
    asks: tuple[OrderBookLevel, ...] = Field(description="best first (lowest price)")


class NewsItem(_Record):
    source: str
    published_at: datetime = Field(description="UTC")
    title: str
    url: HttpUrl
    symbols: tuple[str, ...] = ()
    summary: str = ""
