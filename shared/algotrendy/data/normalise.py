"""Turn what a market-data vendor sends into the platform's one shape.

Every channel funnels its rows through here so that the candle frame contract holds for
all sources: a DatetimeIndex named ``time`` in UTC (bar *open* time, nanosecond unit),
float64 columns ``open, high, low, close, volume``, sorted ascending. Nothing is repaired:
rows are converted, never dropped or filled (validation is the pipeline's job, see
``algotrendy.data.channels.base``).

Timeframes are written the ccxt way (``1m``, ``5m``, ``1h``, ``4h``, ``1d``, ``1w``,
``1M``): ccxt's ``Exchange.parse_timeframe`` is the convention most crypto tooling shares,
and each non-ccxt channel maps it onto its vendor's own codes.

Daily and longer equity/forex bars are labelled with their *trading date* at 00:00 UTC,
not with the exchange's local midnight converted to UTC (which would read 04:00/05:00 UTC
for New York). That is how ``load_ohlcv`` reads daily CSV files and how exchanges label
daily crypto candles, so one daily series looks the same whichever way it came in.

pandas is imported by the frame functions only: the timeframe arithmetic here
(`timeframe_seconds`, `parse_timeframe`) is what the signal evaluator needs of this
module, and it runs without pandas.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from algotrendy.domain.market import CANDLE_FRAME_COLUMNS
from algotrendy.errors import DataError, ParameterError
from algotrendy.storage.base import empty_candle_frame

if TYPE_CHECKING:
    import pandas as pd

_TIMEFRAME_RE = re.compile(r"^(\d+)([smhdwMy])$")
# Seconds per unit, as ccxt's Exchange.parse_timeframe (month = 30 days, year = 365 days).
_UNIT_SECONDS = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86_400,
    "w": 604_800,
    "M": 2_592_000,
    "y": 31_536_000,
}


def timeframe_seconds(timeframe: str) -> int:
    """Length of one bar in seconds for a ccxt-style timeframe such as ``"15m"``."""
    match = _TIMEFRAME_RE.match(timeframe.strip()) if isinstance(timeframe, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise ParameterError(
            f"timeframe {timeframe!r} is not valid: expected a positive number followed by "
            "s, m, h, d, w, M or y (e.g. 1m, 15m, 1h, 1d)"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


_CALENDAR_UNITS: Final = frozenset({"M", "y"})


def parse_timeframe(timeframe: str) -> timedelta | None:
    """Duration of one bar for a ccxt-style timeframe (`1m`, `15m`, `1h`, `1d`, `1w`), or
    None for calendar units (`1M`, `1y`) whose bars differ in length, so no gap can be
    counted against them. Accepted spellings are those of `timeframe_seconds`, which
    raises a ParameterError naming a bad one; as in ccxt, `1m` is a minute and `1M` a
    month.
    """
    seconds = timeframe_seconds(timeframe)
    if timeframe.strip()[-1] in _CALENDAR_UNITS:
        return None
    return timedelta(seconds=seconds)


def is_intraday(timeframe: str) -> bool:
    return timeframe_seconds(timeframe) < 86_400


def as_utc(moment: datetime | pd.Timestamp | str, *, name: str = "time") -> datetime:
    """An aware UTC datetime; naive input is *taken* as UTC (the platform's convention)."""
    import pandas as pd

    try:
        ts = pd.Timestamp(moment)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"{name}: not a date/time ({moment!r})") from exc
    if pd.isna(ts):
        raise ParameterError(f"{name}: not a date/time ({moment!r})")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def to_epoch_ms(moment: datetime) -> int:
    return int(as_utc(moment).timestamp() * 1000)


def from_epoch_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def floor_time(moment: datetime, timeframe: str) -> datetime:
    """Start of the bar that contains `moment` (epoch-aligned, as exchanges align bars)."""
    step = timeframe_seconds(timeframe)
    ts = as_utc(moment).timestamp()
    return datetime.fromtimestamp(math.floor(ts / step) * step, tz=UTC)


