"""Repositories of the REST API's tables, plus read-only queries over the engine's tables.

The API never writes orders, fills, positions or PnL (the execution engine is their only
writer); it reads them here and places orders by enqueuing intents. Each method is one
transaction. Rows are returned detached (`expire_on_commit=False`), with datetimes made
timezone-aware (SQLite drops the zone).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, Exists, delete, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from algotrendy.storage.relational.api_models import (
    BacktestResultRow,
    BacktestRow,
    ConfigurationRow,
    OrderRequestRow,
    RefreshTokenRow,
    StrategyConfigRow,
    UserRow,
)
from algotrendy.storage.relational.database import session_factory
from algotrendy.storage.relational.models import (
    AuditLogRow,
    FillRow,
    OrderRow,
    PnlDailyRow,
    PositionRow,
)

R = TypeVar("R")

_DATETIME_FIELDS = (
    "created_at",
    "updated_at",
    "last_login_at",
    "issued_at",
    "expires_at",
    "rotated_at",
    "revoked_at",
    "webhook_issued_at",
    "started_at",
    "finished_at",
    "time",
)


class ConflictError(Exception):
    """A uniqueness rule refused the write (the message names the value)."""


def aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _fix_times(row: R) -> R:
    for name in _DATETIME_FIELDS:
        if hasattr(row, name):
            value = getattr(row, name)
            if isinstance(value, datetime) and value.tzinfo is None:
                setattr(row, name, value.replace(tzinfo=UTC))
    return row


class _Repo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session: sessionmaker[Session] = session_factory(engine)

    def _detached(self, s: Session, rows: Iterable[R]) -> list[R]:
        out = list(rows)
        for row in out:
            s.expunge(row)
            _fix_times(row)
        return out

    def _insert(self, row: R, conflict: str) -> R:
        """Insert `row`; a unique key it breaks is a ConflictError saying `conflict`."""
        try:
            with self.session.begin() as s:
                s.add(row)
        except IntegrityError as exc:
            raise ConflictError(conflict) from exc
        return _fix_times(row)


class UserRepository(_Repo):
    def create(self, username: str, password_hash: str, role: str) -> UserRow:
        row = UserRow(username=username, password_hash=password_hash, role=role, active=True)
        return self._insert(row, f"username {username!r} is taken")

    def get(self, username: str) -> UserRow | None:
        with self.session() as s:
            rows = s.scalars(select(UserRow).where(UserRow.username == username)).all()
            return next(iter(self._detached(s, rows)), None)

    def get_by_id(self, user_id: int) -> UserRow | None:
        with self.session() as s:
            row = s.get(UserRow, user_id)
            return None if row is None else self._detached(s, [row])[0]

    def all(self) -> list[UserRow]:
        with self.session() as s:
            return self._detached(s, s.scalars(select(UserRow).order_by(UserRow.id)))

    def count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(UserRow)) or 0)

    def update(self, username: str, **values: Any) -> UserRow | None:
        with self.session.begin() as s:
            row = s.scalars(select(UserRow).where(UserRow.username == username)).one_or_none()
            if row is None:
                return None
            for key, value in values.items():
                setattr(row, key, value)
            s.flush()
            return self._detached(s, [row])[0]


def _family_revoked(family_id: str) -> Exists:
    """True when any token of the family is revoked. Revocation is always family-wide
    (reuse, logout, disabled user), so one revoked token means the whole login is; a token
    added by a rotation racing the revocation is dead by this rule even if the revoking
    UPDATE did not see it (PostgreSQL's READ COMMITTED snapshot)."""
    other = aliased(RefreshTokenRow)
    return exists().where(other.family_id == family_id, other.revoked_at.is_not(None))


class RefreshTokenRepository(_Repo):
    def add(
        self, token_sha256: str, user_id: int, family_id: str, issued: datetime, expires: datetime
    ) -> None:
        with self.session.begin() as s:
            s.add(
                RefreshTokenRow(
                    token_sha256=token_sha256,
                    user_id=user_id,
                    family_id=family_id,
                    issued_at=issued,
                    expires_at=expires,
                )
            )

    def add_to_family(
        self, token_sha256: str, user_id: int, family_id: str, issued: datetime, expires: datetime
    ) -> bool:
        """Add a rotated token to a live family; False (nothing added) if the family is
        revoked. One INSERT ... SELECT ... WHERE NOT EXISTS, so the check and the insert
        cannot be split by a revocation committing in between (SQLite serialises writers;
        see `_family_revoked` for PostgreSQL)."""
        t = RefreshTokenRow
        row = select(
            literal(token_sha256, t.token_sha256.type),
            literal(user_id, t.user_id.type),
            literal(family_id, t.family_id.type),
            literal(issued, t.issued_at.type),
            literal(expires, t.expires_at.type),
        ).where(~_family_revoked(family_id))
        # RETURNING, not rowcount: SQLAlchemy promises rowcount for UPDATE/DELETE only
        # (psycopg's INSERT ... SELECT reports none through it).
        with self.session.begin() as s:
            added = s.execute(
                insert(t)
                .from_select(
                    ["token_sha256", "user_id", "family_id", "issued_at", "expires_at"], row
                )
                .returning(t.id)
            ).first()
            return added is not None

    def family_revoked(self, family_id: str) -> bool:
        with self.session() as s:
            return bool(s.scalar(select(_family_revoked(family_id))))

    def get(self, token_sha256: str) -> RefreshTokenRow | None:
        with self.session() as s:
            rows = s.scalars(
                select(RefreshTokenRow).where(RefreshTokenRow.token_sha256 == token_sha256)
            ).all()
            return next(iter(self._detached(s, rows)), None)

    def mark_rotated(self, token_id: int, at: datetime) -> bool:
        """Consume a live token; False if it was rotated or revoked meanwhile. One
        conditional UPDATE, so two concurrent refreshes with one token cannot both win."""
        with self.session.begin() as s:
            result = s.execute(
                update(RefreshTokenRow)
                .where(
                    RefreshTokenRow.id == token_id,
                    RefreshTokenRow.rotated_at.is_(None),
                    RefreshTokenRow.revoked_at.is_(None),
                )
                .values(rotated_at=at)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def revoke_family(self, family_id: str, reason: str, at: datetime) -> int:
        with self.session.begin() as s:
            result = s.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.family_id == family_id, RefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=at, revoked_reason=reason)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def revoke_user(self, user_id: int, reason: str, at: datetime) -> int:
        with self.session.begin() as s:
            result = s.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.user_id == user_id, RefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=at, revoked_reason=reason)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def family(self, family_id: str) -> list[RefreshTokenRow]:
        with self.session() as s:
            rows = s.scalars(
                select(RefreshTokenRow)
                .where(RefreshTokenRow.family_id == family_id)
                .order_by(RefreshTokenRow.id)
            )
            return self._detached(s, rows)


