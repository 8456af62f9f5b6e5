"""CcxtBroker when Binance refuses a resubmit as a duplicate before its lookup by client
order id can see the order (its reads lag its writes): the order exists, so the adapter
must report an unknown outcome, never a plain refusal nor "no such order"."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
import responses

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.ccxt_broker import CcxtBroker
from algotrendy.execution.brokers.credentials import BrokerCredentials
from algotrendy.execution.brokers.ratelimit import RateLimiter
from algotrendy.execution.brokers.retry import RetryPolicy, call_with_retry
from algotrendy.execution.errors import RetryableBrokerError, SubmitTimeoutError

from .conftest import load

SPOT = "https://api.binance.com/api/v3/"
# Binance's documented error for an unknown order (spot "Error Codes", -2013).
NOT_FOUND = {"code": -2013, "msg": "Order does not exist."}


def _url(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(SPOT + path) + r"(\?.*)?$")


@pytest.fixture
def rs() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def spot(rs: responses.RequestsMock) -> CcxtBroker:
    rs.get(_url("exchangeInfo"), json=load("binance/spot_exchange_info.json"))
    creds = BrokerCredentials(api_key="test-api-key-7f3a9c", api_secret="test-api-secret-51d0e2")
    return CcxtBroker("binance", credentials=creds, symbols=["BTC/USDT"],
                      limiter=RateLimiter({}))  # fmt: skip


IT = OrderIntent(intent_id="intent-0001", symbol="BTC/USDT", side="buy", quantity=0.5,
                 order_type="limit", limit_price=30000.0)  # fmt: skip


def test_duplicate_the_lookup_cannot_see_yet_is_an_unknown_outcome(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    rs.post(_url("order"), body=requests.exceptions.ReadTimeout("read timed out"))
    rs.post(_url("order"), status=400, json=load("binance/spot_error_duplicate.json"))
    rs.get(_url("order"), status=400, json=NOT_FOUND)
    with pytest.raises(SubmitTimeoutError, match="not found on lookup"):
        call_with_retry(lambda: spot.submit(IT), RetryPolicy(attempts=3), sleep=lambda _s: None)
    # Until the venue shows it, "no such order" (None) would be a lie: the venue said it has it.
    with pytest.raises(RetryableBrokerError, match="not visible yet"):
        spot.get_order(IT.client_order_id)


def test_once_visible_the_order_is_found(rs: responses.RequestsMock, spot: CcxtBroker) -> None:
    rs.post(_url("order"), status=400, json=load("binance/spot_error_duplicate.json"))
    rs.get(_url("order"), status=400, json=NOT_FOUND)
    with pytest.raises(SubmitTimeoutError):
        spot.submit(IT)
    raw = load("binance/spot_order_response.json")
    raw.update({"symbol": "BTCUSDT", "clientOrderId": IT.client_order_id})
    rs.replace(responses.GET, _url("order"), json=raw)
    found = spot.get_order(IT.client_order_id)
    assert found is not None
    assert (found.client_order_id, found.status) == (IT.client_order_id, OrderStatus.SUBMITTED)
