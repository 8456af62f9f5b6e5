"""The candle pipeline: normaliser hand-off, enricher, and the run to stores and cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algotrendy.data.enrich import ENRICHED_COLUMNS, enrich_candles
from algotrendy.data.pipeline import (
    CandlePipeline,
    candles_from_ohlcv_rows,
    normalise_candles,
    stamp_provenance,
)
from algotrendy.errors import DataError
from algotrendy.storage.base import get_latest_price
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore

OHLCV = ["open", "high", "low", "close", "volume"]
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def canonical(n: int = 3, start: str = "2024-01-01") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="time").as_unit("ns")
    index = pd.DatetimeIndex(index, freq=None)  # as a source or a store returns it
    base = np.arange(n, dtype=np.float64) + 100.0
    return pd.DataFrame(
        {"open": base, "high": base + 2, "low": base - 1, "close": base + 1, "volume": base},
        index=index,
    )


# -- normaliser hand-off ------------------------------------------------------------------


def test_canonical_frame_is_handed_on_without_a_copy() -> None:
    data = canonical()
    assert normalise_candles(data) is data


def test_naive_or_other_zone_index_becomes_utc_ns() -> None:
    data = canonical()
    naive = data.tz_convert(None)
    naive.index = naive.index.as_unit("us")
    out = normalise_candles(naive)
    assert str(out.index.dtype) == "datetime64[ns, UTC]"
    assert out.index.name == "time"
    assert out.index.equals(data.index)
    paris = data.tz_convert("Europe/Paris")
    assert normalise_candles(paris).index.equals(data.index)


def test_columns_are_coerced_reordered_and_volume_defaults_to_zero() -> None:
    data = canonical()[["close", "low", "high", "open"]].astype(np.int64)
    data.columns = ["Close", "Low", "High", "Open"]
    out = normalise_candles(data)
    assert list(out.columns) == OHLCV
    assert all(out[c].dtype == np.float64 for c in OHLCV)
    assert out["volume"].tolist() == [0.0, 0.0, 0.0]
    assert out["open"].tolist() == [100.0, 101.0, 102.0]


def test_missing_price_column_names_source_and_column() -> None:
    with pytest.raises(DataError, match=r"binance BTC/USDT: missing column\(s\) close"):
        normalise_candles(canonical().drop(columns="close"), source="binance BTC/USDT")


def test_non_numeric_value_names_row_and_column() -> None:
    data = canonical().astype({"high": object})
    data.iloc[1, data.columns.get_loc("high")] = "n/a"
    with pytest.raises(DataError, match=r"src: row 2, column high: not a number \('n/a'\)"):
        normalise_candles(data, source="src")


def test_a_time_column_goes_through_the_file_loader_rules() -> None:
    raw = pd.DataFrame(
        {
            "timestamp": [1704067200000, 1704070800000],  # epoch ms
            "open": [1.0, 2.0],
            "high": [2.0, 3.0],
            "low": [0.5, 1.5],
            "close": [1.5, 2.5],
            "volume": [10, 20],
        }
    )
    out = normalise_candles(raw, source="csv")
    assert out.index.tolist() == list(canonical(2).index)
    with pytest.raises(DataError, match=r"^csv: no time column"):
        normalise_candles(raw.drop(columns="timestamp"), source="csv")


def test_not_a_frame_is_refused() -> None:
    with pytest.raises(DataError, match="expected a candle DataFrame, got list"):
        normalise_candles([[1, 2]], source="x")  # type: ignore[arg-type]


def test_ccxt_rows_become_a_candle_frame() -> None:
    rows = [[1704067200000, 100, 102, 99, 101, 100], [1704070800000, 101, 103, 100, 102, 101]]
    out = candles_from_ohlcv_rows(rows)
    pd.testing.assert_frame_equal(out, canonical(2))
    assert candles_from_ohlcv_rows([]).empty
    with pytest.raises(DataError, match=r"shape \(2, 5\)"):
        candles_from_ohlcv_rows([r[:5] for r in rows])
    with pytest.raises(DataError, match="row 2, column time: missing timestamp"):
        candles_from_ohlcv_rows([rows[0], [None, 1, 1, 1, 1, 1]])


# -- enricher ---------------------------------------------------------------------------------


def test_enrich_adds_identity_and_provenance() -> None:
    out = enrich_candles(
        canonical(), exchange="binance", symbol="BTC/USDT", timeframe="1h", ingested_at=NOW
    )
    assert tuple(out.columns) == ENRICHED_COLUMNS
    for col, value in (("exchange", "binance"), ("symbol", "BTC/USDT"), ("timeframe", "1h")):
        assert isinstance(out[col].dtype, pd.CategoricalDtype)
        assert list(out[col].cat.categories) == [value]
        assert out[col].tolist() == [value] * 3
    assert out["ts"].tolist() == list(canonical().index)
    assert out["ingested_at"].tolist() == [pd.Timestamp(NOW)] * 3
    np.testing.assert_array_equal(out[OHLCV].to_numpy(), canonical().to_numpy())


def test_enrich_keeps_an_existing_ingested_at() -> None:
    earlier = pd.Timestamp("2023-01-01 00:00:00.000001", tz="UTC")
    out = enrich_candles(
        stamp_provenance(canonical(), earlier.to_pydatetime()),
        exchange="b",
        symbol="s",
        timeframe="1h",
        ingested_at=NOW,
    )
    assert out["ingested_at"].tolist() == [earlier] * 3


# -- the run ----------------------------------------------------------------------------------


def test_pipeline_drops_bad_rows_before_the_store(tmp_path: Path) -> None:
    data = canonical(5)
    data.iloc[2, data.columns.get_loc("high")] = 50.0  # below open: inconsistent
    store = LocalCandleStore(tmp_path)
    cache = MemoryCache()
    pipeline = CandlePipeline([store], cache=cache, now=lambda: NOW)
    result = pipeline.process(data, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert result.written == {"local": 4}
    assert result.report.invalid == 1
    assert result.report.dropped.index.tolist() == [data.index[2]]
    stored = store.read("binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(stored, data.drop(index=data.index[2]))
    assert result.frame["ingested_at"].tolist() == [pd.Timestamp(NOW)] * 4


def test_every_store_gets_the_same_rows(tmp_path: Path) -> None:
    a, b = LocalCandleStore(tmp_path / "a"), LocalCandleStore(tmp_path / "b")
    b.name = "mirror"
    pipeline = CandlePipeline([a, b], now=lambda: NOW)
    result = pipeline.process(canonical(), exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert result.written == {"local": 3, "mirror": 3}
    pd.testing.assert_frame_equal(
        a.read("binance", "BTC/USDT", "1h"), b.read("binance", "BTC/USDT", "1h")
    )


def test_latest_price_is_the_last_close_at_its_bar_close_time(tmp_path: Path) -> None:
    cache = MemoryCache()
    pipeline = CandlePipeline([LocalCandleStore(tmp_path)], cache=cache, now=lambda: NOW)
    data = canonical(3)
    pipeline.process(data, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    price = get_latest_price(cache, "binance", "BTC/USDT")
    assert price is not None
    assert price.price == data["close"].iloc[-1]
    assert price.time == data.index[-1] + timedelta(hours=1)
    assert (price.timeframe, price.updated_at) == ("1h", NOW)


def test_a_backfill_does_not_replace_a_fresher_price(tmp_path: Path) -> None:
    cache = MemoryCache()
    pipeline = CandlePipeline([LocalCandleStore(tmp_path)], cache=cache, now=lambda: NOW)
    recent = canonical(2, start="2024-05-01")
    pipeline.process(recent, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    pipeline.process(canonical(2), exchange="binance", symbol="BTC/USDT", timeframe="1h")
    price = get_latest_price(cache, "binance", "BTC/USDT")
    assert price is not None
    assert price.price == recent["close"].iloc[-1]
    # A 1d bar closing later than the last 1h bar is fresher, whatever its open time.
    daily = canonical(1, start="2024-05-01")
    daily["close"] = 7.0
    daily["low"] = 6.0
    pipeline.process(daily, exchange="binance", symbol="BTC/USDT", timeframe="1d")
    price = get_latest_price(cache, "binance", "BTC/USDT")
    assert price is not None
    assert (price.price, price.timeframe) == (7.0, "1d")


def test_nothing_valid_means_nothing_written(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path)
    data = canonical(2)
    data["close"] = -1.0
    result = CandlePipeline([store]).process(
        data, exchange="binance", symbol="BTC/USDT", timeframe="1h"
    )
    assert result.written == {}
    assert result.report.invalid == 2
    assert store.last_timestamp("binance", "BTC/USDT", "1h") is None
