"""`rank_rows` (plain Python) against the pandas ranking it replaced: the same order, the
same frame from `aggregate`, and the very CSV bytes and reply records the aggregate
Lambda produced with pandas."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.backtest.metric_names import METRICS
from algotrendy.backtest.ranking import Ranking, SweepRow, check_top, default_ascending, rank_rows
from algotrendy.backtest.sweep import aggregate
from algotrendy.errors import ParameterError


def _aggregate_before(
    rows: Iterable[SweepRow | Mapping[str, Any]],
    *,
    metric: str,
    top: int | None = None,
    ascending: bool | None = None,
) -> pd.DataFrame:
    """`sweep.aggregate` as it was before `rank_rows`, verbatim: the reference."""
    parsed = [r if isinstance(r, SweepRow) else SweepRow.model_validate(r) for r in rows]
    parsed.sort(key=lambda r: r.task)
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ParameterError(f"top: must be a positive integer or None (got {top!r})")
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
    columns = ["symbol", *param_names, *metric_names]
    records = [
        {
            "symbol": r.symbol,
            **{k: r.params.get(k) for k in param_names},
            **{k: r.metrics.get(k, math.nan) for k in metric_names},
        }
        for r in parsed
    ]
    frame = pd.DataFrame.from_records(records, columns=columns)
    if metric not in frame.columns:
        frame[metric] = pd.Series(dtype="float64")
    asc = default_ascending(metric) if ascending is None else bool(ascending)
    frame = frame.sort_values(metric, ascending=asc, kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    if top is not None:
        frame = frame.head(top)
    return frame


def _records_before(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The aggregate Lambda's reply rows as it built them from the frame."""
    return [
        {
            str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in rec.items()
        }
        for rec in frame.to_dict(orient="records")
    ]


def _row(task: int, metrics: dict[str, float], **params: Any) -> SweepRow:
    return SweepRow(chunk_id="c", task=task, symbol="A", params=params, metrics=metrics)


# --------------------------------------------------------------------------- examples


def test_ties_keep_plan_order_and_nan_ranks_last_in_both_directions() -> None:
    rows = [
        _row(3, {"sharpe": 0.5}, id=3),
        _row(0, {"sharpe": math.nan}, id=0),
        _row(1, {"sharpe": 1.5}, id=1),
        _row(2, {"sharpe": 0.5}, id=2),
        _row(4, {"sharpe": -1.0}, id=4),
        _row(5, {"sharpe": 0.5}, id=5),
    ]
    down = rank_rows(rows, metric="sharpe")
    assert [r[2] for r in down.rows] == [1, 2, 3, 5, 4, 0]
    assert [r[0] for r in down.rows] == [1, 2, 3, 4, 5, 6]
    up = rank_rows(rows, metric="sharpe", ascending=True)
    assert [r[2] for r in up.rows] == [4, 2, 3, 5, 1, 0]
    # Workers finishing in any order: the input order does not matter.
    assert rank_rows(reversed(rows), metric="sharpe") == down


def test_columns_are_rank_symbol_params_then_metrics() -> None:
    rows = [_row(0, {"total_return": 0.1, "sharpe": 1.0}, fast=5, slow=20)]
    assert rank_rows(rows, metric="sharpe").columns == (
        "rank",
        "symbol",
        "fast",
        "slow",
        "total_return",
        "sharpe",
    )
    # A known metric no row has: a column of NaN at the end, ranked on nothing.
    missing = rank_rows(rows, metric="calmar")
    assert missing.columns[-1] == "calmar"
    assert math.isnan(missing.rows[0][-1])


