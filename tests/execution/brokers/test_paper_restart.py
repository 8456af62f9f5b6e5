"""The paper broker keeps the trigger state of resting orders across a restart, as a venue
would: a triggered stop-limit stays triggered, a trailing stop keeps its best price."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from algotrendy.domain.orders import OrderIntent, OrderStatus, OrderType
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.ports import StaticPrices


def _intent(name: str, side: str, **kw: object) -> OrderIntent:
    return OrderIntent.model_validate(
        {
            "intent_id": f"paper-restart-{name}",
            "symbol": "BTC/USDT",
            "side": side,
            "quantity": 1.0,
            **kw,
        }
    )


def _broker(path: Path) -> PaperBroker:
    return PaperBroker(StaticPrices({"BTC/USDT": 100.0}), fee=0.0, state_path=path)


def test_triggered_stop_limit_stays_triggered(tmp_path: Path) -> None:
    state = tmp_path / "paper.db"
    before = _broker(state)
    sl = before.submit(_intent("sl-1", "buy", order_type=OrderType.STOP_LIMIT,
                               stop_price=110.0, limit_price=105.0))  # fmt: skip
    before.on_price("BTC/USDT", 111.0)  # stop hit; 111 is above the limit: rests as a limit
    assert before.get_order(sl.client_order_id).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    after = _broker(state)
    [filled] = after.on_price("BTC/USDT", 104.0)  # below the stop: only a triggered order fills
    assert (filled.client_order_id, filled.status) == (sl.client_order_id, OrderStatus.FILLED)
    assert filled.avg_fill_price == 104.0


def test_trailing_stop_keeps_its_best_price(tmp_path: Path) -> None:
    state = tmp_path / "paper.db"
    before = _broker(state)
    ts = before.submit(_intent("ts-1", "sell", order_type=OrderType.TRAILING_STOP,
                               trail_percent=5.0))  # fmt: skip
    assert before.on_price("BTC/USDT", 120.0) == []  # best 120: trigger at 114
    after = _broker(state)
    assert after.on_price("BTC/USDT", 115.0) == []
    [filled] = after.on_price("BTC/USDT", 113.0)  # 113 <= 120 x 0.95
    assert (filled.client_order_id, filled.status) == (ts.client_order_id, OrderStatus.FILLED)


def test_state_without_trigger_rows_trails_from_the_next_price(tmp_path: Path) -> None:
    """A state file from before trigger state was kept: no KeyError, the trail restarts."""
    state = tmp_path / "paper.db"
    ts = _broker(state).submit(_intent("ts-2", "sell", order_type=OrderType.TRAILING_STOP,
                                       trail_percent=5.0))  # fmt: skip
    with sqlite3.connect(state) as db:
        db.execute("DELETE FROM paper_triggers")
    after = _broker(state)
    assert after.on_price("BTC/USDT", 90.0) == []  # best is now 90
    [filled] = after.on_price("BTC/USDT", 85.0)  # 85 <= 90 x 0.95
    assert filled.client_order_id == ts.client_order_id
