from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from algotrendy.storage.relational import (
    AuditLogRow,
    Base,
    FillRow,
    OrderRow,
    PositionRow,
    session_factory,
    upgrade_database,
)


def _order(**kw: object) -> OrderRow:
    base: dict[str, object] = {
        "client_order_id": "at-abc",
        "intent_id": "intent-1",
        "account": "default",
        "strategy": "sma_cross",
        "broker": "paper",
        "symbol": "BTC/USDT",
        "side": "buy",
        "order_type": "market",
        "time_in_force": "gtc",
        "quantity": 0.123456789012,
        "status": "new",
    }
    base.update(kw)
    return OrderRow(**base)


def test_migrations_match_models(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(db_engine: Engine) -> None:
    upgrade_database(db_engine)
    with session_factory(db_engine)() as s:
        assert s.scalars(select(OrderRow)).all() == []


def test_order_round_trip_keeps_precision(db_engine: Engine) -> None:
    Session = session_factory(db_engine)
    with Session.begin() as s:
        s.add(_order())
    with Session() as s:
        row = s.scalars(select(OrderRow)).one()
        assert row.quantity == pytest.approx(0.123456789012, abs=1e-12)
        assert row.filled_quantity == 0.0
        assert row.version == 1


def test_one_order_per_client_order_id(db_engine: Engine) -> None:
    Session = session_factory(db_engine)
    with Session.begin() as s:
        s.add(_order())
    with pytest.raises(IntegrityError), Session.begin() as s:
        s.add(_order(intent_id="intent-again"))


def test_one_fill_per_broker_fill_id(db_engine: Engine) -> None:
    Session = session_factory(db_engine)
    with Session.begin() as s:
        order = _order()
        s.add(order)
        s.flush()
        order_id = order.id
    fill = {
        "order_id": order_id,
        "broker": "paper",
        "broker_fill_id": "f-1",
        "account": "default",
        "strategy": "sma_cross",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": 0.1,
        "price": 42000.5,
        "time": datetime(2024, 1, 1, tzinfo=UTC),
    }
    with Session.begin() as s:
        s.add(FillRow(**fill))
    with pytest.raises(IntegrityError), Session.begin() as s:
        s.add(FillRow(**fill))


def test_fill_needs_its_order(db_engine: Engine) -> None:
    Session = session_factory(db_engine)
    with pytest.raises(IntegrityError), Session.begin() as s:
        s.add(
            FillRow(
                order_id=999,
                broker="paper",
                broker_fill_id="x",
                account="a",
                symbol="S",
                side="buy",
                quantity=1,
                price=1,
                time=datetime(2024, 1, 1, tzinfo=UTC),
            )
        )


def test_concurrent_order_update_is_refused(db_engine: Engine) -> None:
    """Optimistic locking: two writers of one order cannot both win."""
    Session = session_factory(db_engine)
    with Session.begin() as s:
        s.add(_order())
    a, b = Session(), Session()
    try:
        row_a = a.scalars(select(OrderRow)).one()
        row_b = b.scalars(select(OrderRow)).one()
        row_a.status = "submitted"
        a.commit()
        row_b.status = "rejected"
        with pytest.raises(StaleDataError):
            b.commit()
    finally:
        a.close()
        b.close()


def test_position_and_audit_rows(db_engine: Engine) -> None:
    Session = session_factory(db_engine)
    with Session.begin() as s:
        s.add(
            PositionRow(account="default", strategy="", symbol="AAPL", quantity=-5, avg_price=190)
        )
        s.add(AuditLogRow(actor="cli", action="kill_switch", target="default", detail={"on": True}))
    with Session() as s:
        pos = s.get(PositionRow, ("default", "", "AAPL"))
        assert pos is not None
        assert pos.quantity == -5
        audit = s.scalars(select(AuditLogRow)).one()
        assert audit.detail == {"on": True}
        assert audit.time is not None
