"""OrderIntent accepts finite numbers only (JSON cannot carry Infinity/NaN to the engine),
and a missing price names the price field rather than the whole intent."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from algotrendy.domain.orders import OrderIntent, OrderType

BASE: dict[str, Any] = {"intent_id": "intent-0001", "symbol": "GOOG", "side": "buy", "quantity": 1}


@pytest.mark.parametrize("field", ["quantity", "limit_price", "stop_price", "trail_percent"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused(field: str, value: float) -> None:
    fields = {**BASE, "order_type": "stop_limit", "limit_price": 10, "stop_price": 11}
    fields[field] = value
    with pytest.raises(ValidationError) as info:
        OrderIntent(**fields)
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


def test_intent_round_trips_through_json() -> None:
    intent = OrderIntent(**BASE, order_type="limit", limit_price=1.5)
    assert OrderIntent.model_validate_json(intent.model_dump_json()) == intent


@pytest.mark.parametrize(
    ("order_type", "missing"),
    [
        (OrderType.LIMIT, ["limit_price"]),
        (OrderType.STOP, ["stop_price"]),
        (OrderType.STOP_LIMIT, ["limit_price", "stop_price"]),
        (OrderType.TRAILING_STOP, ["trail_percent"]),
    ],
)
def test_missing_price_names_the_field(order_type: OrderType, missing: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        OrderIntent(**BASE, order_type=order_type)
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [(f,) for f in missing]
    assert [e["msg"] for e in errors] == [f"{order_type.value} order needs {f}" for f in missing]


def test_market_order_needs_no_price() -> None:
    assert OrderIntent(**BASE).limit_price is None
