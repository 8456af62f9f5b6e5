"""The API's repositories on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import SECRET, fast_hasher
from sqlalchemy import Engine

from algotrendy.auth.refresh import RefreshReuseError, RefreshTokenService
from algotrendy.auth.tokens import Role, TokenError
from algotrendy.auth.users import LoginFailedError, UserError, UserService
from algotrendy.storage.relational.api_repositories import (
    AuditRepository,
    BacktestRepository,
    ConfigurationRepository,
    ConflictError,
    RefreshTokenRepository,
    ResultInput,
    StrategyConfigRepository,
    UserRepository,
)


def test_users_and_login(db_engine: Engine) -> None:
    users = UserService(UserRepository(db_engine), fast_hasher())
    alice = users.register("alice", "alice-password", Role.TRADER)
    with pytest.raises(UserError, match="taken"):
        users.register("alice", "other-password", Role.VIEWER)
    row = users.repo.get("alice")
    assert row is not None
    assert row.password_hash.startswith("$argon2id$")
    assert "alice-password" not in row.password_hash
    logged = users.authenticate("alice", "alice-password")
    assert logged.id == alice.id
    assert logged.last_login_at is not None
    assert logged.last_login_at.tzinfo is not None
    with pytest.raises(LoginFailedError):
        users.authenticate("alice", "wrong-password")
    users.update("alice", active=False)
    with pytest.raises(LoginFailedError):
        users.authenticate("alice", "alice-password")


def test_refresh_rotation_and_reuse(db_engine: Engine) -> None:
    users = UserService(UserRepository(db_engine), fast_hasher())
    bob = users.register("bob", "bob-password-1", Role.VIEWER)
    now = [datetime.now(UTC)]
    service = RefreshTokenService(RefreshTokenRepository(db_engine), SECRET, clock=lambda: now[0])
    first = service.issue(bob.id, "bob", Role.VIEWER)
    rotation = service.consume(first.refresh_token)
    assert (rotation.user_id, rotation.family_id) == (bob.id, first.family_id)
    second = service.issue(bob.id, "bob", Role.VIEWER, family_id=rotation.family_id)
    with pytest.raises(RefreshReuseError) as info:
        service.consume(first.refresh_token)
    assert info.value.revoked == 2  # the used token and the live one, `second`
    with pytest.raises(TokenError, match="revoked"):
        service.consume(second.refresh_token)
    # Expiry: a fresh login, presented after 30 days.
    third = service.issue(bob.id, "bob", Role.VIEWER)
    now[0] += timedelta(days=30, seconds=11)
    with pytest.raises(TokenError, match="expired"):
        service.consume(third.refresh_token)


def test_a_token_is_consumed_once_even_when_raced(db_engine: Engine) -> None:
    users = UserService(UserRepository(db_engine), fast_hasher())
    carol = users.register("carol", "carol-password", Role.VIEWER)
    repo = RefreshTokenRepository(db_engine)
    now = datetime.now(UTC)
    repo.add("a" * 64, carol.id, "fam", now, now + timedelta(days=1))
    row = repo.get("a" * 64)
    assert row is not None
    assert repo.mark_rotated(row.id, now) is True
    assert repo.mark_rotated(row.id, now) is False


def test_strategy_configs(db_engine: Engine) -> None:
    repo = StrategyConfigRepository(db_engine)
    a = repo.create(
        name="a",
        strategy_type="sma_cross",
        params={"fast": 5},
        symbols=["X"],
        enabled=True,
        created_by="t",
    )
    repo.create(name="b", strategy_type="momentum", params={}, symbols=[], created_by="t")
    with pytest.raises(ConflictError):
        repo.create(name="a", strategy_type="momentum", params={}, symbols=[], created_by="t")
    assert [s.name for s in repo.all(enabled=True)] == ["a"]
    repo.update(a.id, webhook_token_sha256="f" * 64)
    assert repo.by_webhook_hash("f" * 64) is not None
    with pytest.raises(ConflictError):
        repo.update(a.id + 1, name="a")
    assert repo.delete(a.id) is True
    assert repo.delete(a.id) is False


def test_backtest_runs_never_leave_a_terminal_state(db_engine: Engine) -> None:
    repo = BacktestRepository(db_engine)
    repo.create(
        id="r1",
        kind="sweep",
        status="queued",
        strategy="s",
        request={"x": 1},
        launcher="local",
        created_by="t",
    )
    assert repo.transition("r1", "running") is True
    results = [
        ResultInput(1, "GOOG", {"fast": 5}, {"sharpe": 1.0}, [{"pnl": 1.0}], {"time": []}),
        ResultInput(2, "GOOG", {"fast": 6}, {"sharpe": None}),
    ]
    assert repo.finish("r1", {"best": 1}, results) is True
    assert repo.finish("r1", {"best": 2}, results) is False
    assert repo.transition("r1", "cancelled") is False
    rows = repo.results("r1")
    assert [(r.rank, bool(r.has_trades)) for r in rows] == [(1, True), (2, False)]
    got = repo.get("r1")
    assert got is not None
    assert (got.status, got.summary) == ("succeeded", {"best": 1})


def test_configuration_and_audit(db_engine: Engine) -> None:
    configs = ConfigurationRepository(db_engine)
    configs.set("backtest_top_n", 5, "admin")
    configs.set("backtest_top_n", 7, "root")
    row = configs.all()["backtest_top_n"]
    assert (row.value, row.updated_by) == (7, "root")
    audit = AuditRepository(db_engine)
    audit.write("admin", "user.create", "bob", {"role": "viewer"}, "127.0.0.1")
    audit.write("bob", "auth.login", None, {"outcome": "success"})
    assert [r.action for r in audit.recent()] == ["auth.login", "user.create"]
    assert audit.recent(actor="admin")[0].detail == {"role": "viewer"}
