"""CcxtBroker against real ccxt exchange objects replaying recorded venue HTTP.

ccxt builds, signs and sends each request through `requests`; `responses` answers it with
a recorded payload (tests/fixtures/brokers/, provenance in its README). The assertions read
the request ccxt actually sent (path and signed parameters) and the order ccxt parsed.
Where a recorded payload names another symbol or another client order id than the test's,
the test overrides that one field in memory and says so; the files stay verbatim.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import Broker
from algotrendy.execution.brokers.ccxt_broker import CcxtBroker, fill_vwap, map_status
from algotrendy.execution.brokers.credentials import BrokerCredentials
from algotrendy.execution.brokers.ratelimit import RateLimiter
from algotrendy.execution.brokers.retry import RetryPolicy, call_with_retry
from algotrendy.execution.errors import (
    AuthenticationError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    RateLimitedError,
    RetryableBrokerError,
    SubmitTimeoutError,
)

from .conftest import load

KEY = "test-api-key-7f3a9c"
SECRET = "test-api-secret-51d0e2"
SPOT = "https://api.binance.com/api/v3/"
FAPI = "https://fapi.binance.com/fapi/"
BYBIT = "https://api.bybit.com/v5/"


def _url(prefix: str, path: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix + path) + r"(\?.*)?$")


def _params(call: Any) -> dict[str, str]:
    """The parameters of a recorded request: query string or form body (Binance), JSON
    body (Bybit POST)."""
    req = call.request
    out = {k: v[0] for k, v in parse_qs(urlsplit(req.url).query).items()}
    body = req.body
    if body:
        text = body.decode() if isinstance(body, bytes) else str(body)
        if text.startswith("{"):
            out.update({k: str(v) for k, v in json.loads(text).items()})
        else:
            out.update({k: v[0] for k, v in parse_qs(text).items()})
    return out


def _calls(rs: responses.RequestsMock, method: str, path: str) -> list[Any]:
    return [c for c in rs.calls if c.request.method == method and path in c.request.url]


def intent(**kw: Any) -> OrderIntent:
    base: dict[str, Any] = {"intent_id": "intent-0001", "symbol": "BTC/USDT", "side": "buy",
                            "quantity": 1.0}  # fmt: skip
    base.update(kw)
    return OrderIntent(**base)


@pytest.fixture
def rs() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def creds() -> BrokerCredentials:
    return BrokerCredentials(api_key=KEY, api_secret=SECRET)


@pytest.fixture
def spot(rs: responses.RequestsMock) -> CcxtBroker:
    rs.get(_url(SPOT, "exchangeInfo"), json=load("binance/spot_exchange_info.json"))
    return CcxtBroker("binance", credentials=creds(), symbols=["BTC/USDT"],
                      limiter=RateLimiter({}))  # fmt: skip


@pytest.fixture
def usdm(rs: responses.RequestsMock) -> CcxtBroker:
    rs.get(_url(FAPI, "v1/exchangeInfo"), json=load("binance/usdm_exchange_info.json"))
    return CcxtBroker("binance", credentials=creds(), market_type="linear",
                      symbols=["BTC/USDT:USDT"], limiter=RateLimiter({}))  # fmt: skip


@pytest.fixture
def bybit(rs: responses.RequestsMock) -> CcxtBroker:
    rs.get(
        _url(BYBIT, "market/instruments-info"), json=load("bybit/http_get_instruments_linear.json")
    )
    rs.get(_url(BYBIT, "user/query-api"), json=load("bybit/http_get_user_query_api.json"))
    rs.get(_url(BYBIT, "account/info"), json=load("bybit/http_get_account_info.json"))
    return CcxtBroker("bybit", credentials=creds(), market_type="linear",
                      symbols=["BTC/USDT:USDT"], limiter=RateLimiter({}))  # fmt: skip


def spot_order(coid: str, **fields: Any) -> dict[str, Any]:
    """Binance's documented GET /api/v3/order example, moved to BTCUSDT and our id."""
    raw: dict[str, Any] = load("binance/spot_order_response.json")
    raw.update({"symbol": "BTCUSDT", "clientOrderId": coid, **fields})
    return raw


