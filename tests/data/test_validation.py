"""The validator drops and flags, never silently fixes: every decision is in the report."""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.data import load_ohlcv
from algotrendy.data.validation import (
    BAD_PRICE,
    BAD_VOLUME,
    DUPLICATE,
    OHLC_INCONSISTENT,
    ValidationConfig,
    parse_timeframe,
    robust_zscores,
    validate_candles,
)
from algotrendy.errors import ParameterError

OHLCV = ["open", "high", "low", "close", "volume"]


def frame(times: list[str], rows: list[tuple[float, float, float, float, float]]) -> pd.DataFrame:
    index = pd.DatetimeIndex(times, name="time").tz_localize("UTC").as_unit("ns")
    return pd.DataFrame(rows, index=index, columns=OHLCV, dtype=np.float64)


def ok(price: float = 10.0) -> tuple[float, float, float, float, float]:
    return (price, price + 1, price - 1, price + 0.5, 100.0)


def hourly(n: int) -> list[str]:
    return [str(pd.Timestamp("2024-01-01") + pd.Timedelta(hours=i)) for i in range(n)]


@pytest.mark.parametrize(
    ("timeframe", "expected"),
    [
        ("1m", timedelta(minutes=1)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("30s", timedelta(seconds=30)),
        ("1M", None),
        ("1y", None),
    ],
)
def test_parse_timeframe(timeframe: str, expected: timedelta | None) -> None:
    assert parse_timeframe(timeframe) == expected


@pytest.mark.parametrize("bad", ["", "h", "0m", "1x", "1 h", "hourly"])
def test_parse_timeframe_refuses_bad_spellings(bad: str) -> None:
    with pytest.raises(ParameterError, match="timeframe"):
        parse_timeframe(bad)


def test_clean_frame_passes_untouched() -> None:
    data = frame(hourly(30), [ok(10 + i * 0.1) for i in range(30)])
    out, report = validate_candles(data, "1h", source="binance BTC/USDT")
    assert out is data
    assert report.clean
    assert (report.rows_in, report.rows_out) == (30, 30)
    assert report.summary() == "binance BTC/USDT 1h: 30 in, 30 kept"


def test_each_bad_row_is_dropped_with_its_reason_and_values() -> None:
    rows = [
        ok(),
        (10.0, 11.0, 9.0, math.nan, 1.0),  # bad price (NaN close)
        (0.0, 11.0, 0.0, 10.0, 1.0),  # bad price (zero)
        (10.0, 11.0, 9.0, 10.5, -5.0),  # bad volume
        (10.0, 10.2, 9.0, 10.5, 1.0),  # high below close
        (10.0, 11.0, 10.1, 10.5, 1.0),  # low above open
        (10.0, 11.0, 9.0, 10.5, math.inf),  # bad volume (inf)
        ok(),
    ]
    times = hourly(len(rows))
    out, report = validate_candles(frame(times, rows), "1h")
    assert out.index.tolist() == [pd.Timestamp(times[i], tz="UTC") for i in (0, 7)]
    assert report.dropped["reason"].tolist() == [
        BAD_PRICE,
        BAD_PRICE,
        BAD_VOLUME,
        OHLC_INCONSISTENT,
        OHLC_INCONSISTENT,
        BAD_VOLUME,
    ]
    assert report.dropped.index.tolist() == [pd.Timestamp(times[i], tz="UTC") for i in range(1, 7)]
    assert report.dropped["volume"].tolist()[2] == -5.0
    assert report.invalid == 6
    assert report.duplicates == 0
    # Dropping rows 1..6 leaves a 6-bar hole between 00:00 and 07:00: a gap, reported.
    assert report.gaps.to_dict("records") == [
        {
            "start": pd.Timestamp(times[1], tz="UTC"),
            "end": pd.Timestamp(times[6], tz="UTC"),
            "missing": 6,
        }
    ]
    assert "dropped 2 bad_price, 2 bad_volume, 2 ohlc_inconsistent" in report.summary()


def test_duplicates_keep_the_last_received_row() -> None:
    times = ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:00", "2024-01-01 02:00"]
    rows = [ok(10), ok(11), ok(12), ok(13)]
    out, report = validate_candles(frame(times, rows), "1h")
    assert out["open"].tolist() == [10.0, 12.0, 13.0]
    assert report.duplicates == 1
    assert report.dropped["open"].tolist() == [11.0]
    assert report.dropped["reason"].tolist() == [DUPLICATE]


def test_a_valid_duplicate_wins_over_a_later_invalid_one() -> None:
    times = ["2024-01-01 00:00", "2024-01-01 00:00"]
    out, report = validate_candles(frame(times, [ok(10), (10.0, 9.0, 8.0, 9.5, 1.0)]), "1h")
    assert out["open"].tolist() == [10.0]
    assert report.dropped["reason"].tolist() == [OHLC_INCONSISTENT]


def test_out_of_order_rows_are_sorted_and_counted() -> None:
    times = ["2024-01-01 02:00", "2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 03:00"]
    out, report = validate_candles(frame(times, [ok(12), ok(10), ok(11), ok(13)]), "1h")
    assert out["open"].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert out.index.is_monotonic_increasing
    assert report.reordered == 1
    assert len(report.dropped) == 0


def test_gaps_count_missing_bars() -> None:
    times = ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 04:00", "2024-01-01 09:00"]
    _, report = validate_candles(frame(times, [ok()] * 4), "1h")
    assert report.gaps.to_dict("records") == [
        {
            "start": pd.Timestamp("2024-01-01 02:00", tz="UTC"),
            "end": pd.Timestamp("2024-01-01 03:00", tz="UTC"),
            "missing": 2,
        },
        {
            "start": pd.Timestamp("2024-01-01 05:00", tz="UTC"),
            "end": pd.Timestamp("2024-01-01 08:00", tz="UTC"),
            "missing": 4,
        },
    ]
    assert report.missing_bars == 6


def test_daily_steps_across_dst_are_not_gaps() -> None:
    # New York midnight in UTC: 05:00 in winter, 04:00 after the March change (23 h step).
    times = ["2024-03-08 05:00", "2024-03-09 05:00", "2024-03-10 05:00", "2024-03-11 04:00"]
    _, report = validate_candles(frame(times, [ok()] * 4), "1d")
    assert len(report.gaps) == 0
    assert report.misaligned == 4  # not on the UTC-midnight grid: flagged, kept


def test_weekly_grid_starts_on_monday() -> None:
    mondays = ["2024-01-01", "2024-01-08", "2024-01-15"]
    _, report = validate_candles(frame(mondays, [ok()] * 3), "1w")
    assert report.misaligned == 0
    assert len(report.gaps) == 0
    _, shifted = validate_candles(frame(["2024-01-02", "2024-01-09"], [ok()] * 2), "1w")
    assert shifted.misaligned == 2


def test_monthly_bars_have_no_gap_check() -> None:
    months = ["2024-01-01", "2024-02-01", "2024-05-01"]
    _, report = validate_candles(frame(months, [ok()] * 3), "1M")
    assert len(report.gaps) == 0
    assert report.misaligned == 0


def test_robust_zscores_match_the_textbook_formula() -> None:
    r = np.array([0.01, -0.02, 0.005, 0.0, 0.03, -0.01, 0.2])
    med = statistics.median(r.tolist())
    mad = statistics.median([abs(x - med) for x in r.tolist()])
    expected = [0.6745 * (x - med) / mad for x in r.tolist()]
    np.testing.assert_allclose(robust_zscores(r), expected, rtol=1e-12)


def test_robust_zscores_fall_back_to_mean_absolute_deviation() -> None:
    r = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.1])  # MAD = 0
    mean_ad = statistics.fmean([abs(x) for x in r.tolist()])
    np.testing.assert_allclose(robust_zscores(r), r / (1.253314 * mean_ad), rtol=1e-12)
    assert robust_zscores(np.zeros(5)).tolist() == [0.0] * 5


