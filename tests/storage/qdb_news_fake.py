"""A stand-in for QuestDB's `news` table, for `QuestDBNewsStore` tests without a server.

- `FakeNewsQuestDB`: the table with `DEDUP UPSERT KEYS(ts, item_id)` (a row with the
  same designated timestamp and id replaces the stored one), fed through
  `qdb_fake.IlpHttpServer` and parsed by `qdb_fake.parse_ilp` (independent of the client
  under test), and a PGWire stand-in (`qdb_fake.FakeConnection`) answering exactly the
  SQL the store is pinned to run (`symbols ~ pattern` with `re.search`: QuestDB's `~` is
  Java's `Matcher.find`). Any other SQL fails the test.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from qdb_fake import EPOCH, FakeConnection, naive_micros, parse_ilp

from algotrendy.storage.questdb_news import (
    NEWS_DDL,
    NEWS_KNOWN_SQL,
    NEWS_READ_SQL,
    NEWS_READ_SYMBOL_SQL,
)

_COLUMNS = ("source", "title", "url", "summary", "symbols")


def _pinned(template: str) -> re.Pattern[str]:
    """The store's SQL constant with its `{...}` slots as capture groups."""
    escaped = re.escape(template)
    return re.compile(
        "^"
        + escaped.replace(r"\{ids\}", "(?P<ids>.+)").replace(r"\{limit\}", "(?P<limit>\\d+)")
        + "$"
    )


_KNOWN = _pinned(NEWS_KNOWN_SQL)
_READ = _pinned(NEWS_READ_SQL)
_READ_SYMBOL = _pinned(NEWS_READ_SYMBOL_SQL)


@dataclass
class FakeNewsQuestDB:
    """(ts micros, item_id) -> (source, title, url, summary, symbols)."""

    table: dict[tuple[int, uuid.UUID], tuple[str, ...]] = field(default_factory=dict)
    calls: list[tuple[str, tuple[Any, ...] | None]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ddl: tuple[str, ...] = (NEWS_DDL,)

    def ingest(self, body: bytes) -> None:
        with self.lock:
            for table, tags, fields, ts in parse_ilp(body):
                assert table == "news", table
                assert ts is not None
                # a `t`-suffixed timestamp field; every other field a quoted string
                assert fields.pop("ingested_at")[0] == "micros"
                assert all(isinstance(v, str) for v in fields.values()), fields
                key = (ts // 1000, uuid.UUID(fields["item_id"]))  # TIMESTAMP keeps micros
                self.table[key] = (tags["source"], *(fields[c] for c in _COLUMNS[1:]))

    def connect(self, conninfo: str) -> FakeConnection:
        return FakeConnection(self)

    def _row(self, key: tuple[int, uuid.UUID], value: tuple[str, ...]) -> tuple[Any, ...]:
        source, title, url, summary, symbols = value
        return (
            EPOCH + timedelta(microseconds=key[0]),
            key[1],
            source,
            title,
            url,
            summary,
            symbols,
        )

    def select(self, sql: str, args: tuple[Any, ...] | None) -> list[tuple[Any, ...]]:
        if m := _KNOWN.match(sql):
            wanted = {uuid.UUID(x.strip().strip("'")) for x in m["ids"].split(",")}
            return [self._row(k, v) for k, v in self.table.items() if k[1] in wanted]
        m = _READ.match(sql) or _READ_SYMBOL.match(sql)
        if m is None:
            raise AssertionError(f"unexpected SQL: {sql!r}")
        assert args is not None
        lo, hi, *pattern = args
        a, b = naive_micros(lo), naive_micros(hi)
        rows = [
            self._row(k, v)
            for k, v in self.table.items()
            if a <= k[0] < b and (not pattern or re.search(pattern[0], v[4]))
        ]
        rows.sort(key=lambda r: r[4])  # ORDER BY ts DESC, url
        rows.sort(key=lambda r: r[0], reverse=True)
        return rows[: int(m["limit"])]