class StrategyConfigRepository(_Repo):
    def create(self, **values: Any) -> StrategyConfigRow:
        row = StrategyConfigRow(**values)
        return self._insert(row, f"a strategy named {values.get('name')!r} exists")

    def get(self, strategy_id: int) -> StrategyConfigRow | None:
        with self.session() as s:
            row = s.get(StrategyConfigRow, strategy_id)
            return None if row is None else self._detached(s, [row])[0]

    def all(self, enabled: bool | None = None) -> list[StrategyConfigRow]:
        q = select(StrategyConfigRow).order_by(StrategyConfigRow.id)
        if enabled is not None:
            q = q.where(StrategyConfigRow.enabled == enabled)
        with self.session() as s:
            return self._detached(s, s.scalars(q))

    def update(self, strategy_id: int, **values: Any) -> StrategyConfigRow | None:
        try:
            with self.session.begin() as s:
                row = s.get(StrategyConfigRow, strategy_id)
                if row is None:
                    return None
                for key, value in values.items():
                    setattr(row, key, value)
                s.flush()
                return self._detached(s, [row])[0]
        except IntegrityError as exc:
            raise ConflictError(f"a strategy named {values.get('name')!r} exists") from exc

    def delete(self, strategy_id: int) -> bool:
        with self.session.begin() as s:
            result = s.execute(delete(StrategyConfigRow).where(StrategyConfigRow.id == strategy_id))
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def by_webhook_hash(self, token_sha256: str) -> StrategyConfigRow | None:
        with self.session() as s:
            rows = s.scalars(
                select(StrategyConfigRow).where(
                    StrategyConfigRow.webhook_token_sha256 == token_sha256
                )
            ).all()
            return next(iter(self._detached(s, rows)), None)


