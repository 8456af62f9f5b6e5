"""Turning the kill switch on tells the operator which working orders could NOT be
cancelled (they may still be live at the venue) — in `apply_kill_switch`'s result and in
the reply of POST /kill-switch, not only in an alert."""

from __future__ import annotations

from pathlib import Path

from execution_helpers import StuckVenue, engine_on, resting_buy
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from algotrendy.auth import Role, issue_token
from algotrendy.config import Settings
from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.engine import KillSwitchResult
from algotrendy.execution.ports import StaticPrices
from algotrendy.execution.service import build_runtime, create_app

PRICES = StaticPrices({"BTC/USDT": 100.0})
SECRET = "engine-test-secret-0123456789abcdef"


def resting(n: int) -> OrderIntent:
    return resting_buy(f"ks-reply-{n:04d}")


def test_result_names_the_orders_not_cancelled(db_engine: Engine) -> None:
    venue = StuckVenue(PRICES)
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
    venue = StuckVenue(PRICES)
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
