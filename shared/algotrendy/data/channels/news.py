"""News feeds -> `NewsItem` (source, published_at UTC, title, url, symbols, summary).

Four vendors, each in its own documented reply format:

* Financial Modeling Prep ``/api/v3/stock_news`` (JSON list; ``publishedDate`` is
  ``YYYY-MM-DD HH:MM:SS`` without zone, taken as America/New_York, FMP's market clock),
  https://site.financialmodelingprep.com/developer/docs#stock-news
* Yahoo Finance headline RSS 2.0 (``feeds.finance.yahoo.com/rss/2.0/headline?s=AAPL``),
  parsed with feedparser; ``pubDate`` is RFC 822 with its zone.
* Polygon ``/v2/reference/news`` (``published_utc`` ISO 8601 UTC, ``tickers`` list),
  https://polygon.io/docs/stocks/get_v2_reference_news
* CryptoPanic ``/api/v1/posts/`` (``published_at`` ISO 8601, ``currencies[].code``),
  https://cryptopanic.com/developers/api/

The same story reaches several feeds (and one feed twice across pages), so items are
de-duplicated by URL after light canonicalisation: scheme and host lower-cased, fragment,
tracking parameters (``utm_*``) and a trailing slash removed.
"""

from __future__ import annotations

import calendar
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser
import pandas as pd
import requests
from pydantic import ValidationError

from algotrendy.data.channels.base import ChannelInfo, NewsChannel
from algotrendy.data.channels.http import get_json, get_text
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.data.normalise import parse_symbol_list
from algotrendy.domain.market import AssetClass, DataKind, NewsItem
from algotrendy.errors import DataError, ParameterError


def canonical_url(url: str) -> str:
    parts = urlsplit(url.strip())
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_")
    ]
    path = parts.path.rstrip("/") or "/"
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), path, urlencode(sorted(query)), "")
    )


def dedupe(items: Iterable[NewsItem]) -> list[NewsItem]:
    """First occurrence of each canonical URL wins; order is kept."""
    seen: set[str] = set()
    out: list[NewsItem] = []
    for item in items:
        key = canonical_url(str(item.url))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _utc(value: Any, *, source: str, naive_zone: str = "UTC") -> datetime:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: unreadable publication time {value!r}") from exc
    if pd.isna(ts):
        raise DataError(f"{source}: missing publication time")
    ts = ts.tz_localize(naive_zone) if ts.tzinfo is None else ts
    return ts.tz_convert("UTC").to_pydatetime()


def _item(source: str, **fields: Any) -> NewsItem | None:
    """A NewsItem, or None for an entry without a usable URL/title (feeds carry ads and
    placeholders); any other invalid field is an error naming the entry."""
    if not fields.get("url") or not fields.get("title"):
        return None
    try:
        return NewsItem(source=source, **fields)
    except ValidationError as exc:
        if any(err["loc"] == ("url",) for err in exc.errors()):
            return None
        raise DataError(f"{source}: bad news entry {fields.get('title')!r}: {exc}") from exc


def _limit(limit: int) -> int:
    if limit < 1:
        raise ParameterError(f"limit must be >= 1, got {limit}")
    return limit


def _key(api_key: str | None, env: str, source: str) -> str:
    key = api_key or os.environ.get(env, "")
    if not key:
        raise ParameterError(f"{source}: no API key; pass api_key= or set {env}")
    return key


