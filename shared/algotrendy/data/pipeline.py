"""The candle pipeline: normaliser hand-off -> validator -> enricher -> stores (+ cache).

Channels already return normalised frames (`algotrendy.data.channels.base`); the first
stage here only checks the hand-off and brings stray shapes (a naive or non-UTC index,
integer columns, a time column instead of an index, ccxt's raw rows) to the canonical
candle frame, refusing what it cannot read with a `DataError` naming the source and column.
Validation then drops and flags rows (`algotrendy.data.validation`), the enricher stamps
provenance, and every configured store receives the same rows. The latest close goes to
the cache so the API and the engine read prices without touching the stores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from algotrendy.data.normalise import bar_close
from algotrendy.data.validation import ValidationConfig, ValidationReport, validate_candles
from algotrendy.domain.market import CANDLE_FRAME_COLUMNS
from algotrendy.errors import DataError
from algotrendy.storage.base import LatestPrice, get_latest_price, put_latest_price, utc

if TYPE_CHECKING:
    from algotrendy.storage.base import Cache, CandleStore

log = logging.getLogger(__name__)

_UTC_NS = "datetime64[ns, UTC]"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _is_canonical(frame: pd.DataFrame) -> bool:
    index = frame.index
    return (
        isinstance(index, pd.DatetimeIndex)
        and str(index.dtype) == _UTC_NS
        and index.name == "time"
        and tuple(frame.columns) == CANDLE_FRAME_COLUMNS
        and all(dtype == np.float64 for dtype in frame.dtypes)
    )


def normalise_candles(frame: pd.DataFrame, *, source: str = "<frame>") -> pd.DataFrame:
    """The canonical candle frame for `frame`: UTC nanosecond DatetimeIndex named `time`,
    float64 columns open/high/low/close/volume in that order, nothing else.

    A frame already in that shape is returned as is (no copy). A naive index is taken as
    UTC (the channels' convention); a missing volume column becomes 0.0, as in
    `algotrendy.data.loaders`. Values are not judged here: that is the validator's job.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a candle DataFrame, got {type(frame).__name__}")
    if _is_canonical(frame):
        return frame
    if not isinstance(frame.index, pd.DatetimeIndex):
        # A time column instead of an index: the file loader knows every alias and epoch
        # unit; it reports unreadable values by row and column.
        from algotrendy.data.loaders import load_ohlcv

        try:
            return load_ohlcv(frame, validate=False)
        except DataError as exc:
            raise DataError(str(exc).replace("<dataframe>", source, 1)) from exc
    index = frame.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    index = index.as_unit("ns").rename("time")
    lowered = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in CANDLE_FRAME_COLUMNS[:4] if c not in lowered]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"columns are {', '.join(map(str, frame.columns))}"
        )
    data: dict[str, np.ndarray] = {}
    for col in CANDLE_FRAME_COLUMNS:
        if col not in lowered:
            data[col] = np.zeros(len(frame), dtype=np.float64)
            continue
        series = frame[lowered[col]]
        try:
            data[col] = series.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            numeric = pd.to_numeric(series, errors="coerce")
            bad = np.flatnonzero(numeric.isna().to_numpy() & series.notna().to_numpy())
            row = int(bad[0]) if bad.size else 0
            raise DataError(
                f"{source}: row {row + 1}, column {col}: not a number ({series.iloc[row]!r})"
            ) from None
    return pd.DataFrame(data, index=index, copy=False)


