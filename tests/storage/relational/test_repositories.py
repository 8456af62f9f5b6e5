from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from algotrendy.domain.orders import Fill, Order, OrderIntent, OrderStatus, Side
from algotrendy.execution.positions import Position
from algotrendy.storage.relational.repositories import DuplicateOrderError, SqlExecutionRepository

INTENT = OrderIntent(
    intent_id="intent-42", symbol="BTC/USDT", side="buy", quantity=0.25, strategy="sma_cross",
    order_type="limit", limit_price=42000.5,
)  # fmt: skip


@pytest.fixture
def repo(db_engine: Engine) -> SqlExecutionRepository:
    return SqlExecutionRepository(db_engine)


def test_create_get_save(repo: SqlExecutionRepository) -> None:
    order = Order.from_intent(INTENT, broker="paper")
    repo.create_order(order)
    got = repo.get_order(INTENT.client_order_id)
    assert got is not None
    assert got.model_dump(exclude={"created_at", "updated_at"}) == order.model_dump(
        exclude={"created_at", "updated_at"}
    )
    assert got.created_at.tzinfo is not None
    got.status = OrderStatus.SUBMITTED
    got.broker_order_id = "B-1"
    repo.save_order(got)
    again = repo.get_order(INTENT.client_order_id)
    assert again is not None
    assert again.status is OrderStatus.SUBMITTED
    assert again.broker_order_id == "B-1"


def test_second_order_for_same_intent_refused(repo: SqlExecutionRepository) -> None:
    repo.create_order(Order.from_intent(INTENT, broker="paper"))
    with pytest.raises(DuplicateOrderError):
        repo.create_order(Order.from_intent(INTENT, broker="paper"))


def test_open_orders_exclude_terminal(repo: SqlExecutionRepository) -> None:
    a = Order.from_intent(INTENT, broker="paper")
    b = Order.from_intent(INTENT.model_copy(update={"intent_id": "intent-43"}), broker="paper")
    repo.create_order(a)
    repo.create_order(b)
    b.status = OrderStatus.FILLED
    repo.save_order(b)
    assert [o.client_order_id for o in repo.open_orders()] == [a.client_order_id]
    assert len(repo.list_orders()) == 2


def test_fills_recorded_once(repo: SqlExecutionRepository) -> None:
    repo.create_order(Order.from_intent(INTENT, broker="paper"))
    fill = Fill(
        broker="paper", broker_fill_id="F1", client_order_id=INTENT.client_order_id,
        account="default", strategy="sma_cross", symbol="BTC/USDT", side=Side.BUY,
        quantity=0.1, price=42000.5, fee=0.84, time=datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
    )  # fmt: skip
    assert repo.record_fill(fill) is True
    assert repo.record_fill(fill) is False  # redelivered broker update: no second fill
    [stored] = repo.fills_for(INTENT.client_order_id)
    assert stored == fill


def test_positions_round_trip(repo: SqlExecutionRepository) -> None:
    p = Position("default", "sma_cross", "BTC/USDT", 0.5, 41000.0, 12.5, 0.3)
    repo.save_positions([p])
    p.quantity = 0.75
    repo.save_positions([p])
    assert repo.load_positions() == [p]


def test_daily_pnl_accumulates(repo: SqlExecutionRepository) -> None:
    day = date(2024, 1, 2)
    repo.add_daily_pnl("default", "a", day, realized=10.0, fees=1.0)
    repo.add_daily_pnl("default", "a", day, realized=-4.0, fees=0.5)
    repo.add_daily_pnl("default", "b", day, realized=3.0, fees=0.0)
    assert repo.daily_pnl("default", day) == pytest.approx(7.5)
    assert repo.daily_pnl("default", date(2024, 1, 3)) == 0.0


def test_audit(repo: SqlExecutionRepository, db_engine: Engine) -> None:
    from sqlalchemy import select

    from algotrendy.storage.relational import AuditLogRow, session_factory

    repo.audit("engine", "order.rejected", "at-1", {"reason": "kill switch"})
    with session_factory(db_engine)() as s:
        row = s.scalars(select(AuditLogRow)).one()
        assert (row.actor, row.action, row.detail) == (
            "engine",
            "order.rejected",
            {"reason": "kill switch"},
        )


def test_order_values_cover_every_order_column() -> None:
    from algotrendy.storage.relational.repositories import _ORDER_FIELDS, _order_values

    order = Order.from_intent(INTENT, broker="paper")
    values = _order_values(order)
    assert tuple(values) == _ORDER_FIELDS
    assert values["side"] == "buy"
    assert values["order_type"] == "limit"
    assert values["status"] == "new"
    assert values["limit_price"] == 42000.5


def test_batch_keeps_each_rows_own_timestamps(repo: SqlExecutionRepository) -> None:
    """The hot-path statements format a date/time once per run of the same object (a
    batch shares one clock reading): rows with equal, shared and different values must
    each still store their own."""
    t1 = datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    t2 = datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC)
    t1_copy = t1.replace()  # equal to t1, another object
    stamps = [(t1, t1), (t1, t2), (t2, t1_copy), (t1_copy, t2)]
    orders = [
        Order.from_intent(INTENT.model_copy(update={"intent_id": f"intent-t{i}"}), broker="paper")
        .model_copy(update={"created_at": created, "updated_at": updated})
        for i, (created, updated) in enumerate(stamps)
    ]  # fmt: skip
    repo.create_orders(orders)
    for order, (created, updated) in zip(orders, stamps, strict=True):
        got = repo.get_order(order.client_order_id)
        assert got is not None
        assert (got.created_at, got.updated_at) == (created, updated)

    fill_times = [t2, t2, t1, t2]
    fills = [
        Fill(broker="paper", broker_fill_id=f"F{i}", client_order_id=o.client_order_id,
             account="default", strategy="sma_cross", symbol="BTC/USDT", side=Side.BUY,
             quantity=0.25, price=42000.5, fee=0.1, time=t)
        for i, (o, t) in enumerate(zip(orders, fill_times, strict=True))
    ]  # fmt: skip
    for o in orders:
        o.status = OrderStatus.FILLED
    repo.record_executions(orders, fills, [], [])
    for o, t in zip(orders, fill_times, strict=True):
        [stored] = repo.fills_for(o.client_order_id)
        assert stored.time == t
