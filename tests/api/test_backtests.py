from __future__ import annotations

import json
import math
from typing import Any

import pytest
from api_helpers import EXCHANGE, DescribedExecution, Session, assert_problem, running_run
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.api.launcher import LocalBacktestLauncher, StepFunctionsBacktestLauncher
from algotrendy.api.schemas import BacktestRequest
from algotrendy.backtest.runner import run_backtest


def _run(client: TestClient, ctx: ApiContext, who: Session, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.post("/backtests", json={"exchange": EXCHANGE, **body}, headers=who.headers)
    assert reply.status_code == 202, reply.text
    run_id = reply.json()["id"]
    assert reply.headers["location"] == f"/backtests/{run_id}"
    assert isinstance(ctx.launcher, LocalBacktestLauncher)
    ctx.launcher.wait(run_id, timeout=120)
    got: dict[str, Any] = client.get(f"/backtests/{run_id}", headers=who.headers).json()
    return got


def _close(a: float | None, b: float) -> bool:
    return (a is None and not math.isfinite(b)) or (a is not None and math.isclose(a, b))


def test_single_backtest_matches_the_library(
    client: TestClient, ctx: ApiContext, trader: Session, goog: Any
) -> None:
    params = {"fast": 10, "slow": 30}
    config = {"cash": 10000, "fee": 0.002}
    run = _run(
        client,
        ctx,
        trader,
        {"strategy": "sma_cross", "params": params, "symbols": ["GOOG"], "config": config},
    )
    assert run["status"] == "succeeded", run["error"]
    expected = run_backtest(goog, "sma_cross", params, cash=10000, fee=0.002)
    [row] = client.get(f"/backtests/{run['id']}/results", headers=trader.headers).json()
    assert row["rank"] == 1
    assert row["has_trades"] is True
    for name, value in expected.metrics.items():
        assert _close(row["metrics"][name], value), name
    trades = client.get(f"/backtests/{run['id']}/trades", headers=trader.headers).json()["trades"]
    assert len(trades) == len(expected.trades)
    assert [t["pnl"] for t in trades] == pytest.approx(expected.trades["pnl"].tolist())

    curve = client.get(
        f"/backtests/{run['id']}/equity", params={"max_points": 50}, headers=trader.headers
    ).json()
    assert curve["bars"] == len(goog)
    assert curve["points"] == 50
    assert curve["equity"][0] == pytest.approx(float(expected.equity["equity"].iloc[0]))
    assert curve["equity"][-1] == pytest.approx(expected.final_equity)
    assert curve["time"][-1] == expected.equity.index[-1].isoformat()


def test_sweep_ranks_by_metric_and_keeps_the_best_run_in_full(
    client: TestClient, ctx: ApiContext, trader: Session, goog: Any
) -> None:
    grid = {"fast": [5, 10, 20], "slow": [30, 50]}
    run = _run(
        client,
        ctx,
        trader,
        {
            "strategy": "sma_cross",
            "grid": grid,
            "symbols": ["GOOG"],
            "metric": "total_return",
            "top": 4,
        },
    )
    assert run["status"] == "succeeded", run["error"]
    assert run["kind"] == "sweep"
    assert run["summary"]["n_combos"] == 6
    rows = client.get(f"/backtests/{run['id']}/results", headers=trader.headers).json()
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    # Independently: every combination through run_backtest, sorted by total return.
    expected = sorted(
        (
            (run_backtest(goog, "sma_cross", {"fast": f, "slow": s}).metrics["total_return"], f, s)
            for f in grid["fast"]
            for s in grid["slow"]
        ),
        reverse=True,
    )[:4]
    assert [(r["params"]["fast"], r["params"]["slow"]) for r in rows] == [
        (f, s) for _, f, s in expected
    ]
    assert [r["metrics"]["total_return"] for r in rows] == pytest.approx([e[0] for e in expected])
    assert [r["has_trades"] for r in rows] == [True, False, False, False]
    assert_problem(
        client.get(f"/backtests/{run['id']}/trades", params={"rank": 2}, headers=trader.headers),
        404,
    )
    listed = client.get("/backtests", params={"status": "succeeded"}, headers=trader.headers)
    assert [b["id"] for b in listed.json()] == [run["id"]]


def test_a_symbol_without_candles_is_refused_before_any_run_exists(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    reply = client.post(
        "/backtests",
        json={"strategy": "sma_cross", "symbols": ["GOOG", "NOPE"], "exchange": EXCHANGE},
        headers=trader.headers,
    )
    body = assert_problem(reply, 422, "validation")
    assert [e["field"] for e in body["errors"]] == ["symbols.1"]
    assert "no 1d candles of NOPE on nasdaq" in body["detail"]
    assert ctx.backtests.recent() == []


def test_candles_missing_in_the_range_fail_the_run_with_the_reason(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    run = _run(
        client,
        ctx,
        trader,
        {"strategy": "sma_cross", "symbols": ["GOOG"], "start": "2040-01-01T00:00:00Z"},
    )
    assert run["status"] == "failed"
    assert "GOOG" in run["error"]
    assert_problem(client.get(f"/backtests/{run['id']}/results", headers=trader.headers), 409)
    body = assert_problem(
        client.post(f"/backtests/{run['id']}/cancel", headers=trader.headers), 409
    )
    assert "already failed" in body["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"strategy": "nope", "symbols": ["GOOG"]}, "strategy"),
        ({"strategy": "sma_cross", "symbols": ["GOOG"], "params": {"fast": 0}}, "params.fast"),
        (
            {"strategy": "sma_cross", "symbols": ["GOOG"], "grid": {"fast": [50], "slow": [10]}},
            "grid",
        ),
        ({"strategy": "sma_cross", "symbols": ["GOOG"], "metric": "luck"}, "metric"),
        ({"strategy": "sma_cross", "symbols": ["GOOG"], "config": {"fee": 0.5}}, "config.fee"),
        ({"strategy": "sma_cross", "symbols": []}, "symbols"),
        ({"strategy": "sma_cross", "symbols": ["GOOG"], "timeframe": "zz"}, "timeframe"),
    ],
)
def test_bad_requests_name_the_field(
    client: TestClient, trader: Session, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post("/backtests", json=body, headers=trader.headers), 422)
    assert field in [e["field"] for e in problem["errors"]] if "errors" in problem else False


def test_viewer_may_read_but_not_start(client: TestClient, viewer: Session) -> None:
    body = {"strategy": "sma_cross", "symbols": ["GOOG"]}
    assert_problem(client.post("/backtests", json=body, headers=viewer.headers), 403)
    assert client.get("/backtests", headers=viewer.headers).json() == []
    assert_problem(client.get("/backtests/nope", headers=viewer.headers), 404)


def test_cancel_of_a_queued_run(ctx: ApiContext) -> None:
    repo = ctx.backtests
    repo.create(
        id="q1",
        kind="single",
        status="queued",
        strategy="sma_cross",
        request={},
        launcher="local",
        created_by="t",
    )
    row = repo.get("q1")
    assert row is not None
    repo.request_cancel("q1")
    assert isinstance(ctx.launcher, LocalBacktestLauncher)
    ctx.launcher.cancel(row)
    assert repo.get("q1").status == "cancelled"  # type: ignore[union-attr]
    # A run cancelled before its thread starts never runs.
    ctx.launcher._run("q1", BacktestRequest(strategy="sma_cross", symbols=["GOOG"]), EXCHANGE)
    assert repo.get("q1").status == "cancelled"  # type: ignore[union-attr]


# -- Step Functions launcher (moto: the `sfn` fixture) ----------------------------------------
def test_step_functions_launcher_starts_and_stops_executions(ctx: ApiContext, sfn: Any) -> None:
    client, arn = sfn
    launcher = StepFunctionsBacktestLauncher(client, arn, ctx.backtests, chunk_size=lambda: 7)
    request = BacktestRequest(
        strategy="sma_cross",
        params={"fast": 5, "slow": 30},
        symbols=["GOOG"],
        data={"GOOG": "s3://bucket/candles/GOOG.csv"},
    )
    ctx.backtests.create(
        id="run1",
        kind="single",
        status="queued",
        strategy="sma_cross",
        request={},
        launcher="stepfunctions",
        created_by="t",
    )
    execution = launcher.start("run1", request, EXCHANGE)
    described = client.describe_execution(executionArn=execution)
    assert described["name"] == "run1"
    sent = json.loads(described["input"])
    # The plan function's BacktestRequest: a single backtest is a one-point grid.
    assert sent["grid"] == {"fast": [5], "slow": [30]}
    assert sent["chunk_size"] == 7
    assert sent["data"] == {"GOOG": "s3://bucket/candles/GOOG.csv"}
    row = ctx.backtests.get("run1")
    assert row is not None
    assert (row.status, row.execution_arn) == ("running", execution)
    launcher.cancel(row)
    assert client.describe_execution(executionArn=execution)["status"] == "ABORTED"
    assert ctx.backtests.get("run1").status == "cancelled"  # type: ignore[union-attr]


def test_step_functions_launcher_needs_s3_data(ctx: ApiContext, sfn: Any) -> None:
    client, arn = sfn
    launcher = StepFunctionsBacktestLauncher(client, arn, ctx.backtests)
    with pytest.raises(ValueError, match="data: backtests on Step Functions read candles"):
        launcher.start("run2", BacktestRequest(strategy="sma_cross", symbols=["GOOG"]), EXCHANGE)


def test_step_functions_sync_stores_the_aggregate_top_rows(ctx: ApiContext) -> None:
    output = {
        "run_id": "r",
        "metric": "sharpe",
        "row_count": 6,
        "ranking": {"bucket": "b", "key": "backtests/r/ranking.csv"},
        "top": [
            {
                "rank": 1,
                "symbol": "GOOG",
                "fast": 5,
                "slow": 30,
                "sharpe": 1.25,
                "total_return": 0.4,
            },
            {
                "rank": 2,
                "symbol": "GOOG",
                "fast": 10,
                "slow": 30,
                "sharpe": None,
                "total_return": -0.1,
            },
        ],
    }
    launcher = StepFunctionsBacktestLauncher(
        DescribedExecution("SUCCEEDED", output), "arn", ctx.backtests
    )
    launcher.sync(running_run(ctx.backtests, "ok"))
    row = ctx.backtests.get("ok")
    assert row is not None
    assert row.status == "succeeded"
    assert row.summary["best"]["params"] == {"fast": 5, "slow": 30}  # type: ignore[index]
    results = ctx.backtests.results("ok")
    assert [(r.rank, r.params, r.metrics) for r in results] == [
        (1, {"fast": 5, "slow": 30}, {"sharpe": 1.25, "total_return": 0.4}),
        (2, {"fast": 10, "slow": 30}, {"sharpe": None, "total_return": -0.1}),
    ]


def test_step_functions_sync_records_failures(ctx: ApiContext) -> None:
    launcher = StepFunctionsBacktestLauncher(DescribedExecution("FAILED"), "arn", ctx.backtests)
    launcher.sync(running_run(ctx.backtests, "bad"))
    row = ctx.backtests.get("bad")
    assert row is not None
    assert row.status == "failed"
    assert row.error == "DataError: data.GOOG: s3://b/k does not exist"
