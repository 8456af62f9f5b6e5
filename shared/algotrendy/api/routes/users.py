"""User management (admin only): register, list, change role / disable / reset password."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from algotrendy.api.deps import Admin, Ctx
from algotrendy.api.problems import Problem, invalid
from algotrendy.api.routes.auth import user_out
from algotrendy.api.schemas import UserCreate, UserOut, UserUpdate
from algotrendy.auth.users import UserError

router = APIRouter(prefix="/users", tags=["users"])


def _refused(exc: UserError) -> Problem:
    if exc.conflict:
        return Problem(409, "conflict", str(exc))
    if exc.field and "no user" not in str(exc):
        return invalid(exc.field, str(exc))
    return Problem(404, "not-found", str(exc))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def register(body: UserCreate, request: Request, admin: Admin, ctx: Ctx) -> UserOut:
    """Create a user with a role (admin only; there is no self-registration)."""
    request.state.audit_action = "user.create"
    request.state.audit_detail = {"username": body.username, "role": body.role.value}
    try:
        return user_out(ctx.users.register(body.username, body.password, body.role))
    except UserError as exc:
        raise _refused(exc) from None


@router.get("", response_model=list[UserOut])
def list_users(admin: Admin, ctx: Ctx) -> list[UserOut]:
    return [user_out(u) for u in ctx.users.list()]


@router.patch("/{username}", response_model=UserOut)
def update_user(
    username: str, body: UserUpdate, request: Request, admin: Admin, ctx: Ctx
) -> UserOut:
    """Change role, enable/disable, or reset the password. Disabling or a password reset
    revokes the user's refresh tokens."""
    request.state.audit_action = "user.update"
    request.state.audit_detail = {
        "username": username,
        **{k: v for k, v in body.model_dump(exclude_none=True).items() if k != "password"},
        "password_reset": body.password is not None,
    }
    if username == admin.username and (body.active is False or body.role not in (None, admin.role)):
        raise Problem(409, "conflict", "an admin cannot disable or demote themselves")
    try:
        user = ctx.users.update(
            username, role=body.role, active=body.active, password=body.password
        )
    except UserError as exc:
        raise _refused(exc) from None
    if body.active is False or body.password is not None:
        ctx.tokens.revoke_user(user.id, "disabled" if body.active is False else "password")
    return user_out(user)
