from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from algotrendy.auth import Role, TokenError, issue_token, verify_token

SECRET = "s" * 40
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_round_trip() -> None:
    token = issue_token("alice", Role.TRADER, secret=SECRET, now=T0)
    claims = verify_token(token, secret=SECRET, now=T0 + timedelta(minutes=59))
    assert (claims.sub, claims.role, claims.type) == ("alice", Role.TRADER, "access")
    assert claims.exp - claims.iat == timedelta(hours=1)


def test_expired_after_one_hour() -> None:
    token = issue_token("alice", Role.TRADER, secret=SECRET, now=T0)
    with pytest.raises(TokenError, match="token expired"):
        verify_token(token, secret=SECRET, now=T0 + timedelta(hours=1, seconds=11))


def test_wrong_secret() -> None:
    token = issue_token("alice", Role.ADMIN, secret=SECRET, now=T0)
    with pytest.raises(TokenError, match="signature invalid"):
        verify_token(token, secret="x" * 40, now=T0)


def test_refresh_token_is_not_an_access_token() -> None:
    token = issue_token("alice", Role.VIEWER, secret=SECRET, token_type="refresh", now=T0)
    assert verify_token(token, secret=SECRET, expected_type="refresh", now=T0).type == "refresh"
    with pytest.raises(TokenError, match="expected an access token, got 'refresh'"):
        verify_token(token, secret=SECRET, now=T0)


def test_forged_algorithm_none_refused() -> None:
    forged = jwt.encode(
        {"sub": "eve", "role": "admin", "type": "access", "iss": "algotrendy",
         "iat": int(T0.timestamp()), "exp": int(T0.timestamp()) + 60},
        key=None, algorithm="none",
    )  # fmt: skip
    with pytest.raises(TokenError, match="token invalid"):
        verify_token(forged, secret=SECRET, now=T0)


@pytest.mark.parametrize("token", [None, "", "not.a.jwt"])
def test_garbage(token: str | None) -> None:
    with pytest.raises(TokenError):
        verify_token(token, secret=SECRET, now=T0)


def test_short_secret_refused() -> None:
    with pytest.raises(TokenError, match="at least 32 characters"):
        issue_token("a", Role.ADMIN, secret="short")
