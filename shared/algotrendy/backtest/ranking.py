"""Ranking sweep rows by one metric, in plain Python.

The AWS sweep's aggregate step (a Lambda of its own) ranks every row, stores the ranking
as CSV and returns the best rows; loading pandas and numpy only for that was most of its
cold start. So the ranking is written once here without either: `sweep.aggregate` wraps
it in a DataFrame for local sweeps, and `Ranking.to_csv` / `Ranking.records` give the
bytes and values that frame gives (`to_csv(index=False)`, `to_dict(orient="records")`),
so the stored ranking is the same whichever way it is produced.

Rows arrive from JSON in the aggregate step, so cells are JSON's values (str, int,
float, bool, None, lists, dicts); that is the domain the CSV and records match pandas on
(tests/backtest/test_ranking.py checks it against pandas).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from algotrendy.backtest.metric_names import METRICS
from algotrendy.errors import ParameterError

LOWER_IS_BETTER = frozenset(
    {"volatility_ann", "max_drawdown_duration_bars", "max_drawdown_duration_days"}
)
"""Metrics ranked ascending by default. Every other metric ranks descending, including
`max_drawdown`, which is a negative fraction (-0.05 beats -0.30), and `worst_trade`."""

# pandas holds a column of Python ints and floats (or gaps) as float64 unless its ints
# fit no one 64-bit type (one outside int64 and uint64, or a negative one beside one
# above int64); then the column stays object and every value as is.
_INT64_MIN = -(2**63)
_INT64_END = 2**63
_UINT64_END = 2**64


class SweepRow(BaseModel):
    """Metrics of one (symbol, params) backtest; `metrics` keys as `METRICS`."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    chunk_id: str
    task: int = Field(ge=0)
    symbol: str
    params: dict[str, Any]
    metrics: dict[str, float]


def default_ascending(metric: str) -> bool:
    """Whether smaller is better for `metric` (see `LOWER_IS_BETTER`)."""
    return metric in LOWER_IS_BETTER


def check_top(top: int | None) -> None:
    """Refuse a `top` that is not a positive integer (None: keep every row)."""
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ParameterError(f"top: must be a positive integer or None (got {top!r})")


def _missing(value: Any) -> bool:
    """A gap as pandas sees one in these cells: None or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _held_as_float(values: Iterable[Any]) -> bool:
    """Whether a DataFrame holds this column as float64: only ints, floats and gaps, at
    least one float or gap beside a number, and ints that one 64-bit type holds. Its ints
    are then floats (5 is written 5.0) and its gaps NaN."""
    number = float_or_gap = negative = above_int64 = False
    for v in values:
        if v is None:
            float_or_gap = True
        elif isinstance(v, float):
            number = float_or_gap = True
        elif isinstance(v, int) and not isinstance(v, bool):
            if not _INT64_MIN <= v < _UINT64_END:
                return False
            negative = negative or v < 0
            above_int64 = above_int64 or v >= _INT64_END
            number = True
        else:
            return False
    return number and float_or_gap and not (negative and above_int64)


def _order(keys: Sequence[Any], ascending: bool) -> list[int]:
    """Positions of `keys` sorted stably in the given direction, gaps last.

    `sorted(reverse=True)` keeps equal keys in their original order, as pandas' stable
    descending sort does, so ties stay in plan order either way.
    """
    present = [i for i, k in enumerate(keys) if not _missing(k)]
    gaps = [i for i, k in enumerate(keys) if _missing(k)]
    present.sort(key=keys.__getitem__, reverse=not ascending)
    return present + gaps


@dataclass(frozen=True)
class Ranking:
    """Rows best first: `columns` are rank, symbol, one per parameter, then every
    metric; each row holds the values in that order as the rows gave them."""

    metric: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def __len__(self) -> int:
        return len(self.rows)

    def _cells(self, limit: int | None) -> list[list[Any]]:
        """Rows as a DataFrame of *every* row holds them (a column's type depends on all
        its values), cut to the first `limit`."""
        shown = [list(r) for r in self.rows[:limit]]
        for j in range(len(self.columns)):
            if _held_as_float(r[j] for r in self.rows):
                for r in shown:
                    r[j] = math.nan if r[j] is None else float(r[j])
        return shown

    def to_csv(self) -> str:
        """The ranking as `frame.to_csv(index=False)` writes it (pandas writes with the
        csv module too): gaps as empty fields, floats as repr gives them."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self._cells(None):
            writer.writerow("" if _missing(v) else v for v in row)
        return out.getvalue()

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The first `limit` rows (all for None) as `frame.to_dict(orient="records")`
        gives them, JSON-safe: gaps and non-finite floats as None."""
        return [
            {
                name: None if _missing(v) or (isinstance(v, float) and not math.isfinite(v)) else v
                for name, v in zip(self.columns, row, strict=True)
            }
            for row in self._cells(limit)
        ]


def rank_rows(
    rows: Iterable[SweepRow | Mapping[str, Any]],
    *,
    metric: str,
    ascending: bool | None = None,
) -> Ranking:
    """Rank every row by `metric`.

    Best first in the metric's natural direction unless `ascending` is given; a missing
    (NaN) metric ranks last whatever the direction; ties keep plan order (a stable sort
    over rows sorted by `task`), so the ranking does not depend on the order in which
    workers finished. A metric no row has is a column of NaN at the end.
    """
    parsed = [r if isinstance(r, SweepRow) else SweepRow.model_validate(r) for r in rows]
    parsed.sort(key=lambda r: r.task)
    param_names: list[str] = []
    metric_names: list[str] = []
    for r in parsed:
        for k in r.params:
            if k not in param_names:
                param_names.append(k)
        for k in r.metrics:
            if k not in metric_names:
                metric_names.append(k)
    if metric not in METRICS and metric not in metric_names:
        raise ParameterError(f"metric: unknown {metric!r}; known: {', '.join(METRICS)}")
    clash = [k for k in param_names if k in metric_names or k in ("rank", "symbol")]
    if clash:
        raise ParameterError(f"aggregate: parameter name(s) {clash} clash with result columns")
    # A frame once took these as duplicate columns, and failed or ranked the wrong one.
    clash = [k for k in metric_names if k in ("rank", "symbol")]
    if clash:
        raise ParameterError(f"aggregate: metric name(s) {clash} clash with result columns")
    columns = ["symbol", *param_names, *metric_names]
    body = [
        (
            r.symbol,
            *(r.params.get(k) for k in param_names),
            *(r.metrics.get(k, math.nan) for k in metric_names),
        )
        for r in parsed
    ]
    if metric not in columns:
        columns.append(metric)
        body = [(*b, math.nan) for b in body]
    key = columns.index(metric)
    asc = default_ascending(metric) if ascending is None else bool(ascending)
    order = _order([b[key] for b in body], asc)
    return Ranking(
        metric=metric,
        columns=("rank", *columns),
        rows=tuple((rank, *body[i]) for rank, i in enumerate(order, start=1)),
    )
