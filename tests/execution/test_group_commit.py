"""Group commit: one receive of up to 10 messages is one batch (one transaction for its
orders, one for its executions), with every single-intent guarantee kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from algotrendy.domain.orders import Fill, Order, OrderIntent, OrderStatus, Side
from algotrendy.execution.brokers.base import BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import MemoryPublisher, StaticPrices
from algotrendy.execution.positions import Position
from algotrendy.execution.risk import RiskLimits
from algotrendy.messaging import InMemoryQueue, send_intent
from algotrendy.messaging.cancel import CancelRequest, send_cancel
from algotrendy.storage.relational.repositories import DuplicateOrderError, SqlExecutionRepository

EngineFactory = Callable[..., ExecutionEngine]


def intent(n: int, side: str = "buy", qty: float = 1.0, **kw: object) -> OrderIntent:
    return OrderIntent.model_validate(
        {"intent_id": f"batch-{n:05d}", "symbol": "BTC/USDT", "side": side, "quantity": qty,
         "strategy": "s", **kw}
    )  # fmt: skip


def queue_of(*intents: OrderIntent) -> InMemoryQueue:
    q = InMemoryQueue("orders.fifo", visibility_timeout=0)
    for it in intents:
        send_intent(q, it)
    return q


class WatchingBroker(PaperBroker):
    """Records, at each submit, the status of every order in the database."""

    def __init__(self, prices: StaticPrices, repo: Callable[[], SqlExecutionRepository],
                 watch: Sequence[OrderIntent]) -> None:  # fmt: skip
        super().__init__(prices, fee=0.001)
        self.repo = repo
        self.watch = watch
        self.seen: list[list[OrderStatus | None]] = []

    def submit(self, it: OrderIntent) -> BrokerOrder:
        stored = [self.repo().get_order(w.client_order_id) for w in self.watch]
        self.seen.append([o.status if o else None for o in stored])
        return super().submit(it)


def test_whole_batch_is_persisted_before_the_first_submit(
    make_engine: EngineFactory, prices: StaticPrices
) -> None:
    batch = [intent(n) for n in range(10)]
    holder: list[ExecutionEngine] = []
    broker = WatchingBroker(prices, lambda: holder[0].repo, batch)
    eng = make_engine(broker=broker)
    holder.append(eng)
    eng.start()
    q = queue_of(*batch)
    assert eng.poll(q) == 10
    assert len(q) == 0
    assert len(broker.seen) == 10
    assert broker.seen[0] == [OrderStatus.NEW] * 10  # all ten durable before any submit
    assert [o.status for o in eng.repo.list_orders()] == [OrderStatus.FILLED] * 10
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(10)
    assert len(eng.repo.all_fills()) == 10


def test_risk_reservations_accumulate_inside_a_batch(make_engine: EngineFactory) -> None:
    """max_position 2.5 with ten 1-unit buys: the first two pass, the rest see the two
    reserved before them; a sell in the middle reduces and always passes."""
    eng = make_engine(limits=RiskLimits(max_position=2.5))
    eng.start()
    batch = [intent(n) for n in range(5)] + [intent(5, side="sell")]
    eng.poll(queue_of(*batch))
    by_id = {o.intent_id: o for o in eng.repo.list_orders()}
    statuses = [by_id[i.intent_id].status for i in batch]
    assert statuses[:2] == [OrderStatus.FILLED] * 2
    assert statuses[2:5] == [OrderStatus.REJECTED] * 3
    assert statuses[5] is OrderStatus.FILLED  # risk saw 2 working buys: the sell reduces
    assert all("position limit" in (by_id[i.intent_id].reason or "") for i in batch[2:5])
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(1)
    assert eng.stats.processed == 6
    assert eng.stats.rejected == 3


def test_redelivered_intent_in_a_batch_reserves_nothing(make_engine: EngineFactory) -> None:
    """A resting order's redelivery shares a batch with new intents: the stored id makes the
    optimistic insert fail, the batch is redone without it, and its exposure is counted
    once (from the working order), not twice."""
    eng = make_engine(limits=RiskLimits(max_position=3))
    eng.start()
    resting = intent(1, order_type="limit", limit_price=50)
    assert eng.process(resting).status is OrderStatus.SUBMITTED
    batch = [resting, intent(2), intent(3), intent(4)]
    q = queue_of(*batch)
    assert eng.handle_batch(q.receive()) == [True] * 4
    by_id = {o.intent_id: o for o in eng.repo.list_orders()}
    assert by_id[resting.intent_id].status is OrderStatus.SUBMITTED
    assert by_id["batch-00002"].status is OrderStatus.FILLED  # worst case 1 + 1 = 2
    assert by_id["batch-00003"].status is OrderStatus.FILLED  # 3
    assert by_id["batch-00004"].status is OrderStatus.REJECTED  # 4 > 3
    assert eng.stats.duplicates == 1
    assert len(eng.broker.snapshot_orders()) == 3  # type: ignore[attr-defined]


def test_failed_order_insert_submits_nothing_and_keeps_every_message(
    make_engine: EngineFactory,
) -> None:
    eng = make_engine()

    class Down(SqlExecutionRepository):
        def create_orders(self, orders: Sequence[Order], audits: Sequence[object] = ()) -> None:
            raise RuntimeError("database is down")

    eng.repo = Down(eng.repo.engine)
    eng.start()
    q = queue_of(*[intent(n) for n in range(1, 5)])
    assert eng.handle_batch(q.receive()) == [False] * 4
    assert eng.stats.errors == 4
    assert eng.broker.snapshot_orders() == []  # type: ignore[attr-defined]
    assert eng._open == {}


def test_insert_racing_another_writer_falls_back_to_one_by_one(
    make_engine: EngineFactory,
) -> None:
    """The stored-id look-up misses an order (as if another writer inserted it just after):
    the second insert collides too, the batch is redone intent by intent, and the lone
    collision is resolved as a redelivery — never submitted twice."""
    eng = make_engine()

    class Blind(SqlExecutionRepository):
        def existing_order_ids(self, client_order_ids: object) -> set[str]:
            return set()

    eng.repo = Blind(eng.repo.engine)
    eng.start()
    first = intent(1)
    assert eng.process(first).status is OrderStatus.FILLED
    q = queue_of(first, intent(2), intent(3))
    assert eng.handle_batch(q.receive()) == [True] * 3
    assert eng.stats.duplicates == 1
    assert len(eng.broker.snapshot_orders()) == 3  # type: ignore[attr-defined]
    assert [o.status for o in eng.repo.list_orders()] == [OrderStatus.FILLED] * 3
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(3)


def test_one_failing_submit_keeps_only_its_message(
    make_engine: EngineFactory, prices: StaticPrices
) -> None:
    class Exploding(PaperBroker):
        def submit(self, it: OrderIntent) -> BrokerOrder:
            if it.intent_id == "batch-00002":
                raise RuntimeError("connection reset")
            return super().submit(it)

    eng = make_engine(broker=Exploding(prices, fee=0.001))
    eng.start()
    batch = [intent(n) for n in range(1, 5)]
    q = queue_of(*batch)
    messages = q.receive()
    assert eng.handle_batch(messages) == [True, False, True, True]
    assert eng.stats.errors == 1
    failed = eng.repo.get_order(batch[1].client_order_id)
    assert failed is not None
    assert failed.status is OrderStatus.NEW  # persisted; reconciliation will decide
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(3)


def test_failed_group_commit_is_retried_order_by_order(
    make_engine: EngineFactory, prices: StaticPrices
) -> None:
    eng = make_engine()

    class NoBatches(SqlExecutionRepository):
        def record_executions(
            self,
            orders: Sequence[Order],
            fills: Sequence[Fill],
            positions: Sequence[Position],
            pnl: Sequence[tuple[str, str, date, float, float]],
        ) -> None:
            if len(orders) > 1:
                raise RuntimeError("database hiccup")
            super().record_executions(orders, fills, positions, pnl)

    eng.repo = NoBatches(eng.repo.engine)
    eng.start()
    batch = [intent(n, qty=n) for n in range(1, 5)]
    q = queue_of(*batch)
    assert eng.poll(q) == 4
    assert len(q) == 0
    assert [o.status for o in eng.repo.list_orders()] == [OrderStatus.FILLED] * 4
    expected = sum(i.quantity for i in batch)
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(expected)
    assert sum(f.quantity for f in eng.repo.all_fills()) == pytest.approx(expected)


def test_cancel_inside_a_batch_keeps_message_order(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.start()
    resting = intent(1, order_type="limit", limit_price=50)
    q = InMemoryQueue("orders.fifo")
    send_intent(q, resting)
    send_cancel(q, CancelRequest.for_order(resting.client_order_id, "default", "BTC/USDT",
                                           "alice"))  # fmt: skip
    send_intent(q, intent(2))
    messages = q.receive()
    assert len(messages) == 3  # one receive, one group, in order
    assert eng.handle_batch(messages) == [True, True, True]
    cancelled = eng.repo.get_order(resting.client_order_id)
    assert cancelled is not None
    assert cancelled.status is OrderStatus.CANCELLED  # placed first, then cancelled
    filled = eng.repo.get_order(intent(2).client_order_id)
    assert filled is not None
    assert filled.status is OrderStatus.FILLED


def test_events_per_order_in_message_order(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.start()
    batch = [intent(n) for n in range(1, 4)]
    eng.poll(queue_of(*batch))
    assert isinstance(eng.publisher, MemoryPublisher)
    topics = [t for t, _ in eng.publisher.events]
    assert topics == ["orders", "positions", "fills"] * 3
    orders = eng.publisher.topic("orders")
    assert [o["intent_id"] for o in orders] == [i.intent_id for i in batch]
    assert [p["quantity"] for p in eng.publisher.topic("positions")] == pytest.approx([1, 2, 3])


def test_daily_pnl_cache_not_double_counted_on_restart(
    make_engine: EngineFactory, prices: StaticPrices
) -> None:
    """A fill recorded by a fresh process (day not cached yet) is counted once."""
    eng = make_engine()
    eng.start()
    eng.process(intent(1, qty=2))
    resting = eng.process(intent(2, side="sell", qty=2, order_type="limit", limit_price=110))
    assert resting.status is OrderStatus.SUBMITTED
    restarted = ExecutionEngine(repo=eng.repo, broker=eng.broker, risk=eng.risk,
                                prices=prices, publisher=MemoryPublisher())  # fmt: skip
    restarted.start()
    for changed in eng.broker.on_price("BTC/USDT", 111.0):  # type: ignore[attr-defined]
        restarted.on_broker_update(changed)
    fills = eng.repo.all_fills()
    day = fills[-1].time.date()
    # realised (110 - 100) x 2, less both fills' fees: derived from the fills themselves
    expected = (fills[1].price - fills[0].price) * 2 - sum(f.fee for f in fills)
    assert eng.repo.daily_pnl("default", day) == pytest.approx(expected)
    assert restarted._daily_pnl("default", day) == pytest.approx(expected)


# -- the repository's batch methods, on SQLite and PostgreSQL ----------------------------


def _order(n: int) -> Order:
    return Order.from_intent(intent(n), broker="paper")


def _fill(order: Order, fill_id: str, qty: float, price: float) -> Fill:
    return Fill(broker="paper", broker_fill_id=fill_id, client_order_id=order.client_order_id,
                account="default", strategy="s", symbol="BTC/USDT", side=Side.BUY,
                quantity=qty, price=price, fee=0.1,
                time=datetime(2025, 3, 4, 5, 6, tzinfo=UTC))  # fmt: skip


def test_create_orders_is_all_or_nothing(db_engine: Engine) -> None:
    repo = SqlExecutionRepository(db_engine)
    repo.create_orders([_order(1)])
    with pytest.raises(DuplicateOrderError):
        repo.create_orders([_order(2), _order(1), _order(3)],
                           [("engine", "order.rejected", "x", {"reason": "r"})])  # fmt: skip
    assert [o.intent_id for o in repo.list_orders()] == ["batch-00001"]
    assert repo.existing_order_ids([_order(n).client_order_id for n in (1, 2, 3)]) == {
        _order(1).client_order_id
    }
    repo.create_orders([_order(2), _order(3)])
    assert len(repo.existing_order_ids([_order(n).client_order_id for n in (1, 2, 3)])) == 3


def test_record_executions_in_one_transaction(db_engine: Engine) -> None:
    repo = SqlExecutionRepository(db_engine)
    a, b = _order(1), _order(2)
    repo.create_orders([a, b])
    a.status, a.filled_quantity, a.avg_fill_price, a.broker_order_id = (
        OrderStatus.FILLED, 1.0, 100.0, "P1")  # fmt: skip
    b.status, b.filled_quantity = OrderStatus.PARTIALLY_FILLED, 0.5
    pos = Position("default", "s", "BTC/USDT", 1.5, 100.0, 0.0, 0.2)
    stale = Position("default", "s", "BTC/USDT", 1.0, 100.0, 0.0, 0.1)
    day = date(2025, 3, 4)
    repo.record_executions(
        [a, b], [_fill(a, "F1", 1.0, 100.0), _fill(b, "F2", 0.5, 100.0)], [stale, pos],
        [("default", "s", day, 2.0, 0.1), ("default", "s", day, 3.0, 0.1)],
    )  # fmt: skip
    got_a, got_b = repo.get_order(a.client_order_id), repo.get_order(b.client_order_id)
    assert got_a is not None
    assert got_b is not None
    assert (got_a.status, got_a.filled_quantity, got_a.broker_order_id) == (
        OrderStatus.FILLED, 1.0, "P1")  # fmt: skip
    assert (got_b.status, got_b.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 0.5)
    assert [f.broker_fill_id for f in repo.fills_for(b.client_order_id)] == ["F2"]
    assert repo.load_positions() == [pos]  # the last value of a position wins
    assert repo.daily_pnl("default", day) == pytest.approx(2.0 + 3.0 - 0.2)  # deltas add up


def test_record_executions_rolls_back_on_a_repeated_fill(db_engine: Engine) -> None:
    repo = SqlExecutionRepository(db_engine)
    a, b = _order(1), _order(2)
    repo.create_orders([a, b])
    repo.record_executions([a], [_fill(a, "F1", 1.0, 100.0)], [], [])
    b.status = OrderStatus.FILLED
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        repo.record_executions([b], [_fill(b, "F9", 1.0, 100.0), _fill(a, "F1", 1.0, 100.0)],
                               [], [])  # fmt: skip
    got_b = repo.get_order(b.client_order_id)
    assert got_b is not None
    assert got_b.status is OrderStatus.NEW  # the order update went with the failed fills
    assert repo.fills_for(b.client_order_id) == []


def test_record_executions_refuses_an_unknown_order(db_engine: Engine) -> None:
    repo = SqlExecutionRepository(db_engine)
    with pytest.raises(LookupError, match="matched 0 of 1"):
        repo.record_executions([_order(7)], [], [], [])
