from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algotrendy.domain.orders import Side
from algotrendy.execution.positions import Position, PositionBook


def test_average_up_then_partial_close() -> None:
    p = Position("a", "s", "BTC/USDT")
    p.apply_fill(Side.BUY, 1, 100, fee=0.1)
    p.apply_fill(Side.BUY, 3, 120, fee=0.3)
    # avg = (1*100 + 3*120) / 4 = 115
    assert p.avg_price == pytest.approx(115.0)
    realized = p.apply_fill(Side.SELL, 2, 130, fee=0.2)
    assert realized == pytest.approx((130 - 115) * 2)  # 30
    assert p.quantity == pytest.approx(2)
    assert p.avg_price == pytest.approx(115.0)
    assert p.fees == pytest.approx(0.6)
    assert p.net_realized_pnl == pytest.approx(29.4)
    assert p.unrealized_pnl(110) == pytest.approx((110 - 115) * 2)


def test_short_then_flip_long() -> None:
    p = Position("a", "s", "ETH/USDT")
    p.apply_fill(Side.SELL, 2, 50)
    assert p.quantity == -2
    realized = p.apply_fill(Side.BUY, 5, 40)
    assert realized == pytest.approx((40 - 50) * 2 * -1)  # short gained 20
    assert p.quantity == pytest.approx(3)
    assert p.avg_price == pytest.approx(40)  # remainder opened at the flip price


def test_close_to_flat_resets_average() -> None:
    p = Position("a", "s", "X")
    p.apply_fill(Side.BUY, 1.5, 10)
    p.apply_fill(Side.SELL, 1.5, 12)
    assert p.quantity == 0
    assert p.avg_price == 0
    assert p.realized_pnl == pytest.approx(3.0)


def test_bad_fill_refused() -> None:
    with pytest.raises(ValueError, match="positive quantity and price"):
        Position("a", "s", "X").apply_fill(Side.BUY, 0, 10)


def test_account_view_sums_strategy_subledgers() -> None:
    book = PositionBook()
    book.apply_fill(account="acc", strategy="mom", symbol="BTC", side=Side.BUY, quantity=2, price=1)
    book.apply_fill(
        account="acc", strategy="rsi", symbol="BTC", side=Side.SELL, quantity=0.5, price=1
    )
    book.apply_fill(
        account="other", strategy="mom", symbol="BTC", side=Side.BUY, quantity=9, price=1
    )
    assert book.account_quantity("acc", "BTC") == pytest.approx(1.5)
    assert book.get("acc", "rsi", "BTC").quantity == pytest.approx(-0.5)
    assert len(book.positions("acc")) == 2


fills = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.floats(0.01, 100, allow_nan=False),
        st.floats(1, 1000, allow_nan=False),
        st.floats(0, 5, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


@given(fills, st.floats(1, 1000, allow_nan=False))
def test_pnl_equals_mark_to_market_cash_flow(
    seq: list[tuple[Side, float, float, float]], mark: float
) -> None:
    p = Position("a", "s", "X")
    cash = 0.0
    qty = 0.0
    for side, q, price, fee in seq:
        p.apply_fill(side, q, price, fee)
        sign = 1.0 if side is Side.BUY else -1.0
        cash -= sign * q * price + fee
        qty += sign * q
    assert p.quantity == pytest.approx(qty, abs=1e-9)
    total = p.realized_pnl + p.unrealized_pnl(mark) - p.fees
    assert total == pytest.approx(cash + qty * mark, rel=1e-9, abs=1e-6)


def test_account_quantity_sums_the_symbols_sub_ledgers_only() -> None:
    book = PositionBook()
    book.apply_fill(account="a", strategy="s1", symbol="BTC/USDT", side=Side.BUY,
                    quantity=2, price=100)  # fmt: skip
    book.apply_fill(account="a", strategy="s2", symbol="BTC/USDT", side=Side.SELL,
                    quantity=0.5, price=100)  # fmt: skip
    book.apply_fill(account="a", strategy="s1", symbol="ETH/USDT", side=Side.BUY,
                    quantity=7, price=10)  # fmt: skip
    book.apply_fill(account="b", strategy="s1", symbol="BTC/USDT", side=Side.BUY,
                    quantity=11, price=100)  # fmt: skip
    assert book.account_quantity("a", "BTC/USDT") == pytest.approx(1.5)
    assert book.account_quantity("a", "ETH/USDT") == pytest.approx(7)
    assert book.account_quantity("b", "BTC/USDT") == pytest.approx(11)
    assert book.account_quantity("a", "SOL/USDT") == 0

    book.load([Position("a", "s1", "BTC/USDT", 3.0), Position("a", "s2", "BTC/USDT", -1.0),
               Position("a", "s1", "BTC/USDT", 4.0)])  # fmt: skip
    assert book.account_quantity("a", "BTC/USDT") == pytest.approx(3.0)  # the last s1 wins
    assert book.account_quantity("a", "ETH/USDT") == 0
    book.get("a", "s3", "BTC/USDT").quantity = 0.5  # a new sub-ledger joins the account view
    assert book.account_quantity("a", "BTC/USDT") == pytest.approx(3.5)
