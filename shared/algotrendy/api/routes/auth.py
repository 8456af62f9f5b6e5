"""Login, token refresh (rotation with reuse detection), logout, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from algotrendy.api.deps import Ctx, CurrentUser, client_ip, rate_limit
from algotrendy.api.problems import Problem
from algotrendy.api.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    TokenResponse,
    UserOut,
)
from algotrendy.auth.refresh import RefreshReuseError, TokenPair
from algotrendy.auth.tokens import TokenError
from algotrendy.auth.users import LoginFailedError, User

router = APIRouter(prefix="/auth", tags=["auth"])


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.access_expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


def _throttle(request: Request, ctx: Ctx) -> None:
    """Unauthenticated endpoints are limited per client address (password guessing)."""
    rate_limit(
        request,
        ctx,
        "login",
        client_ip(request) or "unknown",
        int(ctx.setting("api_login_rate_limit_per_minute")),
    )


@router.post("/login", response_model=TokenResponse)
def login(body: LoginRequest, request: Request, response: Response, ctx: Ctx) -> TokenResponse:
    """Exchange username and password for an access token (1 h) and a refresh token (30 d)."""
    request.state.actor = body.username[:128]
    request.state.audit_action = "auth.login"
    _throttle(request, ctx)
    try:
        user = ctx.users.authenticate(body.username, body.password)
    except LoginFailedError as exc:
        request.state.audit_detail = {"outcome": "failure"}
        raise Problem(401, "unauthorized", str(exc)) from None
    pair = ctx.tokens.issue(user.id, user.username, user.role)
    request.state.audit_detail = {"outcome": "success", "family": pair.family_id}
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 5.1
    return _tokens(pair)


@router.post("/refresh", response_model=TokenResponse)
def refresh(body: RefreshRequest, request: Request, response: Response, ctx: Ctx) -> TokenResponse:
    """Rotate: the presented refresh token is used up and a new pair returned. Presenting
    a used token again revokes every token of that login (reuse detection)."""
    request.state.audit_action = "auth.refresh"
    _throttle(request, ctx)
    try:
        rotation = ctx.tokens.consume(body.refresh_token)
    except RefreshReuseError as exc:
        owner = ctx.users.get(exc.user_id)
        request.state.actor = owner.username if owner else f"user:{exc.user_id}"
        request.state.audit_action = "auth.refresh_reuse"
        request.state.audit_detail = {"family": exc.family_id, "revoked": exc.revoked}
        raise Problem(401, "refresh-reuse", str(exc)) from None
    except TokenError as exc:
        raise Problem(401, "unauthorized", str(exc)) from None
    user = ctx.users.get(rotation.user_id)
    if user is None or not user.active:
        ctx.tokens.revoke_user(rotation.user_id, "disabled")
        raise Problem(401, "unauthorized", "user unknown or disabled")
    request.state.actor = user.username
    try:
        # Refused if a replay of the used token revoked the family since consume().
        pair = ctx.tokens.issue(user.id, user.username, user.role, family_id=rotation.family_id)
    except TokenError as exc:
        raise Problem(401, "unauthorized", str(exc)) from None
    request.state.audit_detail = {"family": pair.family_id}
    response.headers["Cache-Control"] = "no-store"
    return _tokens(pair)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(body: LogoutRequest, request: Request, user: CurrentUser, ctx: Ctx) -> Response:
    """Revoke the refresh token's login (or, with `everywhere`, every login of the user).
    The access token stays valid until it expires (at most 1 h)."""
    request.state.audit_action = "auth.logout"
    if body.everywhere:
        revoked = ctx.tokens.revoke_user(user.id, "logout")
        request.state.audit_detail = {"everywhere": True, "revoked": revoked}
    elif body.refresh_token:
        rotation = ctx.tokens.revoke(body.refresh_token, owner=user.id)
        if rotation is None:
            raise Problem(404, "not-found", "refresh token not found for this user")
        request.state.audit_detail = {"family": rotation.family_id}
    else:
        raise Problem(
            422,
            "validation",
            "give refresh_token or everywhere=true",
            errors=[
                {
                    "location": "body",
                    "field": "refresh_token",
                    "pointer": "#/refresh_token",
                    "detail": "required",
                }
            ],
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserOut:
    return user_out(user)


def user_out(user: User) -> UserOut:
    return UserOut(
        username=user.username,
        role=user.role,
        active=user.active,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )
