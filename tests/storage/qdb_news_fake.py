"""A stand-in for QuestDB's `news` table, for `QuestDBNewsStore` tests without a server.

- `parse_news_ilp`: an ILP parser for the lines the news store sends (symbol tags, quoted
  string fields with backslash escapes, `t`-suffixed timestamp fields, the designated
  timestamp), written from the ILP reference, independent of the client under test.
- `FakeNewsQuestDB`: the table with `DEDUP UPSERT KEYS(ts, item_id)` (a row with the
  same designated timestamp and id replaces the stored one), fed through
  `qdb_fake.IlpHttpServer`, and a PGWire stand-in answering exactly the SQL the store is
  pinned to run (`symbols ~ pattern` with `re.search`: QuestDB's `~` is Java's
  `Matcher.find`). Any other SQL fails the test.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from algotrendy.storage.questdb_news import (
    NEWS_DDL,
    NEWS_KNOWN_SQL,
    NEWS_READ_SQL,
    NEWS_READ_SYMBOL_SQL,
)

NewsRow = tuple[str, dict[str, str], dict[str, Any], int | None]  # table, tags, fields, ts


def _read_until(buf: bytes, i: int, stops: bytes) -> tuple[str, int]:
    out = bytearray()
    while i < len(buf) and buf[i] not in stops:
        if buf[i] == ord("\\") and i + 1 < len(buf):
            i += 1
        out.append(buf[i])
        i += 1
    return out.decode("utf-8"), i


def _read_string(buf: bytes, i: int) -> tuple[str, int]:
    """A quoted ILP string starting at the opening quote; returns the text and the index
    after the closing quote."""
    assert buf[i] == ord('"')
    out = bytearray()
    i += 1
    while buf[i] != ord('"'):
        if buf[i] == ord("\\"):
            i += 1
        out.append(buf[i])
        i += 1
    return out.decode("utf-8"), i + 1


def parse_news_ilp(buf: bytes) -> list[NewsRow]:
    rows: list[NewsRow] = []
    i = 0
    while i < len(buf):
        table, i = _read_until(buf, i, b", ")
        tags: dict[str, str] = {}
        while buf[i] == ord(","):
            key, i = _read_until(buf, i + 1, b"=")
            tags[key], i = _read_until(buf, i + 1, b", ")
        assert buf[i] == ord(" "), f"expected a space before fields at byte {i}"
        i += 1
        fields: dict[str, Any] = {}
        while True:
            key, i = _read_until(buf, i, b"=")
            i += 1
            if buf[i] == ord('"'):
                fields[key], i = _read_string(buf, i)
            else:
                raw, i = _read_until(buf, i, b", \n")
                assert raw.endswith("t"), f"unexpected field {key}={raw}"
                fields[key] = int(raw[:-1])  # microseconds
            if buf[i] != ord(","):
                break
            i += 1
        ts: int | None = None
        if buf[i] == ord(" "):
            raw, i = _read_until(buf, i + 1, b"\n")
            if raw.endswith("t"):
                ts = int(raw[:-1]) * 1000
            elif raw.endswith("n"):
                ts = int(raw[:-1])
            else:
                ts = int(raw)
        assert buf[i] == ord("\n"), f"expected end of line at byte {i}"
        i += 1
        rows.append((table, tags, fields, ts))
    return rows


_EPOCH = datetime(1970, 1, 1)
_COLUMNS = ("source", "title", "url", "summary", "symbols")


def _micros(value: datetime) -> int:
    assert value.tzinfo is None, "PGWire binds naive UTC datetimes"
    return (value - _EPOCH) // timedelta(microseconds=1)


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
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ingest(self, body: bytes) -> None:
        with self.lock:
            for table, tags, fields, ts in parse_news_ilp(body):
                assert table == "news", table
                assert ts is not None
                assert isinstance(fields["ingested_at"], int)
                key = (ts // 1000, uuid.UUID(fields["item_id"]))  # TIMESTAMP keeps micros
                self.table[key] = (tags["source"], *(fields[c] for c in _COLUMNS[1:]))

    def connect(self, conninfo: str) -> FakeNewsConnection:
        return FakeNewsConnection(self)

    def _row(self, key: tuple[int, uuid.UUID], value: tuple[str, ...]) -> tuple[Any, ...]:
        source, title, url, summary, symbols = value
        return (
            _EPOCH + timedelta(microseconds=key[0]),
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
        a, b = _micros(lo), _micros(hi)
        rows = [
            self._row(k, v)
            for k, v in self.table.items()
            if a <= k[0] < b and (not pattern or re.search(pattern[0], v[4]))
        ]
        rows.sort(key=lambda r: r[4])  # ORDER BY ts DESC, url
        rows.sort(key=lambda r: r[0], reverse=True)
        return rows[: int(m["limit"])]


class _Result:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class FakeNewsConnection:
    def __init__(self, db: FakeNewsQuestDB) -> None:
        self.db = db
        self.closed = False

    def execute(self, query: Any, params: Sequence[Any] | None = None) -> _Result:
        assert not self.closed
        args = None if params is None else tuple(params)
        self.db.calls.append((query, args))
        if query == NEWS_DDL:
            return _Result([])
        with self.db.lock:
            return _Result(self.db.select(query, args))

    def close(self) -> None:
        self.closed = True
