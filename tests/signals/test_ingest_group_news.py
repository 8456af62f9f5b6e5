"""Scheduled ingest of a news group: the real Yahoo RSS channel (`news-yahoo`, built by
the registry) replaying the recorded feed over a mocked HTTP session, the ingest writing
to a local news store; nothing is announced on the signals queue."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from pydantic import ValidationError

from algotrendy.data.channels import get_channel
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.data.manager import all_health
from algotrendy.errors import ParameterError
from algotrendy.messaging import InMemoryQueue
from algotrendy.signals import IngestGroup, run_ingest_group
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore
from algotrendy.storage.local_news import LocalNewsStore

RSS = Path(__file__).resolve().parents[1] / "fixtures" / "news" / "ours_yahoo_rss_AAPL.xml"
YAHOO = re.compile(r"https://feeds\.finance\.yahoo\.com/rss/2\.0/headline\?")


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """The AAPL feed for AAPL and MSFT (the same stories), 404 for anything else."""

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        if re.search(r"[?&]s=(AAPL|MSFT)(&|$)", request.url):
            return 200, {"Content-Type": "application/rss+xml"}, RSS.read_text()
        return 404, {}, "no such feed"

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, YAHOO, callback=reply)
        yield mock


def factory(name: str, settings: dict[str, Any]) -> Any:
    return get_channel(name, retry=RetryPolicy(attempts=1), **settings)


def news_group(*symbols: str, **extra: Any) -> IngestGroup:
    return IngestGroup.model_validate(
        {
            "group": "news",
            "channels": [{"source": "news-yahoo", "symbols": list(symbols), **extra}],
            "news_limit": 50,
        }
    )


def run(group: IngestGroup, store: LocalNewsStore, cache: MemoryCache, queue: InMemoryQueue) -> Any:
    return run_ingest_group(
        group,
        stores=[],
        cache=cache,
        signals=queue,
        channel_factory=factory,
        news_store=store,
    )


@pytest.mark.usefixtures("http")
def test_news_is_stored_once_and_counted(tmp_path: Path) -> None:
    store, cache, queue = LocalNewsStore(tmp_path, fsync=False), MemoryCache(), InMemoryQueue("s")
    first = run(news_group("AAPL", "MSFT"), store, cache, queue)
    by_symbol = {o.symbol: o for o in first.outcomes}
    assert [(o.status, o.fetched, o.written, o.timeframe) for o in first.outcomes] == [
        ("new_items", 2, 2, None),
        ("up_to_date", 2, 0, None),  # the same two stories, now tagged MSFT too
    ]
    assert by_symbol["AAPL"].last_published == datetime(2024, 1, 5, 15, 30, tzinfo=UTC).isoformat()
    assert first.as_dict()["new_items"] == 1
    assert [i.title for i in store.read(symbol="MSFT")] == [
        "Apple shares slip as analysts trim iPhone estimates",
        "Apple services outlook brightens",
    ]
    assert all(i.symbols == ("AAPL", "MSFT") for i in store.read())
    assert queue.bodies() == []  # news is not candles.closed
    assert all_health(cache)["news-yahoo"].runs == 2

    again = run(news_group("AAPL"), store, cache, queue)
    assert [(o.status, o.fetched, o.written) for o in again.outcomes] == [("up_to_date", 2, 0)]


@pytest.mark.usefixtures("http")
def test_a_failing_symbol_fails_alone(tmp_path: Path) -> None:
    store = LocalNewsStore(tmp_path, fsync=False)
    result = run(news_group("NOPE", "AAPL"), store, MemoryCache(), InMemoryQueue("s"))
    assert [o.status for o in result.outcomes] == ["failed", "new_items"]
    assert result.failure_summary().startswith(
        "ingest news: 1 of 2 series failed: news-yahoo NOPE news: "
    )
    assert "404" in (result.outcomes[0].error or "")
    assert len(store.read()) == 2


def test_a_news_source_takes_no_timeframes_and_candles_need_them() -> None:
    with pytest.raises(ValidationError, match="news items, which have no timeframe"):
        news_group("AAPL", timeframes=["1h"])
    with pytest.raises(ValidationError, match="binance serves candles: timeframes needs"):
        IngestGroup.model_validate(
            {"group": "g", "channels": [{"source": "binance", "symbols": ["BTC/USDT"]}]}
        )


def test_news_without_a_news_store_is_a_wiring_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"news source.*news-yahoo but no news store"):
        run_ingest_group(
            news_group("AAPL"),
            stores=[LocalCandleStore(tmp_path)],
            cache=None,
            signals=None,
            channel_factory=factory,
        )


def test_a_candle_channel_under_a_news_name_fails_its_symbols(tmp_path: Path) -> None:
    result = run_ingest_group(
        news_group("AAPL"),
        stores=[],
        cache=None,
        signals=None,
        channel_factory=lambda name, settings: get_channel("binance"),
        news_store=LocalNewsStore(tmp_path, fsync=False),
    )
    assert [o.status for o in result.outcomes] == ["failed"]
    assert "not a news channel" in (result.outcomes[0].error or "")