# -- protocol conformance ------------------------------------------------------------------
def test_is_a_broker(spot: CcxtBroker) -> None:
    assert isinstance(spot, Broker)
    assert spot.name == "binance"


# -- submit: request mapping -----------------------------------------------------------------
def test_market_submit_sends_binance_new_order_with_client_id(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    full = load("binance/new_order_full_response.json")
    rs.post(_url(SPOT, "order"), json=full)
    it = intent(side="sell", quantity=10.0)
    order = spot.submit(it)

    (call,) = _calls(rs, "POST", "/api/v3/order")
    sent = _params(call)
    assert sent["symbol"] == "BTCUSDT"
    assert sent["side"] == "SELL"
    assert sent["type"] == "MARKET"
    assert float(sent["quantity"]) == 10.0
    assert sent["newClientOrderId"] == it.client_order_id
    assert sent["newOrderRespType"] == "FULL"
    assert "price" not in sent
    assert "quoteOrderQty" not in sent
    assert "signature" in sent
    assert call.request.headers["X-MBX-APIKEY"] == KEY

    assert order.status is OrderStatus.FILLED
    assert order.broker_order_id == str(full["orderId"])
    assert order.client_order_id == it.client_order_id
    assert order.filled_quantity == float(full["executedQty"])
    raw_fills = full["fills"]
    assert [f.fill_id for f in order.fills] == [str(f["tradeId"]) for f in raw_fills]
    assert [f.fee for f in order.fills] == [float(f["commission"]) for f in raw_fills]
    assert {f.fee_currency for f in order.fills} == {"USDT"}
    qty = sum(float(f["qty"]) for f in raw_fills)
    vwap = sum(float(f["qty"]) * float(f["price"]) for f in raw_fills) / qty
    assert order.avg_fill_price == pytest.approx(vwap)
    # Inline fills carry no time of their own: they take the order's transactTime.
    assert {int(f.time.timestamp() * 1000) for f in order.fills} == {full["transactTime"]}


def test_limit_submit_sends_price_and_time_in_force(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    it = intent(order_type="limit", limit_price=30000.5, quantity=0.5, time_in_force="ioc")
    rs.post(_url(SPOT, "order"), json=spot_order(it.client_order_id))
    order = spot.submit(it)
    sent = _params(_calls(rs, "POST", "/api/v3/order")[0])
    assert sent["type"] == "LIMIT"
    assert float(sent["price"]) == 30000.5
    assert sent["timeInForce"] == "IOC"
    assert sent["newClientOrderId"] == it.client_order_id
    assert order.status is OrderStatus.SUBMITTED
    assert order.filled_quantity == 0.0


def test_spot_stop_limit_maps_to_stop_loss_limit(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    it = intent(side="sell", order_type="stop_limit", stop_price=29000.0, limit_price=28900.0)
    rs.post(_url(SPOT, "order"), json=spot_order(it.client_order_id, type="STOP_LOSS_LIMIT"))
    spot.submit(it)
    sent = _params(_calls(rs, "POST", "/api/v3/order")[0])
    assert sent["type"] == "STOP_LOSS_LIMIT"
    assert float(sent["stopPrice"]) == 29000.0
    assert float(sent["price"]) == 28900.0
    assert sent["timeInForce"] == "GTC"


def test_spot_stop_market_refused_when_symbol_does_not_allow_it(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    # The recorded exchangeInfo lists no STOP_LOSS for BTCUSDT: ccxt refuses before sending.
    with pytest.raises(InvalidOrderError, match="triggerPrice"):
        spot.submit(intent(side="sell", order_type="stop", stop_price=29000.0))
    assert not _calls(rs, "POST", "/order")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"order_type": "trailing_stop", "trail_percent": 1.0}, "trailing stop"),
        ({"time_in_force": "day"}, "DAY"),
        ({"reduce_only": True}, "reduce_only"),
    ],
)
def test_spot_refusals_send_nothing(
    rs: responses.RequestsMock, spot: CcxtBroker, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOrderError, match=message):
        spot.submit(intent(**kw))
    assert not _calls(rs, "POST", "/order")


