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


def _plan_the_largest_chunk(
    handlers: Handlers, request: dict[str, Any], context: Any
) -> tuple[dict[str, Any], int]:
    """Plan with the largest chunk_size the request model accepts; when the plan refuses
    it because a chunk's input would pass the limit, with the size it names: the largest
    chunk a run can really have. Returns (plan reply, chunk size)."""
    from algotrendy.errors import ParameterError

    plan = handlers["BacktestPlanFunction"]
    chunk_size = _accepted_max(handlers, "chunk_size")
    try:
        return plan(
            {"run_id": "largest", "request": request | {"chunk_size": chunk_size}}, context
        ), chunk_size
    except ParameterError as exc:
        fits = int(str(exc).rsplit("<= ", 1)[1])
    return plan({"run_id": "largest", "request": request | {"chunk_size": fits}}, context), fits


@pytest.fixture
def largest_sweep(
    handlers: Handlers, event: Any, context: Any, read_json: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A one-symbol sweep whose single chunk is as large as the plan allows, ranked with
    `top` as large as the plan allows: (plan reply, worker reply)."""
    most = _accepted_max(handlers, "chunk_size")
    top = _accepted_max(handlers, "top")
    slow = list(range(110, 110 + math.ceil(most / 100)))
    request = event("backtest_state_machine") | {
        "grid": {"fast": list(range(2, 102)), "slow": slow},  # every fast < slow: valid
        "symbols": ["GOOG"],
        "top": top,
    }
    plan, chunk_size = _plan_the_largest_chunk(handlers, request, context)
    items = read_json(plan["bucket"], plan["manifest_key"])
    assert len(items[0]["chunk"]["params"]) == chunk_size
    assert max(_size(item) for item in items) < PAYLOAD_LIMIT
    worker_replies = [handlers["BacktestWorkerFunction"](item, context) for item in items]
    return plan | {"chunk_size": chunk_size}, worker_replies[0]


def test_worker_reply_stays_under_the_limit_for_the_largest_chunk(
    handlers: Handlers, largest_sweep: tuple[dict[str, Any], dict[str, Any]], read_json: Any
) -> None:
    plan, reply = largest_sweep
    chunk_size = plan["chunk_size"]

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


def test_a_plan_whose_chunk_input_step_functions_would_refuse_is_refused_with_a_size_that_fits(
    handlers: Handlers, event: Any, context: Any, read_json: Any
) -> None:
    """Each manifest item is a child execution's input, under the same 256 KiB limit; its
    size grows with the parameters per combination, so the plan measures it."""
    from algotrendy.errors import ParameterError

    chunk_size = _accepted_max(handlers, "chunk_size")
    request = event("backtest_state_machine") | {
        # 100 x 50 x 2 = 10,000 combinations of three parameters each.
        "grid": {
            "fast": list(range(2, 102)),
            "slow": list(range(110, 160)),
            "allow_short": [True, False],
        },
        "symbols": ["GOOG"],
        "chunk_size": chunk_size,
    }
    plan = handlers["BacktestPlanFunction"]
    with pytest.raises(ParameterError, match=r"use chunk_size <= \d+") as refused:
        plan({"run_id": "too-big", "request": request}, context)
    fits = int(str(refused.value).rsplit("<= ", 1)[1])
    assert fits < chunk_size

    reply = plan({"run_id": "fits", "request": request | {"chunk_size": fits}}, context)
    items = read_json(reply["bucket"], reply["manifest_key"])
    assert max(_size(item) for item in items) < PAYLOAD_LIMIT
    assert sum(len(item["chunk"]["params"]) for item in items) == 10_000
