from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.data import load_ohlcv, loaders, validate_ohlcv
from algotrendy.data.loaders import _any_problem
from algotrendy.domain.bars import Bars
from algotrendy.errors import DataError

OHLCV = Path(__file__).parents[1] / "fixtures" / "ohlcv"


def _write(tmp_path: Path, text: str, name: str = "x.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_iso_dates_become_utc_index(goog: pd.DataFrame) -> None:
    assert list(goog.columns) == ["open", "high", "low", "close", "volume"]
    assert str(goog.index.tz) == "UTC"
    assert goog.index[0] == pd.Timestamp("2004-08-19", tz="UTC")
    assert len(goog) == 2148
    assert goog["close"].iloc[0] == pytest.approx(100.34)


def test_epoch_milliseconds_detected() -> None:
    df = load_ohlcv(OHLCV / "freqtrade_UNITTEST_BTC_1m.csv")
    # 1509836520000 ms = 2017-11-04 23:02:00 UTC
    assert df.index[0] == pd.Timestamp("2017-11-04 23:02:00", tz="UTC")
    assert (np.diff(df.index.asi8) > 0).all()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_700_000_000, "2023-11-14 22:13:20"),  # seconds
        (1_700_000_000_000, "2023-11-14 22:13:20"),  # milliseconds
        (1_700_000_000_000_000, "2023-11-14 22:13:20"),  # microseconds
    ],
)
def test_epoch_units(tmp_path: Path, value: int, expected: str) -> None:
    p = _write(tmp_path, f"ts,open,high,low,close,volume\n{value},1,2,0.5,1.5,10\n")
    assert load_ohlcv(p).index[0] == pd.Timestamp(expected, tz="UTC")


def test_capitalised_columns_and_missing_volume(tmp_path: Path) -> None:
    p = _write(
        tmp_path, "Date,Open,High,Low,Close\n2024-01-02,1,2,0.5,1.5\n2024-01-03,1.5,2,1,1.2\n"
    )
    df = load_ohlcv(p)
    assert df["volume"].tolist() == [0.0, 0.0]
    assert df["close"].tolist() == [1.5, 1.2]


def test_offset_timestamps_converted_to_utc(tmp_path: Path) -> None:
    p = _write(
        tmp_path, "time,open,high,low,close,volume\n2024-01-02T10:00:00+02:00,1,2,0.5,1.5,1\n"
    )
    assert load_ohlcv(p).index[0] == pd.Timestamp("2024-01-02 08:00", tz="UTC")


def test_parquet_roundtrip(tmp_path: Path, goog: pd.DataFrame) -> None:
    p = tmp_path / "goog.parquet"
    goog.reset_index().to_parquet(p)
    back = load_ohlcv(p)
    pd.testing.assert_frame_equal(back, goog, check_freq=False)


def test_dataframe_with_datetime_index(goog: pd.DataFrame) -> None:
    frame = goog.rename(columns=str.capitalize)
    frame.index.name = None
    pd.testing.assert_frame_equal(load_ohlcv(frame), goog, check_names=False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("open,high,low,close\n1,2,0.5,1\n", "no time column"),
        ("time,open,high,close\n2024-01-01,1,2,1\n", "missing column(s) low"),
        ("time,open,high,low,close\n2024-01-01,1,2,0.5,abc\n", "row 1, column close: not a number"),
        (
            "time,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-01,1,2,0.5,1\n",
            "row 2 (2024-01-01 00:00:00+00:00): column time: duplicate timestamp",
        ),
        (
            "time,open,high,low,close\n2024-01-02,1,2,0.5,1\n2024-01-01,1,2,0.5,1\n",
            "timestamp before previous row",
        ),
        (
            "time,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,1.5,0.5,1.6\n",
            "row 2 (2024-01-02 00:00:00+00:00): column high: high 1.5 below max(open, close) 1.6",
        ),
        (
            "time,open,high,low,close\n2024-01-01,1,2,1.2,1.5\n",
            "column low: low 1.2 above min(open, close) 1.0",
        ),
        (
            "time,open,high,low,close\n2024-01-01,-1,2,0.5,1\n",
            "column open: price must be a positive number, got -1.0",
        ),
        (
            "time,open,high,low,close,volume\n2024-01-01,1,2,0.5,1,-5\n",
            "column volume: must be >= 0",
        ),
        ("time,open,high,low,close\nnot-a-date,1,2,0.5,1\n", "unreadable timestamp at row 1"),
        ("time,open,high,low,close\n", "no rows"),
    ],
)
def test_bad_files_name_row_and_column(tmp_path: Path, body: str, message: str) -> None:
    p = _write(tmp_path, body)
    with pytest.raises(DataError) as err:
        load_ohlcv(p)
    assert message in str(err.value)
    assert str(p) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_ohlcv(tmp_path / "nope.csv")


