"""functions/backtest_aggregate: every chunk's rows -> ranking and top rows in S3, a
summary in the reply."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from algotrendy.backtest.sweep import SweepRow, aggregate
from algotrendy.errors import DataError

Handlers = dict[str, Callable[..., Any]]


def _run_workers(handlers: Handlers, context: Any, read_json: Any, plan: dict[str, Any]) -> None:
    """What the Distributed Map does: one worker invocation per manifest item."""
    for item in read_json(plan["bucket"], plan["manifest_key"]):
        handlers["BacktestWorkerFunction"](item, context)


@pytest.fixture
def planned(handlers: Handlers, event: Any, context: Any, read_json: Any) -> dict[str, Any]:
    plan = handlers["BacktestPlanFunction"](event("backtest_plan"), context)
    assert plan == event("backtest_aggregate")
    _run_workers(handlers, context, read_json, plan)
    return plan


def test_ranking_covers_every_row_best_first(
    handlers: Handlers, planned: dict[str, Any], context: Any, s3: Any, read_json: Any
) -> None:
    reply = handlers["BacktestAggregateFunction"](planned, context)

    # Every row the workers wrote, read back independently of the handler.
    rows = [
        SweepRow.model_validate(r)
        for obj in s3.list_objects_v2(Bucket=planned["bucket"], Prefix=planned["rows_prefix"])[
            "Contents"
        ]
        for r in read_json(planned["bucket"], obj["Key"])
    ]
    assert len(rows) == planned["task_count"]

    body = s3.get_object(Bucket=planned["bucket"], Key=planned["ranking_key"])["Body"].read()
    ranking = pd.read_csv(io.BytesIO(body))
    assert reply["row_count"] == len(ranking) == len(rows)
    assert list(ranking["rank"]) == list(range(1, len(rows) + 1))
    # Sharpe ranks descending with NaN last.
    sharpe = ranking["sharpe"].to_numpy()
    finite = sharpe[~pd.isna(sharpe)]
    assert list(finite) == sorted(finite, reverse=True)
    assert pd.isna(sharpe[len(finite) :]).all()
    # The CSV rows are exactly the workers' rows (symbol, params, metric).
    want = sorted((r.symbol, r.params["fast"], r.params["slow"], r.metrics["sharpe"]) for r in rows)
    got = sorted(
        (s, int(f), int(w), float(m))
        for s, f, w, m in ranking[["symbol", "fast", "slow", "sharpe"]].itertuples(index=False)
    )
    assert [g[:3] for g in got] == [w[:3] for w in want]
    assert all(
        (math.isnan(a[3]) and math.isnan(b[3])) or a[3] == pytest.approx(b[3], rel=1e-12)
        for a, b in zip(got, want, strict=True)
    )

    # The stored top rows are the head of the stored ranking; the reply says where they
    # are and repeats the best one, JSON-safe.
    top = read_json(planned["bucket"], planned["top_key"])
    assert len(top) == planned["top"]
    assert [(t["rank"], t["symbol"], t["fast"], t["slow"]) for t in top] == [
        (int(r), s, int(f), int(w))
        for r, s, f, w in ranking[["rank", "symbol", "fast", "slow"]]
        .head(planned["top"])
        .itertuples(index=False)
    ]
    assert reply["top_records"] == {
        "bucket": planned["bucket"],
        "key": planned["top_key"],
        "count": planned["top"],
    }
    assert reply["best"] == top[0]
    json.dumps(reply, allow_nan=False)


def test_a_missing_chunk_result_is_refused(
    handlers: Handlers, planned: dict[str, Any], context: Any, s3: Any
) -> None:
    s3.delete_object(Bucket=planned["bucket"], Key=f"{planned['rows_prefix']}chunk-00001.json")
    with pytest.raises(DataError, match=r"3 chunk result.*the plan made 4"):
        handlers["BacktestAggregateFunction"](planned, context)
    listed = s3.list_objects_v2(Bucket=planned["bucket"], Prefix=planned["ranking_key"])
    assert listed.get("KeyCount", 0) == 0


def test_a_corrupt_chunk_result_names_the_object(
    handlers: Handlers, planned: dict[str, Any], context: Any, s3: Any
) -> None:
    key = f"{planned['rows_prefix']}chunk-00002.json"
    s3.put_object(Bucket=planned["bucket"], Key=key, Body=b'[{"symbol": "GOOG"}]')
    with pytest.raises(DataError, match=r"chunk-00002\.json: not a list of sweep rows"):
        handlers["BacktestAggregateFunction"](planned, context)


def _pandas_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The reply rows as the handler built them from the pandas frame before."""
    return [
        {
            str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in rec.items()
        }
        for rec in frame.to_dict(orient="records")
    ]


def test_ranking_csv_and_top_are_those_of_the_pandas_aggregate(
    handlers: Handlers, event: Any, context: Any, s3: Any, read_json: Any
) -> None:
    """The handler ranks without pandas; what it stores and returns is byte for byte what
    `aggregate(...).to_csv(index=False)` and the frame's records gave, here on rows with
    the awkward cases (ints beside a gap, quotes and commas, NaN and inf, a parameter
    only some rows have, ties)."""
    plan = event("backtest_aggregate")
    plan.update(chunk_count=2, top=3)
    rows = [
        {
            "chunk_id": "chunk-00000",
            "task": 0,
            "symbol": 'BRK,"B"',
            "params": {"fast": 5, "mode": "a,b"},
            "metrics": {"sharpe": 0.5, "profit_factor": math.inf},
        },
        {
            "chunk_id": "chunk-00000",
            "task": 1,
            "symbol": "GOOG",
            "params": {"fast": 10, "mode": None, "extra": True},
            "metrics": {"sharpe": math.nan, "profit_factor": 1.25},
        },
        {
            "chunk_id": "chunk-00001",
            "task": 2,
            "symbol": "GOOG",
            "params": {"fast": 20, "mode": 'say "hi"'},
            "metrics": {"sharpe": 0.5, "profit_factor": 0.1 + 0.2},
        },
        {
            "chunk_id": "chunk-00001",
            "task": 3,
            "symbol": "EURUSD",
            "params": {"fast": 30},
            "metrics": {"sharpe": 1e-7, "profit_factor": -0.0},
        },
    ]
    models = [SweepRow.model_validate(r) for r in rows]
    s3.create_bucket(Bucket=plan["bucket"])
    for chunk in ("chunk-00000", "chunk-00001"):
        body = "[" + ",".join(m.model_dump_json() for m in models if m.chunk_id == chunk) + "]"
        s3.put_object(Bucket=plan["bucket"], Key=f"{plan['rows_prefix']}{chunk}.json", Body=body)

    reply = handlers["BacktestAggregateFunction"](plan, context)

    frame = aggregate(models, metric="sharpe")
    stored = s3.get_object(Bucket=plan["bucket"], Key=plan["ranking_key"])["Body"].read()
    assert stored == frame.to_csv(index=False).encode()
    assert reply["row_count"] == 4
    top = read_json(plan["bucket"], plan["top_key"])
    assert top == _pandas_records(frame.head(3))
    assert [t["fast"] for t in top] == [5, 20, 30]  # ties in plan order
    assert reply["best"] == top[0]
    json.dumps(reply, allow_nan=False)
