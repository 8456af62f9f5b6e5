"""QuestDB candle store: writes with the official client over ILP/HTTP, reads over the
PostgreSQL wire protocol with psycopg 3.

Why these paths: ILP over HTTP is QuestDB's recommended ingestion route (one HTTP request
is one transaction per table, errors come back in the reply, the client negotiates the
protocol version from `GET /settings`); PGWire is its recommended query route
(https://questdb.com/docs/query/pgwire/python/). Protocol version 2 sends doubles in
binary, so a float is stored bit for bit and serialising is ~2x faster than text.

Idempotency lives in the schema: every table is a WAL table with `DEDUP UPSERT KEYS`
covering the designated timestamp and the series identity, so re-ingesting a range
replaces rows instead of adding copies (https://questdb.com/docs/concepts/deduplication/).
Tables are created with this DDL before the first write, because a table ILP auto-creates
has no dedup keys.

QuestDB sends TIMESTAMP over PGWire without a zone; values are UTC, so bind parameters are
naive UTC datetimes and results are localised to UTC.

pandas (and `algotrendy.data.enrich`, which needs it) is imported by the write and the
frame read only: `read_bars` builds numpy arrays straight from the PGWire rows, so the
signal evaluator, which reads bars and never a frame, runs without pandas.
"""

from __future__ import annotations

import contextlib
import threading
import time as _time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from algotrendy.domain.bars import Bars
from algotrendy.domain.market import CANDLE_FRAME_COLUMNS
from algotrendy.storage.base import (
    StoreError,
    StoreUnavailableError,
    check_candle_frame,
    utc,
)

if TYPE_CHECKING:
    import pandas as pd

OHLCV_TABLE: Final = "ohlcv"

OHLCV_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS ohlcv ("
    "ts TIMESTAMP, exchange SYMBOL, symbol SYMBOL, timeframe SYMBOL, "
    "open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE, "
    "ingested_at TIMESTAMP"
    ") TIMESTAMP(ts) PARTITION BY DAY WAL "
    "DEDUP UPSERT KEYS(ts, exchange, symbol, timeframe)"
)
TICKS_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS ticks ("
    "ts TIMESTAMP, exchange SYMBOL, symbol SYMBOL, "
    "bid DOUBLE, ask DOUBLE, last DOUBLE, bid_size DOUBLE, ask_size DOUBLE"
    ") TIMESTAMP(ts) PARTITION BY DAY WAL "
    "DEDUP UPSERT KEYS(ts, exchange, symbol)"
)
TRADES_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS trades ("
    "ts TIMESTAMP, exchange SYMBOL, symbol SYMBOL, trade_id VARCHAR, side SYMBOL, "
    "price DOUBLE, amount DOUBLE"
    ") TIMESTAMP(ts) PARTITION BY DAY WAL "
    "DEDUP UPSERT KEYS(ts, exchange, symbol, trade_id)"
)
ORDER_BOOK_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS order_book ("
    "ts TIMESTAMP, exchange SYMBOL, symbol SYMBOL, side SYMBOL, level INT, "
    "price DOUBLE, amount DOUBLE"
    ") TIMESTAMP(ts) PARTITION BY DAY WAL "
    "DEDUP UPSERT KEYS(ts, exchange, symbol, side, level)"
)
SCHEMA_DDL: Final = (OHLCV_DDL, TICKS_DDL, TRADES_DDL, ORDER_BOOK_DDL)

READ_SQL: Final = (
    "SELECT ts, open, high, low, close, volume FROM ohlcv "
    "WHERE exchange = %s AND symbol = %s AND timeframe = %s AND ts >= %s AND ts < %s "
    "ORDER BY ts"
)
LAST_TS_SQL: Final = (
    "SELECT ts FROM ohlcv WHERE exchange = %s AND symbol = %s AND timeframe = %s "
    "ORDER BY ts DESC LIMIT 1"
)
WAL_PENDING_SQL: Final = "SELECT sequencerTxn - writerTxn FROM wal_tables() WHERE name = %s"

# Open bounds of a read: QuestDB TIMESTAMP is microseconds since 1970, so these are safe.
_MIN_TS: Final = datetime(1970, 1, 1)
_MAX_TS: Final = datetime(9999, 12, 31)
# ILP/HTTP default max_buf_size is 100 MiB; a v2 candle row is ~180 bytes.
DEFAULT_CHUNK_ROWS: Final = 100_000


class _Cursor(Protocol):
    def fetchall(self) -> list[tuple[Any, ...]]: ...


class PgConnection(Protocol):
    """What the store needs of a psycopg 3 connection (tests pass a recording fake)."""

    def execute(self, query: Any, params: Sequence[Any] | None = None) -> _Cursor: ...

    def close(self) -> None: ...


PgConnect = Callable[[str], PgConnection]


