"""Numbers and times past what a float or a datetime holds: each must be a 422 naming the
field (TradingView does not resend a 4xx), never an uncaught OverflowError (a 500, which
it resends) or an intent the engine cannot read back (quantity Infinity)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from webhook_helpers import FIXTURE_01_NOW, Harness, fixture_json, make_config

from algotrendy.webhooks import WebhookError, build_intent, parse_alert

HUGE_INT = 10**400  # int -> float raises OverflowError rather than giving inf


def _fixture_01(**strategy: Any) -> dict[str, Any]:
    body = fixture_json("01_passphrase_bar_strategy.filled.json")
    body.pop("passphrase", None)
    body["strategy"] = {**body["strategy"], **strategy}
    return body


def _refused(body: dict[str, Any] | str, **config: Any) -> WebhookError:
    text = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(WebhookError) as info:
        build_intent(parse_alert(text), make_config(**config), now=FIXTURE_01_NOW)
    assert info.value.status == 422
    return info.value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            '{"action": "buy", "ticker": "BINANCE:DOGEUSDT", "quantity": ' + str(HUGE_INT) + "}",
            "quantity",
        ),
        (
            '{"action": "buy", "ticker": "BINANCE:DOGEUSDT", "quantity": 1, "price": '
            + str(HUGE_INT)
            + "}",
            "price",
        ),
        (
            '{"action": "buy", "ticker": "BINANCE:DOGEUSDT", "quantity": 1, '
            '"market_position_size": ' + str(HUGE_INT) + "}",
            "market_position_size",
        ),
        (
            '{"action": "buy", "ticker": "BINANCE:DOGEUSDT", "quantity": 1, "timenow": '
            + str(HUGE_INT)
            + "}",
            "timenow",
        ),
        (
            '{"action": "buy", "ticker": "BINANCE:DOGEUSDT", "quantity": 1, '
            '"timenow": "0001-01-01T00:00:00+01:00"}',
            "timenow",
        ),
        (
            '{"action": "buy", "ticker": "BINANCE:DOGEUSDT", "quantity": 1, '
            '"time": "9999-12-31T23:59:59-01:00"}',
            "time",
        ),
        (
            '{"action": "buy", "ticker": "BINANCE:DOGEUSDT", "quantity": "1' + "0" * 400 + '%"}',
            "quantity",
        ),
    ],
)
def test_out_of_range_values_are_422_naming_the_field(body: str, field: str) -> None:
    with pytest.raises(WebhookError) as info:
        parse_alert(body)
    assert (info.value.status, info.value.field) == (422, field)
    assert len(info.value.detail) < 200  # the 400 digits are not echoed back


@pytest.mark.parametrize("quantity", [1e307, "1e308"])
def test_quantity_times_multiplier_overflowing_is_refused(quantity: float | str) -> None:
    error = _refused(_fixture_01(order_contracts=quantity), contracts_multiplier=100)
    assert error.field == "quantity"
    assert "finite" in error.detail


def test_overflowing_alert_is_refused_by_the_service_and_nothing_is_queued() -> None:
    harness = Harness(make_config(contracts_multiplier=100))
    body = fixture_json("01_passphrase_bar_strategy.filled.json")
    body["strategy"]["order_contracts"] = 1e307
    body.pop("passphrase", None)
    reply = harness.post(json.dumps(body))
    assert reply.status == 422, reply.body
    assert reply.body["field"] == "quantity"
    assert harness.messages() == []


def test_largest_finite_quantity_still_parses() -> None:
    alert = parse_alert('{"action": "buy", "quantity": 1.7976931348623157e308}')
    assert alert.quantity is not None
    assert math.isfinite(alert.quantity)
