"""CcxtChannel over stretches without candles longer than one page.

Coinbase, OKX and Binance COIN-M answer a candle request for a bounded window only, and
send no candle for a bucket without trades: an empty page there means "nothing in this
window", not "nothing after it". The servers below replay each exchange's request
semantics (as ccxt sends them) over constructed candles with such a stretch."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import responses
from ccxt_helpers import channel

from algotrendy.data.channels.ccxt_channel import EXCHANGES
from algotrendy.data.channels.retry import RetryPolicy

Loader = Callable[[str], Any]
Reply = Callable[[Any], tuple[int, dict[str, str], str]]
COINBASE = "https://api.coinbase.com/api/v3/brokerage/market"
HOUR_S = 3600
T0 = datetime(2024, 4, 1, tzinfo=UTC)
T0_S = int(T0.timestamp())


def query(request: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def price(i: int) -> float:
    """A distinct close per bar, so a wrong or repeated bar cannot go unnoticed."""
    return 100.0 + i


def expected(bars: list[int], step: timedelta) -> pd.DataFrame:
    index = pd.DatetimeIndex([T0 + i * step for i in bars], name="time").as_unit("ns")
    closes = [price(i) for i in bars]
    return pd.DataFrame(
        {
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "volume": [1.0] * len(bars),
        },
        index=index,
    )


# -- Coinbase: GET .../products/{id}/candles?start=&end= (seconds, both inclusive) -----------


def coinbase_server(bars: list[int], calls: list[tuple[int, int]]) -> Reply:
    """Newest first, no candle for a bar without trades, more than 350 buckets refused
    (Coinbase Advanced Trade's documented cap)."""

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        q = query(request)
        start, end = int(q["start"]), int(q["end"])
        calls.append((start, end))
        if (end - start) // HOUR_S + 1 > 350:
            body = {"error": "INVALID_ARGUMENT", "message": "too many candles requested"}
            return 400, {"Content-Type": "application/json"}, json.dumps(body)
        candles = [
            {
                "start": str(T0_S + i * HOUR_S),
                "low": str(price(i) - 1),
                "high": str(price(i) + 1),
                "open": str(price(i)),
                "close": str(price(i)),
                "volume": "1",
            }
            for i in reversed(bars)
            if start <= T0_S + i * HOUR_S <= end
        ]
        return 200, {"Content-Type": "application/json"}, json.dumps({"candles": candles})

    return reply


@pytest.fixture
def coinbase_markets(http: responses.RequestsMock, fixture_json: Loader) -> None:
    http.add(
        responses.GET,
        f"{COINBASE}/products",
        json=fixture_json("exchange/coinbase/http_products.json"),
    )
    http.add(
        responses.GET,
        f"{COINBASE}/products?product_type=FUTURE",
        json=fixture_json("exchange/coinbase/http_products_future.json"),
    )


def serve_coinbase(http: responses.RequestsMock, bars: list[int]) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    http.add_callback(
        responses.GET,
        re.compile(rf"{re.escape(COINBASE)}/products/BTC-USD/candles"),
        callback=coinbase_server(bars, calls),
    )
    return calls


@pytest.mark.usefixtures("coinbase_markets")
def test_coinbase_steps_over_a_no_trade_stretch_longer_than_a_page(
    http: responses.RequestsMock, policy: RetryPolicy
) -> None:
    """Bars 0-49, no trades for 400 h, bars 450-599: the window [50, 350) is empty, which
    used to end the fetch with 50 of the 200 bars (and stall every later ingest at 50)."""
    bars = list(range(50)) + list(range(450, 600))
    calls = serve_coinbase(http, bars)
    frame = channel("coinbase", policy).fetch_ohlcv("BTC/USD", "1h", T0, T0 + timedelta(hours=600))
    pd.testing.assert_frame_equal(frame, expected(bars, timedelta(hours=1)))
    # Consecutive windows of 300 bars, each within Coinbase's cap, none asked twice.
    assert [((s - T0_S) // HOUR_S, (e - T0_S) // HOUR_S) for s, e in calls] == [
        (0, 299),
        (300, 599),
    ]


@pytest.mark.usefixtures("coinbase_markets")
def test_coinbase_resumes_inside_a_gap_and_reaches_the_later_bars(
    http: responses.RequestsMock, policy: RetryPolicy
) -> None:
    """What a scheduled ingest asks after storing bar 49: the first window is empty."""
    bars = list(range(50)) + list(range(450, 600))
    calls = serve_coinbase(http, bars)
    frame = channel("coinbase", policy).fetch_ohlcv(
        "BTC/USD", "1h", T0 + timedelta(hours=50), T0 + timedelta(hours=600)
    )
    pd.testing.assert_frame_equal(frame, expected(list(range(450, 600)), timedelta(hours=1)))
    assert len(calls) == 2


@pytest.mark.usefixtures("coinbase_markets")
def test_an_empty_range_ends_after_one_request_per_window(
    http: responses.RequestsMock, policy: RetryPolicy
) -> None:
    """No candle at all: the loop still ends, after ceil(range / page) requests."""
    calls = serve_coinbase(http, [])
    hours = 1000
    frame = channel("coinbase", policy).fetch_ohlcv(
        "BTC/USD", "1h", T0, T0 + timedelta(hours=hours)
    )
    assert frame.empty
    assert len(calls) == math.ceil(hours / EXCHANGES["coinbase"].page_limit)
    assert calls[-1][1] == T0_S + hours * HOUR_S - 1  # the last window stops at `until`


# -- OKX: GET /api/v5/market/(history-)candles?before=&after=&limit= (ms, both exclusive) ---


def okx_server(bars: list[int], calls: list[dict[str, str]]) -> Reply:
    """Newest first between `before` and `after`, at most min(limit, 300) rows."""

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        q = query(request)
        calls.append(q)
        before, after = int(q["before"]), int(q["after"])
        cap = min(int(q.get("limit", 100)), 300)
        data = []
        for i in reversed(bars):
            t, p = (T0_S + i * 60) * 1000, price(i)
            if before < t < after:
                # [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]
                data.append([str(t), str(p), str(p + 1), str(p - 1), str(p), "1", "1", "1", "1"])
        data = data[:cap]
        body = {"code": "0", "msg": "", "data": data}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    return reply


@pytest.mark.usefixtures("okx_markets")
def test_okx_steps_over_a_no_trade_stretch_longer_than_a_page(
    http: responses.RequestsMock, policy: RetryPolicy
) -> None:
    calls: list[dict[str, str]] = []
    bars = list(range(100)) + list(range(500, 700))
    http.add_callback(
        responses.GET,
        re.compile(r"https://www\.okx\.com/api/v5/market/(history-)?candles\?"),
        callback=okx_server(bars, calls),
    )
    frame = channel("okx", policy).fetch_ohlcv("BTC/USD", "1m", T0, T0 + timedelta(minutes=700))
    pd.testing.assert_frame_equal(frame, expected(bars, timedelta(minutes=1)))
    t0_ms = T0_S * 1000
    # Windows (before, after) exclusive: each spans at most one page of 300 bars.
    windows = [(int(c["before"]) - t0_ms, int(c["after"]) - t0_ms) for c in calls]
    assert all(after - before <= 300 * 60_000 + 1 for before, after in windows)
    assert len(calls) == 3  # [0, 300), [300, 600) empty, [600, 700)


# -- Binance COIN-M (inverse): GET /dapi/v1/klines?startTime=&endTime=&limit= -------------


def test_binance_windowed_only_for_inverse_markets() -> None:
    """Spot and USD-M klines are "the next `limit` from startTime", so an empty page there
    is the end of the data; COIN-M requests carry endTime = startTime + limit bars."""
    rule = EXCHANGES["binance"].windowed
    assert not rule({"spot": True, "inverse": None})
    assert not rule({"spot": False, "linear": True, "inverse": False})
    assert rule({"spot": False, "linear": False, "inverse": True})


def test_binance_inverse_steps_over_a_gap(
    http: responses.RequestsMock, policy: RetryPolicy
) -> None:
    bars = list(range(50)) + list(range(150, 200))
    calls: list[dict[str, str]] = []

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        q = query(request)
        calls.append(q)
        start, end = int(q["startTime"]), int(q["endTime"])
        rows = []
        for i in bars:
            t = (T0_S + i * HOUR_S) * 1000
            if start <= t <= end:
                p = price(i)
                # COIN-M kline: [open time, o, h, l, c, volume (contracts), close time,
                # base asset volume (ccxt's volume for inverse), trades, taker buys x2, 0]
                ohlc = [str(p), str(p + 1), str(p - 1), str(p)]
                rows.append([t, *ohlc, "100", t + 3_599_999, "1", 5, "50", "0.5", "0"])
        page = rows[: int(q["limit"])]
        return 200, {"Content-Type": "application/json"}, json.dumps(page)

    http.add_callback(
        responses.GET, re.compile(r"https://dapi\.binance\.com/dapi/v1/klines\?"), callback=reply
    )
    ch = channel("binance", policy, market_type="swap", page_limit=100)
    # One COIN-M perpetual, given to ccxt directly (no recorded dapi exchangeInfo here).
    ch.exchange.set_markets(
        [
            {
                "id": "BTCUSD_PERP",
                "symbol": "BTC/USD:BTC",
                "base": "BTC",
                "quote": "USD",
                "settle": "BTC",
                "baseId": "BTC",
                "quoteId": "USD",
                "settleId": "BTC",
                "type": "swap",
                "spot": False,
                "margin": False,
                "swap": True,
                "future": False,
                "option": False,
                "contract": True,
                "linear": False,
                "inverse": True,
                "active": True,
                "contractSize": 100.0,
                "precision": {"amount": 1.0, "price": 0.1},
                "limits": {},
                "info": {},
            }
        ]
    )
    frame = ch.fetch_ohlcv("BTC/USD:BTC", "1h", T0, T0 + timedelta(hours=200))
    pd.testing.assert_frame_equal(frame, expected(bars, timedelta(hours=1)))
    assert len(calls) == 2  # [0, 100) then [100, 200), the first half of it empty


# -- Binance spot keeps "an empty page is the end" -------------------------------------------


@pytest.mark.usefixtures("binance_markets")
def test_binance_spot_sends_no_window_and_stops_at_an_empty_page(
    http: responses.RequestsMock, policy: RetryPolicy
) -> None:
    calls: list[dict[str, str]] = []

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        calls.append(query(request))
        return 200, {"Content-Type": "application/json"}, "[]"

    http.add_callback(
        responses.GET, re.compile(r"https://api\.binance\.com/api/v3/klines\?"), callback=reply
    )
    frame = channel("binance", policy).fetch_ohlcv("BTC/USDT", "1m", T0, T0 + timedelta(days=30))
    assert frame.empty
    assert len(calls) == 1
    assert "endTime" not in calls[0]
