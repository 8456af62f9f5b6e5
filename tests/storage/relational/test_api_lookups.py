"""The look-ups behind order idempotency and refresh-token revocation, on SQLite and on
PostgreSQL (INSERT ... SELECT ... RETURNING differs between them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from algotrendy.domain.orders import Order, OrderIntent
from algotrendy.storage.relational.api_repositories import (
    RefreshTokenRepository,
    TradingReadRepository,
    UserRepository,
)
from algotrendy.storage.relational.repositories import SqlExecutionRepository


def test_orders_are_found_by_intent_id(db_engine: Engine) -> None:
    repo = SqlExecutionRepository(db_engine)
    for account in ("acct-a", "acct-b"):
        intent = OrderIntent(
            intent_id="shared-0001", account=account, symbol="GOOG", side="buy", quantity=1
        )
        repo.create_order(Order.from_intent(intent, broker="paper"))
    rows = TradingReadRepository(db_engine).orders_by_intent("shared-0001")
    assert [r.account for r in rows] == ["acct-a", "acct-b"]
    assert TradingReadRepository(db_engine).orders_by_intent("unused-0001") == []


def test_a_token_joins_only_a_live_family(db_engine: Engine) -> None:
    user = UserRepository(db_engine).create("erin", "hash", "viewer")
    repo = RefreshTokenRepository(db_engine)
    now = datetime.now(UTC)
    repo.add("a" * 64, user.id, "fam", now, now + timedelta(days=1))
    assert repo.add_to_family("b" * 64, user.id, "fam", now, now + timedelta(days=1)) is True
    assert repo.family_revoked("fam") is False
    assert repo.revoke_family("fam", "logout", now) == 2
    assert repo.family_revoked("fam") is True
    assert repo.add_to_family("c" * 64, user.id, "fam", now, now + timedelta(days=1)) is False
    assert [r.token_sha256[0] for r in repo.family("fam")] == ["a", "b"]