def candles_from_ohlcv_rows(rows: Any, *, source: str = "<rows>") -> pd.DataFrame:
    """Candle frame from ccxt's `fetch_ohlcv` rows `[[epoch_ms, o, h, l, c, v], ...]`
    (a list of lists or an (n, 6) array); see ccxt's Manual, "OHLCV Candlestick Charts".
    """
    arr = np.asarray(rows, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape(0, 6)
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise DataError(
            f"{source}: expected rows of [time_ms, open, high, low, close, volume], "
            f"got an array of shape {arr.shape}"
        )
    stamp = arr[:, 0]
    if not np.isfinite(stamp).all():
        row = int(np.flatnonzero(~np.isfinite(stamp))[0])
        raise DataError(f"{source}: row {row + 1}, column time: missing timestamp")
    ns = stamp.astype(np.int64) * 1_000_000
    index = pd.DatetimeIndex(ns.view("datetime64[ns]"), dtype=_UTC_NS, name="time")
    # One contiguous array per column (rows of the transposed copy), as every consumer
    # (numpy kernels, Arrow, the QuestDB client) reads columns.
    values = np.ascontiguousarray(arr[:, 1:].T)
    data = {col: values[i] for i, col in enumerate(CANDLE_FRAME_COLUMNS)}
    return pd.DataFrame(data, index=index, copy=False)


def stamp_provenance(frame: pd.DataFrame, ingested_at: datetime) -> pd.DataFrame:
    """The enricher's step in the pipeline: rows carry when they were taken in.

    The series identity (exchange, symbol, timeframe) travels as arguments to
    `CandleStore.write`; a store that keeps it per row (QuestDB) expands it with
    `algotrendy.data.enrich.enrich_candles`, which keeps this `ingested_at`.
    """
    stamp = pd.Timestamp(utc(ingested_at)).as_unit("ns").value
    column = pd.DatetimeIndex(
        np.full(len(frame), stamp, dtype=np.int64).view("datetime64[ns]"), dtype=_UTC_NS
    )
    out = frame.copy(deep=False)
    out["ingested_at"] = column
    return out


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """The rows that went to the stores, the validation report, rows written per store."""

    frame: pd.DataFrame
    report: ValidationReport
    written: dict[str, int] = field(default_factory=dict)


class CandlePipeline:
    """Runs frames through normalise -> validate -> enrich -> every store, then publishes
    the newest close to the cache (only when it is newer than the cached one, so a
    backfill of old bars never hides a fresher price)."""

    def __init__(
        self,
        stores: Sequence[CandleStore],
        *,
        cache: Cache | None = None,
        config: ValidationConfig | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.stores = tuple(stores)
        self.cache = cache
        self.config = config or ValidationConfig()
        self._now = now

    def process(
        self,
        frame: pd.DataFrame,
        *,
        exchange: str,
        symbol: str,
        timeframe: str,
    ) -> PipelineResult:
        label = f"{exchange} {symbol}"
        candles = normalise_candles(frame, source=label)
        clean, report = validate_candles(candles, timeframe, source=label, config=self.config)
        if report.dropped.shape[0] or report.gaps.shape[0] or report.outliers.shape[0]:
            log.info("validation: %s", report.summary())
        if not len(clean):
            return PipelineResult(frame=clean, report=report)
        now = self._now()
        stamped = stamp_provenance(clean, now)
        written = {
            store.name: store.write(stamped, exchange, symbol, timeframe) for store in self.stores
        }
        if self.cache is not None:
            self._publish_price(clean, exchange, symbol, timeframe, now)
        return PipelineResult(frame=stamped, report=report, written=written)

    def _publish_price(
        self, clean: pd.DataFrame, exchange: str, symbol: str, timeframe: str, now: datetime
    ) -> None:
        assert self.cache is not None
        # The close time, as LatestPrice documents: calendar-aware, so a 1M bar's price is
        # stamped at the next 1st, not at its open (which would rank it behind a 1d bar).
        as_of = bar_close(clean.index[-1].to_pydatetime(), timeframe)
        cached = get_latest_price(self.cache, exchange, symbol)
        if cached is not None and cached.time > as_of:
            return
        put_latest_price(
            self.cache,
            LatestPrice(
                exchange=exchange,
                symbol=symbol,
                timeframe=timeframe,
                price=float(clean["close"].iloc[-1]),
                time=as_of,
                updated_at=now,
            ),
        )
