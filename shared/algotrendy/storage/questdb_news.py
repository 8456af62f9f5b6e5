"""QuestDB news store: the `news` table, written with the official client over ILP/HTTP
and read over PGWire, as `QuestDBCandleStore` does (same transports, same error mapping).

Idempotency: the table is a WAL table with `DEDUP UPSERT KEYS(ts, item_id)`, `item_id`
being the UUID of the item's canonical URL (`algotrendy.storage.news.news_item_id`;
a UUID because dedup keys must be fixed-size columns). A write first asks which ids are
stored, sends only new items (and stored ones that gain symbols, at their stored time),
so "the same story is stored once" holds even when a feed moves its publication time; a
retried or concurrent write the check could not see yet (WAL applies asynchronously)
lands on the same (ts, item_id) and replaces itself instead of adding a copy.

Symbols are one VARCHAR, comma-joined; a read by symbol matches a whole entry with a
regex (`symbols ~ $n`, a bind variable QuestDB accepts as a runtime-constant pattern).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from algotrendy.domain.market import NewsItem
from algotrendy.storage.base import utc
from algotrendy.storage.news import (
    check_items,
    check_read,
    merge_batch,
    published_utc,
    symbol_pattern,
    with_symbols,
)
from algotrendy.storage.questdb_client import QuestDBClient, naive_bounds

NEWS_TABLE: Final = "news"
NEWS_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS news ("
    "ts TIMESTAMP, item_id UUID, source SYMBOL, title VARCHAR, url VARCHAR, "
    "summary VARCHAR, symbols VARCHAR, ingested_at TIMESTAMP"
    ") TIMESTAMP(ts) PARTITION BY MONTH WAL "  # a few thousand rows a month: one partition
    "DEDUP UPSERT KEYS(ts, item_id)"
)
_COLUMNS: Final = "ts, item_id, source, title, url, summary, symbols"
# `{ids}`: quoted UUID literals this module formats from uuid.UUID values (hex and
# dashes only), never caller text.
NEWS_KNOWN_SQL: Final = f"SELECT {_COLUMNS} FROM news WHERE item_id IN ({{ids}})"
# `{limit}`: an int checked by `check_read`.
NEWS_READ_SQL: Final = (
    f"SELECT {_COLUMNS} FROM news WHERE ts >= %s AND ts < %s ORDER BY ts DESC, url LIMIT {{limit}}"
)
NEWS_READ_SYMBOL_SQL: Final = (
    f"SELECT {_COLUMNS} FROM news WHERE ts >= %s AND ts < %s AND symbols ~ %s "
    "ORDER BY ts DESC, url LIMIT {limit}"
)
# Ids asked per existence query: keeps the SQL text small whatever the batch.
KNOWN_CHUNK: Final = 200


def _row_item(row: Sequence[Any]) -> tuple[uuid.UUID, datetime, NewsItem]:
    ts, item_id, source, title, url, summary, symbols = row
    when = utc(ts)
    item = NewsItem(
        source=str(source),
        published_at=when,
        title=str(title),
        url=str(url),
        symbols=tuple(s for s in str(symbols or "").split(",") if s),
        summary=str(summary or ""),
    )
    return uuid.UUID(str(item_id)), when, item


class QuestDBNewsStore(QuestDBClient):
    """News store on QuestDB (the aws and vps shapes); configuration strings and
    `from_url` as `QuestDBClient`."""

    label = "questdb news store"
    schema_ddl = (NEWS_DDL,)

    def _known(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[datetime, NewsItem]]:
        out: dict[uuid.UUID, tuple[datetime, NewsItem]] = {}
        for start in range(0, len(ids), KNOWN_CHUNK):
            chunk = ids[start : start + KNOWN_CHUNK]
            sql = NEWS_KNOWN_SQL.format(ids=", ".join(f"'{i}'" for i in chunk))
            for row in self._query(sql):
                key, when, item = _row_item(row)
                out[key] = (when, item)
        return out

    # -- port ------------------------------------------------------------------------
    def write(self, items: Sequence[NewsItem]) -> int:
        where = f"{self.name} news store"
        batch = merge_batch(check_items(items, where))
        if not batch:
            return 0
        self.ensure_schema()
        known = self._known(list(batch))
        rows: list[tuple[uuid.UUID, datetime, NewsItem]] = []
        for key, item in batch.items():
            stored = known.get(key)
            if stored is None:
                rows.append((key, published_utc(item), item))
                continue
            when, old = stored
            merged = with_symbols(old, item.symbols)
            if merged is not old:  # rewritten at its stored time: the upsert replaces it
                rows.append((key, when, merged))
        if rows:
            ingested_at = self._now()
            with self._ilp_sender(where) as sender:
                buffer = sender.new_buffer()
                for key, when, item in rows:
                    buffer.row(
                        NEWS_TABLE,
                        symbols={"source": item.source},
                        columns={
                            "item_id": str(key),  # ILP text into the UUID column
                            "title": item.title,
                            "url": str(item.url),
                            "summary": item.summary,
                            "symbols": ",".join(item.symbols),
                            "ingested_at": ingested_at,
                        },
                        at=when,
                    )
                sender.flush(buffer, transactional=True)  # one transaction
        return sum(1 for key in batch if key not in known)

    def read(
        self,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[NewsItem]:
        check_read(symbol, since, until, limit, f"{self.name} news store")
        self.ensure_schema()
        lo, hi = naive_bounds(since, until)
        if symbol is None:
            records = self._query(NEWS_READ_SQL.format(limit=limit), (lo, hi))
        else:
            sql = NEWS_READ_SYMBOL_SQL.format(limit=limit)
            records = self._query(sql, (lo, hi, symbol_pattern(symbol)))
        return [_row_item(r)[2] for r in records]