def _psycopg_connect(conninfo: str) -> PgConnection:
    import psycopg

    connection: PgConnection = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    return connection


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fill_ilp_buffer(buffer: Any, rows: pd.DataFrame) -> None:
    """Serialise enriched candle rows (`algotrendy.data.enrich.ENRICHED_COLUMNS`) into a
    `questdb` Buffer: table `ohlcv`, identity columns as SYMBOLs, `ts` as the designated
    timestamp. The one place that decides the bytes the store sends."""
    from algotrendy.data.enrich import IDENTITY_COLUMNS

    buffer.dataframe(rows, table_name=OHLCV_TABLE, symbols=list(IDENTITY_COLUMNS), at="ts")


def ilp_batches(buffer: Any, rows: pd.DataFrame, chunk_rows: int) -> Iterator[int]:
    """Serialise `rows` into `buffer` `chunk_rows` at a time, yielding the number of rows
    in the buffer after each chunk; the caller sends it (a flush empties the buffer) or
    reads it before the next chunk is written into the same memory.

    Reusing one buffer matters: growing a single buffer to a million rows (~180 MB)
    costs more in reallocation and page faults than the serialisation itself
    (bench/ingest.md).
    """
    for start in range(0, len(rows), chunk_rows):
        buffer.clear()
        chunk = rows.iloc[start : start + chunk_rows]
        fill_ilp_buffer(buffer, chunk)
        yield len(chunk)


