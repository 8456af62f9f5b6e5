"""statemachines/backtest.asl.json end to end under moto's Step Functions interpreter.

The very ASL file is deployed with template.yaml's DefinitionSubstitutions (function ARNs
from the functions' names, parameters at their defaults). moto runs it, Distributed Map
and S3 ItemReader included; its Lambda invocations are dispatched in-process to the real
handlers, and a handler's exception becomes a Lambda function error with the exception's
class name as errorType, as the Python runtime reports it. So Retry/Catch matching, the
payload shapes between states and the S3 layout are all exercised together.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
import sam_template as sam
from moto.awslambda_simple.models import LambdaSimpleBackend

Handlers = dict[str, Callable[..., Any]]


@pytest.fixture
def moto_config() -> dict[str, Any]:
    return {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def _function_arn(template: dict[str, Any], logical_id: str) -> str:
    name = sam.resolve_sub(
        template, template["Resources"][logical_id]["Properties"]["FunctionName"]
    )
    return f"arn:aws:lambda:{sam.REGION}:{sam.ACCOUNT_ID}:function:{name}"


def _substitute(template: dict[str, Any], value: Any) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn"
        return _function_arn(template, logical_id)
    if value == {"Ref": "ArtefactsBucket"}:
        return sam.artefacts_bucket_name(template)
    if isinstance(value, dict) and "Ref" in value:
        return sam.parameter_defaults(template)[value["Ref"]]
    return sam.resolve_sub(template, value)


@pytest.fixture
def state_machine(
    s3: Any,
    template: dict[str, Any],
    handlers: Handlers,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Any, str]:
    by_name = {_function_arn(template, lid).rsplit(":", 1)[1]: fn for lid, fn in handlers.items()}

    def invoke(
        self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response: Any
    ) -> bytes:
        name = function_name.rsplit(":", 1)[-1]
        event = json.loads(body)
        try:
            result = by_name[name](event, sam.FakeLambdaContext(function_name=name))
        except Exception as exc:  # noqa: BLE001 - reported to Step Functions, as Lambda does
            response["x-amz-function-error"] = "Unhandled"
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return json.dumps(error).encode()
        return json.dumps(result).encode()

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    props = template["Resources"]["BacktestStateMachine"]["Properties"]
    definition = (sam.ROOT / props["DefinitionUri"]).read_text()
    for key, value in props["DefinitionSubstitutions"].items():
        definition = definition.replace(f"${{{key}}}", _substitute(template, value))
    assert not re.search(r"\$\{\w+\}", definition)
    sfn = boto3.client("stepfunctions", region_name=sam.REGION)
    arn = sfn.create_state_machine(
        name=sam.resolve_sub(template, props["Name"]),
        definition=definition,
        roleArn=f"arn:aws:iam::{sam.ACCOUNT_ID}:role/algotrendy-backtest",
    )["stateMachineArn"]
    return sfn, arn


def _run(sfn: Any, arn: str, name: str, request: dict[str, Any]) -> dict[str, Any]:
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(request))
    deadline = time.monotonic() + 120
    while True:
        desc = sfn.describe_execution(executionArn=execution["executionArn"])
        if desc["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, "execution still running after 120 s"
        time.sleep(0.1)
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    desc["entered"] = [
        e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
    ]
    return dict(desc)


def test_sample_request_runs_plan_map_aggregate(
    state_machine: tuple[Any, str], s3: Any, bucket: str, event: Any, read_json: Any
) -> None:
    sfn, arn = state_machine
    request = event("backtest_state_machine")
    result = _run(sfn, arn, "sample-sma-cross", request)

    assert result["status"] == "SUCCEEDED", result
    assert result["entered"][:2] == ["Plan", "RunChunks"]
    assert result["entered"][-1] == "Aggregate"
    output = json.loads(result["output"])
    plan = event("backtest_aggregate")  # the plan reply for this very request
    assert output["run_id"] == "sample-sma-cross"
    assert output["row_count"] == plan["task_count"]
    assert output["ranking"] == {"bucket": bucket, "key": plan["ranking_key"]}
    assert output["top_records"] == {
        "bucket": bucket,
        "key": plan["top_key"],
        "count": request["top"],
    }
    top = read_json(bucket, plan["top_key"])
    assert [t["rank"] for t in top] == list(range(1, request["top"] + 1))
    assert output["best"] == top[0]
    rows = s3.list_objects_v2(Bucket=bucket, Prefix=plan["rows_prefix"])["Contents"]
    assert len(rows) == plan["chunk_count"]
    ranking = s3.get_object(Bucket=bucket, Key=plan["ranking_key"])["Body"].read().decode()
    assert len(ranking.strip().splitlines()) == plan["task_count"] + 1  # header + rows


def test_bad_request_fails_as_invalid_request_before_any_worker(
    state_machine: tuple[Any, str], s3: Any, bucket: str, event: Any
) -> None:
    sfn, arn = state_machine
    request = event("backtest_state_machine") | {"strategy": "no_such_strategy"}
    result = _run(sfn, arn, "bad-strategy", request)

    assert result["status"] == "FAILED"
    assert result["error"] == "UnknownStrategyError"
    assert "no_such_strategy" in result["cause"]
    assert result["entered"] == ["Plan", "InvalidRequest"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="backtests/").get("KeyCount", 0) == 0


def test_a_failing_worker_fails_the_run_without_a_ranking(
    state_machine: tuple[Any, str], s3: Any, bucket: str, event: Any
) -> None:
    """Bad candles pass the plan (the object exists) and fail in the worker; the run must
    end in BacktestFailed with no ranking written.

    In AWS the Map itself fails (ToleratedFailurePercentage defaults to 0:
    States.ExceedToleratedFailureThreshold) and its Catch routes to BacktestFailed. moto
    5.2 does not enforce that threshold (a failed child only counts as failed), so there
    the Map succeeds with the chunk missing, and the aggregate step's check that every
    chunk's result exists is what stops the ranking (DataError). Either way: no partial
    ranking."""
    sfn, arn = state_machine
    request = event("backtest_state_machine")
    key = request["data"]["EURUSD"].split("/", 3)[3]
    s3.put_object(Bucket=bucket, Key=key, Body=b"timestamp,open,high,low,close\n1,x,1,1,1\n")
    result = _run(sfn, arn, "bad-candles", request)

    assert result["status"] == "FAILED"
    assert result["entered"][-1] == "BacktestFailed"
    assert result["error"] in ("States.ExceedToleratedFailureThreshold", "DataError")
    if result["error"] == "DataError":
        assert "the plan made 4" in result["cause"]
    ranking_key = event("backtest_aggregate")["ranking_key"].replace(
        "sample-sma-cross", "bad-candles"
    )
    assert s3.list_objects_v2(Bucket=bucket, Prefix=ranking_key).get("KeyCount", 0) == 0


def _flaky_loader(
    handlers: Handlers, monkeypatch: pytest.MonkeyPatch, failures: int
) -> dict[str, int]:
    """Make the worker's candle download fail `failures` times per symbol, transiently."""
    from algotrendy.errors import SourceUnavailableError

    module = inspect.unwrap(handlers["BacktestWorkerFunction"]).__globals__
    real = module["load_candles"]
    calls: dict[str, int] = {}

    def flaky(symbol: str, where: Any) -> Any:
        calls[symbol] = calls.get(symbol, 0) + 1
        if calls[symbol] <= failures:
            raise SourceUnavailableError(f"{symbol}: cannot read s3 object: SlowDown")
        return real(symbol, where)

    monkeypatch.setitem(module, "load_candles", flaky)
    return calls


