"""QuestDBCandleStore without a QuestDB server: the exact ILP bytes it sends, the real
`questdb` Sender over HTTP against a loopback endpoint, and the exact SQL it runs.

Expected bytes are written out by hand from the ILP reference (line = table, symbol
columns, a space, fields, a space, the designated timestamp, `\\n`; protocol v2 sends a
double as `name==` + type byte 16 + its 8 little-endian bytes; `t` marks microseconds), not
produced by the client under test.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from qdb_fake import FakeQuestDB, IlpHttpServer, parse_ilp

from algotrendy.data.enrich import enrich_candles
from algotrendy.storage.base import StoreError, StoreUnavailableError
from algotrendy.storage.questdb_store import (
    LAST_TS_SQL,
    OHLCV_DDL,
    ORDER_BOOK_DDL,
    READ_SQL,
    SCHEMA_DDL,
    TICKS_DDL,
    TRADES_DDL,
    QuestDBCandleStore,
    fill_ilp_buffer,
)

INGESTED = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def frame() -> pd.DataFrame:
    index = pd.DatetimeIndex(
        ["2024-01-01 00:00", "2024-01-01 01:00"], dtype="datetime64[ns, UTC]", name="time"
    )
    return pd.DataFrame(
        {
            "open": [42000.5, 42100.0],
            "high": [42200.25, 42150.0],
            "low": [41900.0, 41999.75],
            "close": [42100.0, 42010.125],
            "volume": [12.5, 0.0],
        },
        index=index,
    )


def f64(value: float) -> bytes:
    """A v2 binary double after its `name=`: the `=` marker, type byte 16, 8 LE bytes."""
    return b"=\x10" + struct.pack("<d", value)


def expected_ilp() -> bytes:
    ingested_us = b"1717243200123456t"  # 2024-06-01T12:00:00.123456Z in microseconds
    lines = []
    rows = [
        (b"1704067200000000t", (42000.5, 42200.25, 41900.0, 42100.0, 12.5)),
        (b"1704070800000000t", (42100.0, 42150.0, 41999.75, 42010.125, 0.0)),
    ]
    for ts, (o, h, lo, c, v) in rows:
        lines.append(
            b"ohlcv,exchange=binance,symbol=BTC/USDT,timeframe=1h "
            + b"open="
            + f64(o)
            + b",high="
            + f64(h)
            + b",low="
            + f64(lo)
            + b",close="
            + f64(c)
            + b",volume="
            + f64(v)
            + b",ingested_at="
            + ingested_us
            + b" "
            + ts
            + b"\n"
        )
    return b"".join(lines)


def new_buffer(version: int) -> Any:
    import warnings

    with warnings.catch_warnings():  # questdb 6 moved Buffer; the old path still works
        warnings.simplefilter("ignore", DeprecationWarning)
        from questdb.ingress import Buffer

    return Buffer(protocol_version=version)


def test_ilp_bytes_are_pinned() -> None:
    rows = enrich_candles(
        frame(), exchange="binance", symbol="BTC/USDT", timeframe="1h", ingested_at=INGESTED
    )
    buffer = new_buffer(2)
    fill_ilp_buffer(buffer, rows)
    assert bytes(buffer) == expected_ilp()


def test_pinned_bytes_parse_back_to_the_frame() -> None:
    parsed = parse_ilp(expected_ilp())
    assert [r[1] for r in parsed] == [
        {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
    ] * 2
    values = [[r[2][c] for c in ("open", "high", "low", "close", "volume")] for r in parsed]
    np.testing.assert_array_equal(np.array(values), frame().to_numpy())
    assert [r[3] for r in parsed] == [int(t.value) for t in frame().index]


def test_sender_posts_exactly_the_pinned_bytes_after_negotiating() -> None:
    db = FakeQuestDB()
    with IlpHttpServer(on_write=db.ingest) as server:
        store = QuestDBCandleStore(
            server.conf, "host=fake", connect=db.connect, now=lambda: INGESTED
        )
        with store:
            assert store.write(frame(), "binance", "BTC/USDT", "1h") == 2
        methods = [(m, p.split("?")[0]) for m, p, _ in server.requests]
        assert methods == [("GET", "/settings"), ("POST", "/write")]
        assert server.writes() == [expected_ilp()]
    # The schema was created (with dedup keys) before the first row was sent.
    assert db.created == list(SCHEMA_DDL)


def test_sender_is_reused_across_writes() -> None:
    db = FakeQuestDB()
    with IlpHttpServer(on_write=db.ingest) as server:
        with QuestDBCandleStore(server.conf, "host=fake", connect=db.connect) as store:
            store.write(frame(), "binance", "BTC/USDT", "1h")
            store.write(frame(), "binance", "BTC/USDT", "1h")
        gets = [p for m, p, _ in server.requests if m == "GET"]
        assert len(gets) == 1
        assert len(server.writes()) == 2
    assert db.created == list(SCHEMA_DDL)  # DDL once per store, not per write


def test_large_writes_go_in_chunks_of_whole_rows() -> None:
    db = FakeQuestDB()
    index = pd.DatetimeIndex(
        [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(5)],
        dtype="datetime64[ns, UTC]",
        name="time",
    )
    big = pd.DataFrame(
        {c: np.arange(5, dtype=np.float64) + 1 for c in ("open", "high", "low", "close")},
        index=index,
    ).assign(volume=1.0)
    with IlpHttpServer(on_write=db.ingest) as server:
        store = QuestDBCandleStore(
            server.conf, "host=fake", connect=db.connect, chunk_rows=2, now=lambda: INGESTED
        )
        with store:
            store.write(big, "binance", "BTC/USDT", "1h")
        bodies = server.writes()
    assert [len(parse_ilp(b)) for b in bodies] == [2, 2, 1]
    whole = new_buffer(2)
    fill_ilp_buffer(
        whole,
        enrich_candles(
            big, exchange="binance", symbol="BTC/USDT", timeframe="1h", ingested_at=INGESTED
        ),
    )
    assert b"".join(bodies) == bytes(whole)


def test_ddl_is_pinned() -> None:
    assert OHLCV_DDL == (
        "CREATE TABLE IF NOT EXISTS ohlcv (ts TIMESTAMP, exchange SYMBOL, symbol SYMBOL, "
        "timeframe SYMBOL, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE, "
        "ingested_at TIMESTAMP) TIMESTAMP(ts) PARTITION BY DAY WAL "
        "DEDUP UPSERT KEYS(ts, exchange, symbol, timeframe)"
    )
    assert TICKS_DDL == (
        "CREATE TABLE IF NOT EXISTS ticks (ts TIMESTAMP, exchange SYMBOL, symbol SYMBOL, "
        "bid DOUBLE, ask DOUBLE, last DOUBLE, bid_size DOUBLE, ask_size DOUBLE) "
        "TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, exchange, symbol)"
    )
    assert TRADES_DDL == (
        "CREATE TABLE IF NOT EXISTS trades (ts TIMESTAMP, exchange SYMBOL, symbol SYMBOL, "
        "trade_id VARCHAR, side SYMBOL, price DOUBLE, amount DOUBLE) "
        "TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, exchange, symbol, trade_id)"
    )
    assert ORDER_BOOK_DDL == (
        "CREATE TABLE IF NOT EXISTS order_book (ts TIMESTAMP, exchange SYMBOL, symbol SYMBOL, "
        "side SYMBOL, level INT, price DOUBLE, amount DOUBLE) "
        "TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, exchange, symbol, side, level)"
    )


def test_read_runs_the_pinned_sql_with_naive_utc_bounds() -> None:
    db = FakeQuestDB()
    store = QuestDBCandleStore("http::addr=127.0.0.1:1;", "host=fake", connect=db.connect)
    start = datetime(2024, 1, 1, 1, tzinfo=UTC)
    end = pd.Timestamp("2024-01-01 05:00", tz="Europe/Paris").to_pydatetime()  # 04:00 UTC
    store.read("binance", "BTC/USDT", "1h", start, end)
    store.read("binance", "BTC/USDT", "1h")
    store.last_timestamp("binance", "BTC/USDT", "1h")
    assert READ_SQL == (
        "SELECT ts, open, high, low, close, volume FROM ohlcv "
        "WHERE exchange = %s AND symbol = %s AND timeframe = %s AND ts >= %s AND ts < %s "
        "ORDER BY ts"
    )
    assert LAST_TS_SQL == (
        "SELECT ts FROM ohlcv WHERE exchange = %s AND symbol = %s AND timeframe = %s "
        "ORDER BY ts DESC LIMIT 1"
    )
    assert db.calls == [
        *((ddl, None) for ddl in SCHEMA_DDL),
        (
            READ_SQL,
            ("binance", "BTC/USDT", "1h", datetime(2024, 1, 1, 1), datetime(2024, 1, 1, 4)),
        ),
        (
            READ_SQL,
            ("binance", "BTC/USDT", "1h", datetime(1970, 1, 1), datetime(9999, 12, 31)),
        ),
        (LAST_TS_SQL, ("binance", "BTC/USDT", "1h")),
    ]


def test_read_turns_pgwire_rows_into_a_utc_candle_frame() -> None:
    class Rows:
        def __init__(self) -> None:
            self.closed = False

        def execute(self, query: Any, params: Any = None) -> Any:
            rows = [] if query != READ_SQL else [
                (datetime(2024, 1, 1, 0), 1.0, 2.0, 0.5, 1.5, 10.0),
                (datetime(2024, 1, 1, 1), 1.5, 2.5, 1.0, 2.0, 20.0),
            ]  # fmt: skip

            class Result:
                def fetchall(self) -> list[Any]:
                    return rows

            return Result()

        def close(self) -> None:
            self.closed = True

    store = QuestDBCandleStore("http::addr=127.0.0.1:1;", "x", connect=lambda _: Rows())
    out = store.read("binance", "BTC/USDT", "1h")
    assert out.index.tolist() == [
        pd.Timestamp("2024-01-01 00:00", tz="UTC"),
        pd.Timestamp("2024-01-01 01:00", tz="UTC"),
    ]
    assert out.to_numpy().tolist() == [[1.0, 2.0, 0.5, 1.5, 10.0], [1.5, 2.5, 1.0, 2.0, 20.0]]


def test_connections_are_closed_after_each_query() -> None:
    db = FakeQuestDB()
    opened: list[Any] = []

    def connect(conninfo: str) -> Any:
        opened.append(db.connect(conninfo))
        return opened[-1]

    store = QuestDBCandleStore("http::addr=127.0.0.1:1;", "host=fake", connect=connect)
    store.last_timestamp("binance", "BTC/USDT", "1h")
    assert opened
    assert all(c.closed for c in opened)


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_unreachable_ilp_endpoint_is_one_clear_error() -> None:
    port = _closed_port()
    db = FakeQuestDB()
    store = QuestDBCandleStore(f"http::addr=127.0.0.1:{port};", "host=fake", connect=db.connect)
    with pytest.raises(StoreUnavailableError, match=rf"questdb at 127\.0\.0\.1:{port}: unreach"):
        store.write(frame(), "binance", "BTC/USDT", "1h")
    assert db.table == {}


def test_rejected_write_names_the_series_and_keeps_nothing() -> None:
    db = FakeQuestDB()
    with IlpHttpServer(on_write=db.ingest) as server:
        server.fail_writes = True
        store = QuestDBCandleStore(server.conf, "host=fake", connect=db.connect)
        with store, pytest.raises(StoreError, match="questdb store binance BTC/USDT 1h"):
            store.write(frame(), "binance", "BTC/USDT", "1h")
        server.fail_writes = False
        store.write(frame(), "binance", "BTC/USDT", "1h")  # a new sender after the failure
        assert len(db.table) == 2


def test_pgwire_connection_failure_is_unavailable() -> None:
    def refuse(conninfo: str) -> Any:
        raise psycopg.OperationalError("connection refused")

    store = QuestDBCandleStore("http::addr=db:9000;", "host=db port=8812", connect=refuse)
    with pytest.raises(StoreUnavailableError, match="questdb at db:9000: PGWire connection"):
        store.last_timestamp("binance", "BTC/USDT", "1h")


def test_sql_error_is_a_store_error() -> None:
    class Broken:
        def execute(self, query: Any, params: Any = None) -> Any:
            raise psycopg.errors.SyntaxError("unexpected token")

        def close(self) -> None:
            return None

    store = QuestDBCandleStore("http::addr=db:9000;", "x", connect=lambda _: Broken())
    with pytest.raises(StoreError, match="unexpected token"):
        store.ensure_schema()


def test_from_url_builds_ilp_and_pgwire_settings() -> None:
    store = QuestDBCandleStore.from_url("http://qdb.internal:9000")
    assert store.ilp_conf == "http::addr=qdb.internal:9000;"
    assert store.pg_conninfo == "host=qdb.internal port=8812 user=admin password=quest dbname=qdb"
    with pytest.raises(StoreError, match="URL must look like"):
        QuestDBCandleStore.from_url("qdb.internal:9000")
    with pytest.raises(StoreError, match="http:: or https::"):
        QuestDBCandleStore("tcp::addr=qdb:9009;", "x")


def test_negotiation_falls_back_to_text_for_a_v1_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """An older server advertising only ILP v1 gets text floats; the store still works."""
    import qdb_fake

    db = FakeQuestDB()
    settings = {"config": {**qdb_fake.SETTINGS["config"], "line.proto.support.versions": [1]}}
    monkeypatch.setattr(qdb_fake, "SETTINGS", settings)
    with (
        IlpHttpServer(on_write=db.ingest) as server,
        QuestDBCandleStore(server.conf, "host=fake", connect=db.connect) as store,
    ):
        store.write(frame(), "binance", "BTC/USDT", "1h")
        assert b"open=42000.5," in server.writes()[0]
        out = store.read("binance", "BTC/USDT", "1h")
    np.testing.assert_array_equal(out.to_numpy(), frame().to_numpy())


def test_strided_columns_serialise_like_contiguous_ones() -> None:
    """A frame built on one 2-D block (columns are strided views) must not trip the
    client, which reads C-contiguous buffers."""
    wide = np.ascontiguousarray(np.column_stack([np.zeros(2), frame().to_numpy()]))  # row-major
    strided = pd.DataFrame(wide[:, 1:], index=frame().index, columns=list(frame()), copy=False)
    assert not strided["open"].to_numpy().flags["C_CONTIGUOUS"]
    buffer = new_buffer(2)
    fill_ilp_buffer(
        buffer,
        enrich_candles(
            strided, exchange="binance", symbol="BTC/USDT", timeframe="1h", ingested_at=INGESTED
        ),
    )
    assert bytes(buffer) == expected_ilp()


class _Rows:
    """A PGWire stand-in answering READ_SQL with fixed rows, recording each query."""

    def __init__(self, rows: list[tuple[Any, ...]], calls: list[Any]) -> None:
        self.rows, self.calls = rows, calls

    def execute(self, query: Any, params: Any = None) -> Any:
        self.calls.append((query, params))
        rows = self.rows if query == READ_SQL else []

        class Result:
            def fetchall(self) -> list[Any]:
                return rows

        return Result()

    def close(self) -> None:
        return None


def test_read_bars_turns_pgwire_rows_into_bars() -> None:
    paris = pd.Timestamp("2024-01-01", tz="Europe/Paris").tzinfo
    rows = [
        (datetime(2024, 1, 1, 0), 1.0, 2.0, 0.5, 1.5, 10.0),
        (datetime(2024, 1, 1, 1, 0, 0, 250), 1.5, 2.5, 1.0, 2.0, 20.0),  # microseconds kept
        (datetime(2024, 1, 1, 3, tzinfo=paris), 2.0, 3.0, 1.5, 2.5, 30.0),  # 02:00 UTC
    ]
    calls: list[Any] = []
    store = QuestDBCandleStore("http::addr=127.0.0.1:1;", "x", connect=lambda _: _Rows(rows, calls))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    bars = store.read_bars("binance", "BTC/USDT", "1h", start=start)
    assert bars.time.dtype == np.dtype("datetime64[ns]")
    assert bars.time.tolist() == [  # datetime64[ns] lists as integer nanoseconds
        1_704_067_200 * 10**9,
        1_704_070_800 * 10**9 + 250_000,
        1_704_074_400 * 10**9,
    ]
    assert bars.open.tolist() == [1.0, 1.5, 2.0]
    assert bars.high.tolist() == [2.0, 2.5, 3.0]
    assert bars.low.tolist() == [0.5, 1.0, 1.5]
    assert bars.close.tolist() == [1.5, 2.0, 2.5]
    assert bars.volume.tolist() == [10.0, 20.0, 30.0]
    assert all(getattr(bars, c).flags.c_contiguous for c in ("open", "close", "volume"))
    # The frame read, from the same rows, says the same.
    frame_out = store.read("binance", "BTC/USDT", "1h", start=start)
    assert frame_out.index.tolist() == [
        pd.Timestamp("2024-01-01 00:00", tz="UTC"),
        pd.Timestamp("2024-01-01 01:00:00.000250", tz="UTC"),
        pd.Timestamp("2024-01-01 02:00", tz="UTC"),
    ]
    assert frame_out["volume"].tolist() == [10.0, 20.0, 30.0]
    reads = [c for c in calls if c[0] == READ_SQL]
    assert (
        reads
        == [(READ_SQL, ("binance", "BTC/USDT", "1h", datetime(2024, 1, 1), datetime(9999, 12, 31)))]
        * 2
    )


def test_read_bars_of_no_rows_is_empty_bars() -> None:
    store = QuestDBCandleStore("http::addr=127.0.0.1:1;", "x", connect=lambda _: _Rows([], []))
    bars = store.read_bars("binance", "BTC/USDT", "1h")
    assert len(bars) == 0
    assert bars.time.dtype == np.dtype("datetime64[ns]")
    assert bars.close.dtype == np.float64
    assert bars.close.shape == (0,)


def test_reading_bars_loads_no_pandas() -> None:
    """The signal evaluator's read: importing the store and reading bars must not import
    pandas (nor pyarrow): both are blocked in a fresh interpreter, so an import fails."""
    code = textwrap.dedent(
        """
        import json, sys
        from datetime import datetime
        sys.modules["pandas"] = None
        sys.modules["pyarrow"] = None
        from algotrendy.storage.questdb_store import READ_SQL, QuestDBCandleStore

        class Result:
            def __init__(self, rows):
                self.rows = rows

            def fetchall(self):
                return self.rows

        class Connection:
            def execute(self, query, params=None):
                row = (datetime(2024, 1, 1), 1.0, 2.0, 0.5, 1.5, 10.0)
                return Result([row] if query == READ_SQL else [])

            def close(self):
                pass

        store = QuestDBCandleStore("http::addr=127.0.0.1:1;", "x", connect=lambda _: Connection())
        bars = store.read_bars("binance", "BTC/USDT", "1h")
        loaded = sorted({m.split(".")[0] for m in sys.modules if sys.modules[m] is not None})
        print(json.dumps([len(bars), bars.close.tolist(), loaded]))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    n, close, loaded = json.loads(out.stdout.splitlines()[-1])
    assert (n, close) == (1, [1.5])
    assert "numpy" in loaded
    assert {"pandas", "pyarrow", "questdb"} & set(loaded) == set()