class QuestDBCandleStore:
    """Candle store on QuestDB (the aws and vps shapes).

    `ilp_conf` is a questdb client configuration string (`http::addr=host:9000;` plus
    auth/TLS keys as needed); `pg_conninfo` a libpq connection string for the PGWire port
    (`host=... port=8812 user=admin password=quest dbname=qdb`).
    """

    name = "questdb"

    def __init__(
        self,
        ilp_conf: str,
        pg_conninfo: str,
        *,
        connect: PgConnect = _psycopg_connect,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not ilp_conf.startswith(("http::", "https::")):
            raise StoreError(
                f"questdb store: ILP config must use http:: or https:: (got {ilp_conf[:12]!r}); "
                "ILP over TCP cannot report rejected rows"
            )
        self.ilp_conf = ilp_conf
        self.pg_conninfo = pg_conninfo
        self._connect = connect
        self.chunk_rows = chunk_rows
        self._now = now
        self._schema_ready = False
        self.address = _conf_addr(ilp_conf)
        self._sender: Any = None
        self._sender_lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pg_port: int = 8812,
        user: str = "admin",
        password: str = "quest",
        **kwargs: Any,
    ) -> QuestDBCandleStore:
        """Store for a QuestDB at `url` (`http://host:9000`): ILP to that address, PGWire
        to the same host on `pg_port` with QuestDB's default credentials unless given."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"questdb store: URL must look like http://host:9000, got {url!r}")
        port = parts.port or 9000
        conf = f"{parts.scheme}::addr={parts.hostname}:{port};"
        pg = (
            f"host={parts.hostname} port={pg_port} user={parts.username or user} "
            f"password={parts.password or password} dbname=qdb"
        )
        return cls(conf, pg, **kwargs)

    def __repr__(self) -> str:
        return f"QuestDBCandleStore({self.address!r})"

    # -- SQL -------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            conn = self._connect(self.pg_conninfo)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"questdb at {self.address}: PGWire connection failed: {_first_line(exc)}"
            ) from exc
        try:
            return conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"questdb at {self.address}: {_first_line(exc)}") from exc
        finally:
            conn.close()

    def _execute(self, sql: str) -> None:
        import psycopg

        try:
            conn = self._connect(self.pg_conninfo)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"questdb at {self.address}: PGWire connection failed: {_first_line(exc)}"
            ) from exc
        try:
            conn.execute(sql)
        except psycopg.Error as exc:
            raise StoreError(f"questdb at {self.address}: {_first_line(exc)}") from exc
        finally:
            conn.close()

    def ensure_schema(self) -> None:
        """Create the tables (ohlcv, ticks, trades, order_book) if missing; once per store."""
        if self._schema_ready:
            return
        for ddl in SCHEMA_DDL:
            self._execute(ddl)
        self._schema_ready = True

    # -- port ------------------------------------------------------------------------
    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
        from questdb import QuestDBError, Sender

        from algotrendy.data.enrich import enrich_candles

        where = f"{self.name} store {exchange} {symbol} {timeframe}"
        check_candle_frame(frame, where)
        if not len(frame):
            return 0
        frame = _last_per_time(frame)
        rows = enrich_candles(
            frame, exchange=exchange, symbol=symbol, timeframe=timeframe, ingested_at=self._now()
        )
        self.ensure_schema()
        with self._sender_lock:
            try:
                if self._sender is None:
                    # One long-lived sender (the client's advice: each new one negotiates
                    # the protocol again with GET /settings).
                    sender: Any = Sender.from_conf(self.ilp_conf)
                    sender.establish()
                    self._sender = sender
                buffer = self._sender.new_buffer()
                for _ in ilp_batches(buffer, rows, self.chunk_rows):
                    # One HTTP request per chunk, applied as one transaction.
                    self._sender.flush(buffer, transactional=True)
            except QuestDBError as exc:
                self._drop_sender()
                raise _translate(exc, self.address, where) from exc
        return len(rows)

    def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                sender.close(flush=False)

    def close(self) -> None:
        """Close the ILP connection (a later write opens a new one)."""
        with self._sender_lock:
            self._drop_sender()

    def __enter__(self) -> QuestDBCandleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        import pandas as pd

        times, values = self._read_arrays(exchange, symbol, timeframe, start, end)
        index = pd.DatetimeIndex(times, name="time").tz_localize("UTC")
        return pd.DataFrame(values.T, index=index, columns=list(CANDLE_FRAME_COLUMNS))

    def read_bars(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Bars:
        times, values = self._read_arrays(exchange, symbol, timeframe, start, end)
        open_, high, low, close, volume = values
        return Bars(time=times, open=open_, high=high, low=low, close=close, volume=volume)

    def _read_arrays(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None,
        end: datetime | None,
    ) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.float64]]:
        """Open times (naive UTC datetime64[ns]) and a C-ordered (5, n) float64 array of
        open/high/low/close/volume: each row is one contiguous column, as `Bars` wants.
        The one conversion of PGWire rows, so `read` and `read_bars` cannot disagree."""
        self.ensure_schema()
        lo = _MIN_TS if start is None else utc(start).replace(tzinfo=None)
        hi = _MAX_TS if end is None else utc(end).replace(tzinfo=None)
        records = self._query(READ_SQL, (exchange, symbol, timeframe, lo, hi))
        # TIMESTAMP arrives without a zone (UTC by QuestDB's convention); accept a zoned
        # value too, should a server version send timestamptz. Python datetimes carry
        # microseconds, TIMESTAMP's resolution, so the us -> ns cast is exact.
        stamps = [r[0] if r[0].tzinfo is None else utc(r[0]).replace(tzinfo=None) for r in records]
        times = np.array(stamps, dtype="datetime64[us]").astype("datetime64[ns]")
        values = np.array([r[1:] for r in records], dtype=np.float64).reshape(len(records), 5)
        return times, np.ascontiguousarray(values.T)

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> datetime | None:
        self.ensure_schema()
        records = self._query(LAST_TS_SQL, (exchange, symbol, timeframe))
        if not records or records[0][0] is None:
            return None
        return utc(records[0][0])

    def wait_for_wal(self, timeout: float = 10.0, table: str = OHLCV_TABLE) -> None:
        """Block until QuestDB has applied every committed WAL transaction of `table`, so
        a read sees the last write (WAL tables apply asynchronously)."""
        deadline = _time.monotonic() + timeout
        while True:
            pending = self._query(WAL_PENDING_SQL, (table,))
            if not pending or not pending[0][0]:
                return
            if _time.monotonic() > deadline:
                raise StoreError(
                    f"questdb at {self.address}: table {table} still has {pending[0][0]} "
                    f"WAL transaction(s) pending after {timeout:.0f} s"
                )
            _time.sleep(0.05)


def _conf_addr(conf: str) -> str:
    for part in conf.split("::", 1)[-1].split(";"):
        key, _, value = part.partition("=")
        if key.strip() == "addr":
            return value.strip()
    return "localhost:9000"


def _last_per_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted rows with one row per open time, the last given winning (the same rule
    QuestDB's dedup applies across writes, made explicit within one write)."""
    import pandas as pd

    index = pd.DatetimeIndex(frame.index)
    if index.is_monotonic_increasing and index.is_unique:
        return frame
    times = index.as_unit("ns").asi8
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    last = np.ones(sorted_times.size, dtype=bool)
    last[:-1] = sorted_times[:-1] != sorted_times[1:]
    return frame.iloc[order[last]]


# ProtocolVersionError: the client's `GET /settings` (protocol negotiation) failed, which is
# what an unreachable server looks like before any row is sent.
_UNAVAILABLE_CODES: Final = frozenset(
    {
        "CouldNotResolveAddr",
        "SocketError",
        "ConnectTimeout",
        "TlsError",
        "HandshakeError",
        "ProtocolVersionError",
    }
)


def _translate(exc: Any, address: str, where: str) -> StoreError:
    code = getattr(getattr(exc, "code", None), "name", "")
    if code in _UNAVAILABLE_CODES:
        return StoreUnavailableError(f"questdb at {address}: unreachable ({_first_line(exc)})")
    return StoreError(f"{where}: QuestDB rejected the write ({_first_line(exc)})")
