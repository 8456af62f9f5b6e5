from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import pytest

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import BrokerOrder, BrokerPosition
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.errors import InsufficientFundsError, RateLimitedError, SubmitTimeoutError
from algotrendy.execution.ports import MemoryPublisher
from algotrendy.execution.risk import RiskLimits
from algotrendy.messaging import Envelope, InMemoryQueue, send_intent

EngineFactory = Callable[..., ExecutionEngine]


def intent(n: int = 1, side: str = "buy", qty: float = 1.0, **kw: object) -> OrderIntent:
    return OrderIntent.model_validate(
        {"intent_id": f"intent-{n:05d}", "symbol": "BTC/USDT", "side": side, "quantity": qty,
         "strategy": "sma_cross", **kw}
    )  # fmt: skip


def test_market_intent_fills_and_books_position(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.start()
    order = eng.process(intent(qty=2))
    assert order.status is OrderStatus.FILLED
    assert order.avg_fill_price == pytest.approx(100.0)
    assert order.fees == pytest.approx(2 * 100 * 0.001)
    pos = eng.book.get("default", "sma_cross", "BTC/USDT")
    assert pos.quantity == pytest.approx(2)
    [fill] = eng.repo.fills_for(order.client_order_id)
    assert fill.price == pytest.approx(100.0)
    stored = eng.repo.get_order(order.client_order_id)
    assert stored is not None
    assert stored.status is OrderStatus.FILLED
    assert isinstance(eng.publisher, MemoryPublisher)
    assert [e["status"] for e in eng.publisher.topic("orders")][-1] == "filled"
    assert eng.publisher.topic("positions")[-1]["quantity"] == pytest.approx(2)


def test_same_intent_delivered_ten_times_places_one_order(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.start()
    q = InMemoryQueue("orders.fifo")
    body = Envelope.for_intent(intent()).to_json()
    for i in range(10):  # ten deliveries that escaped FIFO de-duplication (distinct dedup ids)
        q.send(body, group_id="default:BTC/USDT", dedup_id=f"redelivery-{i}")
    eng.run(q, wait_seconds=0, max_batches=3)
    assert len(q) == 0
    assert len(eng.repo.list_orders()) == 1
    assert len(eng.broker.open_orders()) == 0
    assert eng.book.get("default", "sma_cross", "BTC/USDT").quantity == pytest.approx(1)
    assert eng.stats.duplicates == 9


def test_concurrent_intents_never_breach_position_limit(make_engine: EngineFactory) -> None:
    eng = make_engine(limits=RiskLimits(max_position=25))
    eng.start()
    intents = [intent(n, qty=0.1) for n in range(1000)]
    barrier = threading.Barrier(8)

    def worker(chunk: list[OrderIntent]) -> None:
        barrier.wait()
        for it in chunk:
            eng.process(it)

    threads = [threading.Thread(target=worker, args=(intents[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    qty = eng.book.account_quantity("default", "BTC/USDT")
    assert qty <= 25 + 1e-9
    filled = [o for o in eng.repo.list_orders(limit=2000) if o.status is OrderStatus.FILLED]
    rejected = [o for o in eng.repo.list_orders(limit=2000) if o.status is OrderStatus.REJECTED]
    assert len(filled) + len(rejected) == 1000
    assert len(filled) == 250
    assert qty == pytest.approx(25.0)
    assert all("position limit" in (o.reason or "") for o in rejected)


def test_rejection_is_persisted_and_alerted(make_engine: EngineFactory) -> None:
    eng = make_engine(limits=RiskLimits(max_order_quantity=1))
    eng.start()
    order = eng.process(intent(qty=5))
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "risk: order quantity 5 exceeds max order size 1"
    stored = eng.repo.get_order(order.client_order_id)
    assert stored is not None
    assert stored.reason == order.reason
    assert isinstance(eng.publisher, MemoryPublisher)
    assert eng.publisher.topic("alerts")[-1]["kind"] == "order_rejected"
    assert eng.broker.get_order(order.client_order_id) is None  # never reached the broker


class FlakyBroker:
    """Wraps a broker; raises the given errors on the first submits."""

    def __init__(self, inner: object, errors: list[Exception], lose_orders: bool = False) -> None:
        self.inner = inner
        self.errors = errors
        self.submits = 0
        self.name = "paper"
        self.lose_orders = lose_orders

    def submit(self, it: OrderIntent) -> BrokerOrder:
        self.submits += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.inner.submit(it)  # type: ignore[attr-defined,no-any-return]

    def get_order(self, coid: str) -> BrokerOrder | None:
        return None if self.lose_orders else self.inner.get_order(coid)  # type: ignore[attr-defined,no-any-return]

    def cancel(self, coid: str) -> BrokerOrder:
        return self.inner.cancel(coid)  # type: ignore[attr-defined,no-any-return]

    def open_orders(self) -> list[BrokerOrder]:
        return self.inner.open_orders()  # type: ignore[attr-defined,no-any-return]

    def positions(self) -> list[BrokerPosition]:
        return self.inner.positions()  # type: ignore[attr-defined,no-any-return]


def test_rate_limited_then_accepted(make_engine: EngineFactory, prices: object) -> None:
    from algotrendy.execution.brokers.paper import PaperBroker

    flaky = FlakyBroker(PaperBroker(prices), [RateLimitedError("429"), RateLimitedError("429")])  # type: ignore[arg-type]
    eng = make_engine(broker=flaky)  # type: ignore[arg-type]
    eng.start()
    assert eng.process(intent()).status is OrderStatus.FILLED
    assert flaky.submits == 3


def test_rate_limited_beyond_retries_rejected_with_reason(
    make_engine: EngineFactory, prices: object
) -> None:
    from algotrendy.execution.brokers.paper import PaperBroker

    flaky = FlakyBroker(PaperBroker(prices), [RateLimitedError("429 too many requests")] * 5)  # type: ignore[arg-type]
    eng = make_engine(broker=flaky)  # type: ignore[arg-type]
    eng.start()
    order = eng.process(intent())
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "broker retries exhausted: 429 too many requests"
    assert flaky.submits == 3
    assert isinstance(eng.publisher, MemoryPublisher)
    assert "429" in eng.publisher.topic("alerts")[-1]["message"]


def test_timeouts_resolved_by_asking_the_broker(make_engine: EngineFactory, prices: object) -> None:
    from algotrendy.execution.brokers.paper import PaperBroker

    flaky = FlakyBroker(
        PaperBroker(prices), [SubmitTimeoutError("read timeout")] * 5, lose_orders=True
    )  # type: ignore[arg-type]
    eng = make_engine(broker=flaky)  # type: ignore[arg-type]
    eng.start()
    order = eng.process(intent())
    # "Not found" right after a timeout may be the venue's lookup lagging: not terminal yet.
    assert order.status is OrderStatus.UNKNOWN
    assert order.reason is not None
    assert order.reason.startswith("submit timed out after 3 attempts: read timeout")
    assert order.reason.endswith("still misses it after the grace period")
    assert order.client_order_id in eng._open  # still reserving its exposure


def test_timeout_where_broker_did_place_it(make_engine: EngineFactory, prices: object) -> None:
    """The request reached the venue but the reply was lost: found by asking, not re-sent."""
    from algotrendy.execution.brokers.paper import PaperBroker

    inner = PaperBroker(prices)  # type: ignore[arg-type]

    class LostReply(FlakyBroker):
        def submit(self, it: OrderIntent) -> BrokerOrder:
            self.submits += 1
            inner.submit(it)
            raise SubmitTimeoutError("reply lost")

    broker = LostReply(inner, [])
    eng = make_engine(broker=broker)  # type: ignore[arg-type]
    eng.start()
    order = eng.process(intent())
    assert order.status is OrderStatus.FILLED
    assert len(inner.positions()) == 1
    assert inner.positions()[0].quantity == pytest.approx(1)


def test_non_retryable_error_rejects_at_once(make_engine: EngineFactory, prices: object) -> None:
    from algotrendy.execution.brokers.paper import PaperBroker

    flaky = FlakyBroker(PaperBroker(prices), [InsufficientFundsError("balance 3 USDT")])  # type: ignore[arg-type]
    eng = make_engine(broker=flaky)  # type: ignore[arg-type]
    eng.start()
    order = eng.process(intent())
    assert (order.status, order.reason) == (OrderStatus.REJECTED, "broker refused: balance 3 USDT")
    assert flaky.submits == 1


def test_invalid_message_kept_for_dead_letter_queue(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.start()
    dlq = InMemoryQueue("orders-dlq.fifo")
    q = InMemoryQueue("orders.fifo", max_receive_count=2, dead_letter=dlq, visibility_timeout=0)
    q.send('{"type": "order.intent", "id": "x", "payload": {"symbol": 1}}', group_id="g",
           dedup_id="bad")  # fmt: skip
    send_intent(q, intent(7))
    eng.run(q, wait_seconds=0, max_batches=4)
    assert len(eng.repo.list_orders()) == 1  # the good one went through
    assert len(dlq) == 1
    assert eng.stats.invalid >= 1
    assert isinstance(eng.publisher, MemoryPublisher)
    assert "invalid order intent" in eng.publisher.topic("alerts")[0]["message"]


def test_kill_switch_cancels_and_blocks(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.start()
    resting = eng.process(intent(1, order_type="limit", limit_price=50))
    assert resting.status is OrderStatus.SUBMITTED
    cancelled = eng.set_kill_switch(True, actor="ops")
    assert cancelled == [resting.client_order_id]
    stored = eng.repo.get_order(resting.client_order_id)
    assert stored is not None
    assert stored.status is OrderStatus.CANCELLED
    blocked = eng.process(intent(2))
    assert blocked.reason == "risk: kill switch is on: no new orders"
    eng.set_kill_switch(False)
    assert eng.process(intent(3)).status is OrderStatus.FILLED


def test_resting_limit_fills_later(make_engine: EngineFactory, prices: object) -> None:
    eng = make_engine()
    eng.start()
    order = eng.process(intent(1, order_type="limit", limit_price=95))
    assert order.status is OrderStatus.SUBMITTED
    for changed in eng.broker.on_price("BTC/USDT", 94.0):  # type: ignore[attr-defined]
        eng.on_broker_update(changed)
    stored = eng.repo.get_order(order.client_order_id)
    assert stored is not None
    assert stored.status is OrderStatus.FILLED
    assert stored.avg_fill_price == pytest.approx(94.0)


def test_reconciliation_reports_position_drift(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.start()
    eng.process(intent(qty=1))

    class Drifted(FlakyBroker):
        def positions(self) -> list[BrokerPosition]:
            return [replace(p, quantity=p.quantity + 0.5) for p in self.inner.positions()]  # type: ignore[attr-defined]

    eng.broker = Drifted(eng.broker, [])  # type: ignore[assignment]
    notes = eng.reconcile()
    assert notes == [
        "position BTC/USDT: engine 1 vs broker 1.5; corrected by +0.5 in ledger '_reconciliation'"
    ]
    assert eng.book.account_quantity("default", "BTC/USDT") == pytest.approx(1.5)
    assert eng.reconcile() == []  # corrected: no drift any more
    restarted = ExecutionEngine(repo=eng.repo, broker=eng.broker, risk=eng.risk,
                                prices=eng.prices, publisher=MemoryPublisher())  # fmt: skip
    assert restarted.start() == []  # the correction survives a restart
    assert restarted.book.account_quantity("default", "BTC/USDT") == pytest.approx(1.5)


def test_cancel_and_replace(make_engine: EngineFactory) -> None:
    eng = make_engine()
    eng.start()
    first = eng.process(intent(1, qty=2, order_type="limit", limit_price=90))
    assert first.status is OrderStatus.SUBMITTED
    second = eng.replace(first.client_order_id, limit_price=99)
    assert second.intent_id == "intent-00001.r1"
    assert second.limit_price == 99
    assert second.quantity == 2
    old = eng.repo.get_order(first.client_order_id)
    assert old is not None
    assert old.status is OrderStatus.CANCELLED
    third = eng.replace(second.client_order_id, quantity=1, limit_price=101)
    assert third.intent_id == "intent-00001.r2"
    assert third.status is OrderStatus.FILLED  # marketable at 100
    with pytest.raises(ValueError, match="is filled: nothing left to replace"):
        eng.replace(third.client_order_id, limit_price=50)


def test_cancel_message_from_the_api(make_engine: EngineFactory) -> None:
    from algotrendy.messaging.cancel import CancelRequest, send_cancel

    eng = make_engine()
    eng.start()
    q = InMemoryQueue("orders.fifo")
    send_intent(q, intent(1, order_type="limit", limit_price=90))
    eng.run(q, wait_seconds=0, max_batches=1)
    [order] = eng.repo.list_orders()
    assert order.status is OrderStatus.SUBMITTED
    req = CancelRequest.for_order(order.client_order_id, "default", "BTC/USDT", "alice")
    send_cancel(q, req)
    send_cancel(q, CancelRequest.for_order("at-nope", "default", "BTC/USDT", "alice"))
    eng.run(q, wait_seconds=0, max_batches=2)
    assert len(q) == 0  # both handled and deleted
    stored = eng.repo.get_order(order.client_order_id)
    assert stored is not None
    assert stored.status is OrderStatus.CANCELLED
    assert isinstance(eng.publisher, MemoryPublisher)
    assert eng.publisher.topic("alerts")[-1]["kind"] == "cancel_unknown"
