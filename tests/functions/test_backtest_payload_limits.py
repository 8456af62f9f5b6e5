"""The backtest tasks' replies against Step Functions' 256 KiB payload limit.

Step Functions checks the limit on a task's raw result, before ResultSelector or
OutputPath trim it, and a result over it fails the execution with States.DataLimitExceeded,
which no Retry or Catch matches. moto does not enforce the quota, so these tests measure
the replies themselves, at the largest chunk and `top` the plan accepts (the API's bounds,
`top` <= 1000 and the admin's chunk size, are within them), on a real sweep.
"""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import annotated_types
import pandas as pd
import pytest

from algotrendy.backtest.sweep import SweepRow

Handlers = dict[str, Callable[..., Any]]
PAYLOAD_LIMIT = 256 * 1024  # bytes, AWS Step Functions quota for state input/output


def _accepted_max(handlers: Handlers, field: str) -> int:
    """The largest value the plan step's request model accepts for `field`."""
    plan_module = sys.modules[handlers["BacktestPlanFunction"].__module__]
    for rule in plan_module.BacktestRequest.model_fields[field].metadata:
        if isinstance(rule, annotated_types.Le):
            return int(rule.le)
    raise AssertionError(f"BacktestRequest.{field} has no upper bound")


def _size(reply: Any) -> int:
    """Bytes of the reply as Lambda serialises it for Step Functions."""
    return len(json.dumps(reply, allow_nan=False).encode())


@pytest.fixture
def largest_sweep(
    handlers: Handlers, event: Any, context: Any, read_json: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A one-symbol sweep whose single chunk is as large as the plan allows, ranked with
    `top` as large as the plan allows: (plan reply, worker reply)."""
    chunk_size = _accepted_max(handlers, "chunk_size")
    top = _accepted_max(handlers, "top")
    slow = list(range(110, 110 + math.ceil(chunk_size / 100)))
    request = event("backtest_state_machine") | {
        "grid": {"fast": list(range(2, 102)), "slow": slow},  # every fast < slow: valid
        "symbols": ["GOOG"],
        "chunk_size": chunk_size,
        "top": top,
    }
    plan = handlers["BacktestPlanFunction"]({"run_id": "largest", "request": request}, context)
    first = read_json(plan["bucket"], plan["manifest_key"])[0]
    assert len(first["chunk"]["params"]) == chunk_size
    worker_replies = [
        handlers["BacktestWorkerFunction"](item, context)
        for item in read_json(plan["bucket"], plan["manifest_key"])
    ]
    return plan, worker_replies[0]


def test_worker_reply_stays_under_the_limit_for_the_largest_chunk(
    handlers: Handlers, largest_sweep: tuple[dict[str, Any], dict[str, Any]], read_json: Any
) -> None:
    _, reply = largest_sweep
    chunk_size = _accepted_max(handlers, "chunk_size")

    assert reply["row_count"] == chunk_size
    assert _size(reply) < PAYLOAD_LIMIT
    # The rows are all in S3, where the aggregate step reads them.
    stored = [SweepRow.model_validate(r) for r in read_json(**reply["output"])]
    assert len(stored) == chunk_size
    assert [r.task for r in stored] == list(range(chunk_size))


def test_aggregate_reply_stays_under_the_limit_for_the_largest_top(
    handlers: Handlers,
    largest_sweep: tuple[dict[str, Any], dict[str, Any]],
    context: Any,
    s3: Any,
    read_json: Any,
) -> None:
    plan, _ = largest_sweep
    assert plan["top"] == _accepted_max(handlers, "top")

    reply = handlers["BacktestAggregateFunction"](plan, context)

    assert _size(reply) < PAYLOAD_LIMIT
    # The `top` rows the reply no longer carries are in S3: the head of the ranking.
    body = s3.get_object(Bucket=plan["bucket"], Key=plan["ranking_key"])["Body"].read()
    ranking = pd.read_csv(io.BytesIO(body))
    top = read_json(plan["bucket"], plan["top_key"])
    expected = min(plan["top"], plan["task_count"])
    assert reply["top_records"] == {
        "bucket": plan["bucket"],
        "key": plan["top_key"],
        "count": expected,
    }
    assert len(top) == expected
    assert [(t["rank"], t["fast"], t["slow"]) for t in top] == [
        (int(r), int(f), int(s))
        for r, f, s in ranking[["rank", "fast", "slow"]].head(expected).itertuples(index=False)
    ]
    assert reply["best"] == top[0]
