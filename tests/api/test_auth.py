from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from api_helpers import PASSWORDS, SECRET, Session, assert_problem
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.auth.tokens import Role, issue_token, verify_token


def test_login_returns_access_and_refresh_tokens(client: TestClient) -> None:
    reply = client.post("/auth/login", json={"username": "trader", "password": "trader-password-1"})
    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "no-store"
    body = reply.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_expires_in"] == 30 * 86400
    claims = verify_token(body["access_token"], secret=SECRET)
    assert (claims.sub, claims.role, claims.type) == ("trader", Role.TRADER, "access")
    assert verify_token(body["refresh_token"], secret=SECRET, expected_type="refresh").sub == (
        "trader"
    )


def test_refresh_token_is_stored_only_as_its_sha256(ctx: ApiContext, trader: Session) -> None:
    digest = hashlib.sha256(trader.refresh.encode()).hexdigest()
    row = ctx.tokens.repo.get(digest)
    assert row is not None
    assert row.expires_at - row.issued_at == timedelta(days=30)


def test_wrong_password_and_unknown_user_get_the_same_401(client: TestClient) -> None:
    wrong = client.post("/auth/login", json={"username": "trader", "password": "not-the-one-1"})
    unknown = client.post("/auth/login", json={"username": "nobody", "password": "whatever-123"})
    a, b = assert_problem(wrong, 401, "unauthorized"), assert_problem(unknown, 401, "unauthorized")
    assert a["detail"] == b["detail"]


