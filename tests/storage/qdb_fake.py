"""A stand-in for a QuestDB server, for tests on a machine without one.

- `IlpHttpServer`: a loopback HTTP server speaking the two endpoints the `questdb` client
  uses for ILP/HTTP: `GET /settings` (protocol negotiation; the reply has the shape
  QuestDB's own `SettingsEndpointTest` pins: `{"config": {"line.proto.support.versions":
  [1, 2], ...}}`) and `POST /write` (records the body, answers 204 as QuestDB does).
- `parse_ilp`: an independent ILP v1/v2 parser, written from the ILP reference (text
  fields; quoted string fields with backslash escapes; v2 binary doubles are `name==` +
  type byte 16 + 8 little-endian bytes; timestamps suffixed `t` are microseconds, `n` or
  bare designated timestamps nanoseconds).
- `FakeQuestDB`: a table with QuestDB's `DEDUP UPSERT KEYS(ts, exchange, symbol,
  timeframe)` semantics (last write wins, at microsecond resolution as TIMESTAMP stores),
  fed by the HTTP server, and a PGWire stand-in (`connect`) that answers exactly the SQL
  the store is pinned to run and records every call. Any other SQL fails the test.
- `FakeConnection`: that PGWire stand-in, for any fake table with `calls`, `created`,
  `lock`, `ddl` and `select` (the news table's fake, `qdb_news_fake`, uses it too).
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from algotrendy.storage.questdb_store import LAST_TS_SQL, READ_SQL, SCHEMA_DDL

SETTINGS = {
    "config": {
        "release.type": "OSS",
        "release.version": "[TEST]",
        "line.proto.support.versions": [1, 2],
        "ilp.proto.transports": ["tcp", "http"],
        "cairo.max.file.name.length": 127,
    },
    "preferences.version": 0,
    "preferences": {},
}

Row = tuple[str, dict[str, str], dict[str, Any], int | None]  # table, tags, fields, ts ns


def read_token(buf: bytes, i: int, stops: bytes) -> tuple[str, int]:
    out = bytearray()
    while i < len(buf) and buf[i] not in stops:
        if buf[i] == ord("\\") and i + 1 < len(buf):
            i += 1
        out.append(buf[i])
        i += 1
    return out.decode("utf-8"), i


def read_string(buf: bytes, i: int) -> tuple[str, int]:
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


def parse_ilp(buf: bytes) -> list[Row]:
    rows: list[Row] = []
    i = 0
    while i < len(buf):
        table, i = read_token(buf, i, b", ")
        tags: dict[str, str] = {}
        while buf[i] == ord(","):
            key, i = read_token(buf, i + 1, b"=")
            value, i = read_token(buf, i + 1, b", ")
            tags[key] = value
        assert buf[i] == ord(" "), f"expected a space before fields at byte {i}"
        i += 1
        fields: dict[str, Any] = {}
        while True:
            key, i = read_token(buf, i, b"=")
            i += 1
            if buf[i] == ord("="):  # v2 binary value
                kind = buf[i + 1]
                assert kind == 16, f"unsupported binary type {kind}"
                fields[key] = struct.unpack_from("<d", buf, i + 2)[0]
                i += 10
            elif buf[i] == ord('"'):
                fields[key], i = read_string(buf, i)
            else:
                raw, i = read_token(buf, i, b", \n")
                if raw.endswith("t"):
                    fields[key] = ("micros", int(raw[:-1]))
                elif raw.endswith("n"):
                    fields[key] = ("nanos", int(raw[:-1]))
                elif raw.endswith("i"):
                    fields[key] = int(raw[:-1])
                else:
                    fields[key] = float(raw)
            if buf[i] == ord(","):
                i += 1
                continue
            break
        ts: int | None = None
        if buf[i] == ord(" "):
            raw, i = read_token(buf, i + 1, b"\n")
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


class IlpHttpServer:
    """Loopback ILP/HTTP endpoint; `fail_writes` makes `/write` answer 400 with a JSON
    error, the way QuestDB rejects a request (the whole request: nothing is applied)."""

    def __init__(self, on_write: Any = None) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.on_write = on_write
        self.fail_writes = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                owner.requests.append(("GET", self.path, b""))
                if self.path.startswith("/settings"):
                    self._reply(200, json.dumps(SETTINGS).encode())
                else:
                    self._reply(404, b"{}")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.requests.append(("POST", self.path, body))
                if owner.fail_writes:
                    error = {
                        "code": "invalid",
                        "message": "cast error for line protocol float [columnName=open]",
                        "line": 1,
                        "errorId": "test-1",
                    }
                    self._reply(400, json.dumps(error).encode())
                    return
                if owner.on_write is not None:
                    try:
                        owner.on_write(body)
                    except (AssertionError, ValueError, KeyError) as exc:
                        # QuestDB answers a body it cannot parse with 400 and a JSON error.
                        error = {"code": "invalid", "message": repr(exc), "line": 1}
                        self._reply(400, json.dumps(error).encode())
                        return
                self._reply(204, b"", "text/plain")

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep pytest output clean; requests are recorded above

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def conf(self) -> str:
        return f"http::addr=127.0.0.1:{self.port};"

    def writes(self) -> list[bytes]:
        return [body for method, path, body in self.requests if method == "POST"]

    def __enter__(self) -> IlpHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class FakeQuestDB:
    """The `ohlcv` table with dedup upsert keys, plus a recording PGWire stand-in."""

    table: dict[tuple[int, str, str, str], tuple[float, ...]] = field(default_factory=dict)
    calls: list[tuple[str, tuple[Any, ...] | None]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ddl: tuple[str, ...] = SCHEMA_DDL

    def ingest(self, body: bytes) -> None:
        with self.lock:
            for table, tags, fields, ts in parse_ilp(body):
                assert table == "ohlcv", table
                assert ts is not None
                micros = ts // 1000  # TIMESTAMP keeps microseconds
                key = (micros, tags["exchange"], tags["symbol"], tags["timeframe"])
                self.table[key] = tuple(
                    float(fields[c]) for c in ("open", "high", "low", "close", "volume")
                )

    def connect(self, conninfo: str) -> FakeConnection:
        return FakeConnection(self)

    def rows(self) -> Iterator[tuple[tuple[int, str, str, str], tuple[float, ...]]]:
        yield from sorted(self.table.items())

    def select(self, query: str, args: tuple[Any, ...] | None) -> list[tuple[Any, ...]]:
        if query == READ_SQL:
            assert args is not None
            exchange, symbol, timeframe, lo, hi = args
            a, b = naive_micros(lo), naive_micros(hi)
            return [
                (EPOCH + timedelta(microseconds=k[0]), *v)
                for k, v in self.rows()
                if k[1:] == (exchange, symbol, timeframe) and a <= k[0] < b
            ]
        if query == LAST_TS_SQL:
            assert args is not None
            times = [k[0] for k, _ in self.rows() if k[1:] == args]
            return [(EPOCH + timedelta(microseconds=max(times)),)] if times else []
        raise AssertionError(f"unexpected SQL: {query!r}")


class Result:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


EPOCH = datetime(1970, 1, 1)


def naive_micros(value: datetime) -> int:
    assert value.tzinfo is None, "PGWire binds naive UTC datetimes"
    return (value - EPOCH) // timedelta(microseconds=1)


class FakeTable(Protocol):
    """What `FakeConnection` needs of a fake table."""

    calls: list[tuple[str, tuple[Any, ...] | None]]
    created: list[str]
    lock: threading.Lock
    ddl: tuple[str, ...]

    def select(self, query: str, args: tuple[Any, ...] | None) -> list[tuple[Any, ...]]: ...


class FakeConnection:
    """PGWire stand-in: records every statement, answers the table's DDL and pinned
    queries (`select` fails the test on any other SQL)."""

    def __init__(self, db: FakeTable) -> None:
        self.db = db
        self.closed = False

    def execute(self, query: Any, params: Sequence[Any] | None = None) -> Result:
        assert not self.closed
        args = None if params is None else tuple(params)
        self.db.calls.append((query, args))
        if query in self.db.ddl:
            self.db.created.append(query)
            return Result([])
        with self.db.lock:
            return Result(self.db.select(query, args))

    def close(self) -> None:
        self.closed = True
