"""Turning the kill switch on when it cannot be saved: the switch stays ON in memory, the
sweep still runs, and its result reaches the operator with the news that the switch was
not persisted — in `apply_kill_switch`'s result and as a 503 problem from
POST /kill-switch, instead of a bare 500 that left the orders not cancelled in an alert."""

from __future__ import annotations

from pathlib import Path

import pytest
from execution_helpers import StuckVenue, engine_on, resting_buy
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from algotrendy.auth import Role, issue_token
from algotrendy.config import Settings
from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.engine import ExecutionEngine, KillSwitchNotSavedError
from algotrendy.execution.ports import MemoryPublisher, StaticPrices
from algotrendy.execution.service import build_runtime, create_app

PRICES = StaticPrices({"BTC/USDT": 100.0})
SECRET = "engine-test-secret-0123456789abcdef"
LOCKED = "submitted: InvalidOrderError: order is locked for the closing auction"


def resting(n: int) -> OrderIntent:
    return resting_buy(f"ks-unsaved-{n:04d}")


def break_saving(eng: ExecutionEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*_a: object) -> None:
        raise OSError("database down")

    monkeypatch.setattr(eng._settings, "set", down)


def two_orders(eng: ExecutionEngine, venue: StuckVenue) -> tuple[str, str]:
    """A stuck and a free working order; returns their ids."""
    stuck, free = eng.process(resting(1)), eng.process(resting(2))
    venue.stuck.add(stuck.client_order_id)
    return stuck.client_order_id, free.client_order_id


def test_unsaved_switch_returns_the_sweep_and_stays_on(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue = StuckVenue(PRICES)
    eng = engine_on(db_engine, venue, PRICES)
    eng.start()
    stuck, free = two_orders(eng, venue)
    break_saving(eng, monkeypatch)

    result = eng.apply_kill_switch(True, actor="ops")
    assert (result.cancelled, result.not_cancelled) == ([free], {stuck: LOCKED})
    assert (result.unsaved, result.persisted) == ("OSError: database down", False)
    assert eng.kill_switch is True  # ON in memory all the same
    assert eng.process(resting(3)).status is OrderStatus.REJECTED
    assert isinstance(eng.publisher, MemoryPublisher)
    assert [a["message"] for a in eng.publisher.topic("alerts")
            if a["kind"] == "kill_switch_unsaved"] == [
        "kill switch ON but not saved: OSError: database down"
    ]  # fmt: skip
    restarted = engine_on(db_engine, venue, PRICES)
    restarted.start()
    assert restarted.kill_switch is False  # really not saved: why the reply must say so


def test_set_kill_switch_raises_with_the_result(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue = StuckVenue(PRICES)
    eng = engine_on(db_engine, venue, PRICES)
    eng.start()
    stuck, free = two_orders(eng, venue)
    break_saving(eng, monkeypatch)

    with pytest.raises(KillSwitchNotSavedError, match="OSError: database down") as caught:
        eng.set_kill_switch(True)
    assert (caught.value.result.cancelled, caught.value.result.not_cancelled) == (
        [free], {stuck: LOCKED}
    )  # fmt: skip
    assert eng.kill_switch is True


def test_reply_is_a_503_problem_carrying_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue = StuckVenue(PRICES)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                        data_dir=str(tmp_path), jwt_secret=SECRET)  # fmt: skip
    runtime = build_runtime(settings, prices=PRICES, broker=venue)
    token = issue_token("alice", Role.TRADER, secret=SECRET)
    with TestClient(create_app(runtime)) as client:
        stuck, free = two_orders(runtime.engine, venue)
        break_saving(runtime.engine, monkeypatch)
        resp = client.post("/kill-switch", json={"on": True},
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        health = client.get("/health").json()
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body.pop("detail") == (
        "the kill switch is ON in this engine and working orders were swept, but saving it "
        "failed (OSError: database down): a restart would turn it off. Post it again once "
        "the database is back."
    )
    assert body == {
        "title": "Kill switch not saved",
        "status": 503,
        "persisted": False,
        "kill_switch": True,
        "cancelled": [free],
        "not_cancelled": {stuck: LOCKED},
        "unanswered_submits": 0,
    }
    assert runtime.engine.kill_switch is True
    assert health["kill_switch"] is True