def test_csv_writes_gaps_empty_ints_with_a_gap_as_floats_and_quotes_what_needs_it() -> None:
    rows = [
        SweepRow(
            chunk_id="c",
            task=0,
            symbol='BRK,"B"',
            params={"n": 5, "flag": True, "note": "a\nb"},
            metrics={"sharpe": 1e16, "total_return": math.inf},
        ),
        SweepRow(
            chunk_id="c",
            task=1,
            symbol="X",
            params={"flag": False, "note": None},
            metrics={"sharpe": 0.1 + 0.2, "total_return": math.nan},
        ),
    ]
    ranking = rank_rows(rows, metric="sharpe")
    assert ranking.to_csv() == (
        "rank,symbol,n,flag,note,sharpe,total_return\n"
        '1,"BRK,""B""",5.0,True,"a\nb",1e+16,inf\n'
        "2,X,,False,,0.30000000000000004,\n"
    )
    assert ranking.records() == [
        {
            "rank": 1,
            "symbol": 'BRK,"B"',
            "n": 5.0,
            "flag": True,
            "note": "a\nb",
            "sharpe": 1e16,
            "total_return": None,
        },
        {
            "rank": 2,
            "symbol": "X",
            "n": None,
            "flag": False,
            "note": None,
            "sharpe": 0.30000000000000004,
            "total_return": None,
        },
    ]
    assert isinstance(ranking.records()[0]["n"], float)
    assert ranking.records(1) == ranking.records()[:1]
    # Both are what pandas gave.
    before = _aggregate_before(rows, metric="sharpe")
    assert ranking.to_csv() == before.to_csv(index=False)
    assert ranking.records() == _records_before(before)


def test_an_int_column_without_gaps_stays_ints() -> None:
    rows = [_row(0, {"sharpe": 1.0}, n=5), _row(1, {"sharpe": 2.0}, n=6)]
    ranking = rank_rows(rows, metric="sharpe")
    assert ranking.to_csv().splitlines()[1:] == ["1,A,6,2.0", "2,A,5,1.0"]
    assert [r["n"] for r in ranking.records()] == [6, 5]
    assert all(type(r["n"]) is int for r in ranking.records())


def test_no_rows_is_a_header() -> None:
    ranking = rank_rows([], metric="sharpe")
    assert len(ranking) == 0
    assert (
        ranking.to_csv()
        == "rank,symbol,sharpe\n"
        == aggregate([], metric="sharpe").to_csv(index=False)
    )
    assert ranking.records() == []


def test_refuses_unknown_metric_and_name_clashes() -> None:
    with pytest.raises(ParameterError, match="metric: unknown 'sharp'"):
        rank_rows([_row(0, {"sharpe": 1.0})], metric="sharp")
    with pytest.raises(ParameterError, match=r"parameter name\(s\) \['sharpe'\] clash"):
        rank_rows([_row(0, {"sharpe": 1.0}, sharpe=1)], metric="sharpe")
    with pytest.raises(ParameterError, match=r"parameter name\(s\) \['rank'\] clash"):
        rank_rows([_row(0, {"sharpe": 1.0}, rank=1)], metric="sharpe")
    # A metric named like a result column made a frame with two such columns.
    with pytest.raises(ParameterError, match=r"metric name\(s\) \['symbol'\] clash"):
        rank_rows([_row(0, {"sharpe": 1.0, "symbol": 2.0})], metric="sharpe")


@pytest.mark.parametrize("top", [0, -1, True, 1.5, "3"])
def test_bad_top_is_refused(top: Any) -> None:
    with pytest.raises(ParameterError, match="top: must be a positive integer or None"):
        check_top(top)
    with pytest.raises(ParameterError, match="top: must be a positive integer or None"):
        aggregate([_row(0, {"sharpe": 1.0})], metric="sharpe", top=top)


# ----------------------------------------------------- properties, against pandas

_SAFE_TEXT = st.text(alphabet=st.sampled_from("ab ,;\"'\n\r\tzé€1.-"), max_size=6)

