"""One contract for every NewsStore adapter (`algotrendy.storage.base.NewsStore`).

Backends:
- `local`: LocalNewsStore in a temp folder;
- `questdb`: QuestDBNewsStore writing through the real `questdb` Sender over HTTP to a
  loopback ILP endpoint and reading through a PGWire stand-in, both backed by one `news`
  table with QuestDB's dedup-upsert semantics (tests/storage/qdb_news_fake.py).

Items come from the recorded Yahoo RSS fixture (parsed by the feed's own parser) and
from hand-made stories with known times.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from qdb_fake import IlpHttpServer
from qdb_news_fake import FakeNewsQuestDB

from algotrendy.data.channels.news import parse_rss
from algotrendy.domain.market import NewsItem
from algotrendy.errors import DataError, ParameterError
from algotrendy.storage.base import NewsStore
from algotrendy.storage.local_news import LocalNewsStore
from algotrendy.storage.news import news_item_id
from algotrendy.storage.questdb_news import NEWS_DDL, QuestDBNewsStore

RSS = Path(__file__).resolve().parents[1] / "fixtures" / "news" / "ours_yahoo_rss_AAPL.xml"
T0 = datetime(2024, 1, 31, 22, tzinfo=UTC)  # stories straddle a month boundary


@pytest.fixture(params=["local", "questdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewsStore]:
    if request.param == "local":
        yield LocalNewsStore(tmp_path, fsync=False)
        return
    db = FakeNewsQuestDB()
    with (
        IlpHttpServer(on_write=db.ingest) as server,
        QuestDBNewsStore(server.conf, "host=fake", connect=db.connect) as qdb,
    ):
        yield qdb


def story(n: int, *, hours: float = 0, symbols: tuple[str, ...] = ("AAPL",), **kw: str) -> NewsItem:
    fields = {
        "source": "polygon",
        "published_at": T0 + timedelta(hours=hours),
        "title": f"Story {n}",
        "url": f"https://news.example.com/story-{n}",
        "symbols": symbols,
        "summary": f"Summary {n}.",
    }
    fields.update(kw)
    return NewsItem.model_validate(fields)


def titles(items: list[NewsItem]) -> list[str]:
    return [i.title for i in items]


def test_rss_items_round_trip_and_a_rewrite_stores_nothing_new(store: NewsStore) -> None:
    items = parse_rss(RSS.read_text(), source="yahoo", symbols=("AAPL",))
    assert len(items) == 2
    assert store.write(items) == 2
    assert store.write(items) == 0
    got = store.read()
    assert got == sorted(items, key=lambda i: i.published_at, reverse=True)
    assert all(i.published_at.tzinfo is not None for i in got)


def test_the_same_story_by_canonical_url_is_stored_once(store: NewsStore) -> None:
    first = story(1, url="https://news.example.com/story-1/")
    copy = story(1, url="HTTPS://News.Example.com/story-1?utm_source=feed", hours=1, title="Other")
    assert news_item_id(first) == news_item_id(copy)
    assert store.write([first, copy]) == 1
    # Later, from another feed, at a moved publication time: still the stored story.
    assert store.write([copy]) == 0
    assert store.read() == [first]


def test_a_later_copy_adds_its_symbols(store: NewsStore) -> None:
    assert store.write([story(1, symbols=("AAPL",))]) == 1
    assert store.write([story(1, symbols=("MSFT", "AAPL"))]) == 0
    [merged] = store.read(symbol="MSFT")
    assert merged.symbols == ("AAPL", "MSFT")
    assert store.read(symbol="AAPL") == [merged]


def test_reads_by_range_and_symbol_newest_first(store: NewsStore) -> None:
    items = [
        story(1, hours=0, symbols=("AAPL",)),
        story(2, hours=1, symbols=("MSFT",)),
        story(3, hours=2, symbols=("AAPL", "MSFT")),
        story(4, hours=3, symbols=("AAPL.X",)),
        story(5, hours=3, symbols=()),
        story(6, hours=26, symbols=("AAPL",)),  # next month
    ]
    assert store.write(list(reversed(items))) == 6
    assert titles(store.read()) == [
        "Story 6",
        "Story 4",
        "Story 5",
        "Story 3",
        "Story 2",
        "Story 1",
    ]
    # Whole symbols only: AAPL is not AAPL.X.
    assert titles(store.read(symbol="AAPL")) == ["Story 6", "Story 3", "Story 1"]
    assert titles(store.read(symbol="AAPL.X")) == ["Story 4"]
    assert titles(store.read(symbol="MSFT")) == ["Story 3", "Story 2"]
    # [since, until): until excludes, since includes.
    window = store.read(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))
    assert titles(window) == ["Story 3", "Story 2"]
    assert titles(store.read(since=T0 + timedelta(hours=3))) == ["Story 6", "Story 4", "Story 5"]
    assert titles(store.read(until=T0 + timedelta(hours=1))) == ["Story 1"]
    assert titles(store.read(limit=2)) == ["Story 6", "Story 4"]
    assert titles(store.read(symbol="AAPL", limit=1)) == ["Story 6"]
    assert store.read(symbol="TSLA") == []


def test_bad_arguments_are_refused_by_name(store: NewsStore) -> None:
    with pytest.raises(ParameterError, match="limit"):
        store.read(limit=0)
    with pytest.raises(ParameterError, match="since"):
        store.read(since=T0, until=T0)
    with pytest.raises(DataError, match="item 1 is a dict"):
        store.write([story(1), {"title": "x"}])  # type: ignore[list-item]
    assert store.write([]) == 0


def test_questdb_news_table_dedups_on_time_and_item(tmp_path: Path) -> None:
    """A retry the existence check cannot see yet (QuestDB applies WAL writes later) is
    absorbed by the table's dedup keys: same (ts, item_id), one row."""
    assert "DEDUP UPSERT KEYS(ts, item_id)" in NEWS_DDL
    db = FakeNewsQuestDB()
    with (
        IlpHttpServer(on_write=db.ingest) as server,
        QuestDBNewsStore(server.conf, "host=fake", connect=db.connect) as store,
    ):
        items = [story(1), story(2, hours=1)]
        store.write(items)
        before = dict(db.table)
        store._known = lambda ids: {}  # type: ignore[method-assign]  # WAL not applied yet
        assert store.write(items) == 2  # it cannot tell...
        assert db.table == before  # ...the table can
        assert len(server.writes()) == 2
    assert db.calls[0] == (NEWS_DDL, None)
