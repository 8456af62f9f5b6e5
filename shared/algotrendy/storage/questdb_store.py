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

import time as _time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from algotrendy.domain.bars import Bars
from algotrendy.domain.market import CANDLE_FRAME_COLUMNS
from algotrendy.storage.base import StoreError, check_candle_frame, utc
from algotrendy.storage.questdb_client import (
    PgConnect,
    QuestDBClient,
    naive_bounds,
    psycopg_connect,
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

# ILP/HTTP default max_buf_size is 100 MiB; a v2 candle row is ~180 bytes.
DEFAULT_CHUNK_ROWS: Final = 100_000


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


class QuestDBCandleStore(QuestDBClient):
    """Candle store on QuestDB (the aws and vps shapes); configuration strings and
    `from_url` as `QuestDBClient`."""

    schema_ddl = SCHEMA_DDL  # ohlcv, ticks, trades, order_book

    def __init__(
        self,
        ilp_conf: str,
        pg_conninfo: str,
        *,
        connect: PgConnect = psycopg_connect,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(ilp_conf, pg_conninfo, connect=connect, now=now)
        self.chunk_rows = chunk_rows

    # -- port ------------------------------------------------------------------------
    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
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
        with self._ilp_sender(where) as sender:
            buffer = sender.new_buffer()
            for _ in ilp_batches(buffer, rows, self.chunk_rows):
                # One HTTP request per chunk, applied as one transaction.
                sender.flush(buffer, transactional=True)
        return len(rows)

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
        lo, hi = naive_bounds(start, end)
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
