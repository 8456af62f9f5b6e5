"""Access/refresh token pairs with rotating, revocable refresh tokens.

* login issues a 1-hour access token and a 30-day refresh token, which starts a *family*;
* `rotate` exchanges a live refresh token for a new pair in the same family and marks the
  old one used;
* presenting a used (rotated) refresh token again revokes the whole family: either the
  client or an attacker holds a copy, and the server cannot tell which (OAuth 2.0 Security
  Best Current Practice, RFC 9700 section 4.14.2);
* logout revokes the family of the token presented.

Refresh tokens are JWTs signed like access tokens (`algotrendy.auth.tokens`, type
"refresh"), so a forged or expired one is refused before the database is asked; only
their SHA-256 is stored. Access tokens are not revocable (they are short-lived); the API
checks on each request that the user still exists and is active.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from algotrendy.auth.tokens import (
    ACCESS_TTL,
    REFRESH_TTL,
    Role,
    TokenError,
    issue_token,
    verify_token,
)
from algotrendy.storage.relational.api_repositories import RefreshTokenRepository, aware

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RefreshReuseError(TokenError):
    """A rotated refresh token was presented again; its family is now revoked."""

    def __init__(self, message: str, *, user_id: int, family_id: str, revoked: int) -> None:
        super().__init__(message)
        self.user_id = user_id
        self.family_id = family_id
        self.revoked = revoked


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires_in: int
    refresh_expires_in: int
    family_id: str


@dataclass(frozen=True, slots=True)
class Rotation:
    user_id: int
    family_id: str


class RefreshTokenService:
    def __init__(
        self,
        repo: RefreshTokenRepository,
        secret: str,
        *,
        clock: Clock = _utcnow,
        access_ttl: timedelta = ACCESS_TTL,
        refresh_ttl: timedelta = REFRESH_TTL,
    ) -> None:
        self.repo = repo
        self._secret = secret
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def issue(
        self, user_id: int, username: str, role: Role, family_id: str | None = None
    ) -> TokenPair:
        """A new pair; a new family unless `family_id` continues one (rotation). A family
        revoked since `consume` (a replay of the used token, a logout) gets no new token:
        TokenError, checked in the same statement as the insert."""
        now = self.clock()
        family = family_id or uuid.uuid4().hex
        access = issue_token(
            username, role, secret=self._secret, token_type="access", now=now, ttl=self.access_ttl
        )
        refresh = issue_token(
            username, role, secret=self._secret, token_type="refresh", now=now, ttl=self.refresh_ttl
        )
        sha, expires = token_sha256(refresh), now + self.refresh_ttl
        if family_id is None:
            self.repo.add(sha, user_id, family, now, expires)
        elif not self.repo.add_to_family(sha, user_id, family, now, expires):
            raise TokenError("refresh token revoked (this login was revoked meanwhile)")
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            access_expires_in=int(self.access_ttl.total_seconds()),
            refresh_expires_in=int(self.refresh_ttl.total_seconds()),
            family_id=family,
        )

    def consume(self, refresh_token: str | None) -> Rotation:
        """Check and use up a refresh token; the caller then issues the next pair with
        `issue(..., family_id=rotation.family_id)` (after checking the user is active),
        which refuses if the family was revoked in between."""
        if not refresh_token:
            raise TokenError("missing refresh token")
        now = self.clock()
        verify_token(refresh_token, secret=self._secret, expected_type="refresh", now=now)
        row = self.repo.get(token_sha256(refresh_token))
        if row is None:
            raise TokenError("refresh token unknown")
        if row.revoked_at is not None:
            raise TokenError(f"refresh token revoked ({row.revoked_reason or 'revoked'})")
        expires = aware(row.expires_at)
        if expires is not None and now >= expires:
            raise TokenError("refresh token expired")
        if self.repo.family_revoked(row.family_id):
            # A token issued while its family was being revoked can escape the revoking
            # UPDATE; the family's state, not the row's, decides.
            raise TokenError("refresh token revoked (its login was revoked)")
        if row.rotated_at is not None or not self.repo.mark_rotated(row.id, now):
            revoked = self.repo.revoke_family(row.family_id, "reuse", now)
            raise RefreshReuseError(
                "refresh token already used: every token of this login is revoked, sign in again",
                user_id=row.user_id,
                family_id=row.family_id,
                revoked=revoked,
            )
        return Rotation(user_id=row.user_id, family_id=row.family_id)

    def revoke(self, refresh_token: str, *, owner: int, reason: str = "logout") -> Rotation | None:
        """Revoke the family of `refresh_token` if it belongs to user `owner`; None (and
        nothing revoked) if no such token was issued to that user, so one user cannot log
        another out. Found by its hash, so only a token we issued matches; expiry is not
        checked, so an expired token still logs out."""
        row = self.repo.get(token_sha256(refresh_token))
        if row is None or row.user_id != owner:
            return None
        self.repo.revoke_family(row.family_id, reason, self.clock())
        return Rotation(user_id=row.user_id, family_id=row.family_id)

    def revoke_user(self, user_id: int, reason: str) -> int:
        return self.repo.revoke_user(user_id, reason, self.clock())