def test_usdm_trailing_stop_uses_callback_rate_algo_order(
    rs: responses.RequestsMock, usdm: CcxtBroker
) -> None:
    algo = load("binance/usdm_open_algo_orders.json")[0]
    rs.post(_url(FAPI, "v1/algoOrder"), json=algo)
    it = intent(symbol="BTC/USDT:USDT", side="sell", quantity=0.001, order_type="trailing_stop",
                trail_percent=1.5, reduce_only=True)  # fmt: skip
    order = usdm.submit(it)
    sent = _params(_calls(rs, "POST", "/fapi/v1/algoOrder")[0])
    assert sent["type"] == "TRAILING_STOP_MARKET"
    assert float(sent["callbackRate"]) == 1.5
    assert sent["clientAlgoId"] == it.client_order_id
    assert sent["reduceOnly"] == "true"
    assert sent["side"] == "SELL"
    assert order.broker_order_id == str(algo["algoId"])
    assert order.status is OrderStatus.SUBMITTED


def test_usdm_limit_reduce_only(rs: responses.RequestsMock, usdm: CcxtBroker) -> None:
    rs.post(_url(FAPI, "v1/order"), json=load("binance/usdm_order_response.json"))
    it = intent(symbol="BTC/USDT:USDT", quantity=0.001, order_type="limit", limit_price=50000.0,
                reduce_only=True)  # fmt: skip
    order = usdm.submit(it)
    sent = _params(_calls(rs, "POST", "/fapi/v1/order")[0])
    assert (sent["type"], sent["reduceOnly"], sent["timeInForce"]) == ("LIMIT", "true", "GTC")
    assert sent["newClientOrderId"] == it.client_order_id
    assert order.status is OrderStatus.SUBMITTED
    assert order.quantity == 0.001


def test_usdm_positions_signed(rs: responses.RequestsMock, usdm: CcxtBroker) -> None:
    rs.get(_url(FAPI, "v1/leverageBracket"), json=load("binance/usdm_leverage_bracket.json"))
    risk = load("binance/usdm_position_risk.json")
    rs.get(re.compile(re.escape(FAPI) + r"v\d/positionRisk.*"), json=risk)
    (pos,) = usdm.positions()
    assert pos.symbol == "BTC/USDT:USDT"
    assert pos.quantity == float(risk[0]["positionAmt"])
    assert pos.avg_price == float(risk[0]["entryPrice"])


def test_bybit_stop_sends_order_link_id_and_trigger_direction(
    rs: responses.RequestsMock, bybit: CcxtBroker
) -> None:
    created = load("bybit/http_post_order_create.json")
    rs.post(_url(BYBIT, "order/create"), json=created)
    buy = intent(intent_id="intent-0003", symbol="BTC/USDT:USDT", quantity=0.01,
                 order_type="stop", stop_price=52000.0)  # fmt: skip
    sell = intent(intent_id="intent-0004", symbol="BTC/USDT:USDT", side="sell", quantity=0.01,
                  order_type="stop_limit", stop_price=48000.0, limit_price=47900.0)  # fmt: skip
    order = bybit.submit(buy)
    bybit.submit(sell)
    first, second = (_params(c) for c in _calls(rs, "POST", "/v5/order/create"))
    assert first["orderLinkId"] == buy.client_order_id
    assert (first["category"], first["orderType"], first["side"]) == ("linear", "Market", "Buy")
    assert float(first["triggerPrice"]) == 52000.0
    assert first["triggerDirection"] == "1"  # Bybit: 1 = rises to trigger
    assert second["triggerDirection"] == "2"  # 2 = falls to trigger
    assert (second["orderType"], float(second["price"])) == ("Limit", 47900.0)
    assert order.broker_order_id == created["result"]["orderId"]
    assert order.status is OrderStatus.SUBMITTED  # Bybit acknowledges with ids only


