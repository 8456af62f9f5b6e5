"""Tables owned by the REST API: users, refresh tokens, strategy configs, backtest runs
and their results, runtime configuration overrides (DESIGN.md section 5), and the order
requests accepted by POST /orders.

They share `Base` (and so the naming convention and `compare_metadata`) with the execution
tables; migration 0002 creates them, 0004 the order requests. Secrets are never stored:
passwords as argon2id hashes, refresh tokens and webhook tokens as their SHA-256 (both are
256-bit random values, for which a fast hash is right: OWASP Password Storage Cheat Sheet,
"hashing vs encryption"; nothing to brute-force). Nullable JSON columns store None as SQL
NULL (`none_as_null`), so "has trades" is an IS NOT NULL test.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from algotrendy.storage.relational.models import Base, utcnow


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshTokenRow(Base):
    """One issued refresh token. A login starts a family; each rotation marks the presented
    token `rotated_at` and issues the next one in the same family. Presenting a rotated
    token again means it was copied: the whole family is revoked (OAuth 2.0 Security BCP,
    RFC 9700 section 4.14.2, "refresh token rotation")."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class StrategyConfigRow(Base):
    """A configured strategy: which registered strategy, its validated parameters, the
    symbols it trades, and the hash of its TradingView webhook token (if issued)."""

    __tablename__ = "strategies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    strategy_type: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    symbols: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    webhook_issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class BacktestRow(Base):
    """One backtest run (a single backtest or a sweep) started through the API."""

    __tablename__ = "backtests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), doc="single | sweep")
    status: Mapped[str] = mapped_column(String(16), index=True)
    strategy: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(Text)
    launcher: Mapped[str] = mapped_column(String(16))
    execution_arn: Mapped[str | None] = mapped_column(String(2048))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BacktestResultRow(Base):
    """One ranked row of a run (rank 1 = best by the run's metric). Trades and the equity
    curve are kept for the rows that were run in full (a single backtest's rows, a sweep's
    best row); JSON-safe (non-finite metrics as null)."""

    __tablename__ = "backtest_results"
    __table_args__ = (UniqueConstraint("backtest_id", "rank", name="uq_backtest_results_rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    backtest_id: Mapped[str] = mapped_column(ForeignKey("backtests.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    symbol: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    trades: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    equity: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class ConfigurationRow(Base):
    """A runtime setting changed by an admin; overrides the environment's value."""

    __tablename__ = "configurations"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class OrderRequestRow(Base):
    """The first POST /orders request under an intent id, written BEFORE its intent is
    sent: the primary key makes the first writer own the intent id, so a different request
    racing it is refused (409) instead of being dropped by the queue's de-duplication.
    `message_id` is set once the send succeeded; a row without one (send failed, or the
    process died mid-send) is sent again by the same request, never by a different one
    (a failed send may still have reached the queue)."""

    __tablename__ = "order_requests"

    intent_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(64))
    request_sha256: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(128))
    # Indexed: the retention prune deletes by age (api_repositories.ORDER_REQUEST_RETENTION).
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
