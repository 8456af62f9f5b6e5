"""A stand-in for QuestDB's PostgreSQL-wire connection that serves fixed candle rows,
so `QuestDBCandleStore`'s real read path (rows -> numpy `Bars` or a frame) runs without a
server: for tests and for bench/bench_cold_imports.py, whose probes run it in a fresh
interpreter where pandas must stay unloaded (hence csv, not pandas, below)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from algotrendy.storage.questdb_store import READ_SQL, QuestDBCandleStore

Row = tuple[Any, ...]  # (open time, open, high, low, close, volume), as psycopg gives it


class Result:
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def fetchall(self) -> list[Row]:
        return self.rows


class RowsConnection:
    """Answers the store's read query with the rows of one series in [start, end) and
    its schema DDL with nothing."""

    def __init__(self, rows: Sequence[Row], series: tuple[str, str, str]) -> None:
        self.rows = list(rows)
        self.series = series

    def execute(self, query: Any, params: Sequence[Any] | None = None) -> Result:
        if query != READ_SQL:
            return Result([])  # the schema's DDL
        assert params is not None
        exchange, symbol, timeframe, lo, hi = params
        same = (exchange, symbol, timeframe) == self.series
        return Result([r for r in self.rows if same and lo <= r[0] < hi])

    def close(self) -> None:
        pass


def csv_rows(path: str | Path) -> list[Row]:
    """A fixture CSV (timestamp, open, high, low, close, volume) as PG-wire rows."""
    with open(path) as handle:
        return [
            (
                datetime.fromisoformat(r["timestamp"]),
                *(float(r[c]) for c in ("open", "high", "low", "close", "volume")),
            )
            for r in csv.DictReader(handle)
        ]


def questdb_store(rows: Sequence[Row], series: tuple[str, str, str]) -> QuestDBCandleStore:
    """A `QuestDBCandleStore` whose every connection is a `RowsConnection` over `rows`."""
    return QuestDBCandleStore(
        "http::addr=127.0.0.1:1;",
        "host=fake",
        connect=lambda conninfo: RowsConnection(rows, series),
    )
