"""Helpers shared by the API tests (imported by name: test folders have no __init__)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from algotrendy.api.context import ApiContext, repositories
from algotrendy.api.launcher import LocalBacktestLauncher
from algotrendy.api.ratelimit import MemoryRateLimiter
from algotrendy.auth.passwords import PasswordHasher
from algotrendy.auth.tokens import Role
from algotrendy.config import Settings
from algotrendy.messaging.memory import InMemoryQueue
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore
from algotrendy.storage.relational.api_repositories import BacktestRepository

GOOG_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "ohlcv" / "backtesting_GOOG_1d.csv"
SECRET = "api-tests-secret-0123456789abcdef0123"
PASSWORDS = {"admin": "admin-password-1", "trader": "trader-password-1", "viewer": "viewer-pass-01"}
EXCHANGE = "nasdaq"
# A sweep the Step Functions launcher accepts: its candles are on S3.
SWEEP = {
    "exchange": EXCHANGE,
    "strategy": "sma_cross",
    "grid": {"fast": [5, 10], "slow": [30, 50]},
    "symbols": ["GOOG"],
    "data": {"GOOG": "s3://bucket/candles/GOOG.csv"},
}


def fast_hasher() -> PasswordHasher:
    # argon2id at its cheapest: the tests check behaviour, not the cost.
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def make_context(settings: Settings, db: Engine, store: LocalCandleStore) -> ApiContext:
    ctx = ApiContext(
        settings=settings,
        orders_queue=InMemoryQueue("orders.fifo"),
        launcher=None,
        candles=store,
        cache=MemoryCache(),
        limiter=MemoryRateLimiter(),
        **repositories(db, settings, fast_hasher()),
    )
    ctx.launcher = LocalBacktestLauncher(ctx.backtests, store, chunk_size=lambda: 4)
    for role in Role:
        ctx.users.register(role.value, PASSWORDS[role.value], role)
    return ctx


@dataclass
class Session:
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def assert_problem(reply: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    """The reply is an RFC 9457 problem document with the members we promise."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    assert body["type"].startswith("tag:algotrendy,2025:api/")
    if kind is not None:
        assert body["type"] == f"tag:algotrendy,2025:api/{kind}"
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == reply.headers["x-request-id"]
    return body


def running_run(repo: BacktestRepository, run_id: str) -> Any:
    """A sweep already started on Step Functions (status running, an execution ARN)."""
    repo.create(
        id=run_id,
        kind="sweep",
        status="running",
        strategy="sma_cross",
        request={},
        launcher="stepfunctions",
        created_by="t",
        execution_arn=f"arn:x:{run_id}",
    )
    return repo.get(run_id)


class DescribedExecution:
    """A Step Functions client whose describe_execution answers a finished run: `status`,
    and `output` shaped as the aggregate step returns it."""

    def __init__(self, status: str, output: dict[str, Any] | None = None) -> None:
        self.status = status
        self.output = output

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        reply: dict[str, Any] = {"status": self.status, "executionArn": executionArn}
        if self.output is not None:
            reply["output"] = json.dumps(self.output)
        if self.status == "FAILED":
            reply |= {"error": "DataError", "cause": "data.GOOG: s3://b/k does not exist"}
        return reply
