"""One contract for every CandleStore adapter (`algotrendy.storage.base.CandleStore`).

Backends:
- `local`: LocalCandleStore in a temp folder;
- `lazy`: the API's LazyCandleStore over a LocalCandleStore (it must delegate every
  method of the port);
- `questdb`: QuestDBCandleStore writing through the real `questdb` Sender over HTTP to a
  loopback ILP endpoint and reading through a PGWire stand-in, both backed by one table
  with QuestDB's dedup-upsert semantics (tests/storage/qdb_fake.py);
- `questdb-live`: a real QuestDB when QUESTDB_URL is set (e.g. http://127.0.0.1:9000,
  PGWire on port 8812, admin/quest); each test writes under its own exchange name, so
  runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdb_fake import FakeQuestDB, IlpHttpServer

from algotrendy.api.context import LazyCandleStore
from algotrendy.domain.bars import Bars
from algotrendy.errors import DataError
from algotrendy.storage.base import CandleStore
from algotrendy.storage.local import LocalCandleStore
from algotrendy.storage.questdb_store import QuestDBCandleStore

COLUMNS = ["open", "high", "low", "close", "volume"]
T0 = datetime(2023, 12, 31, 20, tzinfo=UTC)


@dataclass
class Backend:
    store: CandleStore
    exchange: str
    sync: Callable[[], None]


@pytest.fixture(params=["local", "lazy", "questdb", "questdb-live"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        yield Backend(LocalCandleStore(tmp_path), "binance", lambda: None)
        return
    if request.param == "lazy":
        yield Backend(LazyCandleStore(lambda: LocalCandleStore(tmp_path)), "binance", lambda: None)
        return
    if request.param == "questdb":
        db = FakeQuestDB()
        with (
            IlpHttpServer(on_write=db.ingest) as server,
            QuestDBCandleStore(server.conf, "host=fake", connect=db.connect) as store,
        ):
            yield Backend(store, "binance", lambda: None)
        return
    url = os.environ.get("QUESTDB_URL")
    if not url:
        pytest.skip("QUESTDB_URL is not set: no live QuestDB to run the contract against")
    with QuestDBCandleStore.from_url(url) as live:
        yield Backend(live, f"test-{uuid.uuid4().hex[:12]}", live.wait_for_wal)


def candles(
    start: datetime, n: int, *, step: timedelta = timedelta(hours=1), seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 + np.cumsum(rng.normal(0, 1, n))
    open_ = close + rng.normal(0, 0.5, n)
    high = np.maximum(open_, close) + rng.uniform(0, 1, n)
    low = np.minimum(open_, close) - rng.uniform(0, 1, n)
    volume = rng.uniform(0, 1000, n)
    index = pd.DatetimeIndex(
        [start + i * step for i in range(n)], dtype="datetime64[ns, UTC]", name="time"
    )
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == COLUMNS
    assert actual.index.name == "time"
    assert str(actual.index.dtype) == "datetime64[ns, UTC]"
    assert actual.index.tolist() == expected.index.tolist()
    np.testing.assert_array_equal(actual.to_numpy(), expected[COLUMNS].to_numpy())


BAR_FIELDS = ("time", "open", "high", "low", "close", "volume")


def read_bars_checked(
    store: CandleStore,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Bars:
    """`read_bars` of a range, checked equal to `Bars.from_frame(read(...))` of the same
    range: same dtypes (times datetime64[ns]), same values, each array contiguous."""
    bars = store.read_bars(exchange, symbol, timeframe, start, end)
    via_frame = Bars.from_frame(store.read(exchange, symbol, timeframe, start, end))
    assert isinstance(bars, Bars)
    for name in BAR_FIELDS:
        got, want = getattr(bars, name), getattr(via_frame, name)
        assert got.dtype == want.dtype, name
        assert got.flags.c_contiguous, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert bars.time.dtype == np.dtype("datetime64[ns]")
    assert all(getattr(bars, c).dtype == np.float64 for c in COLUMNS)
    return bars


def assert_bars_are(bars: Bars, expected: pd.DataFrame) -> None:
    """`bars` hold the rows of `expected` (a candle frame built by the test)."""
    want = pd.DatetimeIndex(expected.index).as_unit("ns").tz_convert("UTC").tz_localize(None)
    np.testing.assert_array_equal(bars.time, want.to_numpy())
    for c in COLUMNS:
        np.testing.assert_array_equal(getattr(bars, c), expected[c].to_numpy(), err_msg=c)


def test_write_then_read_returns_the_same_rows(backend: Backend) -> None:
    frame = candles(T0, 10)  # crosses 2024-01-01: two partitions in the local store
    assert backend.store.write(frame, backend.exchange, "BTC/USDT", "1h") == 10
    backend.sync()
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h"), frame)


def test_read_bars_is_the_read_as_bars(backend: Backend) -> None:
    frame = candles(T0, 10)
    backend.store.write(frame, backend.exchange, "BTC/USDT", "1h")
    backend.sync()
    assert_bars_are(read_bars_checked(backend.store, backend.exchange, "BTC/USDT", "1h"), frame)


def test_read_bars_ranges_are_start_inclusive_end_exclusive(backend: Backend) -> None:
    frame = candles(T0, 10)
    backend.store.write(frame, backend.exchange, "BTC/USDT", "1h")
    backend.sync()
    ex, t = backend.exchange, frame.index
    start, end = t[2].to_pydatetime(), t[7].to_pydatetime()
    eastern = start.astimezone(pd.Timestamp("2024-01-01", tz="America/New_York").tzinfo)
    ranges: list[tuple[datetime | None, datetime | None, pd.DataFrame]] = [
        (start, end, frame[2:7]),
        (start, None, frame[2:]),
        (None, end, frame[:7]),
        (eastern, end, frame[2:7]),  # another zone, the same instants
        (start, start + timedelta(microseconds=1), frame[2:3]),  # the evaluator's end bound
        (t[-1].to_pydatetime() + timedelta(hours=1), None, frame[:0]),  # after the last bar
        (start, start, frame[:0]),
    ]
    for lo, hi, expected in ranges:
        bars = read_bars_checked(backend.store, ex, "BTC/USDT", "1h", lo, hi)
        assert_bars_are(bars, expected)


def test_read_bars_of_an_unknown_series_is_empty(backend: Backend) -> None:
    backend.store.write(candles(T0, 3), backend.exchange, "BTC/USDT", "1h")
    backend.sync()
    for symbol, timeframe in (("NOPE/USDT", "1h"), ("BTC/USDT", "4h")):
        bars = read_bars_checked(backend.store, backend.exchange, symbol, timeframe)
        assert len(bars) == 0
        assert all(getattr(bars, name).shape == (0,) for name in BAR_FIELDS)
    ranged = read_bars_checked(
        backend.store, backend.exchange, "NOPE/USDT", "1h", T0, T0 + timedelta(days=1)
    )
    assert len(ranged) == 0


def test_unknown_series_reads_empty_and_has_no_last_timestamp(backend: Backend) -> None:
    out = backend.store.read(backend.exchange, "NOPE/USDT", "1h")
    assert out.empty
    assert list(out.columns) == COLUMNS
    assert str(out.index.dtype) == "datetime64[ns, UTC]"
    assert all(out[c].dtype == np.float64 for c in COLUMNS)
    assert backend.store.last_timestamp(backend.exchange, "NOPE/USDT", "1h") is None


def test_range_read_is_start_inclusive_end_exclusive(backend: Backend) -> None:
    frame = candles(T0, 10)
    backend.store.write(frame, backend.exchange, "BTC/USDT", "1h")
    backend.sync()
    start, end = frame.index[2].to_pydatetime(), frame.index[7].to_pydatetime()
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h", start, end), frame[2:7])
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h", start=start), frame[2:])
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h", end=end), frame[:7])
    # Bounds in another zone mean the same instants.
    eastern = start.astimezone(pd.Timestamp("2024-01-01", tz="America/New_York").tzinfo)
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h", eastern, end), frame[2:7])


def test_rewriting_a_range_leaves_one_row_per_timestamp(backend: Backend) -> None:
    frame = candles(T0, 10)
    backend.store.write(frame, backend.exchange, "BTC/USDT", "1h")
    backend.store.write(frame, backend.exchange, "BTC/USDT", "1h")
    backend.sync()
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h"), frame)


def test_overlapping_write_wins_and_extends(backend: Backend) -> None:
    first = candles(T0, 10, seed=1)
    second = candles(T0 + timedelta(hours=6), 8, seed=2)  # rows 6..9 overlap, 10..13 new
    backend.store.write(first, backend.exchange, "BTC/USDT", "1h")
    backend.store.write(second, backend.exchange, "BTC/USDT", "1h")
    backend.sync()
    expected = pd.concat([first[:6], second])
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h"), expected)
    assert backend.store.last_timestamp(backend.exchange, "BTC/USDT", "1h") == second.index[-1]


def test_duplicates_within_a_frame_keep_the_last_row(backend: Backend) -> None:
    frame = candles(T0, 4)
    later = frame.iloc[[1]] * 2.0
    written = backend.store.write(pd.concat([frame, later]), backend.exchange, "BTC/USDT", "1h")
    backend.sync()
    assert written == 4
    expected = frame.copy()
    expected.iloc[1] = later.iloc[0]
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h"), expected)


def test_unsorted_input_reads_back_sorted(backend: Backend) -> None:
    frame = candles(T0, 6)
    backend.store.write(frame.iloc[[3, 0, 5, 1, 4, 2]], backend.exchange, "BTC/USDT", "1h")
    backend.sync()
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h"), frame)


def test_series_are_isolated(backend: Backend) -> None:
    a, b, c = candles(T0, 3, seed=1), candles(T0, 3, seed=2), candles(T0, 3, seed=3)
    backend.store.write(a, backend.exchange, "BTC/USDT", "1h")
    backend.store.write(b, backend.exchange, "ETH/USDT", "1h")
    backend.store.write(c, backend.exchange, "BTC/USDT", "4h")
    backend.sync()
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "1h"), a)
    assert_same(backend.store.read(backend.exchange, "ETH/USDT", "1h"), b)
    assert_same(backend.store.read(backend.exchange, "BTC/USDT", "4h"), c)
    assert backend.store.read(backend.exchange + "x", "BTC/USDT", "1h").empty


def test_empty_frame_writes_nothing(backend: Backend) -> None:
    assert backend.store.write(candles(T0, 0), backend.exchange, "BTC/USDT", "1h") == 0
    assert backend.store.last_timestamp(backend.exchange, "BTC/USDT", "1h") is None


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda f: f.drop(columns="close"), "missing column(s) close"),
        (lambda f: f.tz_convert(None), "index must be UTC"),
        (lambda f: f.astype({"open": "float32"}), "column open must be float64"),
        (lambda f: f.reset_index(), "index must be a DatetimeIndex"),
    ],
)
def test_bad_frames_are_refused_naming_the_problem(
    backend: Backend, mangle: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        backend.store.write(mangle(candles(T0, 3)), backend.exchange, "BTC/USDT", "1h")
    assert backend.store.last_timestamp(backend.exchange, "BTC/USDT", "1h") is None


# Writes of random subsets of a 1h grid: the store must behave like a dict keyed by open
# time where each write overwrites (the model), whatever the order and overlap.
_writes = st.lists(
    st.lists(
        st.tuples(st.integers(0, 47), st.floats(1.0, 1e6, allow_nan=False)),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(writes=_writes)
def test_store_behaves_like_last_write_wins_map(backend: Backend, writes) -> None:
    symbol = f"P{uuid.uuid4().hex[:8]}/USDT"  # fresh series per example
    model: dict[int, float] = {}
    for batch in writes:
        hours = [h for h, _ in batch]
        prices = np.array([p for _, p in batch])
        index = pd.DatetimeIndex([T0 + timedelta(hours=h) for h in hours], name="time")
        frame = pd.DataFrame(
            {"open": prices, "high": prices, "low": prices, "close": prices, "volume": prices},
            index=index.as_unit("ns"),
        )
        backend.store.write(frame, backend.exchange, symbol, "1h")
        for h, p in batch:
            model[h] = p
    backend.sync()
    out = backend.store.read(backend.exchange, symbol, "1h")
    expected_times = [T0 + timedelta(hours=h) for h in sorted(model)]
    assert out.index.tolist() == expected_times
    assert out["close"].tolist() == [model[h] for h in sorted(model)]
    bars = read_bars_checked(backend.store, backend.exchange, symbol, "1h")
    assert bars.close.tolist() == [model[h] for h in sorted(model)]
    last = backend.store.last_timestamp(backend.exchange, symbol, "1h")
    assert last == expected_times[-1]
