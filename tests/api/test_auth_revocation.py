"""Revocation cannot be outrun or misdirected: a rotation racing reuse detection leaves no
usable token, and logout only ever revokes the caller's own login."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from api_helpers import SECRET, Session, assert_problem, fast_hasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from algotrendy.api.context import ApiContext
from algotrendy.auth.refresh import RefreshReuseError, RefreshTokenService, token_sha256
from algotrendy.auth.tokens import Role, TokenError
from algotrendy.auth.users import User, UserService
from algotrendy.storage.relational.api_models import RefreshTokenRow
from algotrendy.storage.relational.api_repositories import RefreshTokenRepository, UserRepository


def _service(db_engine: Engine) -> tuple[RefreshTokenService, User]:
    users = UserService(UserRepository(db_engine), fast_hasher())
    dave = users.register("dave", "dave-password-1", Role.TRADER)
    return RefreshTokenService(RefreshTokenRepository(db_engine), SECRET), dave


def test_rotation_racing_reuse_detection_issues_nothing(db_engine: Engine) -> None:
    """Refresh A consumes T1; a replay of T1 revokes the family before A issues T2: A must
    be refused, not add a live T2 to the revoked login."""
    service, dave = _service(db_engine)
    t1 = service.issue(dave.id, "dave", Role.TRADER)
    rotation = service.consume(t1.refresh_token)  # request A, first half
    with pytest.raises(RefreshReuseError):
        service.consume(t1.refresh_token)  # the replay, in A's window
    with pytest.raises(TokenError, match="revoked"):
        service.issue(dave.id, "dave", Role.TRADER, family_id=rotation.family_id)
    family = service.repo.family(rotation.family_id)
    assert [row.token_sha256 for row in family] == [token_sha256(t1.refresh_token)]


def test_a_token_that_escaped_the_revoking_update_is_refused(db_engine: Engine) -> None:
    """On PostgreSQL a revoking UPDATE whose snapshot predates a racing insert misses the
    new row; the family's revoked state must still refuse that row."""
    service, dave = _service(db_engine)
    t1 = service.issue(dave.id, "dave", Role.TRADER)
    rotation = service.consume(t1.refresh_token)
    t2 = service.issue(dave.id, "dave", Role.TRADER, family_id=rotation.family_id)
    with service.repo.session.begin() as s:  # what the snapshot-limited UPDATE did
        s.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.token_sha256 == token_sha256(t1.refresh_token))
            .values(revoked_at=datetime.now(UTC), revoked_reason="reuse")
        )
    with pytest.raises(TokenError, match="revoked"):
        service.consume(t2.refresh_token)


def test_refresh_racing_a_replay_gets_401_and_no_live_token(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """The route's window between consume() and issue() (the user check) is where the
    replay lands; deterministic: the replay runs inside the user look-up."""
    real_get = ctx.users.get
    replies = []

    def get_with_replay(user_id: int) -> User | None:
        ctx.users.get = real_get  # type: ignore[method-assign]
        replies.append(client.post("/auth/refresh", json={"refresh_token": trader.refresh}))
        return real_get(user_id)

    ctx.users.get = get_with_replay  # type: ignore[method-assign]
    reply = client.post("/auth/refresh", json={"refresh_token": trader.refresh})
    assert_problem(replies[0], 401, "refresh-reuse")
    assert_problem(reply, 401, "unauthorized")
    row = ctx.tokens.repo.get(token_sha256(trader.refresh))
    assert row is not None
    family = ctx.tokens.repo.family(row.family_id)
    assert len(family) == 1
    assert all(r.revoked_at is not None for r in family)


def test_logout_with_someone_elses_token_revokes_nothing(
    client: TestClient, trader: Session, viewer: Session
) -> None:
    reply = client.post(
        "/auth/logout", headers=viewer.headers, json={"refresh_token": trader.refresh}
    )
    assert_problem(reply, 404, "not-found")
    refreshed = client.post("/auth/refresh", json={"refresh_token": trader.refresh})
    assert refreshed.status_code == 200, refreshed.text


def test_revoke_checks_the_owner(db_engine: Engine) -> None:
    service, dave = _service(db_engine)
    pair = service.issue(dave.id, "dave", Role.TRADER)
    assert service.revoke(pair.refresh_token, owner=dave.id + 1) is None
    assert not service.repo.family_revoked(pair.family_id)
    revoked = service.revoke(pair.refresh_token, owner=dave.id)
    assert revoked is not None
    assert revoked.family_id == pair.family_id
    assert service.repo.family_revoked(pair.family_id)
