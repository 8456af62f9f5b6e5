"""StartExecution whose answer is lost (a timeout or a dropped connection after AWS may
have accepted the call): the run is what Step Functions says, not a guess. The execution
is named after the run id, so the launcher describes it: if it exists the run is running
(202, its ARN recorded); if not, the run failed to start (503), as for any refusal.

The Step Functions here is moto's (the `sfn` fixture); a lost answer is simulated by a
client that makes the real call (or not) and then raises the timeout botocore would raise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from api_helpers import SWEEP, Session, assert_problem
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.api.launcher import StepFunctionsBacktestLauncher

ENDPOINT = "https://states.us-east-1.amazonaws.com/"


class _AnswerLost:
    """The real client, but StartExecution raises `error` after making the call (`reaches`)
    or without it (the request never got to AWS)."""

    def __init__(self, real: Any, error: Exception, *, reaches: bool) -> None:
        self.real = real
        self.error = error
        self.reaches = reaches

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        if self.reaches:
            self.real.start_execution(**kwargs)
        raise self.error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class _Unreachable(_AnswerLost):
    """As `_AnswerLost`, and DescribeExecution cannot get through either."""

    def describe_execution(self, **kwargs: Any) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url=ENDPOINT)


Post = Callable[[Any], Any]


@pytest.fixture
def post_sweep(
    client: TestClient,
    ctx: ApiContext,
    trader: Session,
    monkeypatch: pytest.MonkeyPatch,
    sfn: tuple[Any, str],
) -> Post:
    """`post_sweep(sfn_client)`: POST /backtests with the launcher over `sfn_client` (moto's
    client, or one that loses its answers) and moto's state machine."""
    _, arn = sfn

    def post(sfn_client: Any) -> Any:
        launcher = StepFunctionsBacktestLauncher(sfn_client, arn, ctx.backtests)
        monkeypatch.setattr(ctx, "launcher", launcher)
        return client.post("/backtests", json=SWEEP, headers=trader.headers)

    return post


LOST = [
    pytest.param(ReadTimeoutError(endpoint_url=ENDPOINT), id="read-timeout"),
    pytest.param(ConnectionClosedError(endpoint_url=ENDPOINT), id="connection-closed"),
    # botocore's own retry: an earlier attempt got through, the last one could not connect.
    pytest.param(ConnectTimeoutError(endpoint_url=ENDPOINT), id="connect-timeout-on-retry"),
]


@pytest.mark.parametrize("error", LOST)
def test_a_started_execution_whose_answer_was_lost_is_a_running_run(
    client: TestClient,
    ctx: ApiContext,
    trader: Session,
    sfn: tuple[Any, str],
    post_sweep: Post,
    error: Exception,
) -> None:
    real, arn = sfn

    reply = post_sweep(_AnswerLost(real, error, reaches=True))

    assert reply.status_code == 202, reply.text
    run_id = reply.json()["id"]
    assert reply.json()["status"] == "running"
    [execution] = real.list_executions(stateMachineArn=arn)["executions"]
    assert execution["name"] == run_id
    row = ctx.backtests.get(run_id)
    assert row is not None
    assert row.execution_arn == execution["executionArn"]
    # The recorded ARN is the real one: following the run reads the execution's state.
    run = client.get(f"/backtests/{run_id}", headers=trader.headers).json()
    assert run["status"] == "running"
    assert run["error"] is None


@pytest.mark.parametrize("error", LOST)
def test_an_unanswered_start_that_never_arrived_fails_the_run(
    client: TestClient, trader: Session, sfn: tuple[Any, str], post_sweep: Post, error: Exception
) -> None:
    real, arn = sfn

    reply = post_sweep(_AnswerLost(real, error, reaches=False))

    body = assert_problem(reply, 503, "unavailable")
    assert str(error) in body["detail"]
    assert real.list_executions(stateMachineArn=arn)["executions"] == []
    run = client.get(f"/backtests/{body['backtest_id']}", headers=trader.headers).json()
    assert run["status"] == "failed"
    assert str(error) in run["error"]


def test_when_neither_call_is_answered_the_failure_names_the_execution_to_check(
    client: TestClient, trader: Session, sfn: tuple[Any, str], post_sweep: Post
) -> None:
    """Whether it started cannot be told: the run is failed (nothing will follow it), and
    the error says which execution an operator should look at."""
    real, arn = sfn
    lost = ReadTimeoutError(endpoint_url=ENDPOINT)

    reply = post_sweep(_Unreachable(real, lost, reaches=True))

    body = assert_problem(reply, 503, "unavailable")
    run_id = body["backtest_id"]
    [execution] = real.list_executions(stateMachineArn=arn)["executions"]
    assert f"whether {execution['executionArn']} started is unknown" in body["detail"]
    run = client.get(f"/backtests/{run_id}", headers=trader.headers).json()
    assert run["status"] == "failed"
    assert execution["executionArn"] in run["error"]


def test_execution_arn_is_the_one_step_functions_gives(sfn: tuple[Any, str]) -> None:
    real, arn = sfn
    started = real.start_execution(stateMachineArn=arn, name="run-42", input="{}")

    launcher = StepFunctionsBacktestLauncher(real, arn, repo=None)  # type: ignore[arg-type]

    assert launcher.execution_arn("run-42") == started["executionArn"]