def test_bybit_trailing_stop_refused(rs: responses.RequestsMock, bybit: CcxtBroker) -> None:
    with pytest.raises(InvalidOrderError, match="position setting"):
        bybit.submit(intent(symbol="BTC/USDT:USDT", order_type="trailing_stop", trail_percent=1))
    assert not _calls(rs, "POST", "/order/create")


# -- idempotency -------------------------------------------------------------------------------
def test_binance_duplicate_client_id_returns_existing_order(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    it = intent(side="sell", quantity=12.0, order_type="limit", limit_price=4.0)
    rs.post(_url(SPOT, "order"), status=400, json=load("binance/spot_error_duplicate.json"))
    existing = spot_order(it.client_order_id, orderId=100234, origQty="12.00000000",
                          executedQty="12.00000000", status="FILLED")  # fmt: skip
    rs.get(_url(SPOT, "order"), json=existing)
    trades = copy.deepcopy(load("binance/account_trades_response.json"))
    trades[0]["symbol"] = "BTCUSDT"  # recorded for BNBBTC
    rs.get(_url(SPOT, "myTrades"), json=trades)

    order = spot.submit(it)

    assert len(_calls(rs, "POST", "/api/v3/order")) == 1
    lookup = _params(_calls(rs, "GET", "/api/v3/order")[0])
    assert lookup["origClientOrderId"] == it.client_order_id
    assert lookup["symbol"] == "BTCUSDT"
    assert _params(_calls(rs, "GET", "/api/v3/myTrades")[0])["orderId"] == "100234"
    assert order.status is OrderStatus.FILLED
    assert order.broker_order_id == "100234"
    (fill,) = order.fills
    assert (fill.fill_id, fill.quantity, fill.price) == ("28457", 12.0, 4.000001)
    assert (fill.fee, fill.fee_currency) == (10.1, "BNB")
    assert int(fill.time.timestamp() * 1000) == trades[0]["time"]


def test_timed_out_submit_retried_by_engine_policy_finds_the_order(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    """First POST times out (the order reached the venue), the retry is refused as a
    duplicate, and the lookup returns the order: exactly one order, found."""
    it = intent(order_type="limit", limit_price=30000.0, quantity=0.5)
    rs.post(_url(SPOT, "order"), body=requests.exceptions.ReadTimeout("read timed out"))
    rs.post(_url(SPOT, "order"), status=400, json=load("binance/spot_error_duplicate.json"))
    rs.get(_url(SPOT, "order"), json=spot_order(it.client_order_id))
    sleeps: list[float] = []
    order = call_with_retry(lambda: spot.submit(it), RetryPolicy(attempts=3),
                            sleep=sleeps.append, rand=lambda: 1.0)  # fmt: skip
    posts = _calls(rs, "POST", "/api/v3/order")
    assert len(posts) == 2
    assert {_params(p)["newClientOrderId"] for p in posts} == {it.client_order_id}
    assert order.client_order_id == it.client_order_id
    assert order.status is OrderStatus.SUBMITTED
    assert len(sleeps) == 1


def test_bybit_duplicate_order_link_id_returns_existing(
    rs: responses.RequestsMock, bybit: CcxtBroker
) -> None:
    it = intent(symbol="BTC/USDT:USDT", quantity=0.01, order_type="limit", limit_price=30000.0)
    rs.post(_url(BYBIT, "order/create"), json=load("bybit/http_post_order_create_duplicate.json"))
    realtime = copy.deepcopy(load("bybit/http_get_orders_realtime.json"))
    realtime["result"]["list"] = []  # not among open orders ...
    rs.get(_url(BYBIT, "order/realtime"), json=realtime)
    history = copy.deepcopy(load("bybit/http_get_order_partially_filled_rejected.json"))
    history["result"]["list"][0]["orderLinkId"] = it.client_order_id  # ... but in history
    rs.get(_url(BYBIT, "order/history"), json=history)
    execs = copy.deepcopy(load("bybit/http_get_executions.json"))
    rec = history["result"]["list"][0]
    execs["result"]["list"] = [dict(execs["result"]["list"][0], orderId=rec["orderId"],
                                    orderLinkId=it.client_order_id, execQty="0.005",
                                    execPrice="30000", execFee="0.0825")]  # fmt: skip
    rs.get(_url(BYBIT, "execution/list"), json=execs)

    order = bybit.submit(it)

    q = _params(_calls(rs, "GET", "/v5/order/history")[0])
    assert q["orderLinkId"] == it.client_order_id
    assert order.broker_order_id == rec["orderId"]
    # Recorded "Rejected" with cumExecQty 0.005 of 0.010: the fill stands, the rest is
    # dead, so CANCELLED with the venue's reason (REJECTED after a fill is no transition).
    assert order.status is OrderStatus.CANCELLED
    assert order.filled_quantity == float(rec["cumExecQty"])
    assert order.reason is not None
    assert "INSUFFICIENT_MARGIN" in order.reason
    (fill,) = order.fills
    assert (fill.quantity, fill.price, fill.fee) == (0.005, 30000.0, 0.0825)


# -- get_order / cancel / open orders ------------------------------------------------------------
def test_get_order_after_restart_searches_configured_symbols(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    coid = intent().client_order_id
    rs.get(_url(SPOT, "order"), json=spot_order(coid, executedQty="0.4", origQty="1.0"))
    trades = copy.deepcopy(load("binance/account_trades_response.json"))
    trades[0].update(symbol="BTCUSDT", orderId=1, qty="0.4")
    rs.get(_url(SPOT, "myTrades"), json=trades)
    order = spot.get_order(coid)
    assert order is not None
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.filled_quantity, order.quantity) == (0.4, 1.0)
    assert [f.quantity for f in order.fills] == [0.4]


def test_get_order_unknown_is_none(rs: responses.RequestsMock, spot: CcxtBroker) -> None:
    rs.get(_url(SPOT, "order"), status=400, json={"code": -2013, "msg": "Order does not exist."})
    assert spot.get_order("at-never-sent") is None


def test_cancel_unknown_raises_not_found(rs: responses.RequestsMock, spot: CcxtBroker) -> None:
    rs.get(_url(SPOT, "order"), status=400, json={"code": -2013, "msg": "Order does not exist."})
    with pytest.raises(OrderNotFoundError):
        spot.cancel("at-never-sent")


def test_cancel_open_order(rs: responses.RequestsMock, spot: CcxtBroker) -> None:
    coid = intent().client_order_id
    rs.get(_url(SPOT, "order"), json=spot_order(coid))
    cancelled = load("binance/cancel_order_response.json")
    rs.delete(_url(SPOT, "order"), json=dict(cancelled, symbol="BTCUSDT"))
    rs.get(_url(SPOT, "order"), json=spot_order(coid, status="CANCELED"))
    order = spot.cancel(coid)
    sent = _params(_calls(rs, "DELETE", "/api/v3/order")[0])
    assert sent["orderId"] == "1"
    assert order.status is OrderStatus.CANCELLED


def test_open_orders(rs: responses.RequestsMock, spot: CcxtBroker) -> None:
    rs.get(_url(SPOT, "openOrders"), json=[spot_order("at-abc", executedQty="0.3")])
    (order,) = spot.open_orders()
    assert order.client_order_id == "at-abc"
    assert order.status is OrderStatus.PARTIALLY_FILLED


def test_bybit_positions(rs: responses.RequestsMock, bybit: CcxtBroker) -> None:
    raw = load("bybit/http_get_positions.json")
    rs.get(_url(BYBIT, "position/list"), json=raw)
    got = {p.symbol: p for p in bybit.positions()}
    held = [r for r in raw["result"]["list"] if float(r["size"]) != 0]  # SOLUSDT is flat
    assert set(got) == {r["symbol"].replace("USDT", "/USDT:USDT") for r in held}
    for rec in held:
        sym = rec["symbol"].replace("USDT", "/USDT:USDT")
        sign = 1.0 if rec["side"] == "Buy" else -1.0
        assert got[sym].quantity == sign * float(rec["size"])
        assert got[sym].avg_price == float(rec["avgPrice"])


# -- status mapping ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        (None, 0.0, OrderStatus.SUBMITTED),
        ("open", 0.0, OrderStatus.SUBMITTED),
        ("open", 0.5, OrderStatus.PARTIALLY_FILLED),
        ("closed", 1.0, OrderStatus.FILLED),
        ("canceled", 0.0, OrderStatus.CANCELLED),
        ("canceled", 0.5, OrderStatus.CANCELLED),
        ("expired", 0.2, OrderStatus.EXPIRED),
        ("rejected", 0.0, OrderStatus.REJECTED),
        ("rejected", 0.5, OrderStatus.CANCELLED),
    ],
)
def test_map_status(status: str | None, filled: float, expected: OrderStatus) -> None:
    assert map_status(status, filled, 1.0) is expected


