from __future__ import annotations

from dataclasses import replace

import pytest
from execution_helpers import FLAT, manager
from hypothesis import given
from hypothesis import strategies as st

from algotrendy.domain.orders import OrderIntent
from algotrendy.execution.risk import RiskConfig, RiskLimits, RiskManager


def intent(side: str = "buy", qty: float = 1.0, **kw: object) -> OrderIntent:
    return OrderIntent.model_validate(
        {"intent_id": "intent-001", "symbol": "BTC/USDT", "side": side, "quantity": qty, **kw}
    )


def test_no_limits_approves() -> None:
    assert manager().check(intent(), FLAT).approved


def test_kill_switch_blocks_everything() -> None:
    d = manager().check(intent(), replace(FLAT, kill_switch=True))
    assert not d.approved
    assert d.reason == "kill switch is on: no new orders"


def test_position_limit_counts_working_orders() -> None:
    m = manager(max_position=5)
    snap = replace(FLAT, position=2, open_buy_quantity=2)
    assert m.check(intent(qty=1), snap).approved
    d = m.check(intent(qty=1.5), snap)
    assert not d.approved
    assert "would reach 5.5 (limit 5, incl. working orders)" in (d.reason or "")


def test_short_side_limit() -> None:
    m = manager(max_position=3)
    d = m.check(intent("sell", 2), replace(FLAT, position=-1, open_sell_quantity=1))
    assert not d.approved
    assert "would reach -4" in (d.reason or "")


def test_reducing_order_passes_size_limits_when_over() -> None:
    m = manager(max_position=1, max_order_quantity=0.5, max_open_orders=0)
    assert m.check(intent("sell", 2), replace(FLAT, position=3)).approved


def test_notional_limits() -> None:
    m = manager(max_notional=1000, max_order_notional=400)
    d = m.check(intent(qty=5), FLAT)  # 500 > 400
    assert not d.approved
    assert d.reason == "order notional 500.00 exceeds limit 400"
    d = m.check(intent(qty=3), replace(FLAT, position=8))  # (8+3)*100 = 1100
    assert not d.approved
    assert "notional limit" in (d.reason or "")


def test_limit_price_used_for_notional() -> None:
    m = manager(max_order_notional=400)
    assert m.check(intent(qty=5, order_type="limit", limit_price=70), FLAT).approved


def test_missing_price_refuses_notional_checks() -> None:
    d = manager(max_notional=10).check(intent(), replace(FLAT, price=None))
    assert not d.approved
    assert d.reason == "no reference price for BTC/USDT: cannot size risk"


def test_open_orders_and_order_size() -> None:
    assert not manager(max_open_orders=3).check(intent(), replace(FLAT, open_orders=3)).approved
    d = manager(max_order_quantity=0.5).check(intent(qty=1), FLAT)
    assert d.reason == "order quantity 1 exceeds max order size 0.5"


def test_daily_loss_limit_allows_only_reducing() -> None:
    m = manager(daily_loss_limit=100)
    hurt = replace(FLAT, position=2, daily_pnl=-150)
    d = m.check(intent("buy", 1), hurt)
    assert not d.approved
    assert d.reason == "daily loss limit reached (-150.00 <= -100)"
    assert m.check(intent("sell", 1), hurt).approved


def test_allowed_symbols_and_overrides() -> None:
    cfg = RiskConfig(
        account=RiskLimits(max_position=10, allowed_symbols=frozenset({"BTC/USDT"})),
        per_strategy={"scalper": RiskLimits(max_position=1)},
    )
    m = RiskManager(cfg)
    eth = OrderIntent(intent_id="intent-002", symbol="ETH/USDT", side="buy", quantity=1)
    assert m.check(eth, FLAT).reason == "symbol ETH/USDT is not allowed"
    assert m.check(intent(qty=5), FLAT).approved
    assert not m.check(intent(qty=5, strategy="scalper"), FLAT).approved


def test_reduce_only_must_reduce() -> None:
    d = manager().check(intent("buy", 1, reduce_only=True), replace(FLAT, position=1))
    assert d.reason == "reduce-only order would not reduce the position"


@given(
    st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.floats(0.01, 3)), max_size=60),
    st.floats(0.5, 10),
)
def test_sequential_reservations_never_breach(
    orders: list[tuple[str, float]], limit: float
) -> None:
    """Approving and reserving intents one by one never lets worst-case exposure pass the limit."""
    m = manager(max_position=limit)
    snap = FLAT
    for side, qty in orders:
        if m.check(intent(side, qty), snap).approved:
            if side == "buy":
                snap = replace(snap, open_buy_quantity=snap.open_buy_quantity + qty)
            else:
                snap = replace(snap, open_sell_quantity=snap.open_sell_quantity + qty)
        assert snap.position + snap.open_buy_quantity <= limit + 1e-9
        assert snap.position - snap.open_sell_quantity >= -limit - 1e-9


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"max_position": 0}, "max_position"),
        ({"max_open_orders": -1}, "max_open_orders"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_limits_refused(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RiskLimits.model_validate(bad)
