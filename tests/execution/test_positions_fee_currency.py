"""Fees are booked by their currency: quote as is, base asset off the quantity and valued at
the fill price, any third currency kept apart and flagged (never taken as quote)."""

from __future__ import annotations

import logging

import pytest

from algotrendy.domain.orders import Side
from algotrendy.execution.positions import Position, PositionBook


def test_base_asset_fee_on_a_buy_reduces_the_quantity_received() -> None:
    """Binance spot: buy 1 BTC at 30,000, fee 0.001 BTC -> hold 0.999, fee worth 30 USDT."""
    p = Position("default", "s", "BTC/USDT")
    assert p.apply_fill(Side.BUY, 1.0, 30_000.0, 0.001, "BTC") == 0.0
    assert p.quantity == pytest.approx(0.999)  # what the venue balance shows
    assert p.avg_price == pytest.approx(30_000.0)
    assert p.fees == pytest.approx(30.0)
    assert p.net_realized_pnl + p.unrealized_pnl(30_000.0) == pytest.approx(-30.0)
    assert p.unvalued_fees == {}


def test_base_asset_fee_on_a_sell_keeps_pnl_equal_to_cash_flows() -> None:
    p = Position("default", "s", "BTC/USDT")
    p.apply_fill(Side.BUY, 1.0, 30_000.0, 0.001, "btc")  # currency case does not matter
    p.apply_fill(Side.SELL, 0.5, 31_000.0, 0.0005, "BTC")  # the venue keeps 0.0005 more BTC
    assert p.quantity == pytest.approx(0.999 - 0.5 - 0.0005)
    assert p.fees == pytest.approx(30.0 + 15.5)
    mark = 29_000.0
    cash = -1.0 * 30_000.0 + 0.5 * 31_000.0  # no quote-currency fee was paid
    assert p.net_realized_pnl + p.unrealized_pnl(mark) == pytest.approx(cash + p.quantity * mark)


def test_quote_currency_fee_is_booked_as_is() -> None:
    p = Position("default", "s", "BTC/USDT")
    p.apply_fill(Side.BUY, 1.0, 30_000.0, 30.0, "USDT")
    assert (p.quantity, p.fees) == (1.0, 30.0)


def test_fee_on_a_symbol_without_a_quote_is_booked_as_is() -> None:
    """Stocks: the symbol does not name a quote currency; IB reports the account's."""
    p = Position("default", "s", "AAPL")
    p.apply_fill(Side.BUY, 10.0, 190.0, 1.0, "USD")
    assert (p.quantity, p.fees) == (10.0, 1.0)


def test_base_fee_on_a_contract_is_valued_without_touching_contracts() -> None:
    p = Position("default", "s", "BTC/USD:BTC")
    p.apply_fill(Side.BUY, 100.0, 25_000.0, 0.0002, "BTC")
    assert p.quantity == 100.0
    assert p.fees == pytest.approx(5.0)


def test_third_currency_fee_is_kept_apart_and_flagged(caplog: pytest.LogCaptureFixture) -> None:
    p = Position("default", "s", "BTC/USDT")
    with caplog.at_level(logging.WARNING, logger="algotrendy.execution.positions"):
        p.apply_fill(Side.BUY, 1.0, 30_000.0, 0.01, "BNB")
        p.apply_fill(Side.BUY, 1.0, 30_000.0, 0.02, "BNB")
    assert p.quantity == 2.0
    assert p.fees == 0.0  # not 0.03 "USDT"
    assert p.unvalued_fees == {"BNB": pytest.approx(0.03)}
    assert "cannot be valued" in caplog.text
    assert "BNB" in caplog.text


def test_base_fee_not_below_the_quantity_bought_is_refused() -> None:
    p = Position("default", "s", "BTC/USDT")
    with pytest.raises(ValueError, match=r"BTC/USDT: fee of 1\.0 BTC"):
        p.apply_fill(Side.BUY, 1.0, 30_000.0, 1.0, "BTC")


def test_book_passes_the_fee_currency_on() -> None:
    book = PositionBook()
    book.apply_fill(account="a", strategy=None, symbol="BTC/USDT", side=Side.BUY,
                    quantity=1.0, price=30_000.0, fee=0.001, fee_currency="BTC")  # fmt: skip
    assert book.account_quantity("a", "BTC/USDT") == pytest.approx(0.999)