def test_a_spike_is_flagged_and_kept() -> None:
    rng = np.random.default_rng(7)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 200)))
    closes[120] *= 1.5  # a bad print: +40 % then back
    rows = [(c, c * 1.0001, c * 0.9999, c, 1.0) for c in closes]
    times = [str(pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=i)) for i in range(200)]
    out, report = validate_candles(frame(times, rows), "1m")
    assert len(out) == 200  # flagged, not dropped
    flagged = report.outliers.index.tolist()
    assert flagged == [pd.Timestamp(times[120], tz="UTC"), pd.Timestamp(times[121], tz="UTC")]
    returns = np.diff(np.log(closes))
    np.testing.assert_allclose(report.outliers["log_return"], returns[[119, 120]])
    assert (report.outliers["zscore"].abs() > 10).all()
    lower = ValidationConfig(outlier_z=1.0)
    _, noisy = validate_candles(frame(times, rows), "1m", config=lower)
    assert len(noisy.outliers) > 2


def test_outlier_threshold_must_be_positive() -> None:
    with pytest.raises(ParameterError, match="outlier_z"):
        ValidationConfig(outlier_z=0)


def test_real_btc_minutes_report_the_gaps_the_file_has() -> None:
    data = load_ohlcv("tests/fixtures/ohlcv/freqtrade_UNITTEST_BTC_1m.csv")
    out, report = validate_candles(data, "1m", source="freqtrade")
    times = [t.value for t in data.index]
    missing = sum((b - a) // 60_000_000_000 - 1 for a, b in itertools.pairwise(times))
    assert report.missing_bars == missing > 0
    assert report.rows_out == len(data)
    assert len(report.dropped) == 0
    assert out is data


def test_empty_frame() -> None:
    out, report = validate_candles(frame([], []), "1h")
    assert out.empty
    assert report.clean
    assert report.rows_in == 0


def test_merge_adds_up() -> None:
    a_times = ["2024-01-01 00:00", "2024-01-01 00:00", "2024-01-01 03:00"]
    _, a = validate_candles(frame(a_times, [ok()] * 3), "1h")
    _, b = validate_candles(frame(["2024-01-02 00:00"], [(1.0, 0.5, 0.2, 1.0, 1.0)]), "1h")
    merged = a.merge(b)
    assert (merged.rows_in, merged.rows_out) == (4, 2)
    assert merged.duplicates == 1
    assert merged.invalid == 1
    assert merged.missing_bars == 2


_value = st.one_of(
    st.floats(-5, 200), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0, 2.0])
)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 30), _value, _value, _value, _value, _value), max_size=60
    )
)
def test_properties_of_any_input(rows: list[tuple[int, float, float, float, float, float]]) -> None:
    times = [str(pd.Timestamp("2024-01-01") + pd.Timedelta(hours=h)) for h, *_ in rows]
    data = frame(times, [tuple(r[1:]) for r in rows])  # type: ignore[misc]
    out, report = validate_candles(data, "1h")
    # Nothing disappears unreported.
    assert report.rows_out == len(out)
    assert report.rows_in == len(out) + len(report.dropped) == len(rows)
    # What is kept is sorted, unique, and consistent.
    assert out.index.is_monotonic_increasing
    assert out.index.is_unique
    o, h, lo, c, v = (out[k].to_numpy() for k in OHLCV)
    assert np.isfinite(out.to_numpy()).all()
    assert (o > 0).all()
    assert (lo > 0).all()
    assert (v >= 0).all()
    assert (h >= np.maximum(o, c)).all()
    assert (lo <= np.minimum(o, c)).all()

    # Each kept row is the last valid row received for its open time (model, in Python).
    def valid(r: tuple[int, float, float, float, float, float]) -> bool:
        _, o_, h_, l_, c_, v_ = r
        prices = (o_, h_, l_, c_)
        return (
            all(math.isfinite(x) and x > 0 for x in prices)
            and math.isfinite(v_)
            and v_ >= 0
            and h_ >= max(o_, c_)
            and l_ <= min(o_, c_)
        )

    model: dict[int, tuple[float, ...]] = {}
    for r in rows:
        if valid(r):
            model[r[0]] = r[1:]
    assert [t.value for t in out.index] == [
        pd.Timestamp(f"2024-01-01 {0:02d}:00", tz="UTC").value + h * 3_600_000_000_000
        for h in sorted(model)
    ]
    assert [tuple(x) for x in out.to_numpy().tolist()] == [model[h] for h in sorted(model)]
