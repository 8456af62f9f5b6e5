"""FRED observations and the four news feeds, from replies in each vendor's format."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses

from algotrendy.data.channels.fred import FredChannel
from algotrendy.data.channels.news import (
    CryptoPanicNews,
    FmpNews,
    NewsAggregator,
    PolygonNews,
    YahooRssNews,
    canonical_url,
)
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.errors import ParameterError

Loader = Callable[[str], Any]


def test_fred_series_keeps_missing_as_nan(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    raw = fixture_json("exchange/fred/ours_observations_DGS10.json")
    http.add(
        responses.GET,
        re.compile(r"https://api\.stlouisfed\.org/fred/series/observations\?"),
        json=raw,
    )
    series = FredChannel("k", retry=policy).fetch_series(
        "dgs10", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC)
    )
    url = http.calls[0].request.url
    assert "series_id=DGS10" in url
    assert "observation_start=2024-01-01" in url
    assert series.name == "DGS10"
    assert str(series.index.tz) == "UTC"
    assert len(series) == len(raw["observations"])
    assert math.isnan(series.iloc[0])  # "." = no observation (New Year's Day)
    assert series.iloc[1:].tolist() == [float(o["value"]) for o in raw["observations"][1:]]


def test_fred_bad_series_is_a_parameter_error_without_retry(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy, sleeps: Any
) -> None:
    http.add(
        responses.GET,
        re.compile(r"https://api\.stlouisfed\.org/"),
        status=400,
        json=fixture_json("exchange/fred/ours_error_bad_series.json"),
    )
    with pytest.raises(ParameterError, match="series does not exist") as info:
        FredChannel("secret-key", retry=policy).fetch_series("NOPE")
    assert "secret-key" not in str(info.value)
    assert sleeps.delays == []


def test_fred_retries_5xx_then_succeeds(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy, sleeps: Any
) -> None:
    url = re.compile(r"https://api\.stlouisfed\.org/")
    http.add(responses.GET, url, status=502, body="bad gateway")
    http.add(responses.GET, url, json=fixture_json("exchange/fred/ours_observations_DGS10.json"))
    assert len(FredChannel("k", retry=policy).fetch_series("DGS10")) == 7
    assert sleeps.delays == [0.5]


@pytest.fixture
def all_news(http: responses.RequestsMock, fixtures_dir: Path, fixture_json: Loader) -> None:
    http.add(
        responses.GET,
        re.compile(r"https://financialmodelingprep\.com/api/v3/stock_news\?"),
        json=fixture_json("news/ours_fmp_stock_news.json"),
    )
    http.add(
        responses.GET,
        re.compile(r"https://api\.polygon\.io/v2/reference/news\?"),
        json=fixture_json("news/ours_polygon_news.json"),
    )
    http.add(
        responses.GET,
        re.compile(r"https://feeds\.finance\.yahoo\.com/rss/2\.0/headline\?"),
        body=(fixtures_dir / "news" / "ours_yahoo_rss_AAPL.xml").read_text(),
        content_type="application/rss+xml",
    )
    http.add(
        responses.GET,
        re.compile(r"https://cryptopanic\.com/api/v1/posts/\?"),
        json=fixture_json("news/ours_cryptopanic_posts.json"),
    )


@pytest.mark.usefixtures("all_news")
def test_each_feed_normalises_to_news_items(policy: RetryPolicy) -> None:
    fmp = FmpNews("k", retry=policy).fetch_news(("AAPL", "MSFT"))
    # FMP's zone-less "2024-01-05 10:30:00" is New York time (EST): 15:30 UTC.
    assert fmp[0].published_at == datetime(2024, 1, 5, 15, 30, tzinfo=UTC)
    assert fmp[0].symbols == ("AAPL",)
    assert fmp[0].source == "fmp"

    yahoo = YahooRssNews(retry=policy).fetch_news(("AAPL",))
    assert [i.published_at for i in yahoo] == [
        datetime(2024, 1, 5, 15, 30, tzinfo=UTC),
        datetime(2024, 1, 5, 13, 0, tzinfo=UTC),  # 08:00 -0500
    ]
    assert yahoo[0].symbols == ("AAPL",)
    assert yahoo[1].summary.startswith("The company")

    polygon = PolygonNews("k", retry=policy).fetch_news(("AAPL",))
    assert polygon[1].symbols == ("NVDA", "AAPL")

    crypto = CryptoPanicNews("k", retry=policy).fetch_news(("BTC/USDT",))
    assert crypto[1].symbols == ("ETH", "BTC")
    assert all(i.published_at.tzinfo is not None for i in (*fmp, *yahoo, *polygon, *crypto))


@pytest.mark.usefixtures("all_news")
def test_aggregator_dedupes_by_url_newest_first(policy: RetryPolicy) -> None:
    feeds = [
        FmpNews("k", retry=policy),
        PolygonNews("k", retry=policy),
        YahooRssNews(retry=policy),
        CryptoPanicNews("k", retry=policy),
    ]
    items = NewsAggregator(feeds).fetch_news(("AAPL",), limit=50)
    urls = [canonical_url(str(i.url)) for i in items]
    assert len(urls) == len(set(urls))
    # The Apple story is in FMP (with utm_source), Polygon and Yahoo (trailing slash): once.
    apple = [i for i in items if "apple-shares-slip" in str(i.url)]
    assert len(apple) == 1
    total = 2 + 2 + 2 + 2
    assert len(items) == total - 2
    assert [i.published_at for i in items] == sorted((i.published_at for i in items), reverse=True)


def test_yahoo_needs_a_symbol() -> None:
    with pytest.raises(ParameterError, match="at least one symbol"):
        YahooRssNews().fetch_news(())
