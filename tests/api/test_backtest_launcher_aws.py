"""The Step Functions launcher at its two edges with AWS: a StartExecution that fails must
end the run it was for (never leave it queued), and a finished run's ranked rows come
from the S3 object the aggregate step wrote (the execution output only says where)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from api_helpers import SWEEP, DescribedExecution, Session, assert_problem, running_run
from botocore.exceptions import ClientError, EndpointConnectionError
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.api.launcher import StepFunctionsBacktestLauncher

STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:algotrendy-backtest-dev"
EXECUTION_PREFIX = "arn:aws:states:us-east-1:123456789012:execution:algotrendy-backtest-dev"


class _FailingStart:
    """A Step Functions client whose StartExecution fails as `error` says (and no
    execution exists: DescribeExecution answers ExecutionDoesNotExist)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.started = 0
        self.described: list[str] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started += 1
        raise self.error

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        self.described.append(executionArn)
        raise _client_error("ExecutionDoesNotExist", f"Execution Does Not Exist: '{executionArn}'")


def _client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "StartExecution")


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (_client_error("ThrottlingException", "Rate exceeded"), "ThrottlingException: Rate"),
        (
            _client_error("ExecutionLimitExceeded", "1000000 open executions"),
            "ExecutionLimitExceeded",
        ),
        (
            _client_error("AccessDeniedException", "not authorized to perform StartExecution"),
            "AccessDeniedException",
        ),
        (
            EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com"),
            "Could not connect",
        ),
    ],
)
def test_a_failed_start_ends_the_run_and_answers_503(
    client: TestClient,
    ctx: ApiContext,
    trader: Session,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    cause: str,
) -> None:
    sfn = _FailingStart(error)
    launcher = StepFunctionsBacktestLauncher(sfn, STATE_MACHINE, ctx.backtests)
    monkeypatch.setattr(ctx, "launcher", launcher)

    reply = client.post("/backtests", json=SWEEP, headers=trader.headers)

    body = assert_problem(reply, 503, "unavailable")
    assert sfn.started == 1
    assert cause in body["detail"]
    run_id = body["backtest_id"]
    # Only an unanswered call is checked for an execution that started anyway; an AWS
    # refusal is definite.
    unanswered = isinstance(error, EndpointConnectionError)
    assert sfn.described == ([f"{EXECUTION_PREFIX}:{run_id}"] if unanswered else [])
    assert run_id in body["detail"]
    run = client.get(f"/backtests/{run_id}", headers=trader.headers).json()
    assert run["status"] == "failed"
    assert cause in run["error"]
    assert run["finished_at"] is not None
    assert [
        r["id"] for r in client.get("/backtests?status=queued", headers=trader.headers).json()
    ] == []


def test_an_unexpected_start_error_still_ends_the_run(
    client: TestClient, ctx: ApiContext, trader: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in starting (not an AWS refusal) answers 500, but the run is not left queued."""
    launcher = StepFunctionsBacktestLauncher(
        _FailingStart(KeyError("executionArn")), STATE_MACHINE, ctx.backtests
    )
    monkeypatch.setattr(ctx, "launcher", launcher)

    reply = client.post("/backtests", json=SWEEP, headers=trader.headers)

    assert_problem(reply, 500, "internal")
    [run] = client.get("/backtests", headers=trader.headers).json()
    assert run["status"] == "failed"
    assert "KeyError" in run["error"]


# -- a succeeded execution's results ----------------------------------------------------------
def _record(rank: int) -> dict[str, Any]:
    """A ranked record as the aggregate step writes it (flat: rank, symbol, params, metrics)."""
    return {
        "rank": rank,
        "symbol": "GOOG",
        "fast": 2 + rank % 40,
        "slow": 50 + rank // 40,
        "sharpe": None if rank == 1000 else 2.0 - rank / 1000,
        "total_return": 0.5 - rank / 4000,
    }


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="artefacts")
    return client


def _output(count: int) -> dict[str, Any]:
    """The aggregate step's reply: where the top rows are, not the rows."""
    return {
        "run_id": "r",
        "metric": "sharpe",
        "row_count": 4000,
        "ranking": {"bucket": "artefacts", "key": "backtests/r/ranking.csv"},
        "top_records": {"bucket": "artefacts", "key": "backtests/r/top.json", "count": count},
        "best": _record(1),
    }


def test_sync_stores_the_top_rows_the_aggregate_wrote_to_s3(ctx: ApiContext, s3: Any) -> None:
    records = [_record(rank) for rank in range(1, 1001)]  # the API's largest `top`
    s3.put_object(Bucket="artefacts", Key="backtests/r/top.json", Body=json.dumps(records))
    launcher = StepFunctionsBacktestLauncher(
        DescribedExecution("SUCCEEDED", _output(len(records))), STATE_MACHINE, ctx.backtests, s3=s3
    )

    launcher.sync(running_run(ctx.backtests, "big"))

    row = ctx.backtests.get("big")
    assert row is not None
    assert row.status == "succeeded"
    assert row.summary["n_results"] == 4000  # type: ignore[index]
    assert row.summary["best"] == {  # type: ignore[index]
        "symbol": "GOOG",
        "params": {"fast": 3, "slow": 50},
        "metrics": {"sharpe": 1.999, "total_return": 0.5 - 1 / 4000},
    }
    stored = ctx.backtests.results("big", limit=2000)
    assert [(r.rank, r.params, r.metrics) for r in stored] == [
        (
            rec["rank"],
            {"fast": rec["fast"], "slow": rec["slow"]},
            {"sharpe": rec["sharpe"], "total_return": rec["total_return"]},
        )
        for rec in records
    ]


def test_sync_fails_the_run_when_its_top_rows_expired(ctx: ApiContext, s3: Any) -> None:
    """The bucket's lifecycle expires backtests/: a run synced too late cannot get its
    rows back, and says so instead of answering 500 on every poll."""
    launcher = StepFunctionsBacktestLauncher(
        DescribedExecution("SUCCEEDED", _output(20)), STATE_MACHINE, ctx.backtests, s3=s3
    )

    launcher.sync(running_run(ctx.backtests, "late"))

    row = ctx.backtests.get("late")
    assert row is not None
    assert row.status == "failed"
    assert "s3://artefacts/backtests/r/top.json no longer exist" in (row.error or "")
    assert ctx.backtests.results("late") == []