@dataclass(frozen=True, slots=True)
class ResultInput:
    """One ranked row to store for a run."""

    rank: int
    symbol: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    trades: list[dict[str, Any]] | None = None
    equity: dict[str, Any] | None = None


TERMINAL_BACKTEST = ("succeeded", "failed", "cancelled")


class BacktestRepository(_Repo):
    def create(self, **values: Any) -> BacktestRow:
        row = BacktestRow(**values)
        with self.session.begin() as s:
            s.add(row)
        return _fix_times(row)

    def get(self, backtest_id: str) -> BacktestRow | None:
        with self.session() as s:
            row = s.get(BacktestRow, backtest_id)
            return None if row is None else self._detached(s, [row])[0]

    def recent(self, status: str | None = None, limit: int = 50) -> list[BacktestRow]:
        q = select(BacktestRow).order_by(BacktestRow.created_at.desc(), BacktestRow.id).limit(limit)
        if status is not None:
            q = q.where(BacktestRow.status == status)
        with self.session() as s:
            return self._detached(s, s.scalars(q))

    def transition(self, backtest_id: str, status: str, **values: Any) -> bool:
        """Move a run to `status` unless it already ended (a finished or cancelled run is
        never overwritten by a late worker); False when it had."""
        with self.session.begin() as s:
            result = s.execute(
                update(BacktestRow)
                .where(BacktestRow.id == backtest_id, BacktestRow.status.not_in(TERMINAL_BACKTEST))
                .values(status=status, **values)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def request_cancel(self, backtest_id: str) -> None:
        with self.session.begin() as s:
            s.execute(
                update(BacktestRow)
                .where(BacktestRow.id == backtest_id)
                .values(cancel_requested=True)
            )

    def cancel_requested(self, backtest_id: str) -> bool:
        with self.session() as s:
            return bool(
                s.scalar(select(BacktestRow.cancel_requested).where(BacktestRow.id == backtest_id))
            )

    def finish(
        self, backtest_id: str, summary: dict[str, Any], results: Sequence[ResultInput]
    ) -> bool:
        """Store the results and mark the run succeeded, in one transaction; False (and
        nothing stored) if the run had already ended, e.g. was cancelled."""
        now = datetime.now(UTC)
        with self.session.begin() as s:
            moved = s.execute(
                update(BacktestRow)
                .where(BacktestRow.id == backtest_id, BacktestRow.status.not_in(TERMINAL_BACKTEST))
                .values(status="succeeded", summary=summary, finished_at=now)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return False
            s.add_all(
                BacktestResultRow(
                    backtest_id=backtest_id,
                    rank=r.rank,
                    symbol=r.symbol,
                    params=r.params,
                    metrics=r.metrics,
                    trades=r.trades,
                    equity=r.equity,
                )
                for r in results
            )
        return True

    def results(self, backtest_id: str, limit: int = 100, offset: int = 0) -> list[Any]:
        """Ranked rows without the bulky trades/equity columns."""
        cols = (
            BacktestResultRow.rank,
            BacktestResultRow.symbol,
            BacktestResultRow.params,
            BacktestResultRow.metrics,
            BacktestResultRow.trades.is_not(None).label("has_trades"),
        )
        with self.session() as s:
            return list(
                s.execute(
                    select(*cols)
                    .where(BacktestResultRow.backtest_id == backtest_id)
                    .order_by(BacktestResultRow.rank)
                    .limit(limit)
                    .offset(offset)
                ).all()
            )

    def result(self, backtest_id: str, rank: int) -> BacktestResultRow | None:
        with self.session() as s:
            rows = s.scalars(
                select(BacktestResultRow).where(
                    BacktestResultRow.backtest_id == backtest_id, BacktestResultRow.rank == rank
                )
            ).all()
            return next(iter(self._detached(s, rows)), None)


class ConfigurationRepository(_Repo):
    def all(self) -> dict[str, ConfigurationRow]:
        with self.session() as s:
            return {r.key: r for r in self._detached(s, s.scalars(select(ConfigurationRow)))}

    def set(self, key: str, value: Any, updated_by: str) -> None:
        with self.session.begin() as s:
            row = s.get(ConfigurationRow, key)
            if row is None:
                s.add(ConfigurationRow(key=key, value=value, updated_by=updated_by))
            else:
                row.value = value
                row.updated_by = updated_by
                row.updated_at = datetime.now(UTC)


# How long an order request is kept as the idempotency record of its intent id. Far longer
# than any client retries one request (minutes to hours) and than the orders queue's
# 5-minute de-duplication window, so a retry always finds its record; short enough that
# the table stays bounded (one row per API order). A replay after it is a new request: it
# is recorded and sent again, and only the engine's own orders table still guards it.
ORDER_REQUEST_RETENTION = timedelta(days=30)
# Rows deleted per statement, and how often one process prunes at most: a short
# statement now and then, never a long delete holding locks on the request path.
ORDER_REQUEST_PRUNE_BATCH = 500
ORDER_REQUEST_PRUNE_EVERY = timedelta(minutes=10)


class OrderRequestRepository(_Repo):
    """The idempotency record of POST /orders (see `OrderRequestRow`), kept for
    `ORDER_REQUEST_RETENTION`."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._prune_lock = threading.Lock()
        self._next_prune: datetime | None = None  # None: due at the first chance

    def claim(
        self, intent_id: str, client_order_id: str, request_sha256: str, actor: str
    ) -> tuple[OrderRequestRow, bool]:
        """Record a request under `intent_id` unless one is recorded: (the row that owns
        the intent id, True if it is the one just written). The primary key arbitrates a
        race: the loser's INSERT fails (on PostgreSQL after waiting for the winner's
        commit; SQLite serialises writers) and it reads the winner's committed row. A row
        pruned between the two is gone, so the insert is tried once more."""
        values = {
            "intent_id": intent_id,
            "client_order_id": client_order_id,
            "request_sha256": request_sha256,
            "actor": actor,
        }
        refused = f"intent_id {intent_id!r} is used"
        try:
            return self._insert(OrderRequestRow(**values), refused), True
        except ConflictError:
            held = self.get(intent_id)
            if held is not None:
                return held, False
        # Pruned in between, or not the primary key that refused it: a second refusal is
        # a real error, raised.
        return self._insert(OrderRequestRow(**values), refused), True

    def prune(self, before: datetime, limit: int = ORDER_REQUEST_PRUNE_BATCH) -> int:
        """Delete at most `limit` requests recorded before `before`; the number deleted.
        On PostgreSQL rows another pruner holds are skipped, not waited for."""
        if before.tzinfo is None:
            raise ValueError("prune: `before` must be timezone-aware")
        before = before.astimezone(UTC)  # SQLite compares the stored UTC text
        expired = (
            select(OrderRequestRow.intent_id)
            .where(OrderRequestRow.created_at < before)
            .limit(limit)
            .with_for_update(skip_locked=True)  # SQLite compiles no FOR UPDATE
        )
        with self.session.begin() as s:
            result = s.execute(
                delete(OrderRequestRow).where(
                    OrderRequestRow.intent_id.in_(expired.scalar_subquery())
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def prune_if_due(self, now: datetime | None = None) -> int | None:
        """One `prune` batch of requests past `ORDER_REQUEST_RETENTION`, at most once per
        `ORDER_REQUEST_PRUNE_EVERY` in this process (None when not due, or another thread
        is pruning). One process drains 500 rows per 10 minutes (72,000 a day), far above
        the API's order rate; only POST /orders calls it, so it costs nothing elsewhere."""
        now = now or datetime.now(UTC)
        if not self._prune_lock.acquire(blocking=False):
            return None
        try:
            if self._next_prune is not None and now < self._next_prune:
                return None
            # Set first: a failing prune is retried next period, not on every request.
            self._next_prune = now + ORDER_REQUEST_PRUNE_EVERY
            return self.prune(now - ORDER_REQUEST_RETENTION)
        finally:
            self._prune_lock.release()

    def get(self, intent_id: str) -> OrderRequestRow | None:
        with self.session() as s:
            row = s.get(OrderRequestRow, intent_id)
            return None if row is None else self._detached(s, [row])[0]

    def record_message(self, intent_id: str, message_id: str) -> str:
        """Store the queue message id of the send; the id stored first wins (two sends of
        the same request are one message for the de-duplicating queue), and is returned so
        every reply names the same message."""
        with self.session.begin() as s:
            s.execute(
                update(OrderRequestRow)
                .where(OrderRequestRow.intent_id == intent_id, OrderRequestRow.message_id.is_(None))
                .values(message_id=message_id)
            )
            stored = s.scalar(
                select(OrderRequestRow.message_id).where(OrderRequestRow.intent_id == intent_id)
            )
        if stored is None:
            raise LookupError(f"no order request recorded for intent_id {intent_id!r}")
        return stored


class AuditRepository(_Repo):
    def write(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
        ip: str | None = None,
    ) -> None:
        with self.session.begin() as s:
            s.add(
                AuditLogRow(actor=actor, action=action, target=target, detail=detail or {}, ip=ip)
            )

    def recent(
        self, *, actor: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditLogRow]:
        q = select(AuditLogRow).order_by(AuditLogRow.id.desc()).limit(limit)
        if actor is not None:
            q = q.where(AuditLogRow.actor == actor)
        if action is not None:
            q = q.where(AuditLogRow.action == action)
        with self.session() as s:
            return self._detached(s, s.scalars(q))


class TradingReadRepository(_Repo):
    """Read-only views of the execution engine's tables."""

    def orders(
        self,
        *,
        account: str | None = None,
        status: str | None = None,
        symbol: str | None = None,
        strategy: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[OrderRow]:
        q = select(OrderRow).order_by(OrderRow.id.desc()).limit(limit)
        for column, value in (
            (OrderRow.account, account),
            (OrderRow.status, status),
            (OrderRow.symbol, symbol),
            (OrderRow.strategy, strategy),
        ):
            if value is not None:
                q = q.where(column == value)
        if before_id is not None:
            q = q.where(OrderRow.id < before_id)
        with self.session() as s:
            return self._detached(s, s.scalars(q))

    def orders_by_intent(self, intent_id: str) -> list[OrderRow]:
        """The orders recorded for an intent id (one per account that used it)."""
        with self.session() as s:
            rows = s.scalars(
                select(OrderRow).where(OrderRow.intent_id == intent_id).order_by(OrderRow.id)
            )
            return self._detached(s, rows)

    def order(self, client_order_id: str) -> tuple[OrderRow, list[FillRow]] | None:
        with self.session() as s:
            rows = s.scalars(
                select(OrderRow).where(OrderRow.client_order_id == client_order_id)
            ).all()
            if not rows:
                return None
            order = rows[0]
            fills = s.scalars(
                select(FillRow).where(FillRow.order_id == order.id).order_by(FillRow.id)
            ).all()
            return self._detached(s, [order])[0], self._detached(s, fills)

    def positions(
        self,
        *,
        account: str | None = None,
        strategy: str | None = None,
        symbol: str | None = None,
        include_flat: bool = False,
    ) -> list[PositionRow]:
        q = select(PositionRow).order_by(
            PositionRow.account, PositionRow.strategy, PositionRow.symbol
        )
        for column, value in (
            (PositionRow.account, account),
            (PositionRow.strategy, strategy),
            (PositionRow.symbol, symbol),
        ):
            if value is not None:
                q = q.where(column == value)
        if not include_flat:
            q = q.where(PositionRow.quantity != 0)
        with self.session() as s:
            return self._detached(s, s.scalars(q))

    def pnl_daily(
        self,
        *,
        account: str | None = None,
        strategy: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> list[PnlDailyRow]:
        q = select(PnlDailyRow).order_by(PnlDailyRow.day, PnlDailyRow.account, PnlDailyRow.strategy)
        if account is not None:
            q = q.where(PnlDailyRow.account == account)
        if strategy is not None:
            q = q.where(PnlDailyRow.strategy == strategy)
        if start is not None:
            q = q.where(PnlDailyRow.day >= start)
        if end is not None:
            q = q.where(PnlDailyRow.day <= end)
        with self.session() as s:
            return self._detached(s, s.scalars(q))