def test_me_needs_a_valid_access_token(client: TestClient, viewer: Session) -> None:
    assert client.get("/auth/me", headers=viewer.headers).json()["role"] == "viewer"
    body = assert_problem(client.get("/auth/me"), 401, "unauthorized")
    assert "bearer" in body["detail"].lower()
    assert client.get("/auth/me").headers["www-authenticate"] == "Bearer"
    bad = client.get("/auth/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(bad, 401)


def test_expired_access_token_is_refused(client: TestClient) -> None:
    old = issue_token(
        "trader", Role.TRADER, secret=SECRET, now=datetime.now(UTC) - timedelta(hours=2)
    )
    body = assert_problem(client.get("/auth/me", headers={"Authorization": f"Bearer {old}"}), 401)
    assert body["detail"] == "token expired"


def test_refresh_token_is_not_an_access_token(client: TestClient, trader: Session) -> None:
    reply = client.get("/auth/me", headers={"Authorization": f"Bearer {trader.refresh}"})
    assert "expected an access token" in assert_problem(reply, 401)["detail"]


def test_refresh_rotates_and_reuse_revokes_the_family(
    client: TestClient, trader: Session, ctx: ApiContext
) -> None:
    first = client.post("/auth/refresh", json={"refresh_token": trader.refresh})
    assert first.status_code == 200, first.text
    second_refresh = first.json()["refresh_token"]
    assert second_refresh != trader.refresh
    assert (
        client.get(
            "/auth/me", headers={"Authorization": f"Bearer {first.json()['access_token']}"}
        ).status_code
        == 200
    )

    # The used token comes back: someone holds a copy -> the whole login is revoked.
    reuse = client.post("/auth/refresh", json={"refresh_token": trader.refresh})
    body = assert_problem(reuse, 401, "refresh-reuse")
    assert "already used" in body["detail"]
    # ... including the token issued by the legitimate rotation.
    after = client.post("/auth/refresh", json={"refresh_token": second_refresh})
    assert "revoked (reuse)" in assert_problem(after, 401, "unauthorized")["detail"]
    family = ctx.tokens.repo.family(
        ctx.tokens.repo.get(hashlib.sha256(trader.refresh.encode()).hexdigest()).family_id
    )  # type: ignore[union-attr]
    assert len(family) == 2
    assert all(r.revoked_reason == "reuse" for r in family)
    actions = [r.action for r in ctx.audit.recent(actor="trader")]
    assert "auth.refresh_reuse" in actions


def test_logout_revokes_the_refresh_token(client: TestClient, trader: Session) -> None:
    out = client.post(
        "/auth/logout", json={"refresh_token": trader.refresh}, headers=trader.headers
    )
    assert out.status_code == 204
    after = client.post("/auth/refresh", json={"refresh_token": trader.refresh})
    assert "revoked (logout)" in assert_problem(after, 401)["detail"]


def test_logout_everywhere_revokes_every_login(
    client: TestClient, login: Callable[[str], Session]
) -> None:
    a, b = login("viewer"), login("viewer")
    assert (
        client.post("/auth/logout", json={"everywhere": True}, headers=a.headers).status_code == 204
    )
    for s in (a, b):
        assert_problem(client.post("/auth/refresh", json={"refresh_token": s.refresh}), 401)


def test_logout_needs_a_token_or_everywhere(client: TestClient, trader: Session) -> None:
    body = assert_problem(client.post("/auth/logout", json={}, headers=trader.headers), 422)
    assert body["errors"][0]["field"] == "refresh_token"


def test_admin_registers_users_with_roles(client: TestClient, admin: Session) -> None:
    reply = client.post(
        "/users",
        headers=admin.headers,
        json={"username": "newbie", "password": "long-enough-pw", "role": "trader"},
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["role"] == "trader"
    again = client.post(
        "/users", headers=admin.headers, json={"username": "newbie", "password": "long-enough-pw"}
    )
    assert_problem(again, 409, "conflict")
    login = client.post("/auth/login", json={"username": "newbie", "password": "long-enough-pw"})
    assert login.status_code == 200


def test_weak_password_is_a_field_error(client: TestClient, admin: Session) -> None:
    reply = client.post(
        "/users", headers=admin.headers, json={"username": "shorty", "password": "short"}
    )
    body = assert_problem(reply, 422, "validation")
    assert body["errors"] == [
        {
            "location": "body",
            "field": "password",
            "pointer": "#/password",
            "detail": "password must have at least 10 characters",
        }
    ]


def test_only_admins_manage_users(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/users", headers=trader.headers, json={"username": "x-user", "password": "long-enough-pw"}
    )
    body = assert_problem(reply, 403, "forbidden")
    assert "role trader" in body["detail"]
    assert_problem(client.get("/users", headers=trader.headers), 403)


def test_disabled_user_is_cut_off_at_once(
    client: TestClient, admin: Session, trader: Session
) -> None:
    off = client.patch("/users/trader", json={"active": False}, headers=admin.headers)
    assert off.status_code == 200
    assert off.json()["active"] is False
    assert_problem(client.get("/auth/me", headers=trader.headers), 401)
    assert_problem(client.post("/auth/refresh", json={"refresh_token": trader.refresh}), 401)
    relogin = client.post(
        "/auth/login", json={"username": "trader", "password": PASSWORDS["trader"]}
    )
    assert_problem(relogin, 401)


def test_admin_cannot_demote_themselves(client: TestClient, admin: Session) -> None:
    assert_problem(
        client.patch("/users/admin", json={"role": "viewer"}, headers=admin.headers), 409
    )


def test_role_change_applies_to_existing_tokens(
    client: TestClient, admin: Session, viewer: Session
) -> None:
    order = {"symbol": "GOOG", "side": "buy", "quantity": 1}
    assert_problem(client.post("/orders", json=order, headers=viewer.headers), 403)
    client.patch("/users/viewer", json={"role": "trader"}, headers=admin.headers)
    assert client.post("/orders", json=order, headers=viewer.headers).status_code == 202


def test_ensure_admin_is_idempotent(ctx: ApiContext) -> None:
    first = ctx.users.ensure_admin("root", "first-password-1")
    again = ctx.users.ensure_admin("root", "another-password-2")
    assert first.id == again.id
    assert again.role is Role.ADMIN
    # The first password still works: a restart never resets it.
    assert ctx.users.authenticate("root", "first-password-1").username == "root"


def test_logins_are_audited(client: TestClient, ctx: ApiContext) -> None:
    client.post("/auth/login", json={"username": "viewer", "password": PASSWORDS["viewer"]})
    client.post("/auth/login", json={"username": "viewer", "password": "wrong-password"})
    rows = [r for r in ctx.audit.recent(actor="viewer") if r.action == "auth.login"]
    outcomes = sorted(r.detail["outcome"] for r in rows)
    assert outcomes == ["failure", "success"]
    assert {r.detail["status"] for r in rows} == {200, 401}
    assert all(r.ip == "testclient" for r in rows)
