"""Inputs at the edge of what the API can represent: infinite numbers, NUL characters,
integers past the id columns' range, malformed or non-JSON bodies, symbols that are blank
or spelled in compatibility forms, and times outside the candle index's range. Each was
a 500 (or a 202 for something the engine could not read) before it was refused here."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_helpers import EXCHANGE, Session, assert_problem
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.messaging.envelope import Envelope
from algotrendy.messaging.memory import InMemoryQueue


def _post_raw(client: TestClient, path: str, raw: str, session: Session) -> Any:
    """Python's JSON parser (FastAPI's) reads Infinity and 1e400; json= cannot send them."""
    headers = {**session.headers, "Content-Type": "application/json"}
    return client.post(path, content=raw.encode(), headers=headers)


def _only_error(reply: Any, status: int = 422) -> dict[str, str]:
    body = assert_problem(reply, status)
    [error] = body["errors"]
    return dict(error)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"symbol": "GOOG", "side": "buy", "quantity": Infinity}', "quantity"),
        ('{"symbol": "GOOG", "side": "buy", "quantity": 1e400}', "quantity"),
        ('{"symbol": "GOOG", "side": "buy", "quantity": NaN}', "quantity"),
        (
            '{"symbol": "GOOG", "side": "buy", "quantity": 1, "order_type": "limit", '
            '"limit_price": Infinity}',
            "limit_price",
        ),
    ],
)
def test_non_finite_order_numbers_are_refused_and_nothing_is_queued(
    client: TestClient, ctx: ApiContext, trader: Session, raw: str, field: str
) -> None:
    error = _only_error(_post_raw(client, "/orders", raw, trader))
    assert (error["field"], error["pointer"]) == (field, f"#/{field}")
    assert "finite" in error["detail"]
    assert isinstance(ctx.orders_queue, InMemoryQueue)
    assert len(ctx.orders_queue) == 0


def test_limit_order_without_price_names_limit_price(client: TestClient, trader: Session) -> None:
    body = {"symbol": "GOOG", "side": "buy", "quantity": 1, "order_type": "limit"}
    error = _only_error(client.post("/orders", json=body, headers=trader.headers))
    assert (error["field"], error["pointer"]) == ("limit_price", "#/limit_price")
    assert error["detail"] == "limit order needs limit_price"


def test_malformed_json_points_at_the_body_with_the_position(
    client: TestClient, trader: Session
) -> None:
    error = _only_error(_post_raw(client, "/orders", '{"symbol":', trader))
    assert (error["field"], error["pointer"]) == ("body", "#")
    assert error["detail"].startswith("not valid JSON: ")
    assert error["detail"].endswith("at character 10")


def test_non_json_content_type_is_415(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/orders",
        content=b'{"symbol": "GOOG", "side": "buy", "quantity": 1}',
        headers={**trader.headers, "Content-Type": "text/plain"},
    )
    body = assert_problem(reply, 415, "unsupported-media-type")
    assert "text/plain" in body["detail"]
    assert reply.headers["accept-post"] == "application/json"


def test_json_suffix_content_type_is_still_json(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/orders",
        content=b'{"symbol": "GOOG", "side": "buy", "quantity": 1}',
        headers={**trader.headers, "Content-Type": "application/merge-patch+json"},
    )
    assert reply.status_code == 202, reply.text


def test_nul_in_a_body_string_is_refused_before_the_database(client: TestClient) -> None:
    reply = client.post("/auth/login", json={"username": "adm\u0000in", "password": "x" * 12})
    error = _only_error(reply)
    assert (error["field"], error["pointer"]) == ("username", "#/username")
    assert "NUL" in error["detail"]


def test_nul_in_a_nested_body_string_names_its_place(client: TestClient, trader: Session) -> None:
    body = {"name": "nul", "strategy_type": "sma_cross", "symbols": ["GOOG", "BTC\u0000"]}
    error = _only_error(client.post("/strategies", json=body, headers=trader.headers))
    assert (error["field"], error["pointer"]) == ("symbols.1", "#/symbols/1")


@pytest.mark.parametrize(
    ("path", "params", "location", "name"),
    [
        ("/orders", {"symbol": "A\x00"}, "query", "symbol"),
        ("/positions", {"account": "A\x00"}, "query", "account"),
        ("/backtests/%00", {}, "path", "backtest_id"),
    ],
)
def test_nul_in_path_or_query_is_refused(
    client: TestClient,
    trader: Session,
    path: str,
    params: dict[str, str],
    location: str,
    name: str,
) -> None:
    error = _only_error(client.get(path, params=params, headers=trader.headers))
    assert (error["location"], error["parameter"]) == (location, name)


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        (f"/strategies/{2**31}", {}, "strategy_id"),
        (f"/strategies/{2**63}", {}, "strategy_id"),
        ("/orders", {"before_id": str(2**63)}, "before_id"),
        ("/backtests/x/results", {"offset": str(2**63)}, "offset"),
    ],
)
def test_integers_past_the_id_range_are_refused(
    client: TestClient, trader: Session, path: str, params: dict[str, str], name: str
) -> None:
    error = _only_error(client.get(path, params=params, headers=trader.headers))
    assert error["parameter"] == name
    assert str(2**31 - 1) in error["detail"]


def test_largest_int32_id_is_just_not_found(client: TestClient, trader: Session) -> None:
    assert_problem(client.get(f"/strategies/{2**31 - 1}", headers=trader.headers), 404)


@pytest.mark.parametrize("symbol", ["   ", "", "..", "GO OG", "ＧＯＯＧ\u200b", "A" * 33])
def test_malformed_order_symbols_are_refused(
    client: TestClient, trader: Session, symbol: str
) -> None:
    body = {"symbol": symbol, "side": "buy", "quantity": 1}
    error = _only_error(client.post("/orders", json=body, headers=trader.headers))
    assert error["field"] == "symbol"


def test_symbols_are_normalised_nfkc_and_stripped(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    body = {"symbol": " ＧＯＯＧ ", "side": "buy", "quantity": 1}
    reply = client.post("/orders", json=body, headers=trader.headers)
    assert reply.status_code == 202, reply.text
    assert isinstance(ctx.orders_queue, InMemoryQueue)
    [message] = ctx.orders_queue.receive(max_messages=10)
    intent = Envelope.parse(message.body).intent()
    assert intent.symbol == "GOOG"

    created = client.post(
        "/strategies",
        json={"name": "norm", "strategy_type": "sma_cross", "symbols": ["ｂｔｃ/usdt"]},
        headers=trader.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["symbols"] == ["btc/usdt"]


# -- market data ---------------------------------------------------------------------------
def _market(client: TestClient, session: Session, path: str, **params: Any) -> Any:
    return client.get(
        path, params={"exchange": EXCHANGE, "symbol": "GOOG", **params}, headers=session.headers
    )


def test_naive_times_are_utc_and_mix_with_aware_ones(client: TestClient, viewer: Session) -> None:
    mixed = _market(
        client,
        viewer,
        "/market/candles",
        start="2010-01-01T00:00:00Z",
        end="2011-01-01T00:00:00",
    )
    aware = _market(
        client,
        viewer,
        "/market/candles",
        start="2010-01-01T00:00:00Z",
        end="2011-01-01T00:00:00Z",
    )
    assert mixed.status_code == 200, mixed.text
    assert mixed.json()["candles"] == aware.json()["candles"]
    assert mixed.json()["count"] > 200

    rsi = _market(client, viewer, "/market/indicators/rsi", start="2010-01-01T00:00:00")
    assert rsi.status_code == 200, rsi.text
    assert rsi.json()["time"][0] == "2010-01-04T00:00:00+00:00"


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("start", "2300-01-01T00:00:00Z"),
        ("end", "9999-12-31T23:59:59Z"),
        ("start", "0001-01-01T00:00:00+01:00"),
    ],
)
@pytest.mark.parametrize("path", ["/market/candles", "/market/indicators/rsi"])
def test_times_outside_the_candle_range_are_422(
    client: TestClient, viewer: Session, path: str, param: str, value: str
) -> None:
    error = _only_error(_market(client, viewer, path, **{param: value}))
    assert (error["location"], error["parameter"]) == ("query", param)
    assert "1678-01-01 .. 2262-01-01" in error["detail"]


@pytest.mark.parametrize(
    ("path", "param", "value"),
    [
        ("/market/indicators/rsi", "period", str(2**63)),
        ("/market/indicators/rsi", "period", str(2**31)),
        ("/market/indicators/bollinger_bands", "nbdev_up", "inf"),
        ("/market/indicators/bollinger_bands", "nbdev_up", "nan"),
    ],
)
def test_indicator_parameters_are_bounded(
    client: TestClient, viewer: Session, path: str, param: str, value: str
) -> None:
    error = _only_error(_market(client, viewer, path, **{param: value}))
    assert error["parameter"] == param


# -- backtests -----------------------------------------------------------------------------
def _backtest(client: TestClient, session: Session, **fields: Any) -> Any:
    body = {"strategy": "sma_cross", "symbols": ["GOOG"], "exchange": EXCHANGE, **fields}
    return client.post("/backtests", json=body, headers=session.headers)


@pytest.mark.parametrize("key", ["cash", "fixed_fee", "size"])
def test_infinite_backtest_config_is_refused(client: TestClient, trader: Session, key: str) -> None:
    raw = json.dumps(
        {"strategy": "sma_cross", "symbols": ["GOOG"], "params": {}, "config": {key: 1}}
    ).replace(f'"{key}": 1', f'"{key}": Infinity')
    error = _only_error(_post_raw(client, "/backtests", raw, trader))
    assert error["field"] == f"config.{key}"


@pytest.mark.parametrize("symbol", ["", "  ", ".."])
def test_malformed_backtest_symbols_are_refused(
    client: TestClient, trader: Session, symbol: str
) -> None:
    error = _only_error(_backtest(client, trader, params={}, symbols=[symbol]))
    assert error["field"] == "symbols.0"


def test_backtest_start_past_the_candle_range_is_refused(
    client: TestClient, trader: Session
) -> None:
    error = _only_error(_backtest(client, trader, params={}, start="2300-01-01T00:00:00Z"))
    assert error["field"] == "start"


@pytest.mark.parametrize("spec", ["0:1e100:1e-100", "1:1e999999999:1"])
def test_backtest_grids_past_decimal_limits_are_422(
    client: TestClient, trader: Session, spec: str
) -> None:
    error = _only_error(_backtest(client, trader, grid={"fast": spec}))
    assert error["field"] == "grid"


def test_body_in_a_declared_non_utf8_charset_is_415_naming_it(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """Was FastAPI's plain 400 "There was an error parsing the body" (not problem+json)."""
    raw = '{"symbol": "GOOG", "side": "buy", "quantity": 1, "strategy": "café"}'
    for content in (raw.encode("latin-1"), raw.replace("é", "e").encode("latin-1")):
        # with and without a byte outside ASCII: the declared charset decides, not the bytes
        reply = client.post(
            "/orders",
            content=content,
            headers={**trader.headers, "Content-Type": "application/json; charset=latin-1"},
        )
        body = assert_problem(reply, 415, "unsupported-media-type")
        assert body["detail"] == (
            "charset 'latin-1' is not accepted; JSON bodies must be UTF-8 (RFC 8259)"
        )
        assert reply.headers["accept-post"] == "application/json"
    assert isinstance(ctx.orders_queue, InMemoryQueue)
    assert len(ctx.orders_queue) == 0


def test_utf8_charset_spelled_any_way_is_accepted(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/orders",
        content='{"symbol": "GOOG", "side": "buy", "quantity": 1, "strategy": "café"}'.encode(),
        headers={**trader.headers, "Content-Type": "application/json; charset=UTF8"},
    )
    assert reply.status_code == 202, reply.text


def test_body_that_is_not_utf8_is_400_naming_the_byte(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """Was FastAPI's plain 400 "There was an error parsing the body" (not problem+json)."""
    content = b'{"symbol": "GOOG", "side": "buy", "quantity": 1, "strategy": "caf\xe9"}'
    reply = client.post(
        "/orders", content=content, headers={**trader.headers, "Content-Type": "application/json"}
    )
    error = _only_error(reply, 400)
    assert (error["field"], error["pointer"], error["location"]) == ("body", "#", "body")
    position = content.index(b"\xe9")
    assert error["detail"] == (
        f"not valid UTF-8: invalid continuation byte (byte 0xe9) at byte {position}"
    )
    assert reply.json()["type"] == "tag:algotrendy,2025:api/bad-request"
    assert isinstance(ctx.orders_queue, InMemoryQueue)
    assert len(ctx.orders_queue) == 0