class _KeyedNewsFeed:
    """What the API-key news feeds share: the key (argument or environment), one HTTP
    session, the retry policy and the feed's declared `INFO`."""

    NAME: str
    API_KEY_ENV: str
    INFO: ChannelInfo

    def __init__(
        self,
        api_key: str | None = None,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = self.NAME
        self._key = _key(api_key, self.API_KEY_ENV, self.name)
        self._session = session or requests.Session()
        self.retry = retry or RetryPolicy()
        self.info = self.INFO


class FmpNews(_KeyedNewsFeed):
    URL = "https://financialmodelingprep.com/api/v3/stock_news"
    API_KEY_ENV = "ALGOTRENDY_FMP_API_KEY"
    NAME = "fmp"
    INFO = ChannelInfo(
        name="news-fmp",
        asset_classes=(AssetClass.EQUITY, AssetClass.CRYPTO),
        kinds=(DataKind.NEWS,),
        rate_limit_per_minute=None,  # free plan: 250 requests/day
        doc_url="https://site.financialmodelingprep.com/developer/docs/pricing",
    )

    def fetch_news(self, symbols: tuple[str, ...] = (), limit: int = 50) -> list[NewsItem]:
        params: dict[str, Any] = {"limit": _limit(limit), "apikey": self._key}
        tickers = parse_symbol_list(symbols)
        if tickers:
            params["tickers"] = ",".join(tickers)
        reply = get_json(
            self._session, self.name, "fetch news", self.URL, params, policy=self.retry
        )
        if isinstance(reply, dict) and "Error Message" in reply:
            raise ParameterError(f"{self.name}: fetch news rejected ({reply['Error Message']})")
        if not isinstance(reply, list):
            raise DataError(f"{self.name}: expected a JSON list of stories")
        items = [
            _item(
                self.name,
                published_at=_utc(
                    e.get("publishedDate"), source=self.name, naive_zone="America/New_York"
                ),
                title=str(e.get("title") or "").strip(),
                url=e.get("url"),
                symbols=parse_symbol_list([e["symbol"]] if e.get("symbol") else []),
                summary=str(e.get("text") or "").strip(),
            )
            for e in reply
        ]
        return dedupe(i for i in items if i is not None)[:limit]


class YahooRssNews:
    URL = "https://feeds.finance.yahoo.com/rss/2.0/headline"

    def __init__(
        self, *, session: requests.Session | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self.name = "yahoo"
        self._session = session or requests.Session()
        self.retry = retry or RetryPolicy()
        self.info = ChannelInfo(
            name="news-yahoo",
            asset_classes=(AssetClass.EQUITY,),
            kinds=(DataKind.NEWS,),
            rate_limit_per_minute=None,  # not published
            doc_url="https://help.yahoo.com/kb/SLN2044.html",
        )

    def fetch_news(self, symbols: tuple[str, ...] = (), limit: int = 50) -> list[NewsItem]:
        tickers = parse_symbol_list(symbols)
        if not tickers:
            raise ParameterError(f"{self.name}: the Yahoo headline feed needs at least one symbol")
        _limit(limit)
        items: list[NewsItem] = []
        for ticker in tickers:  # one feed per symbol: the entry does not say which it is
            text = get_text(
                self._session,
                self.name,
                f"fetch RSS for {ticker}",
                self.URL,
                {"s": ticker, "region": "US", "lang": "en-US"},
                policy=self.retry,
            )
            items.extend(parse_rss(text, source=self.name, symbols=(ticker,)))
        return dedupe(items)[:limit]


def parse_rss(text: str, *, source: str, symbols: tuple[str, ...] = ()) -> list[NewsItem]:
    feed = feedparser.parse(text)
    if feed.get("bozo") and not feed.get("entries"):
        raise DataError(f"{source}: not an RSS/Atom feed ({feed.get('bozo_exception')})")
    out: list[NewsItem] = []
    for entry in feed.get("entries", []):
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        if stamp is None:
            raise DataError(f"{source}: entry {entry.get('title')!r} has no publication date")
        item = _item(
            source,
            # feedparser normalises dates to a UTC struct_time.
            published_at=datetime.fromtimestamp(calendar.timegm(stamp), tz=UTC),
            title=str(entry.get("title") or "").strip(),
            url=entry.get("link"),
            symbols=symbols,
            summary=str(entry.get("summary") or "").strip(),
        )
        if item is not None:
            out.append(item)
    return out


class PolygonNews(_KeyedNewsFeed):
    URL = "https://api.polygon.io/v2/reference/news"
    API_KEY_ENV = "ALGOTRENDY_POLYGON_API_KEY"
    NAME = "polygon"
    INFO = ChannelInfo(
        name="news-polygon",
        asset_classes=(AssetClass.EQUITY, AssetClass.CRYPTO, AssetClass.FOREX),
        kinds=(DataKind.NEWS,),
        rate_limit_per_minute=5.0,  # free ("Basic") plan
        doc_url="https://polygon.io/pricing",
    )

    def fetch_news(self, symbols: tuple[str, ...] = (), limit: int = 50) -> list[NewsItem]:
        tickers = parse_symbol_list(symbols)
        if len(tickers) > 1:
            # The endpoint filters on one ticker; ask per symbol and merge.
            merged = [i for t in tickers for i in self.fetch_news((t,), limit)]
            return dedupe(sorted(merged, key=lambda i: i.published_at, reverse=True))[:limit]
        params: dict[str, Any] = {
            "limit": min(_limit(limit), 1000),
            "order": "desc",
            "apiKey": self._key,
        }
        if tickers:
            params["ticker"] = tickers[0]
        reply = get_json(
            self._session, self.name, "fetch news", self.URL, params, policy=self.retry
        )
        if not isinstance(reply, dict) or not isinstance(reply.get("results"), list):
            raise DataError(f"{self.name}: reply has no 'results' list")
        items = [
            _item(
                self.name,
                published_at=_utc(r.get("published_utc"), source=self.name),
                title=str(r.get("title") or "").strip(),
                url=r.get("article_url"),
                symbols=parse_symbol_list(r.get("tickers") or []),
                summary=str(r.get("description") or "").strip(),
            )
            for r in reply["results"]
        ]
        return dedupe(i for i in items if i is not None)[:limit]


class CryptoPanicNews(_KeyedNewsFeed):
    URL = "https://cryptopanic.com/api/v1/posts/"
    API_KEY_ENV = "ALGOTRENDY_CRYPTOPANIC_API_KEY"
    NAME = "cryptopanic"
    INFO = ChannelInfo(
        name="news-cryptopanic",
        asset_classes=(AssetClass.CRYPTO,),
        kinds=(DataKind.NEWS,),
        rate_limit_per_minute=None,  # per plan, see the API page
        doc_url="https://cryptopanic.com/developers/api/",
    )

    def fetch_news(self, symbols: tuple[str, ...] = (), limit: int = 50) -> list[NewsItem]:
        _limit(limit)
        params: dict[str, Any] = {"auth_token": self._key, "public": "true", "kind": "news"}
        codes = parse_symbol_list(s.split("/")[0] for s in symbols)
        if codes:
            params["currencies"] = ",".join(codes)
        reply = get_json(
            self._session, self.name, "fetch posts", self.URL, params, policy=self.retry
        )
        if not isinstance(reply, dict) or not isinstance(reply.get("results"), list):
            raise DataError(f"{self.name}: reply has no 'results' list")
        items = [
            _item(
                self.name,
                published_at=_utc(p.get("published_at"), source=self.name),
                title=str(p.get("title") or "").strip(),
                url=p.get("url"),
                symbols=parse_symbol_list(
                    c.get("code", "") for c in p.get("currencies") or [] if isinstance(c, dict)
                ),
                summary=str(p.get("description") or "").strip(),
            )
            for p in reply["results"]
        ]
        return dedupe(i for i in items if i is not None)[:limit]


class NewsAggregator:
    """Several news channels as one: newest first, each URL once."""

    def __init__(self, channels: Sequence[NewsChannel]) -> None:
        if not channels:
            raise ParameterError("NewsAggregator needs at least one news channel")
        self.channels = tuple(channels)
        classes = tuple(dict.fromkeys(a for c in channels for a in c.info.asset_classes))
        self.info = ChannelInfo(name="news", asset_classes=classes, kinds=(DataKind.NEWS,))

    def fetch_news(self, symbols: tuple[str, ...] = (), limit: int = 50) -> list[NewsItem]:
        merged = [item for c in self.channels for item in c.fetch_news(symbols, limit)]
        merged.sort(key=lambda i: i.published_at, reverse=True)
        return dedupe(merged)[: _limit(limit)]
