"""Users: registration (by an admin), the bootstrap admin, and password login.

Roles (`algotrendy.auth.tokens.Role`): admin manages users and runtime configuration and
may do everything else; trader places and cancels orders, starts backtests and edits
strategies; viewer reads. The route-level permissions live in `algotrendy.api.deps`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from algotrendy.auth.passwords import PasswordHasher
from algotrendy.auth.tokens import Role
from algotrendy.errors import AlgoTrendyError
from algotrendy.storage.relational.api_models import UserRow
from algotrendy.storage.relational.api_repositories import ConflictError, UserRepository

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")


class UserError(AlgoTrendyError):
    """A user operation was refused; `field` names the input at fault."""

    def __init__(self, message: str, *, field: str | None = None, conflict: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.conflict = conflict


class LoginFailedError(AlgoTrendyError):
    """Wrong username or password, or a disabled account; deliberately one message."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            row.id, row.username, Role(row.role), row.active, row.created_at, row.last_login_at
        )


class UserService:
    def __init__(self, repo: UserRepository, hasher: PasswordHasher) -> None:
        self.repo = repo
        self.hasher = hasher

    def register(self, username: str, password: str, role: Role) -> User:
        if not USERNAME.fullmatch(username):
            raise UserError(
                "username must be 3-64 characters of letters, digits, '_', '.', '@' or '-'",
                field="username",
            )
        try:
            password_hash = self.hasher.hash(password)
        except ValueError as exc:
            raise UserError(str(exc), field="password") from exc
        try:
            return User.from_row(self.repo.create(username, password_hash, role.value))
        except ConflictError as exc:
            raise UserError(str(exc), field="username", conflict=True) from exc

    def ensure_admin(self, username: str, password: str) -> User:
        """Create the admin `username` unless a user of that name exists (then leave it
        untouched: an operator who changed the password must not see it reset on every
        start). Idempotent, so every cold start may call it."""
        existing = self.repo.get(username)
        if existing is not None:
            return User.from_row(existing)
        try:
            return self.register(username, password, Role.ADMIN)
        except UserError as exc:
            if exc.conflict:  # a concurrent start created it first
                row = self.repo.get(username)
                if row is not None:
                    return User.from_row(row)
            raise

    def authenticate(self, username: str, password: str, now: datetime | None = None) -> User:
        row = self.repo.get(username)
        ok = self.hasher.verify(row.password_hash if row else None, password)
        if row is None or not ok or not row.active:
            raise LoginFailedError("wrong username or password, or the account is disabled")
        values: dict[str, object] = {"last_login_at": now or datetime.now(UTC)}
        if self.hasher.needs_rehash(row.password_hash):
            values["password_hash"] = self.hasher.hash(password)
        updated = self.repo.update(username, **values)
        return User.from_row(updated or row)

    def get(self, user_id: int) -> User | None:
        row = self.repo.get_by_id(user_id)
        return None if row is None else User.from_row(row)

    def list(self) -> list[User]:
        return [User.from_row(r) for r in self.repo.all()]

    def update(
        self,
        username: str,
        *,
        role: Role | None = None,
        active: bool | None = None,
        password: str | None = None,
    ) -> User:
        values: dict[str, object] = {}
        if role is not None:
            values["role"] = role.value
        if active is not None:
            values["active"] = active
        if password is not None:
            try:
                values["password_hash"] = self.hasher.hash(password)
            except ValueError as exc:
                raise UserError(str(exc), field="password") from exc
        row = self.repo.update(username, **values) if values else self.repo.get(username)
        if row is None:
            raise UserError(f"no user named {username!r}", field="username")
        return User.from_row(row)
