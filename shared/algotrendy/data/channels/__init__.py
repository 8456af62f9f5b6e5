"""Market-data channels by name: ``get_channel("binance")``, ``channel_names()``.

Factories import their vendor SDK (ccxt, yfinance, feedparser) only when a channel is
built, so listing names or importing this package stays cheap (the CLI's ``--help``, a
Lambda cold start that needs only one channel).

| name | serves |
|---|---|
| binance, bybit, okx, coinbase, kraken | crypto OHLCV, ticker, trades, order book (ccxt) |
| yfinance | equity OHLCV (daily, intraday), option chains, fundamentals |
| alphavantage | stock / forex / crypto OHLCV, daily and intraday (API key, 25 calls/day free) |
| fred | economic series by id (API key) |
| news-fmp, news-yahoo, news-polygon, news-cryptopanic | news items |
| news | several news channels merged (default: news-yahoo only) |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from algotrendy.data.channels.base import (
    CandleChannel,
    Channel,
    ChannelInfo,
    MarketChannel,
    NewsChannel,
    ProgressCallback,
    SymbolResolver,
    canonical_symbol,
)
from algotrendy.errors import ParameterError

CCXT_EXCHANGES = ("binance", "bybit", "okx", "coinbase", "kraken")


def _ccxt(exchange_id: str) -> Callable[..., Channel]:
    def build(**settings: Any) -> Channel:
        from algotrendy.data.channels.ccxt_channel import CcxtChannel

        return CcxtChannel(exchange_id, **settings)

    return build


def _yfinance(**settings: Any) -> Channel:
    from algotrendy.data.channels.yfinance_channel import YFinanceChannel

    return YFinanceChannel(**settings)


def _alphavantage(**settings: Any) -> Channel:
    from algotrendy.data.channels.alphavantage import AlphaVantageChannel

    return AlphaVantageChannel(**settings)


def _fred(**settings: Any) -> Channel:
    from algotrendy.data.channels.fred import FredChannel

    return FredChannel(**settings)


def _news_source(cls_name: str) -> Callable[..., Channel]:
    def build(**settings: Any) -> Channel:
        from algotrendy.data.channels import news

        cls: Callable[..., Channel] = getattr(news, cls_name)
        return cls(**settings)

    return build


def _news(**settings: Any) -> Channel:
    """``channels=`` a sequence of built news channels; default the keyless Yahoo feed."""
    from algotrendy.data.channels.news import NewsAggregator, YahooRssNews

    channels = settings.pop("channels", None)
    if channels is None:
        channels = (YahooRssNews(**settings),)
    elif settings:
        raise ParameterError(
            f"news: unexpected setting(s) {', '.join(sorted(settings))} next to channels="
        )
    return NewsAggregator(tuple(channels))


_FACTORIES: dict[str, Callable[..., Channel]] = {
    **{name: _ccxt(name) for name in CCXT_EXCHANGES},
    "yfinance": _yfinance,
    "alphavantage": _alphavantage,
    "fred": _fred,
    "news-fmp": _news_source("FmpNews"),
    "news-yahoo": _news_source("YahooRssNews"),
    "news-polygon": _news_source("PolygonNews"),
    "news-cryptopanic": _news_source("CryptoPanicNews"),
    "news": _news,
}


def channel_names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def get_channel(name: str, **settings: Any) -> Channel:
    """Build the channel registered as `name` with its constructor `settings`."""
    key = name.strip().lower() if isinstance(name, str) else name
    factory = _FACTORIES.get(key)
    if factory is None:
        raise ParameterError(
            f"unknown market-data channel {name!r}; choose one of {', '.join(channel_names())}"
        )
    try:
        return factory(**settings)
    except TypeError as exc:
        # A misspelt setting: name it instead of showing a constructor traceback.
        raise ParameterError(f"channel {key!r}: {exc}") from exc


__all__ = [
    "CandleChannel",
    "Channel",
    "ChannelInfo",
    "MarketChannel",
    "NewsChannel",
    "ProgressCallback",
    "SymbolResolver",
    "canonical_symbol",
    "channel_names",
    "get_channel",
]
