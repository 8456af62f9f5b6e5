from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from algotrendy.domain.orders import OrderIntent, OrderType, Side

BASE = {"intent_id": "tv-alert-0001", "symbol": "BTC/USDT", "side": "buy", "quantity": 0.5}


def test_defaults_and_round_trip() -> None:
    intent = OrderIntent.model_validate(BASE)
    assert intent.order_type is OrderType.MARKET
    assert intent.side is Side.BUY
    again = OrderIntent.model_validate_json(intent.model_dump_json())
    assert again == intent


def test_client_order_id_is_deterministic_and_broker_safe() -> None:
    a = OrderIntent.model_validate(BASE)
    b = OrderIntent.model_validate({**BASE, "quantity": 1.0})
    assert a.client_order_id == b.client_order_id  # same intent id -> same broker order id
    other = OrderIntent.model_validate({**BASE, "intent_id": "tv-alert-0002"})
    assert other.client_order_id != a.client_order_id
    other_account = OrderIntent.model_validate({**BASE, "account": "acct2"})
    assert other_account.client_order_id != a.client_order_id
    # Binance newClientOrderId: at most 36 chars of [.A-Z:/a-z0-9_-]
    assert re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", a.client_order_id)


@given(st.from_regex(r"[A-Za-z0-9_.:\-]{8,64}", fullmatch=True))
def test_client_order_id_shape_for_any_intent_id(intent_id: str) -> None:
    coid = OrderIntent.model_validate({**BASE, "intent_id": intent_id}).client_order_id
    assert len(coid) <= 36
    assert coid.startswith("at-")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"order_type": "limit"}, "limit order needs limit_price"),
        ({"order_type": "stop_limit", "stop_price": 10}, "stop_limit order needs limit_price"),
        ({"order_type": "trailing_stop"}, "trailing_stop order needs trail_percent"),
        ({"quantity": 0}, "greater than 0"),
        ({"side": "hold"}, "Input should be 'buy' or 'sell'"),
        ({"intent_id": "short"}, "at least 8 characters"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_intents_name_the_problem(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        OrderIntent.model_validate({**BASE, **extra})


def test_fifo_group_is_account_and_symbol() -> None:
    assert OrderIntent.model_validate(BASE).message_group_id == "default:BTC/USDT"