# Weekly bars open on Mondays (Binance, Yahoo, TradingView); 1970-01-01 was a Thursday.
_FIRST_MONDAY: Final = datetime(1970, 1, 5, tzinfo=UTC)


def _months(timeframe: str) -> int | None:
    """Calendar months per bar for `1M`/`3M`/`1y`..., None for fixed-length timeframes."""
    timeframe_seconds(timeframe)  # a bad spelling is refused by name first
    amount, unit = int(timeframe.strip()[:-1]), timeframe.strip()[-1]
    return amount if unit == "M" else amount * 12 if unit == "y" else None


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def bar_close(open_time: datetime, timeframe: str) -> datetime:
    """When the bar opening at `open_time` closes: its open plus one bar, months and years
    counted on the calendar (a `1M` bar opening 1 Feb closes 1 Mar, not 30 days later)."""
    start = as_utc(open_time)
    months = _months(timeframe)
    if months is not None:
        return _add_months(start, months)
    return start + timedelta(seconds=timeframe_seconds(timeframe))


def closed_bars(frame: pd.DataFrame, timeframe: str, now: datetime) -> pd.DataFrame:
    """Rows of a candle frame whose bar has closed by `now` (open + one bar <= now).

    Closedness is judged per bar from its own open time, so it holds whatever grid the
    source uses (Monday weeks, calendar months, US-equity hours opening at :30), where
    an end computed from `now` alone (`default_until`) can only approximate it.
    """
    import pandas as pd

    if not len(frame):
        return frame
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        index = index.tz_localize("UTC")
    months = _months(timeframe)
    if months is not None:
        closes = index + pd.DateOffset(months=months)
    else:
        closes = index + pd.Timedelta(seconds=timeframe_seconds(timeframe))
    mask = closes <= pd.Timestamp(as_utc(now))
    return frame if bool(mask.all()) else frame[mask]


def default_until(timeframe: str, now: datetime | None = None) -> datetime:
    """Open time of the bar still forming at `now` on the timeframe's usual grid: fetching
    up to (excluding) it returns closed bars only, so an ingest never stores a partial bar
    as if it were final.

    The grid: epoch multiples for minutes to days (daily bars open at 00:00 UTC, 3-day bars
    every third day since 1970, as Binance aligns them), Mondays for weeks, the 1st of the
    month for months, 1 January for years. Flooring `now` to any grid of the bar's length
    never cuts a closed bar off, but a source on another grid (equity hours at :30) can
    still return its forming bar: `closed_bars` is the per-bar rule.
    """
    current = as_utc(now) if now is not None else datetime.now(UTC)
    months = _months(timeframe)
    if months is not None:
        index = (current.year - 1970) * 12 + current.month - 1
        year, month = divmod(index - index % months, 12)
        return datetime(1970 + year, month + 1, 1, tzinfo=UTC)
    seconds = timeframe_seconds(timeframe)
    if timeframe.strip()[-1] == "w":
        weeks = (current - _FIRST_MONDAY) // timedelta(seconds=seconds)
        return _FIRST_MONDAY + weeks * timedelta(seconds=seconds)
    return floor_time(current, timeframe)