@pytest.mark.parametrize(
    ("binance_status", "expected"),
    [("NEW", OrderStatus.SUBMITTED), ("PARTIALLY_FILLED", OrderStatus.PARTIALLY_FILLED),
     ("FILLED", OrderStatus.FILLED), ("CANCELED", OrderStatus.CANCELLED),
     ("REJECTED", OrderStatus.REJECTED), ("EXPIRED", OrderStatus.EXPIRED)],
)  # fmt: skip
def test_binance_statuses_through_ccxt(
    rs: responses.RequestsMock, spot: CcxtBroker, binance_status: str, expected: OrderStatus
) -> None:
    filled = {"PARTIALLY_FILLED": "0.4", "FILLED": "1.0"}.get(binance_status, "0.0")
    rs.get(_url(SPOT, "order"), json=spot_order("at-x", status=binance_status, origQty="1.0",
                                                 executedQty=filled))  # fmt: skip
    rs.get(_url(SPOT, "myTrades"), json=[])
    order = spot.get_order("at-x")
    assert order is not None
    assert order.status is expected


def test_fill_vwap() -> None:
    assert fill_vwap([]) is None


# -- error mapping -------------------------------------------------------------------------------
def _post_error(rs: responses.RequestsMock, **kw: Any) -> None:
    rs.post(_url(SPOT, "order"), **kw)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        ({"body": requests.exceptions.ReadTimeout("timed out")}, SubmitTimeoutError),
        ({"body": requests.exceptions.ConnectionError("reset")}, SubmitTimeoutError),
        ({"status": 503, "body": "Service Unavailable"}, SubmitTimeoutError),
        ({"status": 400, "json": {"code": -1021, "msg": "Timestamp for this request is outside "
          "of the recvWindow."}}, RetryableBrokerError),
        ({"status": 400, "json": {"code": -2010, "msg": "Account has insufficient balance for "
          "requested action."}}, InsufficientFundsError),
        ({"status": 400, "json": {"code": -1121, "msg": "Invalid symbol."}}, InvalidOrderError),
        ({"status": 400, "json": {"code": -1013, "msg": "Filter failure: LOT_SIZE"}},
         InvalidOrderError),
        ({"status": 401, "json": {"code": -2015, "msg": "Invalid API-key, IP, or permissions "
          "for action."}}, AuthenticationError),
    ],
)  # fmt: skip
def test_submit_error_mapping(
    rs: responses.RequestsMock, spot: CcxtBroker, response: dict[str, Any], error: type
) -> None:
    _post_error(rs, **response)
    with pytest.raises(error) as info:
        spot.submit(intent(order_type="limit", limit_price=30000.0))
    assert type(info.value) is error
    assert info.value.__cause__ is not None  # raised from the ccxt error


