"""The Channel port: every market-data source (ccxt exchanges, yfinance, Alpha Vantage,
FRED, news feeds) is an adapter behind these protocols, registered by name.

Channels return *normalised* data: candle frames with a UTC DatetimeIndex named `time`
(bar open time) and float columns open/high/low/close/volume, and the records in
`algotrendy.domain.market`. Validation (OHLC consistency, gaps, duplicates) happens after,
in the pipeline, so a channel never silently "fixes" what a source sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from algotrendy.domain.market import AssetClass, DataKind

if TYPE_CHECKING:
    import pandas as pd

    from algotrendy.domain.market import NewsItem, OrderBook, Tick, Trade

ProgressCallback = Callable[[int], None]  # called with the number of candles just fetched


class ChannelInfo(BaseModel):
    """What a channel serves, so the manager and the CLI can route requests and refuse
    impossible ones with a clear message."""

    model_config = ConfigDict(frozen=True)

    name: str
    asset_classes: tuple[AssetClass, ...]
    kinds: tuple[DataKind, ...]
    timeframes: tuple[str, ...] = ()
    rate_limit_per_minute: float | None = None
    doc_url: str = ""


@runtime_checkable
class Channel(Protocol):
    info: ChannelInfo


@runtime_checkable
class CandleChannel(Channel, Protocol):
    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> pd.DataFrame:
        """Candles with open time in [since, until), paginated as the source requires."""
        ...


@runtime_checkable
class SymbolResolver(Protocol):
    """A channel that knows which market a user's symbol names. Optional next to
    `CandleChannel` (see `canonical_symbol`), so a channel or test fake without it keeps
    working with the symbol as typed."""

    def canonical_symbol(self, symbol: str) -> str:
        """The one spelling of the market `symbol` names (ccxt: ``BTCUSDT`` ->
        ``BTC/USDT``; yfinance: ``aapl`` -> ``AAPL``); an unknown symbol raises the
        channel's own `ParameterError`."""
        ...


def canonical_symbol(channel: Channel, symbol: str) -> str:
    """The key a series of `symbol` is stored, cached and announced under: the channel's
    canonical symbol where it resolves symbols, else `symbol` as typed. Two spellings of
    one market must never become two series (two downloads, neither resuming the other)."""
    if isinstance(channel, SymbolResolver):
        return channel.canonical_symbol(symbol)
    return symbol


@runtime_checkable
class MarketChannel(CandleChannel, Protocol):
    """A crypto exchange: candles plus tickers, trades and order books."""

    def fetch_ticker(self, symbol: str) -> Tick: ...

    def fetch_trades(self, symbol: str, since: datetime | None = None) -> list[Trade]: ...

    def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook: ...


@runtime_checkable
class NewsChannel(Channel, Protocol):
    def fetch_news(self, symbols: tuple[str, ...] = (), limit: int = 50) -> list[NewsItem]: ...