# Per column one kind of value, or a mix: columns in a real sweep are homogeneous, rows
# built by hand or merged from several plans need not be.
_VALUES = {
    "small_int": st.integers(-5, 5),
    "int": st.integers(-(2**70), 2**70),
    "uint64": st.integers(2**63, 2**64 - 1),
    "int64_edges": st.sampled_from([-(2**63) - 1, -(2**63), -1, 2**63 - 1, 2**63, 2**64]),
    "float": st.floats(allow_nan=True, allow_infinity=True),
    "bool": st.booleans(),
    "str": _SAFE_TEXT,
    "list": st.lists(st.integers(0, 3), max_size=2),
}
_column = st.lists(st.sampled_from(sorted(_VALUES)), min_size=1, max_size=3).map(
    lambda kinds: st.one_of(*(_VALUES[k] for k in kinds))
)
_metric_value = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_METRIC_KEYS = ("sharpe", "total_return", "max_drawdown_duration_bars", "custom")


@st.composite
def _rows(draw: st.DrawFn) -> list[SweepRow]:
    columns = {name: draw(_column) for name in draw(st.sets(st.sampled_from("abc")))}
    n = draw(st.integers(0, 12))
    tasks = draw(st.permutations(range(n)))
    rows = []
    for task in tasks:
        params = {
            name: draw(values)
            for name, values in columns.items()
            if draw(st.integers(0, 5))  # now and then a parameter this row lacks
        }
        metrics = {k: draw(_metric_value) for k in _METRIC_KEYS if draw(st.integers(0, 5))}
        symbol = draw(st.one_of(st.sampled_from(["GOOG", "EURUSD"]), _SAFE_TEXT))
        rows.append(
            SweepRow(chunk_id="c", task=task, symbol=symbol, params=params, metrics=metrics)
        )
    return rows


@settings(max_examples=400)
@given(
    _rows(),
    st.sampled_from([*_METRIC_KEYS, "calmar"]),
    st.sampled_from([None, True, False]),
    st.one_of(st.none(), st.integers(1, 15)),
)
def test_same_as_the_pandas_ranking(
    rows: list[SweepRow], metric: str, ascending: bool | None, top: int | None
) -> None:
    try:
        before = _aggregate_before(rows, metric=metric, ascending=ascending)
    except ParameterError as exc:  # "custom" where no row has it: the same refusal
        refused = str(exc)
    else:
        refused = ""
    if refused:
        with pytest.raises(ParameterError, match=f"^{re.escape(refused)}$"):
            rank_rows(rows, metric=metric, ascending=ascending)
        return
    ranking = rank_rows(rows, metric=metric, ascending=ascending)
    # Order and values, through the frame `aggregate` builds from the ranking.
    pd.testing.assert_frame_equal(
        aggregate(rows, metric=metric, ascending=ascending, top=top),
        _aggregate_before(rows, metric=metric, ascending=ascending, top=top),
    )
    assert list(ranking.columns) == list(before.columns)
    # The aggregate Lambda's outputs: the stored CSV, byte for byte, and the reply rows.
    assert ranking.to_csv() == before.to_csv(index=False)
    shown = before if top is None else before.head(top)
    assert ranking.records(top) == _records_before(shown)


@settings(max_examples=100)
@given(_rows())
def test_rows_given_as_json_dicts_rank_the_same(rows: list[SweepRow]) -> None:
    from_dicts = rank_rows([r.model_dump() for r in rows], metric="sharpe")
    from_models = rank_rows(rows, metric="sharpe")
    assert from_dicts.columns == from_models.columns
    assert from_dicts.to_csv() == from_models.to_csv()


def test_ranking_is_a_plain_value() -> None:
    """Frozen, comparable, and no frame inside: what the Lambda holds is plain Python."""
    ranking = rank_rows([_row(0, {"sharpe": 1.0}, fast=5)], metric="sharpe")
    assert ranking == Ranking(
        metric="sharpe", columns=("rank", "symbol", "fast", "sharpe"), rows=((1, "A", 5, 1.0),)
    )
