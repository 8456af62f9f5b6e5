"""The kill switch is durable and enforced (audit defect 3): it survives a restart, its
cancel sweep tries every working order, and no order whose risk check passed before the
switch went on reaches the broker after it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from execution_helpers import alerts, engine_on, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import KILL_SWITCH_KEY, ExecutionEngine
from algotrendy.execution.errors import RetryableBrokerError, SubmitTimeoutError
from algotrendy.execution.ports import StaticPrices
from algotrendy.execution.risk import RiskConfig, RiskDecision, RiskManager, RiskSnapshot
from algotrendy.storage.relational.api_repositories import ConfigurationRepository

KILLED = "risk: kill switch is on: no new orders"


def intent(n: int, side: str = "buy", qty: float = 1.0, **kw: object) -> OrderIntent:
    return OrderIntent.model_validate(
        {"intent_id": f"intent-{n:05d}", "symbol": "BTC/USDT", "side": side, "quantity": qty,
         **kw}
    )  # fmt: skip


def resting(n: int) -> OrderIntent:
    return intent(n, order_type="limit", limit_price=50.0)


def test_switch_survives_a_restart(db_engine: Engine, prices: StaticPrices) -> None:
    broker = PaperBroker(prices, fee=0.0)
    eng = engine_on(db_engine, broker, prices)
    eng.start()
    eng.set_kill_switch(True, actor="ops")

    restarted = engine_on(db_engine, broker, prices)
    restarted.start()
    assert restarted.kill_switch is True
    blocked = restarted.process(intent(1))
    assert (blocked.status, blocked.reason) == (OrderStatus.REJECTED, KILLED)

    restarted.set_kill_switch(False, actor="ops")
    again = engine_on(db_engine, broker, prices)
    again.start()
    assert again.kill_switch is False
    assert again.process(intent(2)).status is OrderStatus.FILLED


def test_switch_stays_on_when_turning_it_off_cannot_be_saved(
    db_engine: Engine, prices: StaticPrices, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = engine_on(db_engine, PaperBroker(prices, fee=0.0), prices)
    eng.start()
    eng.set_kill_switch(True)

    def down(*_a: object) -> None:
        raise OSError("database down")

    monkeypatch.setattr(eng._settings, "set", down)
    with pytest.raises(OSError, match="database down"):
        eng.set_kill_switch(False)
    assert eng.kill_switch is True


def test_unreadable_saved_switch_counts_as_on(db_engine: Engine, prices: StaticPrices) -> None:
    ConfigurationRepository(db_engine).set(KILL_SWITCH_KEY, "off", "someone")
    eng = engine_on(db_engine, PaperBroker(prices, fee=0.0), prices)
    eng.start()
    assert eng.kill_switch is True
    assert alerts(eng, "kill_switch") == ["saved kill switch 'off' is not {'on': bool}: ON"]


class Flaky(PaperBroker):
    """Submits time out and lookups fail while `down`; cancels fail while `no_cancel`."""

    down = False
    no_cancel = False

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        if self.down:
            raise SubmitTimeoutError("timeout")
        return super().submit(intent)

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        if self.down:
            raise RetryableBrokerError("lookup down")
        return super().get_order(client_order_id)

    def cancel(self, client_order_id: str) -> BrokerOrder:
        if self.no_cancel:
            raise RetryableBrokerError("cancel endpoint down")
        return super().cancel(client_order_id)


def test_sweep_goes_past_an_order_the_broker_does_not_know(
    db_engine: Engine, prices: StaticPrices
) -> None:
    broker = Flaky(prices, fee=0.0)
    eng = engine_on(db_engine, broker, prices)
    eng.start()
    broker.down = True
    unknown = eng.process(intent(1))  # the broker never got it, and cannot be asked
    assert unknown.status is OrderStatus.UNKNOWN
    broker.down = False
    working = eng.process(resting(2))
    assert working.status is OrderStatus.SUBMITTED

    assert eng.set_kill_switch(True) == [working.client_order_id]
    remote = broker.get_order(working.client_order_id)
    assert remote is not None
    assert remote.status is OrderStatus.CANCELLED
    [incomplete] = alerts(eng, "kill_switch_incomplete")
    assert "1 working order(s) not cancelled, check them at the broker: " in incomplete
    assert f"{unknown.client_order_id} (unknown): paper: no order" in incomplete


def test_restart_with_the_switch_on_sweeps_what_is_still_working(
    db_engine: Engine, prices: StaticPrices
) -> None:
    broker = Flaky(prices, fee=0.0)
    eng = engine_on(db_engine, broker, prices)
    eng.start()
    working = eng.process(resting(1))
    broker.no_cancel = True
    assert eng.set_kill_switch(True) == []
    assert "cancel endpoint down" in alerts(eng, "kill_switch_incomplete")[0]

    broker.no_cancel = False
    restarted = engine_on(db_engine, broker, prices)
    restarted.start()
    assert stored_order(restarted, working.client_order_id).status is OrderStatus.CANCELLED


class SwitchAfterCheck(RiskManager):
    """Approves, then an operator turns the switch on before the order is submitted."""

    engine: ExecutionEngine

    def check(self, intent: OrderIntent, snap: RiskSnapshot) -> RiskDecision:
        decision = super().check(intent, snap)
        self.engine.set_kill_switch(True, actor="ops")
        return decision


def test_switch_between_risk_check_and_submit_stops_the_submit(
    db_engine: Engine, prices: StaticPrices
) -> None:
    broker = PaperBroker(prices, fee=0.0)
    risk = SwitchAfterCheck(RiskConfig())
    eng = engine_on(db_engine, broker, prices, risk)
    risk.engine = eng
    eng.start()
    order = eng.process(intent(1, qty=5))
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "kill switch turned on before submit: not sent to the broker"
    assert broker.get_order(order.client_order_id) is None
    assert eng.book.account_quantity("default", "BTC/USDT") == 0.0
    assert stored_order(eng, order.client_order_id).status is OrderStatus.REJECTED


class Slow(PaperBroker):
    """A submit that waits at the broker until the test lets it answer."""

    def __init__(self, prices: StaticPrices) -> None:
        super().__init__(prices, fee=0.0)
        self.entered = threading.Event()
        self.go = threading.Event()

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        self.entered.set()
        if not self.go.wait(10):
            raise AssertionError("the test never let the submit answer")
        return super().submit(intent)


def test_switch_waits_for_a_submit_under_way_then_cancels_its_order(
    db_engine: Engine, prices: StaticPrices
) -> None:
    broker = Slow(prices)
    eng = engine_on(db_engine, broker, prices)
    eng.start()
    out: dict[str, Any] = {}

    def run(key: str, fn: Any) -> None:
        try:
            out[key] = fn()
        except Exception as exc:  # noqa: BLE001 - asserted on below
            out[key] = exc

    submit = threading.Thread(target=run, args=("order", lambda: eng.process(resting(1))))
    submit.start()
    assert broker.entered.wait(10)
    switch = threading.Thread(target=run, args=("cancelled", lambda: eng.set_kill_switch(True)))
    switch.start()
    switch.join(0.3)
    assert switch.is_alive(), f"the sweep did not wait for the submit: {out.get('cancelled')!r}"
    broker.go.set()
    submit.join(10)
    switch.join(10)

    order = out["order"]
    assert out["cancelled"] == [order.client_order_id]
    remote = broker.get_order(order.client_order_id)
    assert remote is not None
    assert remote.status is OrderStatus.CANCELLED
    assert stored_order(eng, order.client_order_id).status is OrderStatus.CANCELLED


def test_switch_during_a_batch_stops_the_orders_not_yet_submitted(
    db_engine: Engine, prices: StaticPrices
) -> None:
    broker = Slow(prices)
    eng = engine_on(db_engine, broker, prices)
    eng.start()
    out: dict[str, Any] = {}
    batch = threading.Thread(
        target=lambda: out.setdefault(
            "items", eng._process_batch([resting(1), resting(2)], time.perf_counter())
        )
    )
    batch.start()
    assert broker.entered.wait(10)  # the first order is at the broker, the second waits
    switch = threading.Thread(target=lambda: out.setdefault("cancelled", eng.set_kill_switch(True)))
    switch.start()
    switch.join(0.3)
    broker.go.set()
    batch.join(10)
    switch.join(10)

    first, second = (item.result for item in out["items"])
    assert out["cancelled"] == [first.client_order_id]
    assert first.status is OrderStatus.CANCELLED
    assert second.status is OrderStatus.REJECTED
    assert second.reason == "kill switch turned on before submit: not sent to the broker"
    assert broker.get_order(second.client_order_id) is None
    assert alerts(eng, "kill_switch_incomplete") == []
