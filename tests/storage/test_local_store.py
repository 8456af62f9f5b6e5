"""LocalCandleStore beyond the shared contract: layout on disk, atomic writes, locking."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from algotrendy.errors import DataError, ParameterError
from algotrendy.storage import local as local_module
from algotrendy.storage.base import StoreError
from algotrendy.storage.local import SCHEMA, LocalCandleStore

T0 = datetime(2023, 12, 31, 22, tzinfo=UTC)


def candles(start: datetime, n: int, step: timedelta = timedelta(hours=1)) -> pd.DataFrame:
    values = np.arange(1, n + 1, dtype=np.float64)
    index = pd.DatetimeIndex(
        [start + i * step for i in range(n)], dtype="datetime64[ns, UTC]", name="time"
    )
    return pd.DataFrame(
        {
            "open": values,
            "high": values + 1,
            "low": values - 0.5,
            "close": values,
            "volume": values,
        },
        index=index,
    )


def stored_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock")


def test_layout_is_one_file_per_year_under_encoded_names(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path)
    store.write(candles(T0, 4), "binance", "BTC/USDT", "1h")  # 22:00, 23:00, 00:00, 01:00
    folder = tmp_path / "ohlcv" / "binance" / "BTC%2FUSDT" / "1h"
    assert store.series_dir("binance", "BTC/USDT", "1h") == folder
    assert stored_files(folder) == ["2023.parquet", "2024.parquet"]
    assert pq.read_table(folder / "2023.parquet").num_rows == 2
    assert pq.read_table(folder / "2024.parquet").schema == SCHEMA


def test_sub_minute_bars_are_partitioned_by_month(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path)
    start = datetime(2024, 1, 31, 23, 59, 58, tzinfo=UTC)
    store.write(candles(start, 4, timedelta(seconds=1)), "binance", "BTC/USDT", "1s")
    folder = store.series_dir("binance", "BTC/USDT", "1s")
    assert stored_files(folder) == ["2024-01.parquet", "2024-02.parquet"]
    out = store.read("binance", "BTC/USDT", "1s", start + timedelta(seconds=1))
    assert out.index.tolist() == [start + timedelta(seconds=s) for s in (1, 2, 3)]


def test_ingested_at_is_kept_on_disk(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path)
    stamp = pd.Timestamp("2024-05-01 10:00:00.5", tz="UTC")
    store.write(candles(T0, 2).assign(ingested_at=stamp), "binance", "BTC/USDT", "1h")
    table = pq.read_table(store.series_dir("binance", "BTC/USDT", "1h") / "2023.parquet")
    assert table.column("ingested_at").to_pylist() == [stamp.to_pydatetime()] * 2


@pytest.mark.parametrize(("field", "value"), [("exchange", ".."), ("symbol", ""), ("symbol", ".")])
def test_names_that_would_escape_the_folder_are_refused(
    tmp_path: Path, field: str, value: str
) -> None:
    names = {"exchange": "binance", "symbol": "BTC/USDT"} | {field: value}
    with pytest.raises(DataError, match=field):
        LocalCandleStore(tmp_path).write(candles(T0, 1), names["exchange"], names["symbol"], "1h")


def test_bad_timeframe_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="timeframe 'hourly'"):
        LocalCandleStore(tmp_path).write(candles(T0, 1), "binance", "BTC/USDT", "hourly")


def test_failed_write_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalCandleStore(tmp_path)
    before = candles(T0, 4)
    store.write(before, "binance", "BTC/USDT", "1h")
    folder = store.series_dir("binance", "BTC/USDT", "1h")
    bytes_before = {name: (folder / name).read_bytes() for name in stored_files(folder)}

    real_write = pq.write_table
    calls = {"n": 0}

    def fail_on_second_partition(table: object, where: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("No space left on device")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(local_module.pq, "write_table", fail_on_second_partition)
    overwrite = candles(T0, 4) * 10.0  # touches 2023 and 2024
    with pytest.raises(OSError, match="No space left"):
        store.write(overwrite, "binance", "BTC/USDT", "1h")
    assert calls["n"] == 2
    # No temporary file left, no partition replaced: the first partition's new version was
    # staged but never renamed into place.
    assert {name: (folder / name).read_bytes() for name in stored_files(folder)} == bytes_before
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), before)


def test_failed_first_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(local_module.pq, "write_table", fail)
    store = LocalCandleStore(tmp_path)
    with pytest.raises(OSError, match="disk gone"):
        store.write(candles(T0, 4), "binance", "BTC/USDT", "1h")
    assert stored_files(store.series_dir("binance", "BTC/USDT", "1h")) == []
    assert store.last_timestamp("binance", "BTC/USDT", "1h") is None


def test_leftover_temp_files_are_ignored_then_cleaned(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path)
    folder = store.series_dir("binance", "BTC/USDT", "1h")
    folder.mkdir(parents=True)
    (folder / ".tmp-dead-2023.parquet").write_bytes(b"half a file from a killed writer")
    assert store.read("binance", "BTC/USDT", "1h").empty
    store.write(candles(T0, 1), "binance", "BTC/USDT", "1h")
    assert stored_files(folder) == ["2023.parquet"]


def test_corrupt_partition_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path)
    store.write(candles(T0, 1), "binance", "BTC/USDT", "1h")
    path = store.series_dir("binance", "BTC/USDT", "1h") / "2023.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(StoreError, match=r"2023\.parquet"):
        store.read("binance", "BTC/USDT", "1h")


def test_concurrent_writers_to_one_partition_lose_nothing(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path, fsync=False)
    writers = 6
    per_writer = 50
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=k * per_writer)
            for i in range(0, per_writer, 10):  # several read-merge-replace cycles each
                store.write(candles(start + timedelta(hours=i), 10), "binance", "BTC/USDT", "1h")
        except Exception as exc:  # noqa: BLE001 - asserted empty below (a thread cannot fail a test)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    out = store.read("binance", "BTC/USDT", "1h")
    assert len(out) == writers * per_writer
    assert out.index.is_monotonic_increasing
    assert out.index.is_unique


def test_range_read_touches_only_overlapping_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalCandleStore(tmp_path)
    store.write(candles(datetime(2021, 12, 31, 23, tzinfo=UTC), 3), "binance", "X/Y", "1h")
    store.write(candles(datetime(2023, 6, 1, tzinfo=UTC), 3), "binance", "X/Y", "1h")
    opened: list[str] = []
    real_read = local_module.pq.read_table

    def spy(path: Path, **kwargs: object) -> object:
        opened.append(Path(path).name)
        return real_read(path, **kwargs)

    monkeypatch.setattr(local_module.pq, "read_table", spy)
    out = store.read(
        "binance", "X/Y", "1h", datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert opened == ["2023.parquet"]
    assert len(out) == 3
