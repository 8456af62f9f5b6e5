"""POST /orders prunes `order_requests` past their retention after replying (the table
had no clean-up), and a failing prune never fails the order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import Session
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as DbSession

from algotrendy.api.context import ApiContext
from algotrendy.storage.relational.api_models import OrderRequestRow
from algotrendy.storage.relational.api_repositories import (
    ORDER_REQUEST_RETENTION,
    OrderRequestRepository,
)


def _expired_request(repo: OrderRequestRepository, intent_id: str) -> None:
    repo.claim(intent_id, f"coid-{intent_id}", "a" * 64, "trader")
    with DbSession(repo.engine) as s, s.begin():
        s.execute(
            update(OrderRequestRow)
            .where(OrderRequestRow.intent_id == intent_id)
            .values(created_at=datetime.now(UTC) - ORDER_REQUEST_RETENTION - timedelta(hours=1))
        )


def _order(client: TestClient, session: Session, intent_id: str) -> int:
    body = {"symbol": "GOOG", "side": "buy", "quantity": 1, "intent_id": intent_id}
    return client.post("/orders", json=body, headers=session.headers).status_code


def test_placing_an_order_prunes_expired_requests(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    repo = ctx.order_requests
    _expired_request(repo, "intent-expired")
    assert _order(client, trader, "intent-fresh") == 202
    assert repo.get("intent-expired") is None
    assert repo.get("intent-fresh") is not None


def test_a_failing_prune_is_logged_and_the_order_still_accepted(
    client: TestClient,
    ctx: ApiContext,
    trader: Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(before: datetime, limit: int = 0) -> int:
        raise OperationalError("DELETE", {}, Exception("database is locked"))

    monkeypatch.setattr(ctx.order_requests, "prune", broken)
    assert _order(client, trader, "intent-while-broken") == 202
    assert ctx.order_requests.get("intent-while-broken") is not None
    assert "pruning order_requests failed" in caplog.text