def test_rate_limited_carries_retry_after(rs: responses.RequestsMock, spot: CcxtBroker) -> None:
    _post_error(rs, status=429, headers={"Retry-After": "7"},
                json={"code": -1003, "msg": "Too many requests."})  # fmt: skip
    with pytest.raises(RateLimitedError) as info:
        spot.submit(intent())
    assert info.value.retry_after == 7.0


def test_read_timeout_outside_submit_is_plain_retryable(
    rs: responses.RequestsMock, spot: CcxtBroker
) -> None:
    rs.get(_url(SPOT, "order"), body=requests.exceptions.ReadTimeout("timed out"))
    with pytest.raises(RetryableBrokerError) as info:
        spot.get_order("at-x")
    assert type(info.value) is RetryableBrokerError


def test_bybit_error_codes(rs: responses.RequestsMock, bybit: CcxtBroker) -> None:
    body = {"retCode": 110007, "retMsg": "ab not enough for new order", "result": {},
            "retExtInfo": {}, "time": 1668838414793}  # fmt: skip
    rs.post(_url(BYBIT, "order/create"), json=body)
    with pytest.raises(InsufficientFundsError):
        bybit.submit(intent(symbol="BTC/USDT:USDT", quantity=0.01))
    rs.replace(responses.POST, _url(BYBIT, "order/create"),
               json={**body, "retCode": 10003, "retMsg": "API key is invalid."})  # fmt: skip
    with pytest.raises(AuthenticationError):
        bybit.submit(intent(intent_id="intent-0009", symbol="BTC/USDT:USDT", quantity=0.01))