def test_a_transient_worker_failure_is_retried(
    state_machine: tuple[Any, str], handlers: Handlers, monkeypatch: pytest.MonkeyPatch,
    event: Any,
) -> None:  # fmt: skip
    calls = _flaky_loader(handlers, monkeypatch, failures=1)
    sfn, arn = state_machine
    result = _run(sfn, arn, "retried", event("backtest_state_machine"))

    assert result["status"] == "SUCCEEDED", result
    assert result["entered"][-1] == "Aggregate"
    plan = event("backtest_aggregate")
    # Each symbol's first download failed and its chunk ran again (Retry on the name).
    assert calls
    assert all(n >= 2 for n in calls.values())
    output = json.loads(result["output"])
    assert output["row_count"] == plan["task_count"]


def test_a_worker_that_keeps_failing_is_retried_then_caught(
    state_machine: tuple[Any, str], handlers: Handlers, monkeypatch: pytest.MonkeyPatch,
    event: Any,
) -> None:  # fmt: skip
    calls = _flaky_loader(handlers, monkeypatch, failures=10**6)
    sfn, arn = state_machine
    result = _run(sfn, arn, "always-failing", event("backtest_state_machine"))

    assert result["status"] == "FAILED"
    assert result["entered"][-1] == "BacktestFailed"
    # A chunk made 1 attempt + MaxAttempts 2 retries before its failure was caught (moto
    # may stop the other children once one has failed, so only the maximum is certain).
    assert calls
    assert max(calls.values()) >= 3


def test_no_task_result_nears_the_payload_limit_at_the_apis_largest_top(
    state_machine: tuple[Any, str],
    bucket: str,
    event: Any,
    read_json: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 rows in one chunk, ranked with the API's largest `top` (1,000): Step Functions
    checks its 256 KiB limit on each Lambda's raw result, before ResultSelector, and
    fails the run uncatchably above it (moto does not enforce it, so it is measured)."""
    dispatch = LambdaSimpleBackend.invoke  # the fixture's in-process dispatch
    sizes: dict[str, list[int]] = {}

    def measured(
        self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response: Any
    ) -> bytes:
        raw = dispatch(self, function_name, qualifier, body, headers, response)
        sizes.setdefault(function_name.rsplit(":", 1)[-1], []).append(len(raw))
        return raw

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", measured)
    sfn, arn = state_machine
    request = event("backtest_state_machine") | {
        "grid": {"fast": list(range(2, 42)), "slow": list(range(50, 75))},  # 1,000 valid
        "symbols": ["GOOG"],
        "chunk_size": 1000,
        "top": 1000,
    }
    result = _run(sfn, arn, "largest-top", request)

    assert result["status"] == "SUCCEEDED", result
    assert len(sizes) == 3  # plan, worker, aggregate all measured
    limit = 256 * 1024
    assert all(n < limit for replies in sizes.values() for n in replies), sizes
    assert len(result["output"].encode()) < limit
    output = json.loads(result["output"])
    top = read_json(bucket, output["top_records"]["key"])
    assert len(top) == output["top_records"]["count"] == output["row_count"] == 1000
    assert [t["rank"] for t in top] == list(range(1, 1001))
