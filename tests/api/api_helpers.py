"""Helpers shared by the API tests (imported by name: test folders have no __init__)."""

from __future__ import annotations

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

GOOG_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "ohlcv" / "backtesting_GOOG_1d.csv"
SECRET = "api-tests-secret-0123456789abcdef0123"
PASSWORDS = {"admin": "admin-password-1", "trader": "trader-password-1", "viewer": "viewer-pass-01"}
EXCHANGE = "nasdaq"


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
