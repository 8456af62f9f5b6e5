"""JWT tokens (RFC 7519) signed with HS256 through PyJWT.

Access tokens live one hour and carry the user's role; refresh tokens (30 days) are
opaque to clients and only exchanged at the API, which stores them hashed and rotates
them. Verification checks signature, expiry (with a small leeway for clock skew), issuer
and token type, and every failure is one `TokenError` whose message says which check
failed — never the token itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict

from algotrendy.errors import AlgoTrendyError

ISSUER = "algotrendy"
ALGORITHM = "HS256"
ACCESS_TTL = timedelta(hours=1)
REFRESH_TTL = timedelta(days=30)
LEEWAY_SECONDS = 10


class Role(StrEnum):
    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"


TokenType = Literal["access", "refresh"]


class TokenError(AlgoTrendyError):
    """The token is missing, malformed, expired, of the wrong type or badly signed."""


class TokenClaims(BaseModel):
    model_config = ConfigDict(frozen=True)

    sub: str
    role: Role
    type: TokenType
    jti: str
    iat: datetime
    exp: datetime


def issue_token(
    subject: str,
    role: Role,
    *,
    secret: str,
    token_type: TokenType = "access",
    now: datetime | None = None,
    ttl: timedelta | None = None,
) -> str:
    if len(secret) < 32:
        raise TokenError("signing secret must be at least 32 characters (HS256, RFC 7518 3.2)")
    issued = now or datetime.now(UTC)
    lifetime = ttl or (ACCESS_TTL if token_type == "access" else REFRESH_TTL)
    claims = {
        "sub": subject,
        "role": role.value,
        "type": token_type,
        "jti": uuid.uuid4().hex,
        "iss": ISSUER,
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(
    token: str | None,
    *,
    secret: str,
    expected_type: TokenType = "access",
    now: datetime | None = None,
) -> TokenClaims:
    if not token:
        raise TokenError("missing token")
    try:
        # Expiry is checked here against `now` (the wall clock by default) so tests can
        # pin time; signature, issuer and required claims are PyJWT's.
        raw = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"], "verify_exp": False},
        )
        clock = (now or datetime.now(UTC)).timestamp()
        if clock > raw["exp"] + LEEWAY_SECONDS:
            raise jwt.ExpiredSignatureError("Signature has expired")
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("token signature invalid") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenError("token issuer invalid") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"token invalid: {exc}") from exc
    if raw.get("type") != expected_type:
        raise TokenError(f"expected an {expected_type} token, got {raw.get('type')!r}")
    try:
        return TokenClaims(
            sub=raw["sub"],
            role=Role(raw["role"]),
            type=raw["type"],
            jti=raw.get("jti", ""),
            iat=datetime.fromtimestamp(raw["iat"], UTC),
            exp=datetime.fromtimestamp(raw["exp"], UTC),
        )
    except (KeyError, ValueError) as exc:
        raise TokenError(f"token claims invalid: {exc}") from exc
