"""Turning the kill switch on tells the operator which working orders could NOT be
cancelled (they may still be live at the venue) — in `apply_kill_switch`'s result and in
the reply of POST /kill-switch, not only in an alert."""

from __future__ import annotations

from pathlib import Path

from execution_helpers import engine_on
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from algotrendy.auth import Role, issue_token
from algotrendy.config import Settings
from algotrendy.domain.orders import OrderIntent, OrderStatus, OrderType, Side
from algotrendy.execution.brokers.base import BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import KillSwitchResult
from algotrendy.execution.errors import InvalidOrderError
from algotrendy.execution.ports import StaticPrices
from algotrendy.execution.service import build_runtime, create_app

PRICES = StaticPrices({"BTC/USDT": 100.0})
SECRET = "engine-test-secret-0123456789abcdef"


class StuckVenue(PaperBroker):
    """Refuses to cancel the orders in `stuck` (e.g. already in a closing auction)."""

    def __init__(self) -> None:
        super().__init__(PRICES, fee=0.0)
        self.stuck: set[str] = set()

    def cancel(self, client_order_id: str) -> BrokerOrder:
        if client_order_id in self.stuck:
            raise InvalidOrderError("order is locked for the closing auction")
        return super().cancel(client_order_id)


def resting(n: int) -> OrderIntent:
    return OrderIntent(intent_id=f"ks-reply-{n:04d}", symbol="BTC/USDT", side=Side.BUY,
                       quantity=1, order_type=OrderType.LIMIT, limit_price=50.0)  # fmt: skip


def test_result_names_the_orders_not_cancelled(db_engine: Engine) -> None:
    venue = StuckVenue()
    eng = engine_on(db_engine, venue, PRICES)
    eng.start()
    stuck, free = eng.process(resting(1)), eng.process(resting(2))
    venue.stuck.add(stuck.client_order_id)

    result = eng.apply_kill_switch(True, actor="ops")
    assert result == KillSwitchResult(
        cancelled=[free.client_order_id],
        not_cancelled={stuck.client_order_id: "submitted: InvalidOrderError: order is locked "
                       "for the closing auction"},
        unanswered_submits=0,
    )  # fmt: skip
    assert eng._open[stuck.client_order_id].status is OrderStatus.SUBMITTED


def test_kill_switch_reply_lists_what_was_not_cancelled(tmp_path: Path) -> None:
    venue = StuckVenue()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                        data_dir=str(tmp_path), jwt_secret=SECRET)  # fmt: skip
    runtime = build_runtime(settings, prices=PRICES, broker=venue)
    token = issue_token("alice", Role.TRADER, secret=SECRET)
    with TestClient(create_app(runtime)) as client:
        stuck = runtime.engine.process(resting(1))
        free = runtime.engine.process(resting(2))
        venue.stuck.add(stuck.client_order_id)
        resp = client.post("/kill-switch", json={"on": True},
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert resp.status_code == 200
    assert resp.json() == {
        "kill_switch": True,
        "cancelled": [free.client_order_id],
        "not_cancelled": {stuck.client_order_id: "submitted: InvalidOrderError: order is "
                          "locked for the closing auction"},
        "unanswered_submits": 0,
    }  # fmt: skip
