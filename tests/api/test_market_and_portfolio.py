from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest
import talib
from api_helpers import EXCHANGE, Session, assert_problem
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.execution.positions import Position
from algotrendy.storage.base import LatestPrice, put_latest_price
from algotrendy.storage.relational.repositories import SqlExecutionRepository


def test_candles_are_the_stored_bars(client: TestClient, viewer: Session, goog: Any) -> None:
    reply = client.get(
        "/market/candles",
        headers=viewer.headers,
        params={
            "exchange": EXCHANGE,
            "symbol": "GOOG",
            "start": "2010-01-01T00:00:00Z",
            "end": "2010-02-01T00:00:00Z",
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = goog.loc["2010-01-01":"2010-01-31"]
    assert body["count"] == len(expected) > 0
    assert [c["close"] for c in body["candles"]] == expected["close"].tolist()
    assert body["candles"][0]["time"] == expected.index[0].isoformat()
    last = client.get(
        "/market/candles",
        headers=viewer.headers,
        params={"exchange": EXCHANGE, "symbol": "GOOG", "limit": 3},
    ).json()
    assert [c["close"] for c in last["candles"]] == goog["close"].iloc[-3:].tolist()


def test_latest_price_prefers_the_cache(
    client: TestClient, ctx: ApiContext, viewer: Session, goog: Any
) -> None:
    params = {"exchange": EXCHANGE, "symbol": "GOOG", "timeframe": "1d"}
    from_candles = client.get("/market/price", params=params, headers=viewer.headers).json()
    assert from_candles["source"] == "candles"
    assert from_candles["price"] == float(goog["close"].iloc[-1])
    assert ctx.cache is not None
    now = datetime(2025, 1, 1, tzinfo=UTC)
    put_latest_price(
        ctx.cache,
        LatestPrice(
            exchange=EXCHANGE, symbol="GOOG", timeframe="1m", price=123.5, time=now, updated_at=now
        ),
    )
    cached = client.get("/market/price", params=params, headers=viewer.headers).json()
    assert (cached["source"], cached["price"]) == ("cache", 123.5)
    missing = client.get("/market/price", params={"symbol": "NOPE"}, headers=viewer.headers)
    assert_problem(missing, 404, "not-found")


def test_indicator_over_a_range_matches_talib(
    client: TestClient, viewer: Session, goog: Any
) -> None:
    reply = client.get(
        "/market/indicators/rsi",
        headers=viewer.headers,
        params={
            "exchange": EXCHANGE,
            "symbol": "GOOG",
            "period": "9",
            "start": "2012-01-01T00:00:00Z",
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    full = talib.RSI(goog["close"].to_numpy(dtype=np.float64), timeperiod=9)
    keep = goog.index >= "2012-01-01"
    assert body["params"] == {"period": 9}
    assert body["warmup_bars"] == 9
    assert body["time"][0] == goog.index[keep][0].isoformat()
    # Cut after computing on the whole history: no warm-up NaN at the range's start.
    assert body["rsi"] == pytest.approx(full[keep].tolist())


def test_multi_output_indicator(client: TestClient, viewer: Session, goog: Any) -> None:
    body = client.get(
        "/market/indicators/bollinger_bands",
        headers=viewer.headers,
        params={"exchange": EXCHANGE, "symbol": "GOOG", "period": "20", "limit": "5"},
    ).json()
    upper, _middle, lower = talib.BBANDS(
        goog["close"].to_numpy(dtype=np.float64), timeperiod=20, nbdevup=2, nbdevdn=2, matype=0
    )
    assert body["bb_upper"] == pytest.approx(upper[-5:].tolist())
    assert body["bb_lower"] == pytest.approx(lower[-5:].tolist())


def test_indicator_errors(client: TestClient, viewer: Session) -> None:
    base = {"exchange": EXCHANGE, "symbol": "GOOG"}
    unknown = client.get(
        "/market/indicators/rsi", headers=viewer.headers, params={**base, "perod": "9"}
    )
    body = assert_problem(unknown, 422)
    assert body["errors"][0] == {
        "location": "query",
        "field": "perod",
        "parameter": "perod",
        "detail": "not a parameter of rsi; known: period",
    }
    bad = client.get(
        "/market/indicators/rsi", headers=viewer.headers, params={**base, "period": "ten"}
    )
    assert "expected an integer, got 'ten'" in assert_problem(bad, 422)["detail"]
    too_small = client.get(
        "/market/indicators/rsi", headers=viewer.headers, params={**base, "period": "1"}
    )
    assert "period" in assert_problem(too_small, 422)["detail"]
    assert_problem(
        client.get("/market/indicators/zigzag", headers=viewer.headers, params=base), 404
    )
    catalogue = client.get("/market/indicators", headers=viewer.headers).json()
    assert "rsi" in {i["name"] for i in catalogue}


def test_positions_and_daily_pnl(client: TestClient, ctx: ApiContext, viewer: Session) -> None:
    repo = SqlExecutionRepository(ctx.db)
    repo.save_positions(
        [
            Position("default", "sma", "BTC/USDT", 0.5, 40000.0, 120.0, 4.0),
            Position("default", "", "AAPL", 0.0, 0.0, -10.0, 1.0),
        ]
    )
    repo.add_daily_pnl("default", "sma", date(2025, 1, 2), realized=100.0, fees=2.5)
    repo.add_daily_pnl("default", "sma", date(2025, 1, 3), realized=-30.0, fees=1.5)
    repo.add_daily_pnl("default", "", date(2025, 1, 3), realized=5.0, fees=0.0)

    open_only = client.get("/positions", headers=viewer.headers).json()
    assert [(p["symbol"], p["quantity"]) for p in open_only] == [("BTC/USDT", 0.5)]
    everything = client.get("/positions", params={"include_flat": True}, headers=viewer.headers)
    assert len(everything.json()) == 2

    pnl = client.get("/pnl/daily", params={"start": "2025-01-03"}, headers=viewer.headers).json()
    assert [(d["strategy"], d["net"]) for d in pnl["days"]] == [("", 5.0), ("sma", -31.5)]
    assert pnl["total_net"] == pytest.approx(5.0 - 31.5)
    assert pnl["total_fees"] == pytest.approx(1.5)
    bad = client.get(
        "/pnl/daily", params={"start": "2025-01-03", "end": "2025-01-01"}, headers=viewer.headers
    )
    assert assert_problem(bad, 422)["errors"][0]["parameter"] == "end"