# -- construction, credentials, logging ------------------------------------------------------------
def test_sandbox_switches_to_testnet_urls(rs: responses.RequestsMock) -> None:
    rs.get(re.compile(r"https://testnet\.binance\.vision/api/v3/exchangeInfo.*"),
           json=load("binance/spot_exchange_info.json"))  # fmt: skip
    rs.post(re.compile(r"https://testnet\.binance\.vision/api/v3/order.*"),
            json=load("binance/new_order_full_response.json"))  # fmt: skip
    broker = CcxtBroker("binance", credentials=creds(), sandbox=True, limiter=RateLimiter({}))
    broker.submit(intent(side="sell", quantity=10.0))
    assert all("testnet.binance.vision" in c.request.url for c in rs.calls)


def test_unknown_exchange_id_is_named() -> None:
    with pytest.raises(ValueError, match="no-such-venue"):
        CcxtBroker("no-such-venue")


def test_credentials_never_in_repr_or_logs(
    rs: responses.RequestsMock, spot: CcxtBroker, caplog: pytest.LogCaptureFixture
) -> None:
    assert KEY not in repr(spot)
    assert SECRET not in repr(spot)
    assert KEY not in repr(spot.credentials)
    assert SECRET not in str(spot.credentials)
    assert KEY not in spot.credentials.model_dump_json()
    rs.post(_url(SPOT, "order"), status=400, json={"code": -1121, "msg": "Invalid symbol."})
    with caplog.at_level(logging.DEBUG), pytest.raises(InvalidOrderError) as info:
        spot.submit(intent())
    # ccxt logs each request with its headers (X-MBX-APIKEY) at DEBUG: it must be masked.
    assert any("Request" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text
    assert SECRET not in caplog.text
    assert KEY not in str(info.value)


def test_credentials_from_env() -> None:
    env = {"ALGOTRENDY_BROKER_BYBIT_API_KEY": "k1", "ALGOTRENDY_BROKER_BYBIT_API_SECRET": "s1"}
    c = BrokerCredentials.from_env("bybit", env)
    assert BrokerCredentials.reveal(c.api_key) == "k1"
    assert c.missing("api_key", "api_secret", "refresh_token") == ["refresh_token"]
