"""TradeStationBroker against recorded-shape v3 HTTP exchanges (`responses`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import Broker
from algotrendy.execution.brokers.credentials import BrokerCredentials
from algotrendy.execution.brokers.ratelimit import RateLimiter
from algotrendy.execution.brokers.tradestation import SIM_URL, TOKEN_URL, TradeStationBroker
from algotrendy.execution.errors import (
    AuthenticationError,
    InsufficientFundsError,
    InvalidOrderError,
    RateLimitedError,
    SubmitTimeoutError,
)

from .conftest import load

ACCT = "11111111"
ORDERS = f"{SIM_URL}/orderexecution/orders"
ORDER = f"{SIM_URL}/brokerage/accounts/{ACCT}/orders/1099462171"
SECRET = "ts-client-secret-9a8b"
REFRESH = "ts-refresh-token-c0ffee"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rs() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=load("tradestation/token_refresh.json"))
        yield mock


def make(clock: Clock | None = None, state: Path | None = None) -> TradeStationBroker:
    creds = BrokerCredentials(client_id="ts-client", client_secret=SECRET, refresh_token=REFRESH)
    return TradeStationBroker(ACCT, creds, state_path=state, limiter=RateLimiter({}),
                              clock=clock or Clock())  # fmt: skip


def intent(**kw: Any) -> OrderIntent:
    base: dict[str, Any] = {"intent_id": "intent-ts-01", "symbol": "MSFT", "side": "buy",
                            "quantity": 100, "order_type": "limit", "limit_price": 412.5,
                            "time_in_force": "day"}  # fmt: skip
    base.update(kw)
    return OrderIntent(**base)


def token_calls(rs: responses.RequestsMock) -> list[Any]:
    return [c for c in rs.calls if c.request.url == TOKEN_URL]


def test_is_a_broker() -> None:
    assert isinstance(make(), Broker)


def test_missing_credentials_named() -> None:
    with pytest.raises(AuthenticationError, match="refresh_token"):
        TradeStationBroker(ACCT, BrokerCredentials(client_id="x", client_secret="y"))


def test_submit_posts_v3_order_with_bearer_token(rs: responses.RequestsMock) -> None:
    rs.post(ORDERS, json=load("tradestation/place_order.json"))
    broker = make()
    order = broker.submit(intent())
    post = next(c for c in rs.calls if c.request.url == ORDERS)
    body = json.loads(post.request.body)
    assert body == {"AccountID": ACCT, "Symbol": "MSFT", "Quantity": "100", "OrderType": "Limit",
                    "TradeAction": "BUY", "TimeInForce": {"Duration": "DAY"},
                    "Route": "Intelligent", "LimitPrice": "412.5"}  # fmt: skip
    token = load("tradestation/token_refresh.json")["access_token"]
    assert post.request.headers["Authorization"] == f"Bearer {token}"
    form = parse_qs(token_calls(rs)[0].request.body)
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == [REFRESH]
    assert (order.status, order.broker_order_id) == (OrderStatus.SUBMITTED, "1099462171")


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"order_type": "market", "limit_price": None, "time_in_force": "gtc"},
         {"OrderType": "Market", "TimeInForce": {"Duration": "GTC"}}),
        ({"order_type": "stop", "limit_price": None, "stop_price": 400.0, "side": "sell"},
         {"OrderType": "StopMarket", "StopPrice": "400", "TradeAction": "SELL"}),
        ({"order_type": "stop_limit", "stop_price": 413.0, "time_in_force": "ioc"},
         {"OrderType": "StopLimit", "StopPrice": "413", "LimitPrice": "412.5",
          "TimeInForce": {"Duration": "IOC"}}),
        ({"order_type": "trailing_stop", "limit_price": None, "trail_percent": 2.5,
          "side": "sell"},
         {"OrderType": "StopMarket", "AdvancedOptions": {"TrailingStop": {"Percent": "2.5"}}}),
    ],
)  # fmt: skip
def test_order_body_mapping(kw: dict[str, Any], expected: dict[str, Any]) -> None:
    body = make().order_body(intent(**kw))
    assert {k: body.get(k) for k in expected} == expected
    if kw["order_type"] in ("market", "stop", "trailing_stop"):
        assert "LimitPrice" not in body


def test_reduce_only_refused() -> None:
    with pytest.raises(InvalidOrderError, match="reduce-only"):
        make().order_body(intent(reduce_only=True))


def test_token_refreshed_before_expiry_only(rs: responses.RequestsMock) -> None:
    rs.get(
        f"{SIM_URL}/brokerage/accounts/{ACCT}/positions", json=load("tradestation/positions.json")
    )
    clock = Clock()
    broker = make(clock)
    broker.positions()
    broker.positions()
    assert len(token_calls(rs)) == 1
    clock.now += 1200 - 60 - 1  # still more than the margin before expiry
    broker.positions()
    assert len(token_calls(rs)) == 1
    clock.now += 2  # inside the 60 s margin
    broker.positions()
    assert len(token_calls(rs)) == 2


def test_rotated_refresh_token_is_used_next(rs: responses.RequestsMock) -> None:
    rotated = {**load("tradestation/token_refresh.json"), "refresh_token": "rotated-1"}
    rs.replace(responses.POST, TOKEN_URL, json=rotated)
    rs.get(f"{SIM_URL}/brokerage/accounts/{ACCT}/positions", json={"Positions": []})
    clock = Clock()
    broker = make(clock)
    broker.positions()
    clock.now += 5000
    broker.positions()
    second = parse_qs(token_calls(rs)[1].request.body)
    assert second["refresh_token"] == ["rotated-1"]


def test_401_refreshes_once_and_retries(rs: responses.RequestsMock) -> None:
    url = f"{SIM_URL}/brokerage/accounts/{ACCT}/positions"
    rs.get(url, status=401, json={"Error": "Unauthorized", "Message": "token expired"})
    rs.get(url, json=load("tradestation/positions.json"))
    assert len(make().positions()) == 2
    assert len(token_calls(rs)) == 2


def test_refresh_token_refused_is_authentication_error(rs: responses.RequestsMock) -> None:
    rs.replace(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_grant"})
    with pytest.raises(AuthenticationError):
        make().positions()


def test_fills_derived_from_cumulative_observations(
    rs: responses.RequestsMock, tmp_path: Path
) -> None:
    rs.post(ORDERS, json=load("tradestation/place_order.json"))
    partial, filled = (
        load("tradestation/order_partial.json"),
        load("tradestation/order_filled.json"),
    )
    rs.get(ORDER, json=partial)
    rs.get(ORDER, json=filled)
    broker = make(state=tmp_path / "ts.json")
    it = intent()
    broker.submit(it)
    first = broker.get_order(it.client_order_id)
    assert first is not None
    assert first.status is OrderStatus.PARTIALLY_FILLED
    assert [(f.quantity, f.price) for f in first.fills] == [(40.0, 412.4)]
    second = broker.get_order(it.client_order_id)
    assert second is not None
    assert second.status is OrderStatus.FILLED
    # Second fill = 60 more at the price that makes the VWAP the reported 412.46:
    # (100 * 412.46 - 40 * 412.4) / 60 = 412.5, the leg's recorded ExecutionPrice.
    (f1, f2) = second.fills
    assert f1.fill_id == first.fills[0].fill_id
    assert f2.quantity == 60.0
    assert f2.price == pytest.approx((100 * 412.46 - 40 * 412.4) / 60)
    assert f2.price == pytest.approx(float(filled["Orders"][0]["Legs"][0]["ExecutionPrice"]))
    assert f1.fee + f2.fee == pytest.approx(float(filled["Orders"][0]["CommissionFee"]))
    assert second.avg_fill_price == pytest.approx(412.46)


def test_submit_idempotent_across_restart(rs: responses.RequestsMock, tmp_path: Path) -> None:
    rs.post(ORDERS, json=load("tradestation/place_order.json"))
    rs.get(ORDER, json=load("tradestation/order_partial.json"))
    state = tmp_path / "ts.json"
    make(state=state).submit(intent())
    again = make(state=state).submit(intent())  # a new process, same intent
    assert len([c for c in rs.calls if c.request.url == ORDERS]) == 1
    assert again.broker_order_id == "1099462171"
    assert again.status is OrderStatus.PARTIALLY_FILLED


def test_unknown_client_id_is_none() -> None:
    assert make().get_order("at-never") is None


def test_refused_order_maps_message(rs: responses.RequestsMock) -> None:
    rs.post(ORDERS, json=load("tradestation/place_order_failed.json"))
    with pytest.raises(InsufficientFundsError, match="buying power"):
        make().submit(intent())
    rs.replace(responses.POST, ORDERS, status=400,
               json={"Error": "BadRequest", "Message": "Invalid symbol."})  # fmt: skip
    with pytest.raises(InvalidOrderError, match="Invalid symbol"):
        make().submit(intent())


def test_submit_timeout_and_rate_limit(rs: responses.RequestsMock) -> None:
    rs.post(ORDERS, body=requests.exceptions.ReadTimeout("timed out"))
    with pytest.raises(SubmitTimeoutError, match="may have been placed"):
        make().submit(intent())
    rs.replace(responses.POST, ORDERS, status=429, headers={"Retry-After": "30"},
               json={"Error": "TooManyRequests", "Message": "quota"})  # fmt: skip
    with pytest.raises(RateLimitedError) as info:
        make().submit(intent())
    assert info.value.retry_after == 30.0


def test_cancel(rs: responses.RequestsMock) -> None:
    rs.post(ORDERS, json=load("tradestation/place_order.json"))
    rs.get(ORDER, json=load("tradestation/order_partial.json"))
    cancelled = load("tradestation/order_partial.json")
    cancelled["Orders"][0].update(Status="FLP", StatusDescription="Partial Fill (UROut)")
    rs.get(ORDER, json=cancelled)
    rs.delete(f"{ORDERS}/1099462171", json={"OrderID": "1099462171", "Message": "Cancel sent"})
    broker = make()
    it = intent()
    broker.submit(it)
    order = broker.cancel(it.client_order_id)
    assert any(c.request.method == "DELETE" for c in rs.calls)
    assert order.status is OrderStatus.CANCELLED
    assert order.filled_quantity == 40.0


def test_positions_signed() -> None:
    with responses.RequestsMock() as rs:
        rs.post(TOKEN_URL, json=load("tradestation/token_refresh.json"))
        rs.get(f"{SIM_URL}/brokerage/accounts/{ACCT}/positions",
               json=load("tradestation/positions.json"))  # fmt: skip
        got = {p.symbol: (p.quantity, p.avg_price) for p in make().positions()}
    assert got == {"MSFT": (100.0, 412.46), "ESM24": (-2.0, 5230.25)}


def test_secrets_not_in_repr() -> None:
    broker = make()
    assert SECRET not in repr(broker)
    assert REFRESH not in repr(broker.credentials)
