"""Validate a normalised candle frame before it is stored, and report everything done to it.

The validator never silently "fixes" data: every row it drops is kept, with its reason, in
the `ValidationReport`; everything it only suspects (gaps, outliers, timestamps off the
timeframe grid) is flagged there and left in place. Decisions, in order:

1. rows with a non-finite or non-positive price are dropped (`bad_price`);
2. rows with a NaN, infinite or negative volume are dropped (`bad_volume`);
3. rows whose high is below max(open, close) or whose low is above min(open, close) are
   dropped (`ohlc_inconsistent`) -- the same rule as `algotrendy.data.loaders`;
4. rows out of time order are sorted back (counted as `reordered`; nothing is lost);
5. of several rows with one open time, the last one received is kept and the others are
   dropped (`duplicate`): a source re-sending a bar sends its newer state last;
6. gaps are reported against the timeframe (a step of k bars reports k - 1 missing bars,
   rounding the step so a 23 h or 25 h daily step across a DST change is not a gap);
7. outliers are flagged with the modified z-score of close-to-close log returns
   (Iglewicz & Hoaglin, 1993: z = 0.6745 (r - median) / MAD).

Everything is vectorised with numpy: the ingestion budget is normalise + validate +
serialise 1M candles in under a second (bench/bench_ingest.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from algotrendy.data.normalise import parse_timeframe
from algotrendy.domain.market import CANDLE_FRAME_COLUMNS
from algotrendy.errors import ParameterError

BAD_PRICE: Final = "bad_price"
BAD_VOLUME: Final = "bad_volume"
OHLC_INCONSISTENT: Final = "ohlc_inconsistent"
DUPLICATE: Final = "duplicate"
REASONS: Final = (BAD_PRICE, BAD_VOLUME, OHLC_INCONSISTENT, DUPLICATE)

# Binance and most exchanges open weekly bars on Monday 00:00 UTC; 1970-01-01 was a
# Thursday, so the weekly grid starts 4 days after the epoch.
_WEEK_ORIGIN_NS: Final = 4 * 86_400 * 10**9
# MAD of a normal sample is 0.6745 sigma (Iglewicz & Hoaglin); the mean absolute deviation
# is sqrt(2/pi) sigma = 0.7979 sigma, i.e. sigma = 1.2533 * MeanAD (used when MAD is 0).
_MAD_TO_Z: Final = 0.6745
_MEANAD_TO_SIGMA: Final = 1.253314
_MIN_RETURNS_FOR_OUTLIERS: Final = 20


@dataclass(frozen=True)
class ValidationConfig:
    """Thresholds of the validator.

    `outlier_z`: modified z-score above which a bar's close-to-close log return is flagged.
    Iglewicz & Hoaglin suggest 3.5 for normal data, but market returns are fat-tailed: on
    the real fixtures in tests/fixtures/ohlcv, 3.5 flags 3.4 % of BTC 1m bars and 3.2 % of
    GOOG daily bars, 10 flags 0.2 % and 0.05 % -- a list a person can review, which is
    what a flag is for (flagged bars are kept).
    """

    outlier_z: float = 10.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.outlier_z) or self.outlier_z <= 0:
            raise ParameterError(f"outlier_z must be a positive number, got {self.outlier_z}")


def _empty_time_index() -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.array([], dtype="datetime64[ns]"), name="time").tz_localize("UTC")


def _empty_dropped() -> pd.DataFrame:
    frame = pd.DataFrame(
        {"reason": pd.Categorical([], categories=list(REASONS))}, index=_empty_time_index()
    )
    for col in CANDLE_FRAME_COLUMNS:
        frame[col] = np.array([], dtype=np.float64)
    return frame


def _empty_gaps() -> pd.DataFrame:
    empty = pd.DatetimeIndex(np.array([], dtype="datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame({"start": empty, "end": empty, "missing": np.array([], dtype=np.int64)})


def _empty_outliers() -> pd.DataFrame:
    return pd.DataFrame(
        {"log_return": np.array([], dtype=np.float64), "zscore": np.array([], dtype=np.float64)},
        index=_empty_time_index(),
    )


@dataclass(frozen=True, eq=False)
class ValidationReport:
    """What the validator did to one frame, row by row where rows were dropped.

    - `dropped`: every dropped input row (index: its open time) with its `reason`
      (one of `REASONS`) and its original values;
    - `gaps`: one row per gap: `start`/`end` (open times of the first/last missing bar)
      and `missing` (bars);
    - `outliers`: flagged bars (kept) with their log return and modified z-score;
    - `reordered`: rows that came before their predecessor in time (sorted, kept);
    - `misaligned`: bars whose open time is not on the timeframe's grid (kept).
    """

    source: str
    timeframe: str
    rows_in: int
    rows_out: int
    reordered: int = 0
    misaligned: int = 0
    dropped: pd.DataFrame = field(default_factory=_empty_dropped)
    gaps: pd.DataFrame = field(default_factory=_empty_gaps)
    outliers: pd.DataFrame = field(default_factory=_empty_outliers)

    def count(self, reason: str) -> int:
        return int((self.dropped["reason"] == reason).sum())

    @property
    def duplicates(self) -> int:
        return self.count(DUPLICATE)

    @property
    def invalid(self) -> int:
        return len(self.dropped) - self.duplicates

    @property
    def missing_bars(self) -> int:
        return int(self.gaps["missing"].sum())

    @property
    def clean(self) -> bool:
        """Nothing dropped, reordered, missing, misaligned or flagged."""
        return not (
            len(self.dropped)
            or len(self.gaps)
            or len(self.outliers)
            or self.reordered
            or self.misaligned
        )

    def summary(self) -> str:
        """One line for logs and the CLI."""
        parts = [f"{self.source} {self.timeframe}: {self.rows_in} in, {self.rows_out} kept"]
        by_reason = [f"{self.count(r)} {r}" for r in REASONS if self.count(r)]
        if by_reason:
            parts.append("dropped " + ", ".join(by_reason))
        if self.reordered:
            parts.append(f"{self.reordered} out of order (sorted)")
        if len(self.gaps):
            parts.append(f"{len(self.gaps)} gap(s), {self.missing_bars} missing bar(s)")
        if self.misaligned:
            parts.append(f"{self.misaligned} off the {self.timeframe} grid")
        if len(self.outliers):
            parts.append(f"{len(self.outliers)} outlier(s) flagged")
        return "; ".join(parts)

    def merge(self, other: ValidationReport) -> ValidationReport:
        """Combine the reports of consecutive windows of one series (the ingest service
        validates window by window). A gap spanning two windows is not seen by either;
        `algotrendy.data.ingest` checks the seams itself."""
        return ValidationReport(
            source=self.source,
            timeframe=self.timeframe,
            rows_in=self.rows_in + other.rows_in,
            rows_out=self.rows_out + other.rows_out,
            reordered=self.reordered + other.reordered,
            misaligned=self.misaligned + other.misaligned,
            dropped=_concat(self.dropped, other.dropped),
            gaps=_concat(self.gaps, other.gaps, ignore_index=True),
            outliers=_concat(self.outliers, other.outliers),
        )


def _concat(a: pd.DataFrame, b: pd.DataFrame, *, ignore_index: bool = False) -> pd.DataFrame:
    if not len(b):
        return a
    if not len(a):
        return b
    return pd.concat([a, b], ignore_index=ignore_index)


def find_gaps(times_ns: np.ndarray, step_ns: int) -> pd.DataFrame:
    """Gaps in sorted, unique open times (int64 ns since the epoch) against a bar of
    `step_ns`. A step of s reports round(s / step) - 1 missing bars, so a daily series
    whose open time moves by an hour across a DST change reports none."""
    if times_ns.size < 2:
        return _empty_gaps()
    steps = np.diff(times_ns)
    missing = (steps + step_ns // 2) // step_ns - 1
    at = np.flatnonzero(missing >= 1)
    if not at.size:
        return _empty_gaps()
    start = times_ns[at] + step_ns
    end = times_ns[at + 1] - step_ns
    return pd.DataFrame(
        {
            "start": pd.to_datetime(start, unit="ns", utc=True),
            "end": pd.to_datetime(end, unit="ns", utc=True),
            "missing": missing[at].astype(np.int64),
        }
    )


def robust_zscores(log_returns: np.ndarray) -> np.ndarray:
    """Modified z-scores 0.6745 (r - median) / MAD (Iglewicz & Hoaglin, 1993).

    When more than half the returns are equal (MAD = 0, e.g. an illiquid market printing
    the same close), fall back to the mean absolute deviation scaled to a standard
    deviation, (r - median) / (1.2533 MeanAD), as IBM SPSS does; all zeros when every
    return equals the median.
    """
    if not log_returns.size:
        return np.zeros(0)
    med = float(np.median(log_returns))
    dev = np.abs(log_returns - med)
    mad = float(np.median(dev))
    if mad > 0:
        return _MAD_TO_Z * (log_returns - med) / mad
    mean_ad = float(dev.mean())
    if mean_ad > 0:
        return (log_returns - med) / (_MEANAD_TO_SIGMA * mean_ad)
    return np.zeros_like(log_returns)


def validate_candles(
    frame: pd.DataFrame,
    timeframe: str,
    *,
    source: str = "<frame>",
    config: ValidationConfig | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Return the rows fit to store (sorted, unique open times) and the report of what was
    dropped and flagged. `frame` must be normalised (`algotrendy.data.pipeline.
    normalise_candles`); an empty frame gives an empty result and a clean report."""
    cfg = config or ValidationConfig()
    step = parse_timeframe(timeframe)
    n = len(frame)
    times = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
    o, h, lo, c, v = (frame[k].to_numpy(dtype=np.float64, copy=False) for k in CANDLE_FRAME_COLUMNS)

    # 1-3: per-row checks; the first failing rule names the reason.
    with np.errstate(invalid="ignore"):
        price_ok = (
            np.isfinite(o)
            & np.isfinite(h)
            & np.isfinite(lo)
            & np.isfinite(c)
            & (o > 0)
            & (h > 0)
            & (lo > 0)
            & (c > 0)
        )
        volume_ok = np.isfinite(v) & (v >= 0)
        ohlc_ok = (h >= np.maximum(o, c)) & (lo <= np.minimum(o, c))
    reason = np.full(n, -1, dtype=np.int8)
    reason[~ohlc_ok] = REASONS.index(OHLC_INCONSISTENT)
    reason[~volume_ok] = REASONS.index(BAD_VOLUME)
    reason[~price_ok] = REASONS.index(BAD_PRICE)
    keep_pos = np.flatnonzero(reason < 0)

    # 4: order; a stable sort keeps same-time rows in arrival order for step 5.
    kept_times = times[keep_pos]
    reordered = int(np.count_nonzero(np.diff(kept_times) < 0))
    if reordered:
        order = np.argsort(kept_times, kind="stable")
        keep_pos, kept_times = keep_pos[order], kept_times[order]

    # 5: duplicates: of equal open times keep the last received.
    dup = np.zeros(kept_times.size, dtype=bool)
    if kept_times.size > 1:
        dup[:-1] = kept_times[:-1] == kept_times[1:]
    if dup.any():
        reason[keep_pos[dup]] = REASONS.index(DUPLICATE)
        keep_pos, kept_times = keep_pos[~dup], kept_times[~dup]

    out = frame if keep_pos.size == n and not reordered else frame.iloc[keep_pos]

    dropped_pos = np.flatnonzero(reason >= 0)
    dropped = _empty_dropped()
    if dropped_pos.size:
        dropped = frame.iloc[dropped_pos][list(CANDLE_FRAME_COLUMNS)].copy()
        codes = pd.Categorical.from_codes(reason[dropped_pos], categories=pd.Index(list(REASONS)))
        dropped.insert(0, "reason", pd.Series(codes, index=dropped.index))

    # 6: gaps and grid alignment (fixed-length timeframes only).
    gaps, misaligned = _empty_gaps(), 0
    if step is not None:
        step_ns = int(step.total_seconds()) * 10**9
        gaps = find_gaps(kept_times, step_ns)
        origin = _WEEK_ORIGIN_NS if step_ns % (7 * 86_400 * 10**9) == 0 else 0
        misaligned = int(np.count_nonzero((kept_times - origin) % step_ns))

    # 7: outliers on close-to-close log returns of the kept rows.
    outliers = _empty_outliers()
    if keep_pos.size > _MIN_RETURNS_FOR_OUTLIERS:
        closes = c[keep_pos]
        returns = np.diff(np.log(closes))
        z = robust_zscores(returns)
        hit = np.flatnonzero(np.abs(z) > cfg.outlier_z)
        if hit.size:
            outliers = pd.DataFrame(
                {"log_return": returns[hit], "zscore": z[hit]},
                index=pd.DatetimeIndex(
                    pd.to_datetime(kept_times[hit + 1], unit="ns", utc=True), name="time"
                ),
            )

    report = ValidationReport(
        source=source,
        timeframe=timeframe,
        rows_in=n,
        rows_out=int(keep_pos.size),
        reordered=reordered,
        misaligned=misaligned,
        dropped=dropped,
        gaps=gaps,
        outliers=outliers,
    )
    return out, report
