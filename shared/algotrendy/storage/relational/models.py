"""Tables owned by the execution engine (the only writer of orders, fills and positions)
and the audit log.

Quantities, prices, fees and PnL are unconstrained NUMERIC (`Amount`), written from the
float's exact shortest decimal (`repr`), so every value read back is the float written, at
any magnitude: a fixed scale (it was NUMERIC(30, 12)) rounded low prices such as 1.2e-9
and moved PnL on restart. Python sees floats like the rest of the engine.
Uniqueness constraints carry the idempotency rules: one order per client order id, one
fill per broker fill id *within its order* (venues such as Binance number trades per
symbol, and both sides of a trade can carry the same id, so a broker-wide key is wrong),
one position row per account/strategy/symbol.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so Alembic migrations are the same on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class ExactAmount(TypeDecorator[float]):
    """NUMERIC without precision or scale, bound as `Decimal(repr(value))`.

    psycopg sends a float as float8 and PostgreSQL's float8 -> numeric cast keeps only 15
    significant digits; the shortest round-trip decimal keeps all of them, so the value
    read back is the float that was written. SQLite stores the float as REAL, exactly,
    so there the value is bound untouched (no per-value cost on the hot path)."""

    impl = Numeric
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(asdecimal=False)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return None

        def exact(value: Any) -> Any:
            return Decimal(repr(value)) if isinstance(value, float) else value

        return exact


def Amount() -> ExactAmount:  # noqa: N802 - reads as a column type
    return ExactAmount()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    intent_id: Mapped[str] = mapped_column(String(128), index=True)
    account: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str | None] = mapped_column(String(64))
    broker: Mapped[str] = mapped_column(String(32))
    broker_order_id: Mapped[str | None] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    order_type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[float] = mapped_column(Amount())
    limit_price: Mapped[float | None] = mapped_column(Amount())
    stop_price: Mapped[float | None] = mapped_column(Amount())
    trail_percent: Mapped[float | None] = mapped_column(Amount())
    status: Mapped[str] = mapped_column(String(20), index=True)
    filled_quantity: Mapped[float] = mapped_column(Amount(), default=0.0)
    avg_fill_price: Mapped[float | None] = mapped_column(Amount())
    fees: Mapped[float] = mapped_column(Amount(), default=0.0)
    reason: Mapped[str | None] = mapped_column(Text, doc="why rejected / cancelled / unknown")
    source: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy API
    __table_args__ = (Index("ix_orders_account_symbol_status", "account", "symbol", "status"),)


class FillRow(Base):
    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("order_id", "broker_fill_id", name="uq_fills_order_fill"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    broker: Mapped[str] = mapped_column(String(32))
    broker_fill_id: Mapped[str] = mapped_column(String(128))
    account: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[float] = mapped_column(Amount())
    price: Mapped[float] = mapped_column(Amount())
    fee: Mapped[float] = mapped_column(Amount(), default=0.0)
    fee_currency: Mapped[str | None] = mapped_column(String(16))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PositionRow(Base):
    """One sub-ledger row per account, strategy and symbol (strategy '' = unattributed)."""

    __tablename__ = "positions"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[float] = mapped_column(Amount(), default=0.0)
    avg_price: Mapped[float] = mapped_column(Amount(), default=0.0)
    realized_pnl: Mapped[float] = mapped_column(Amount(), default=0.0)
    fees: Mapped[float] = mapped_column(Amount(), default=0.0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class PnlDailyRow(Base):
    __tablename__ = "pnl_daily"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    realized_pnl: Mapped[float] = mapped_column(Amount(), default=0.0)
    unrealized_pnl: Mapped[float] = mapped_column(Amount(), default=0.0)
    fees: Mapped[float] = mapped_column(Amount(), default=0.0)


class AuditLogRow(Base):
    __tablename__ = "audit_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
