"""SQLAlchemy repositories for the execution engine's state.

Each method is one transaction, so "durable" has one meaning: the call returned. The
engine deletes a queue message only after the repository call that records the order's
new state has returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from algotrendy.domain.orders import (
    TERMINAL_STATUSES,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from algotrendy.execution.positions import Position
from algotrendy.storage.relational.database import session_factory
from algotrendy.storage.relational.models import (
    AuditLogRow,
    Base,
    FillRow,
    OrderRow,
    PnlDailyRow,
    PositionRow,
)

_ORDER_FIELDS = (
    "client_order_id", "intent_id", "account", "strategy", "broker", "broker_order_id",
    "symbol", "side", "order_type", "time_in_force", "quantity", "limit_price", "stop_price",
    "trail_percent", "status", "filled_quantity", "avg_fill_price", "fees", "reason", "source",
    "created_at", "updated_at",
)  # fmt: skip


_ORDERS = Base.metadata.tables["orders"]
_FILLS = Base.metadata.tables["fills"]
_POSITIONS = Base.metadata.tables["positions"]
_PNL = Base.metadata.tables["pnl_daily"]


class DuplicateOrderError(Exception):
    """An order with this client order id is already recorded."""


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # SQLite drops the zone


def _to_order(row: OrderRow) -> Order:
    return Order(
        client_order_id=row.client_order_id,
        intent_id=row.intent_id,
        account=row.account,
        strategy=row.strategy,
        broker=row.broker,
        broker_order_id=row.broker_order_id,
        symbol=row.symbol,
        side=Side(row.side),
        order_type=OrderType(row.order_type),
        time_in_force=TimeInForce(row.time_in_force),
        quantity=row.quantity,
        limit_price=row.limit_price,
        stop_price=row.stop_price,
        trail_percent=row.trail_percent,
        status=OrderStatus(row.status),
        filled_quantity=row.filled_quantity,
        avg_fill_price=row.avg_fill_price,
        fees=row.fees,
        reason=row.reason,
        source=row.source,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


def _order_values(order: Order) -> dict[str, Any]:
    values = {f: getattr(order, f) for f in _ORDER_FIELDS}
    for enum_field in ("side", "order_type", "time_in_force", "status"):
        values[enum_field] = values[enum_field].value
    return values


class SqlExecutionRepository:
    """Orders, fills, positions, daily PnL and the audit log in one relational database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session: sessionmaker[Session] = session_factory(engine)
        self._stmts: dict[str, Any] = {}

    # -- orders --------------------------------------------------------------------------
    def create_order(self, order: Order) -> Order:
        """Insert a new order (Core insert: this is on the engine's hot path)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(_ORDERS), {**_order_values(order), "version": 1})
        except IntegrityError as exc:
            raise DuplicateOrderError(order.client_order_id) from exc
        return order

    def _statements(self) -> dict[str, Any]:
        """Hot-path statements built once: constructing SQLAlchemy statements costs more
        than executing them on SQLite, so the engine's per-fill writes reuse these."""
        if self._stmts:
            return self._stmts
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        cols = [f for f in _ORDER_FIELDS if f not in ("client_order_id", "created_at")]
        self._stmts["order"] = (
            update(_ORDERS)
            .where(_ORDERS.c.client_order_id == bindparam("b_coid"))
            .values({**{c: bindparam(f"v_{c}") for c in cols}, "version": _ORDERS.c.version + 1})
            .returning(_ORDERS.c.id)
        )
        self._stmts["fill"] = insert(_FILLS)
        pos = dialect.insert(_POSITIONS)
        self._stmts["position"] = pos.on_conflict_do_update(
            index_elements=["account", "strategy", "symbol"],
            set_={k: pos.excluded[k]
                  for k in ("quantity", "avg_price", "realized_pnl", "fees", "updated_at")},
        )  # fmt: skip
        pnl = dialect.insert(_PNL)
        self._stmts["pnl"] = pnl.on_conflict_do_update(
            index_elements=["account", "strategy", "day"],
            set_={"realized_pnl": _PNL.c.realized_pnl + pnl.excluded.realized_pnl,
                  "fees": _PNL.c.fees + pnl.excluded.fees},
        )  # fmt: skip
        return self._stmts

    def record_execution(
        self,
        order: Order,
        fills: list[Fill],
        position: Position | None,
        pnl: tuple[str, str, date, float, float] | None,
    ) -> None:
        """One transaction for what a broker update changes: the order row, its new fills,
        the strategy's position and the day's PnL (account, strategy, day, realised, fees).
        All or nothing, so positions can never drift from the fills that made them."""
        stmts = self._statements()
        now = datetime.now(UTC)
        raw = _order_values(order)
        raw.pop("created_at")
        raw["updated_at"] = now
        values = {f"v_{k}": v for k, v in raw.items() if k != "client_order_id"}
        values["b_coid"] = order.client_order_id
        with self.engine.begin() as conn:
            order_id = conn.execute(stmts["order"], values).scalar_one()
            if fills:
                conn.execute(
                    stmts["fill"],
                    [
                        {
                            "order_id": order_id, "broker": f.broker,
                            "broker_fill_id": f.broker_fill_id, "account": f.account,
                            "strategy": f.strategy, "symbol": f.symbol, "side": f.side.value,
                            "quantity": f.quantity, "price": f.price, "fee": f.fee,
                            "fee_currency": f.fee_currency, "time": f.time,
                        }
                        for f in fills
                    ],
                )  # fmt: skip
            if position is not None:
                conn.execute(stmts["position"], {
                    "account": position.account, "strategy": position.strategy,
                    "symbol": position.symbol, "quantity": position.quantity,
                    "avg_price": position.avg_price, "realized_pnl": position.realized_pnl,
                    "fees": position.fees, "updated_at": now,
                })  # fmt: skip
            if pnl is not None:
                account, strategy, day, realized, fees = pnl
                conn.execute(stmts["pnl"], {
                    "account": account, "strategy": strategy, "day": day,
                    "realized_pnl": realized, "unrealized_pnl": 0.0, "fees": fees,
                })  # fmt: skip

    def known_fill_ids(self, broker: str, fill_ids: list[str]) -> set[str]:
        if not fill_ids:
            return set()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_FILLS.c.broker_fill_id).where(
                    _FILLS.c.broker == broker,
                    _FILLS.c.broker_fill_id.in_(fill_ids),
                )
            )
            return {r[0] for r in rows}

    def get_order(self, client_order_id: str) -> Order | None:
        with self._session() as s:
            row = s.scalars(
                select(OrderRow).where(OrderRow.client_order_id == client_order_id)
            ).one_or_none()
            return _to_order(row) if row else None

    def save_order(self, order: Order) -> None:
        with self._session.begin() as s:
            row = s.scalars(
                select(OrderRow).where(OrderRow.client_order_id == order.client_order_id)
            ).one()
            for key, value in _order_values(order).items():
                if key != "created_at":
                    setattr(row, key, value)
            row.updated_at = datetime.now(UTC)

    def open_orders(self, account: str | None = None) -> list[Order]:
        q = select(OrderRow).where(OrderRow.status.not_in([s.value for s in TERMINAL_STATUSES]))
        if account is not None:
            q = q.where(OrderRow.account == account)
        with self._session() as s:
            return [_to_order(r) for r in s.scalars(q.order_by(OrderRow.id))]

    def list_orders(self, account: str | None = None, limit: int = 100) -> list[Order]:
        q = select(OrderRow).order_by(OrderRow.id.desc()).limit(limit)
        if account is not None:
            q = q.where(OrderRow.account == account)
        with self._session() as s:
            return [_to_order(r) for r in s.scalars(q)]

    # -- fills ---------------------------------------------------------------------------
    def record_fill(self, fill: Fill) -> bool:
        """Store a fill once; False if this broker fill id was already recorded."""
        try:
            with self._session.begin() as s:
                order_id = s.scalars(
                    select(OrderRow.id).where(OrderRow.client_order_id == fill.client_order_id)
                ).one()
                s.add(
                    FillRow(
                        order_id=order_id,
                        broker=fill.broker,
                        broker_fill_id=fill.broker_fill_id,
                        account=fill.account,
                        strategy=fill.strategy,
                        symbol=fill.symbol,
                        side=fill.side.value,
                        quantity=fill.quantity,
                        price=fill.price,
                        fee=fill.fee,
                        fee_currency=fill.fee_currency,
                        time=fill.time,
                    )
                )
        except IntegrityError:
            return False
        return True

    def all_fills(self) -> list[Fill]:
        """Every fill in booking order (positions are rebuilt from these on start)."""
        return self._fills(None)

    def fills_for(self, client_order_id: str) -> list[Fill]:
        return self._fills(client_order_id)

    def _fills(self, client_order_id: str | None) -> list[Fill]:
        with self._session() as s:
            rows = s.execute(
                select(FillRow, OrderRow.client_order_id)
                .join(OrderRow, FillRow.order_id == OrderRow.id)
                .where(
                    OrderRow.client_order_id == client_order_id
                    if client_order_id is not None
                    else FillRow.id.is_not(None)
                )
                .order_by(FillRow.id)
            ).all()
            return [
                Fill(
                    broker=r.broker,
                    broker_fill_id=r.broker_fill_id,
                    client_order_id=coid,
                    account=r.account,
                    strategy=r.strategy,
                    symbol=r.symbol,
                    side=Side(r.side),
                    quantity=r.quantity,
                    price=r.price,
                    fee=r.fee,
                    fee_currency=r.fee_currency,
                    time=_aware(r.time),
                )
                for r, coid in rows
            ]

    # -- positions and pnl ----------------------------------------------------------------
    def save_positions(self, positions: Iterable[Position]) -> None:
        with self._session.begin() as s:
            for p in positions:
                s.merge(
                    PositionRow(
                        account=p.account,
                        strategy=p.strategy,
                        symbol=p.symbol,
                        quantity=p.quantity,
                        avg_price=p.avg_price,
                        realized_pnl=p.realized_pnl,
                        fees=p.fees,
                    )
                )

    def load_positions(self, strategy: str | None = None) -> list[Position]:
        q = select(PositionRow)
        if strategy is not None:
            q = q.where(PositionRow.strategy == strategy)
        with self._session() as s:
            return [
                Position(r.account, r.strategy, r.symbol, r.quantity, r.avg_price,
                         r.realized_pnl, r.fees)
                for r in s.scalars(q)
            ]  # fmt: skip

    def add_daily_pnl(
        self, account: str, strategy: str, day: date, *, realized: float, fees: float
    ) -> None:
        with self._session.begin() as s:
            row = s.get(PnlDailyRow, (account, strategy, day))
            if row is None:
                row = PnlDailyRow(account=account, strategy=strategy, day=day,
                                  realized_pnl=0.0, unrealized_pnl=0.0, fees=0.0)  # fmt: skip
                s.add(row)
            row.realized_pnl += realized
            row.fees += fees

    def daily_pnl(self, account: str, day: date) -> float:
        """Net realised PnL of `account` on `day`, over all strategies."""
        with self._session() as s:
            rows = s.scalars(
                select(PnlDailyRow).where(PnlDailyRow.account == account, PnlDailyRow.day == day)
            ).all()
            return float(sum(r.realized_pnl - r.fees for r in rows))

    # -- audit ---------------------------------------------------------------------------
    def audit(
        self,
        actor: str,
        action: str,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
        ip: str | None = None,
    ) -> None:
        with self._session.begin() as s:
            s.add(AuditLogRow(actor=actor, action=action, target=target, detail=detail or {},
                              ip=ip))  # fmt: skip