def check_range(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    start, end = as_utc(since, name="since"), as_utc(until, name="until")
    if end <= start:
        raise ParameterError(f"until ({end.isoformat()}) must be after since ({start.isoformat()})")
    return start, end


def fetch_window(
    source: str,
    timeframe: str,
    served: Iterable[str],
    since: datetime,
    until: datetime | None,
    clock: Callable[[], datetime],
) -> tuple[datetime, datetime] | None:
    """The [start, end) a channel fetches, or None when there is nothing to fetch yet.

    Refuses a timeframe the source does not serve (naming those it does); `until=None`
    means up to the bar still forming at `clock()` (closed bars only), which may leave
    nothing after `since`."""
    names = list(served)
    if timeframe not in names:
        raise ParameterError(
            f"{source}: timeframe {timeframe!r} not served; available: {', '.join(names)}"
        )
    if until is None:
        until = default_until(timeframe, clock())
        if until <= as_utc(since, name="since"):
            return None
    return check_range(since, until)


def candles_from_rows(
    rows: Sequence[Sequence[object]],
    *,
    unit: Literal["s", "ms"] = "ms",
    source: str = "<rows>",
) -> pd.DataFrame:
    """Candle frame from ``[time, open, high, low, close, volume]`` rows (ccxt's OHLCV
    layout; numbers may arrive as strings, as Binance and Kraken send them)."""
    import pandas as pd

    if len(rows) == 0:
        return empty_candle_frame()
    for pos, row in enumerate(rows):
        if len(row) < 6:
            raise DataError(f"{source}: candle {pos + 1} has {len(row)} fields, expected 6")
    times = pd.to_datetime([float(str(r[0])) for r in rows], unit=unit, utc=True)
    data: dict[str, np.ndarray] = {}
    for col_pos, col in enumerate(CANDLE_FRAME_COLUMNS, start=1):
        data[col] = _floats([r[col_pos] for r in rows], source=source, column=col)
    frame = pd.DataFrame(data, index=pd.DatetimeIndex(times, name="time").as_unit("ns"))
    return frame.sort_index(kind="stable")


def candle_frame(
    frame: pd.DataFrame,
    *,
    columns: dict[str, str] | None = None,
    source: str = "<frame>",
    date_only: bool = False,
) -> pd.DataFrame:
    """Normalise a vendor DataFrame indexed by time (any zone) into the candle frame.

    `columns` maps vendor names to ours (``{"Open": "open", ...}``); a missing volume
    column becomes 0.0 (forex quotes have none). With `date_only` the index is reduced to
    its local calendar date at 00:00 UTC (see module docstring on daily labels).
    """
    import pandas as pd

    body = frame.rename(columns=columns or {})
    missing = [c for c in CANDLE_FRAME_COLUMNS[:4] if c not in body.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"columns are {', '.join(map(str, frame.columns))}"
        )
    index = pd.DatetimeIndex(body.index)
    if date_only:
        local_dates = index.tz_localize(None) if index.tz is not None else index
        index = pd.DatetimeIndex(local_dates.normalize()).tz_localize("UTC")
    elif index.tz is None:
        index = index.tz_localize("UTC")
    else:
        index = index.tz_convert("UTC")
    out = pd.DataFrame(index=pd.DatetimeIndex(index, name="time").as_unit("ns"))
    for col in CANDLE_FRAME_COLUMNS:
        if col in body.columns:
            out[col] = _floats(list(body[col]), source=source, column=col)
        else:
            out[col] = 0.0
    return out.sort_index(kind="stable")


def restrict(frame: pd.DataFrame, since: datetime, until: datetime) -> pd.DataFrame:
    """Rows with open time in [since, until), the range contract of ``fetch_ohlcv``."""
    import pandas as pd

    start, end = pd.Timestamp(as_utc(since)), pd.Timestamp(as_utc(until))
    index = pd.DatetimeIndex(frame.index)
    return frame[(index >= start) & (index < end)]


def _floats(values: Iterable[object], *, source: str, column: str) -> np.ndarray:
    out = []
    for pos, value in enumerate(values):
        if value is None:
            out.append(math.nan)
            continue
        try:
            out.append(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{source}: row {pos + 1}, column {column}: not a number ({value!r})"
            ) from exc
    return np.asarray(out, dtype=np.float64)


def parse_symbol_list(symbols: Iterable[str]) -> tuple[str, ...]:
    """Upper-cased, de-duplicated ticker symbols in first-seen order."""
    seen: dict[str, None] = {}
    for sym in symbols:
        clean = sym.strip().upper()
        if clean:
            seen.setdefault(clean, None)
    return tuple(seen)


def utc_now() -> datetime:
    return datetime.now(UTC)
