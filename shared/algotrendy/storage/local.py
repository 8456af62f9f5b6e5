"""The embedded candle store: Parquet files under a data directory, one folder per series.

Layout (names percent-encoded, so `BTC/USDT` is one folder, `BTC%2FUSDT`)::

    <data_dir>/ohlcv/<exchange>/<symbol>/<timeframe>/2023.parquet
                                                    /2024.parquet

Files partition a series by UTC calendar year (by month for sub-minute bars), so an append
rewrites one small file instead of the whole history and a range read opens only the
files it overlaps. A year of 1m bars is 525,600 rows, about 20 MB.

Guarantees (the `CandleStore` contract):
- dedupe: rows are keyed by open time; a write replaces stored rows with the same open
  time (last write wins) and drops duplicates within the frame (last row wins);
- atomic writes: every touched partition is written to a temporary file in the same
  folder, fsynced, then renamed over the old one (`os.replace` is atomic on POSIX). If
  anything fails before the renames, the temporary files are removed and the store is as
  it was. The renames go oldest partition first, so even a crash between two renames
  leaves a prefix applied and `last_timestamp` never skips a hole;
- one writer per series at a time (an exclusive `flock` on `<series>/.lock`); readers
  need no lock because a partition file is only ever replaced whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from algotrendy.data.normalise import parse_timeframe
from algotrendy.domain.bars import Bars
from algotrendy.domain.market import CANDLE_FRAME_COLUMNS
from algotrendy.errors import DataError
from algotrendy.storage.base import StoreError, check_candle_frame, empty_candle_frame, utc

_TS_TYPE: Final = pa.timestamp("ns", tz="UTC")
SCHEMA: Final = pa.schema(
    [
        pa.field("time", _TS_TYPE, nullable=False),
        *(pa.field(c, pa.float64(), nullable=False) for c in CANDLE_FRAME_COLUMNS),
        pa.field("ingested_at", _TS_TYPE),
    ]
)
_ROW_GROUP: Final = 131_072


def _encode(part: str, what: str) -> str:
    if not isinstance(part, str) or not part.strip():
        raise DataError(f"{what} must be a non-empty string, got {part!r}")
    if part in (".", ".."):
        raise DataError(f"{what} {part!r} is not a valid name")
    return quote(part, safe="")


def _partition_unit(timeframe: str) -> str:
    """numpy datetime unit of a partition: a year, or a month for sub-minute bars."""
    step = parse_timeframe(timeframe)
    return "M" if step is not None and step < timedelta(minutes=1) else "Y"


class LocalCandleStore:
    """Candle store on the local disk (the local shape's default)."""

    name = "local"

    def __init__(self, data_dir: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(data_dir).expanduser() / "ohlcv"
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalCandleStore({str(self.root.parent)!r})"

    # -- paths -----------------------------------------------------------------------
    def series_dir(self, exchange: str, symbol: str, timeframe: str) -> Path:
        return (
            self.root
            / _encode(exchange, "exchange")
            / _encode(symbol, "symbol")
            / _encode(timeframe, "timeframe")
        )

    @staticmethod
    def _partitions(folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("[0-9]*.parquet") if p.is_file())

    @contextlib.contextmanager
    def _locked(self, folder: Path) -> Iterator[None]:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- write -----------------------------------------------------------------------
    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
        where = f"{self.name} store {exchange} {symbol} {timeframe}"
        check_candle_frame(frame, where)
        folder = self.series_dir(exchange, symbol, timeframe)
        if not len(frame):
            return 0
        new = _to_table(frame)
        times = _times(new)
        # Within the frame: stable sort, then keep the last row of each open time.
        order = np.argsort(times, kind="stable")
        times = times[order]
        last = np.ones(times.size, dtype=bool)
        last[:-1] = times[:-1] != times[1:]
        new, times = new.take(pa.array(order[last])), times[last]

        unit = _partition_unit(timeframe)
        keys = times.view("datetime64[ns]").astype(f"datetime64[{unit}]")
        bounds = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [times.size]])

        with self._locked(folder):
            for stale in folder.glob(".tmp-*"):
                stale.unlink(missing_ok=True)  # left by a writer that was killed
            staged: list[tuple[Path, Path]] = []
            try:
                for a, b in zip(starts, ends, strict=True):
                    target = folder / f"{_partition_name(keys[a], unit)}.parquet"
                    merged = _merge(target, new.slice(a, b - a), where)
                    tmp = folder / f".tmp-{uuid.uuid4().hex}-{target.name}"
                    staged.append((tmp, target))
                    pq.write_table(
                        merged,
                        tmp,
                        row_group_size=_ROW_GROUP,
                        compression="lz4",
                        use_dictionary=["ingested_at"],
                    )
                    if self.fsync:
                        _fsync(tmp)
            except BaseException:
                for tmp, _ in staged:
                    tmp.unlink(missing_ok=True)
                raise
            for tmp, target in staged:  # oldest partition first
                os.replace(tmp, target)
            if self.fsync:
                _fsync_dir(folder)
        return int(times.size)

    # -- read ------------------------------------------------------------------------
    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        folder = self.series_dir(exchange, symbol, timeframe)
        lo = None if start is None else pd.Timestamp(utc(start)).as_unit("ns").value
        hi = None if end is None else pd.Timestamp(utc(end)).as_unit("ns").value
        tables = []
        for path in self._partitions(folder):
            p_start, p_end = _partition_span(path.stem)
            if (hi is not None and p_start >= hi) or (lo is not None and p_end <= lo):
                continue
            table = _read(path, columns=["time", *CANDLE_FRAME_COLUMNS])
            t = _times(table)
            a = 0 if lo is None else int(np.searchsorted(t, lo, side="left"))
            b = t.size if hi is None else int(np.searchsorted(t, hi, side="left"))
            if b > a:
                tables.append(table.slice(a, b - a))
        if not tables:
            return empty_candle_frame()
        table = pa.concat_tables(tables).combine_chunks()
        index = pd.DatetimeIndex(
            table.column("time").to_numpy().view("datetime64[ns]"),
            dtype="datetime64[ns, UTC]",
            name="time",
        )
        data = {c: table.column(c).to_numpy() for c in CANDLE_FRAME_COLUMNS}
        return pd.DataFrame(data, index=index, copy=False)

    def read_bars(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Bars:
        # Through the frame: this store needs pandas and pyarrow anyway, and the frame it
        # builds wraps the Arrow buffers without copying.
        return Bars.from_frame(self.read(exchange, symbol, timeframe, start, end))

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> datetime | None:
        parts = self._partitions(self.series_dir(exchange, symbol, timeframe))
        if not parts:
            return None
        t = _times(_read(parts[-1], columns=["time"]))
        if not t.size:
            return None
        stamp: datetime = pd.Timestamp(int(t[-1]), unit="ns", tz="UTC").to_pydatetime()
        return stamp


def _partition_name(key: np.datetime64, unit: str) -> str:
    text = str(key)
    return text[:4] if unit == "Y" else text[:7]


def _partition_span(stem: str) -> tuple[int, int]:
    """[start, end) of a partition named `2024` (a year) or `2024-01` (a month), in ns."""
    start = np.datetime64(stem)
    return (
        int(start.astype("datetime64[ns]").astype(np.int64)),
        int((start + 1).astype("datetime64[ns]").astype(np.int64)),
    )


def _ts_array(ns: np.ndarray) -> pa.Array:
    """UTC timestamp array from int64 nanoseconds since the epoch (zero-copy)."""
    return pa.array(ns.view("datetime64[ns]"), type=_TS_TYPE)


def _to_table(frame: pd.DataFrame) -> pa.Table:
    index = pd.DatetimeIndex(frame.index).tz_convert("UTC").as_unit("ns")
    arrays: list[pa.Array] = [_ts_array(index.asi8)]
    for col in CANDLE_FRAME_COLUMNS:
        arrays.append(pa.array(frame[col].to_numpy(dtype=np.float64, copy=False)))
    if "ingested_at" in frame.columns:
        stamped = pd.DatetimeIndex(frame["ingested_at"])
        stamped = stamped.tz_localize("UTC") if stamped.tz is None else stamped.tz_convert("UTC")
        arrays.append(_ts_array(stamped.as_unit("ns").asi8))
    else:
        now = pd.Timestamp(datetime.now(UTC)).as_unit("ns").value
        arrays.append(_ts_array(np.full(len(frame), now, dtype=np.int64)))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _times(table: pa.Table) -> np.ndarray:
    """Open times as int64 ns (zero-copy when the column is one chunk)."""
    column = table.column("time")
    if column.num_chunks != 1:
        column = column.combine_chunks()
        return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False))
    return np.asarray(column.chunk(0).cast(pa.int64()).to_numpy(zero_copy_only=False))


def _read(path: Path, *, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"local store: cannot read {path}: {exc}") from exc


def _merge(target: Path, new: pa.Table, where: str) -> pa.Table:
    """Stored rows of `target` overlaid with `new` (sorted, unique open times): rows of
    `new` replace stored rows with the same open time."""
    if not target.exists():
        return new
    old = _read(target)
    if old.schema != SCHEMA:
        try:
            old = old.select(SCHEMA.names).cast(SCHEMA)
        except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise StoreError(f"{where}: {target} has an unexpected schema ({exc})") from exc
    old_t, new_t = _times(old), _times(new)
    if not old_t.size:
        return new
    if new_t[0] > old_t[-1]:  # plain append: the common case of an incremental ingest
        return pa.concat_tables([old, new])
    keep = np.ones(old_t.size, dtype=bool)
    pos = np.searchsorted(new_t, old_t)
    inside = pos < new_t.size
    keep[inside] = new_t[pos[inside]] != old_t[inside]
    merged = pa.concat_tables([old.filter(pa.array(keep)), new])
    order = np.argsort(_times(merged.combine_chunks()), kind="stable")
    return merged.take(pa.array(order))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        _fsync(folder)
