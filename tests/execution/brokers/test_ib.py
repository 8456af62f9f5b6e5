"""IbBroker against a fake `ib_async.IB` that replays a recorded order lifecycle using
ib_async's own Trade/OrderStatus/Fill/Execution/CommissionReport objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

ib_async = pytest.importorskip("ib_async")

from algotrendy.domain.orders import OrderIntent, OrderStatus  # noqa: E402
from algotrendy.execution.brokers.base import Broker  # noqa: E402
from algotrendy.execution.brokers.ib import IbBroker, map_ib_status  # noqa: E402
from algotrendy.execution.brokers.ratelimit import RateLimiter  # noqa: E402
from algotrendy.execution.errors import InvalidOrderError, OrderNotFoundError  # noqa: E402

from .conftest import load  # noqa: E402

REPLAY = load("ib/aapl_limit_replay.json")


def contract(spec: dict[str, Any]) -> Any:
    return ib_async.Contract(**spec)


class FakeIB:
    """The slice of `ib_async.IB` the adapter uses, fed from the recorded replay."""

    def __init__(self, completed: list[Any] | None = None) -> None:
        self._trades: list[Any] = []
        self.completed = completed or []
        self.placed: list[tuple[Any, Any]] = []
        self.cancelled: list[Any] = []
        self.completed_requests = 0

    def isConnected(self) -> bool:  # noqa: N802 - ib_async's name
        return True

    def placeOrder(self, con: Any, order: Any) -> Any:  # noqa: N802
        order.orderId, order.permId = REPLAY["order_id"], REPLAY["perm_id"]
        status = ib_async.OrderStatus(orderId=order.orderId, status="PendingSubmit",
                                      remaining=order.totalQuantity)  # fmt: skip
        trade = ib_async.Trade(contract=con, order=order, orderStatus=status)
        self.placed.append((con, order))
        self._trades.append(trade)
        return trade

    def cancelOrder(self, order: Any) -> None:  # noqa: N802
        self.cancelled.append(order)

    def trades(self) -> list[Any]:
        return list(self._trades)

    def openTrades(self) -> list[Any]:  # noqa: N802
        return [t for t in self._trades if not t.isDone()]

    def reqCompletedOrders(self, api_only: bool) -> list[Any]:  # noqa: N802
        self.completed_requests += 1
        return self.completed

    def positions(self, account: str = "") -> list[Any]:
        return [ib_async.Position(p["account"], contract(p["contract"]), p["position"],
                                  p["avgCost"]) for p in REPLAY["positions"]]  # fmt: skip


def replay(trade: Any, step: dict[str, Any]) -> None:
    """Apply one recorded orderStatus (and execDetails/commissionReport) message."""
    st = trade.orderStatus
    st.status, st.filled = step["status"], step["filled"]
    st.remaining, st.avgFillPrice = step["remaining"], step["avgFillPrice"]
    f = step.get("fill")
    if f:
        execution = ib_async.Execution(
            execId=f["execId"], time=datetime.fromisoformat(f["time"]), exchange=f["exchange"],
            side=f["side"], shares=f["shares"], price=f["price"], cumQty=f["cumQty"],
            avgPrice=f["avgPrice"], orderId=trade.order.orderId, orderRef=trade.order.orderRef,
        )  # fmt: skip
        report = ib_async.CommissionReport(execId=f["execId"], commission=f["commission"],
                                           currency=f["currency"])  # fmt: skip
        trade.fills.append(ib_async.Fill(trade.contract, execution, report, execution.time))


def make(ib: FakeIB) -> IbBroker:
    return IbBroker(ib, contract_for=lambda s: contract(REPLAY["contract"]),
                    limiter=RateLimiter({}))  # fmt: skip


def intent(**kw: Any) -> OrderIntent:
    base: dict[str, Any] = {"intent_id": "intent-ib-01", "symbol": "AAPL", "side": "buy",
                            "quantity": 100, "order_type": "limit", "limit_price": 190.0,
                            "time_in_force": "day"}  # fmt: skip
    base.update(kw)
    return OrderIntent(**base)


def test_is_a_broker() -> None:
    assert isinstance(make(FakeIB()), Broker)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, {"orderType": "LMT", "lmtPrice": 190.0, "tif": "DAY", "action": "BUY"}),
        ({"order_type": "market", "limit_price": None, "time_in_force": "ioc"},
         {"orderType": "MKT", "tif": "IOC"}),
        ({"order_type": "stop", "limit_price": None, "stop_price": 185.0, "side": "sell"},
         {"orderType": "STP", "auxPrice": 185.0, "action": "SELL"}),
        ({"order_type": "stop_limit", "stop_price": 191.0, "time_in_force": "gtc"},
         {"orderType": "STP LMT", "auxPrice": 191.0, "lmtPrice": 190.0, "tif": "GTC"}),
        ({"order_type": "trailing_stop", "limit_price": None, "trail_percent": 1.5,
          "side": "sell"}, {"orderType": "TRAIL", "trailingPercent": 1.5}),
    ],
)  # fmt: skip
def test_order_mapping(kw: dict[str, Any], expected: dict[str, Any]) -> None:
    it = intent(**kw)
    order = make(FakeIB()).order_for(it)
    assert {k: getattr(order, k) for k in expected} == expected
    assert order.orderRef == it.client_order_id
    assert order.totalQuantity == 100


def test_reduce_only_refused() -> None:
    with pytest.raises(InvalidOrderError, match="reduce-only"):
        make(FakeIB()).order_for(intent(reduce_only=True))


def test_lifecycle_replay_statuses_and_fills() -> None:
    ib = FakeIB()
    broker = make(ib)
    it = intent()
    first = broker.submit(it)
    assert first.status is OrderStatus.SUBMITTED
    (trade,) = ib.trades()
    seen = []
    for step in REPLAY["steps"]:
        replay(trade, step)
        got = broker.get_order(it.client_order_id)
        assert got is not None
        seen.append((got.status, got.filled_quantity))
    assert seen == [(OrderStatus.SUBMITTED, 0), (OrderStatus.SUBMITTED, 0),
                    (OrderStatus.PARTIALLY_FILLED, 40), (OrderStatus.FILLED, 100)]  # fmt: skip
    final = broker.get_order(it.client_order_id)
    assert final is not None
    recorded = [s["fill"] for s in REPLAY["steps"] if "fill" in s]
    assert [f.fill_id for f in final.fills] == [r["execId"] for r in recorded]
    assert [(f.quantity, f.price, f.fee) for f in final.fills] == [
        (r["shares"], r["price"], r["commission"]) for r in recorded
    ]
    vwap = sum(r["shares"] * r["price"] for r in recorded) / sum(r["shares"] for r in recorded)
    assert final.avg_fill_price == pytest.approx(vwap)
    assert final.broker_order_id == str(REPLAY["perm_id"])


def test_submit_twice_places_once() -> None:
    ib = FakeIB()
    broker = make(ib)
    broker.submit(intent())
    again = broker.submit(intent())
    assert len(ib.placed) == 1
    assert again.client_order_id == intent().client_order_id


def test_restart_finds_completed_order_by_order_ref() -> None:
    first = FakeIB()
    make(first).submit(intent())
    (trade,) = first.trades()
    for step in REPLAY["steps"]:
        replay(trade, step)
    restarted = FakeIB(completed=[trade])  # a new session: TWS lists it as completed
    broker = make(restarted)
    again = broker.submit(intent())
    assert restarted.placed == []
    assert again.status is OrderStatus.FILLED
    assert broker.get_order("at-unknown") is None
    assert restarted.completed_requests == 1  # asked once per session, not per lookup


def test_cancel() -> None:
    ib = FakeIB()
    broker = make(ib)
    it = intent()
    broker.submit(it)
    (trade,) = ib.trades()
    replay(trade, REPLAY["steps"][1])
    broker.cancel(it.client_order_id)
    assert ib.cancelled == [trade.order]
    replay(trade, {"status": "Cancelled", "filled": 0, "remaining": 100, "avgFillPrice": 0.0})
    assert broker.open_orders() == []
    cancelled = broker.get_order(it.client_order_id)
    assert cancelled is not None
    assert cancelled.status is OrderStatus.CANCELLED
    with pytest.raises(OrderNotFoundError):
        broker.cancel("at-unknown")


def test_positions_per_unit_average() -> None:
    got = {p.symbol: (p.quantity, p.avg_price) for p in make(FakeIB()).positions()}
    # IB's avgCost for a future includes the multiplier: 261512.5 / 50 = 5230.25 per point.
    assert got == {"AAPL": (100.0, 190.002), "ES": (-1.0, 261512.5 / 50)}


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [("PendingSubmit", 0, OrderStatus.SUBMITTED), ("PreSubmitted", 0, OrderStatus.SUBMITTED),
     ("Submitted", 5, OrderStatus.PARTIALLY_FILLED), ("Filled", 10, OrderStatus.FILLED),
     ("Cancelled", 0, OrderStatus.CANCELLED), ("ApiCancelled", 3, OrderStatus.CANCELLED),
     ("Inactive", 0, OrderStatus.REJECTED), ("Inactive", 2, OrderStatus.CANCELLED)],
)  # fmt: skip
def test_map_ib_status(status: str, filled: float, expected: OrderStatus) -> None:
    assert map_ib_status(status, filled) is expected
