"""Add a series' identity and provenance to validated candles: the row shape of the
QuestDB `ohlcv` table (see `algotrendy.storage.questdb_store.OHLCV_DDL`).

The identity columns are pandas Categoricals with one category, so the QuestDB client
serialises them as SYMBOL columns and building them costs one int8 array, not a million
Python strings.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from algotrendy.domain.market import CANDLE_FRAME_COLUMNS

IDENTITY_COLUMNS = ("exchange", "symbol", "timeframe")
ENRICHED_COLUMNS = ("ts", *IDENTITY_COLUMNS, *CANDLE_FRAME_COLUMNS, "ingested_at")


_UTC_US = "datetime64[us, UTC]"


def _constant_category(value: str, n: int) -> pd.Categorical[str]:
    # Codes are all 0 with one category: nothing to validate.
    dtype: pd.CategoricalDtype[str] = pd.CategoricalDtype([value])
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), dtype=dtype, validate=False)


def _utc_us(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """`index` in UTC at microsecond resolution (naive values are taken as UTC): QuestDB's
    TIMESTAMP resolution, which the client then sends with ILP's `t` suffix."""
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("us")


def enrich_candles(
    frame: pd.DataFrame,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    ingested_at: datetime | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Wide frame with columns `ENRICHED_COLUMNS` and a RangeIndex: `ts` is the bar open
    time, `ingested_at` when this row was taken in, both UTC in microseconds (an existing
    `ingested_at` column in `frame` wins, so re-serialising stored rows keeps their
    provenance).

    `exchange` is the venue or source the series is keyed by (`binance`, `yfinance`).
    """
    n = len(frame)
    columns: dict[str, object] = {
        "ts": _utc_us(pd.DatetimeIndex(frame.index)),
        "exchange": _constant_category(exchange, n),
        "symbol": _constant_category(symbol, n),
        "timeframe": _constant_category(timeframe, n),
    }
    for col in CANDLE_FRAME_COLUMNS:
        # The client reads columns as C-contiguous buffers; a column sliced out of a 2-D
        # block is strided and gets copied here (a no-op for contiguous columns).
        columns[col] = np.ascontiguousarray(frame[col].to_numpy(dtype=np.float64))
    if "ingested_at" in frame.columns:
        columns["ingested_at"] = _utc_us(pd.DatetimeIndex(frame["ingested_at"]))
    else:
        when = pd.Timestamp.now(tz="UTC") if ingested_at is None else pd.Timestamp(ingested_at)
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        micros = when.value // 1000  # Timestamp.value is nanoseconds whatever the unit
        stamp = np.full(n, micros, dtype=np.int64).view("datetime64[us]")
        columns["ingested_at"] = pd.DatetimeIndex(stamp, dtype=_UTC_US)
    # copy=False: the columns are fresh arrays or views of `frame`'s; nothing mutates them.
    return pd.DataFrame(columns, copy=False)