def test_binary_garbage_is_a_data_error(tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    p.write_bytes(b"\x00\x01garbage")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_ohlcv(p)


def test_validate_requires_datetime_index() -> None:
    with pytest.raises(DataError, match="DatetimeIndex"):
        validate_ohlcv(pd.DataFrame({"open": [1.0]}))


def test_every_fixture_loads_and_validates() -> None:
    for path in sorted(OHLCV.glob("*.csv")):
        df = load_ohlcv(path)
        assert len(df) > 100, path
        assert df.index.is_monotonic_increasing


@st.composite
def _frames_with_at_most_one_fault(draw: st.DrawFn) -> pd.DataFrame:
    """A valid OHLCV frame, then (usually) one cell or timestamp broken."""
    n = draw(st.integers(1, 10))
    price = st.floats(1.0, 100.0)
    o = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    c = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    up = np.array(draw(st.lists(st.sampled_from([0.0, 0.5]), min_size=n, max_size=n)))
    down = np.array(draw(st.lists(st.sampled_from([0.0, 0.5]), min_size=n, max_size=n)))
    frame = pd.DataFrame(
        {"open": o, "high": np.maximum(o, c) + up, "low": np.minimum(o, c) - down,
         "close": c, "volume": np.array(draw(st.lists(st.sampled_from([0.0, 5.0]),
                                                      min_size=n, max_size=n)))},
        index=pd.DatetimeIndex(
            pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), "min"),
            name="time",
        ),
    )  # fmt: skip
    fault = draw(st.sampled_from(["none", "cell", "time"]))
    row = draw(st.integers(0, n - 1))
    if fault == "cell":
        column = draw(st.sampled_from(list(frame.columns)))
        bad = draw(st.sampled_from([0.0, -1.0, np.nan, np.inf, -np.inf, 1e-3, 1e3]))
        frame.iloc[row, frame.columns.get_loc(column)] = bad  # may or may not break a rule
    elif fault == "time" and n > 1:
        times = frame.index.to_numpy().copy()
        times[max(row, 1)] = times[max(row, 1) - 1] - np.timedelta64(draw(st.integers(0, 1)), "m")
        frame.index = pd.DatetimeIndex(times, name="time")
    return frame


@settings(max_examples=500, deadline=None)
@given(_frames_with_at_most_one_fault())
def test_the_compiled_check_refuses_exactly_what_the_named_checks_refuse(
    df: pd.DataFrame,
) -> None:
    """The fast path only decides whether to look closer: it must flag every frame the
    numpy checks name a problem in (or bad data would pass) and no valid one."""
    bars = Bars.from_frame(df)
    flagged = bool(
        _any_problem(
            bars.time.view(np.int64), bars.open, bars.high, bars.low, bars.close, bars.volume
        )
    )
    # The reference: the numpy checks alone (the path without numba), not the fast path.
    with mock.patch.object(loaders, "HAVE_NUMBA", False):
        try:
            validate_ohlcv(df)
        except DataError:
            named = True
        else:
            named = False
    assert flagged == named
