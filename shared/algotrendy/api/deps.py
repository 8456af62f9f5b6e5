"""Route dependencies as `Annotated` aliases (the style of fastapi/full-stack-fastapi-
template): `Ctx` is the composition root, `CurrentUser` any signed-in user (after the
per-user rate limit), `Viewer` / `Trader` / `Admin` the role gates.

Permissions: viewer reads everything but users, audit and configuration changes; trader
also places/cancels orders, starts/cancels backtests and edits strategies; admin also
manages users and runtime configuration. The user is re-read on every request, so a
disabled account or a changed role takes effect at once, not when its access token
expires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from algotrendy.api.context import ApiContext
from algotrendy.api.problems import Problem
from algotrendy.auth.tokens import Role, TokenError, verify_token
from algotrendy.auth.users import User

_bearer = HTTPBearer(auto_error=False, description="access token from POST /auth/login")


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context()
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def client_ip(request: Request) -> str | None:
    event = request.scope.get("aws.event") or {}
    ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
    if ip:
        return str(ip)
    return request.client.host if request.client else None


def rate_limit(request: Request, ctx: ApiContext, scope: str, who: str, limit: int) -> None:
    decision = ctx.limiter.hit(scope, who, limit)
    request.state.ratelimit = decision
    if not decision.allowed:
        raise Problem(
            429,
            "rate-limited",
            f"more than {limit} requests per minute; retry in {decision.reset_after} s",
            headers=decision.headers(),
        )


def current_user(
    request: Request,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None:
        raise _unauthorized("missing bearer token (Authorization: Bearer <access token>)")
    try:
        claims = verify_token(
            credentials.credentials, secret=ctx.settings.jwt_secret.get_secret_value()
        )
    except TokenError as exc:
        raise _unauthorized(str(exc)) from None
    row = ctx.users.repo.get(claims.sub)
    if row is None or not row.active:
        raise _unauthorized("user unknown or disabled")
    user = User.from_row(row)
    request.state.actor = user.username
    rate_limit(request, ctx, "user", user.username, int(ctx.setting("api_rate_limit_per_minute")))
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require(*roles: Role) -> Callable[[User], User]:
    allowed = frozenset(roles)

    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Problem(
                403, "forbidden", f"role {user.role.value} may not do this; needs {names}"
            )
        return user

    return check


Viewer = Annotated[User, Depends(require(Role.ADMIN, Role.TRADER, Role.VIEWER))]
Trader = Annotated[User, Depends(require(Role.ADMIN, Role.TRADER))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]
