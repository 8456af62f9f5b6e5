"""CcxtChannel against recorded exchange replies: ccxt builds the real requests and parses
the real payloads; only the HTTP transport is replaced (``responses``)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
import responses
from ccxt_helpers import FIXED_NOW, channel

from algotrendy.data.channels.ccxt_channel import EXCHANGES, CcxtChannel
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.errors import ParameterError, SourceUnavailableError

BINANCE = "https://api.binance.com/api/v3"
Loader = Callable[[str], Any]


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def utc_ms(value: float) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def expected_frame(rows: list[list[Any]], unit: str = "ms") -> pd.DataFrame:
    """Independent reading of raw kline rows [t, o, h, l, c, v, ...] (strings or numbers)."""
    index = pd.DatetimeIndex(
        pd.to_datetime([int(r[0]) for r in rows], unit=unit, utc=True), name="time"
    ).as_unit("ns")
    data = {
        col: np.array([float(r[i]) for r in rows])
        for i, col in enumerate(("open", "high", "low", "close", "volume"), start=1)
    }
    return pd.DataFrame(data, index=index)


def kline_server(
    klines: list[list[Any]], calls: list[dict[str, int]], overlap: int = 0
) -> Callable[[Any], tuple[int, dict[str, str], str]]:
    """Binance GET /api/v3/klines semantics (startTime/endTime inclusive, limit), serving
    slices of recorded klines. `overlap` > 0 also returns that many candles *before*
    startTime, as exchanges that include the boundary candle do."""

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        query = {
            k: int(v[0])
            for k, v in parse_qs(urlsplit(request.url).query).items()
            if k in ("startTime", "endTime", "limit")
        }
        calls.append(query)
        start = query.get("startTime", 0)
        end = query.get("endTime", 2**62)
        first = next((i for i, k in enumerate(klines) if k[0] >= start), len(klines))
        first = max(0, first - overlap)
        page = [k for k in klines[first:] if k[0] <= end][: query.get("limit", 500)]
        return 200, {"Content-Type": "application/json"}, json.dumps(page)

    return reply


# -- OHLCV ------------------------------------------------------------------------------


@pytest.mark.usefixtures("binance_markets")
def test_binance_ohlcv_paginates_recorded_klines_without_duplicates(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    klines = fixture_json("exchange/binance/http_spot_market_klines.json")
    calls: list[dict[str, int]] = []
    http.add_callback(
        responses.GET, f"{BINANCE}/klines", callback=kline_server(klines, calls, overlap=1)
    )
    pages: list[int] = []
    since = utc_ms(klines[1][0])  # second candle ...
    until = utc_ms(klines[8][0])  # ... up to (excluding) the ninth
    frame = channel("binance", policy, page_limit=3).fetch_ohlcv(
        "BTC/USDT", "1m", since, until, progress=pages.append
    )
    pd.testing.assert_frame_equal(frame, expected_frame(klines[1:8]))
    assert frame.index.is_unique
    assert frame.index.is_monotonic_increasing
    assert str(frame.index.tz) == "UTC"
    assert frame.index.name == "time"
    # Pages of 3 whose first candle repeats the one before startTime: that candle is
    # dropped, so each page adds 2 new ones; the cursor is last-kept + 1 minute.
    assert pages == [2, 2, 2, 1]
    assert [c["startTime"] for c in calls] == [klines[i][0] for i in (1, 3, 5, 7)]
    assert all(c["limit"] == 3 for c in calls)


@pytest.mark.usefixtures("binance_markets")
def test_binance_ohlcv_stops_at_an_empty_page(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    klines = fixture_json("exchange/binance/http_spot_market_klines.json")
    calls: list[dict[str, int]] = []
    http.add_callback(responses.GET, f"{BINANCE}/klines", callback=kline_server(klines, calls))
    since = utc_ms(klines[0][0])
    frame = channel("binance", policy, page_limit=4).fetch_ohlcv(
        "BTC/USDT", "1m", since, since + timedelta(days=1)
    )
    pd.testing.assert_frame_equal(frame, expected_frame(klines))
    assert len(calls) == 4  # 4 + 4 + 2 candles, then an empty page ends the loop


@pytest.mark.usefixtures("binance_markets")
def test_until_none_returns_closed_bars_only(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    klines = fixture_json("exchange/binance/http_spot_market_klines.json")
    http.add_callback(responses.GET, f"{BINANCE}/klines", callback=kline_server(klines, []))
    # "now" is 30 s into the last recorded candle: that candle is still forming.
    now = utc_ms(klines[-1][0] + 30_000)
    ch = CcxtChannel("binance", retry=policy, config={"rateLimit": 1}, clock=lambda: now)
    frame = ch.fetch_ohlcv("BTC/USDT", "1m", utc_ms(klines[0][0]))
    pd.testing.assert_frame_equal(frame, expected_frame(klines[:-1]))


def test_kraken_ohlcv_single_page_of_721_candles_terminates(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    """Kraken's OHLC endpoint returns its latest 721 candles whatever `since` says; ccxt
    trims each reply to the 720-candle page. Page 1 brings 720, page 2 the 721st, page 3
    nothing new, which must end the loop."""
    raw = fixture_json("exchange/kraken/http_ohlc.json")
    http.add(
        responses.GET,
        "https://api.kraken.com/0/public/AssetPairs",
        json=fixture_json("exchange/kraken/http_asset_pairs.json"),
    )
    http.add(responses.GET, re.compile(r"https://api\.kraken\.com/0/public/OHLC\?"), json=raw)
    rows = raw["result"]["XBTUSDT"]
    since = datetime.fromtimestamp(rows[0][0], tz=UTC)
    until = since + timedelta(days=2)
    frame = channel("kraken", policy).fetch_ohlcv("BTC/USDT", "1m", since, until)
    # Kraken rows: [time_s, open, high, low, close, vwap, volume, count].
    expected = expected_frame([[r[0], r[1], r[2], r[3], r[4], r[6]] for r in rows], unit="s")
    pd.testing.assert_frame_equal(frame, expected)
    ohlc_calls = [c for c in http.calls if "/OHLC" in c.request.url]
    assert len(ohlc_calls) == 3


@pytest.mark.usefixtures("okx_markets")
def test_okx_history_candles_newest_first_become_ascending(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    raw = fixture_json("exchange/okx/http_get_candlesticks_full.json")
    http.add(responses.GET, re.compile(r"https://www\.okx\.com/api/v5/market/"), json=raw)
    rows = sorted(raw["data"], key=lambda r: int(r[0]))
    since = utc_ms(int(rows[0][0]))
    frame = channel("okx", policy).fetch_ohlcv("BTC/USD", "1m", since, since + timedelta(minutes=2))
    pd.testing.assert_frame_equal(frame, expected_frame(rows))


def test_bybit_and_coinbase_ohlcv(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    bybit = fixture_json("exchange/bybit/http_get_klines_linear.json")
    http.add(
        responses.GET,
        "https://api.bybit.com/v5/market/instruments-info?category=spot",
        json=fixture_json("exchange/bybit/http_get_instruments_spot.json"),
    )
    http.add(responses.GET, re.compile(r"https://api\.bybit\.com/v5/market/kline\?"), json=bybit)
    row = bybit["result"]["list"][0]
    got = channel("bybit", policy).fetch_ohlcv(
        "BTC/USDT", "1m", utc_ms(int(row[0])), utc_ms(int(row[0]) + 60_000)
    )
    pd.testing.assert_frame_equal(got, expected_frame([row]))

    coinbase = fixture_json("exchange/coinbase/http_candles.json")
    http.add(
        responses.GET,
        "https://api.coinbase.com/api/v3/brokerage/market/products",
        json=fixture_json("exchange/coinbase/http_products.json"),
    )
    http.add(
        responses.GET,
        "https://api.coinbase.com/api/v3/brokerage/market/products?product_type=FUTURE",
        json=fixture_json("exchange/coinbase/http_products_future.json"),
    )
    http.add(
        responses.GET,
        re.compile(r"https://api\.coinbase\.com/api/v3/brokerage/market/products/BTC-USD/candles"),
        json=coinbase,
    )
    candles = sorted(coinbase["candles"], key=lambda c: int(c["start"]))
    rows = [
        [int(c["start"]), c["open"], c["high"], c["low"], c["close"], c["volume"]] for c in candles
    ]
    start = datetime.fromtimestamp(rows[0][0], tz=UTC)
    got = channel("coinbase", policy).fetch_ohlcv(
        "BTC/USD", "1h", start, start + timedelta(hours=2)
    )
    pd.testing.assert_frame_equal(got, expected_frame(rows, unit="s"))


# -- retries, refusals, offline ---------------------------------------------------------


def flaky(
    failures: list[tuple[int, dict[str, Any]]], success: Any, calls: list[int]
) -> Callable[[Any], tuple[int, dict[str, str], str]]:
    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        calls.append(1)
        if len(calls) <= len(failures):
            status, body = failures[len(calls) - 1]
            return status, {"Content-Type": "application/json"}, json.dumps(body)
        return 200, {"Content-Type": "application/json"}, json.dumps(success)

    return reply


@pytest.mark.usefixtures("binance_markets")
def test_transient_errors_are_retried_with_backoff(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy, sleeps: Any
) -> None:
    klines = fixture_json("exchange/binance/http_spot_market_klines.json")
    calls: list[int] = []
    failures = [
        (503, {"code": -1008, "msg": "Server is currently overloaded"}),
        (429, {"code": -1003, "msg": "Too many requests"}),
    ]
    http.add_callback(
        responses.GET, f"{BINANCE}/klines", callback=flaky(failures, klines[:2], calls)
    )
    since = utc_ms(klines[0][0])
    frame = channel("binance", policy).fetch_ohlcv("BTC/USDT", "1m", since, utc_ms(klines[2][0]))
    pd.testing.assert_frame_equal(frame, expected_frame(klines[:2]))
    assert len(calls) == 3
    # Full jitter with random() = 1: delays are the caps base * 2**(n-1).
    assert sleeps.delays == [0.5, 1.0]


@pytest.mark.usefixtures("binance_markets")
@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (400, {"code": -1121, "msg": "Invalid symbol."}, ParameterError, "unknown symbol"),
        (401, {"code": -2015, "msg": "Invalid API-key."}, SourceUnavailableError, "refused"),
    ],
)
def test_client_errors_are_not_retried(
    http: responses.RequestsMock,
    policy: RetryPolicy,
    sleeps: Any,
    status: int,
    body: dict[str, Any],
    error: type[Exception],
    words: str,
) -> None:
    calls: list[int] = []
    http.add_callback(
        responses.GET, f"{BINANCE}/klines", callback=flaky([(status, body)] * 9, [], calls)
    )
    since = datetime(2021, 10, 22, tzinfo=UTC)
    with pytest.raises(error) as info:
        channel("binance", policy).fetch_ohlcv("BTC/USDT", "1m", since, since + timedelta(hours=1))
    assert len(calls) == 1
    assert sleeps.delays == []
    message = str(info.value)
    assert message.startswith("binance: ")
    assert words in message
    assert "\n" not in message


@pytest.mark.usefixtures("binance_markets")
def test_out_of_retries_names_source_and_cause(
    http: responses.RequestsMock, policy: RetryPolicy, sleeps: Any
) -> None:
    calls: list[int] = []
    failure = (503, {"code": -1008, "msg": "Server is currently overloaded"})
    http.add_callback(responses.GET, f"{BINANCE}/klines", callback=flaky([failure] * 9, [], calls))
    since = datetime(2021, 10, 22, tzinfo=UTC)
    with pytest.raises(SourceUnavailableError) as info:
        channel("binance", policy).fetch_ohlcv("BTC/USDT", "1m", since, since + timedelta(hours=1))
    assert len(calls) == policy.attempts == 4
    assert sleeps.delays == [0.5, 1.0, 2.0]
    message = str(info.value)
    assert message.startswith("binance: fetch 1m candles for BTC/USDT")
    assert "after 4 attempts" in message
    assert "Server is currently overloaded" in message
    assert "\n" not in message


def test_offline_fails_fast_with_one_line(
    monkeypatch: pytest.MonkeyPatch, policy: RetryPolicy, sleeps: Any
) -> None:
    def no_dns(*args: object, **kwargs: object) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    since = datetime(2021, 10, 22, tzinfo=UTC)
    with pytest.raises(SourceUnavailableError) as info:
        channel("binance", policy).fetch_ohlcv("BTC/USDT", "1m", since, since + timedelta(hours=1))
    message = str(info.value)
    assert message.startswith("binance: no network")
    assert "api.binance.com" in message
    assert "\n" not in message
    assert sleeps.delays == []  # no backoff when there is no network at all


@pytest.mark.usefixtures("binance_markets")
def test_unknown_symbol_and_timeframe_are_parameter_errors(policy: RetryPolicy) -> None:
    ch = channel("binance", policy)
    since = datetime(2021, 10, 22, tzinfo=UTC)
    with pytest.raises(ParameterError, match="timeframe '7m' not served"):
        ch.fetch_ohlcv("BTC/USDT", "7m", since, since + timedelta(hours=1))
    with pytest.raises(ParameterError, match="unknown symbol 'DOGE/EUR'"):
        ch.fetch_ohlcv("DOGE/EUR", "1m", since, since + timedelta(hours=1))


# -- tickers, trades, order books ---------------------------------------------------------


def static_case(fixture_json: Loader, exchange: str, method: str, index: int = 0) -> Any:
    return fixture_json(f"exchange/ccxt_static/{exchange}.json")["methods"][method][index]


@pytest.mark.usefixtures("binance_markets")
def test_binance_ticker_trades_book_match_ccxt_parsed_responses(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    """ccxt's static tests record, for each raw reply, ccxt's own parsed result: those are
    the independent expected values here."""
    ticker = static_case(fixture_json, "binance", "fetchTicker")
    trades = static_case(fixture_json, "binance", "fetchTrades")
    book = static_case(fixture_json, "binance", "fetchOrderBook")
    http.add(responses.GET, f"{BINANCE}/ticker/24hr?symbol=BTCUSDT", json=ticker["httpResponse"])
    http.add(responses.GET, re.compile(rf"{BINANCE}/aggTrades\?"), json=trades["httpResponse"])
    http.add(responses.GET, f"{BINANCE}/depth?symbol=BTCUSDT&limit=2", json=book["httpResponse"])
    ch = channel("binance", policy)

    tick = ch.fetch_ticker("BTC/USDT")
    want = ticker["parsedResponse"]
    assert (tick.symbol, tick.bid, tick.ask, tick.last) == (
        "BTC/USDT",
        want["bid"],
        want["ask"],
        want["last"],
    )
    assert (tick.bid_size, tick.ask_size) == (want["bidVolume"], want["askVolume"])
    assert tick.time == utc_ms(want["timestamp"])

    (trade,) = ch.fetch_trades("BTC/USDT")
    (want_trade,) = trades["parsedResponse"]
    assert (trade.trade_id, trade.side, trade.price, trade.amount) == (
        want_trade["id"],
        want_trade["side"],
        want_trade["price"],
        want_trade["amount"],
    )
    assert trade.time == utc_ms(want_trade["timestamp"])

    ob = ch.fetch_order_book("BTC/USDT", depth=2)
    want_book = book["parsedResponse"]
    assert [(lv.price, lv.amount) for lv in ob.bids] == [tuple(x) for x in want_book["bids"]]
    assert [(lv.price, lv.amount) for lv in ob.asks] == [tuple(x) for x in want_book["asks"]]
    assert ob.time == FIXED_NOW  # Binance spot depth carries no timestamp: time of receipt


@pytest.mark.usefixtures("binance_markets")
def test_binance_agg_trades_side_follows_buyer_maker_flag(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    raw = fixture_json("exchange/binance/http_spot_market_agg_trades.json")
    http.add(responses.GET, re.compile(rf"{BINANCE}/aggTrades\?"), json=raw)
    trades = channel("binance", policy).fetch_trades("BTC/USDT")
    assert len(trades) == len(raw)
    for got, row in zip(trades, sorted(raw, key=lambda r: r["T"]), strict=True):
        # Binance docs: m = "was the buyer the maker?"; then the taker sold.
        assert got.side == ("sell" if row["m"] else "buy")
        assert (got.price, got.amount) == (float(row["p"]), float(row["q"]))
        assert got.time == utc_ms(row["T"])
        assert got.trade_id == str(row["a"])


def test_kraken_ticker_trades_and_book(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    ticker = fixture_json("exchange/kraken/http_ticker.json")["result"]["XBTUSDT"]
    trades = fixture_json("exchange/kraken/http_trades.json")["result"]["XBTUSDT"]
    depth = fixture_json("exchange/kraken/http_order_book.json")["result"]["XBTUSDT"]
    http.add(
        responses.GET,
        "https://api.kraken.com/0/public/AssetPairs",
        json=fixture_json("exchange/kraken/http_asset_pairs.json"),
    )
    for path, name in (
        ("Ticker", "http_ticker"),
        ("Trades", "http_trades"),
        ("Depth", "http_order_book"),
    ):
        http.add(
            responses.GET,
            re.compile(rf"https://api\.kraken\.com/0/public/{path}\?"),
            json=fixture_json(f"exchange/kraken/{name}.json"),
        )
    ch = channel("kraken", policy)
    tick = ch.fetch_ticker("BTC/USDT")
    # Kraken Ticker: a = [ask, whole lot volume, lot volume], b = bid, c = [last, volume].
    assert (tick.ask, tick.bid, tick.last) == (
        float(ticker["a"][0]),
        float(ticker["b"][0]),
        float(ticker["c"][0]),
    )

    got = ch.fetch_trades("BTC/USDT")
    assert len(got) == len(trades) == 1000
    first = min(trades, key=lambda t: float(t[2]))
    # Kraken Trades rows: [price, volume, time_s, b|s, m|l, misc, trade_id].
    assert (got[0].price, got[0].amount) == (float(first[0]), float(first[1]))
    assert got[0].side == {"b": "buy", "s": "sell"}[first[3]]
    assert [t.time for t in got] == sorted(t.time for t in got)

    book = ch.fetch_order_book("BTC/USDT", depth=5)
    assert [(lv.price, lv.amount) for lv in book.asks] == [
        (float(p), float(a)) for p, a, _ in depth["asks"][:5]
    ]
    assert [(lv.price, lv.amount) for lv in book.bids] == [
        (float(p), float(a)) for p, a, _ in depth["bids"][:5]
    ]
    assert book.bids[0].price < book.asks[0].price


@pytest.mark.usefixtures("okx_markets")
def test_okx_bybit_coinbase_order_books_and_coinbase_ticker(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy
) -> None:
    okx = fixture_json("exchange/okx/http_get_order_book.json")
    http.add(responses.GET, re.compile(r"https://www\.okx\.com/api/v5/market/books\?"), json=okx)
    book = channel("okx", policy).fetch_order_book("BTC/USD", depth=3)
    # OKX rows: [price, size, deprecated, order count].
    assert [(lv.price, lv.amount) for lv in book.bids] == [
        (float(r[0]), float(r[1])) for r in okx["data"][0]["bids"]
    ]
    assert book.time == utc_ms(int(okx["data"][0]["ts"]))

    http.add(
        responses.GET,
        "https://api.bybit.com/v5/market/instruments-info?category=spot",
        json=fixture_json("exchange/bybit/http_get_instruments_spot.json"),
    )
    bybit = fixture_json("exchange/bybit/http_get_orderbook.json")
    http.add(
        responses.GET, re.compile(r"https://api\.bybit\.com/v5/market/orderbook\?"), json=bybit
    )
    book = channel("bybit", policy).fetch_order_book("BTC/USDT", depth=3)
    assert [(lv.price, lv.amount) for lv in book.asks] == [
        (float(p), float(a)) for p, a in bybit["result"]["a"]
    ]

    cb = "https://api.coinbase.com/api/v3/brokerage/market"
    http.add(
        responses.GET, f"{cb}/products", json=fixture_json("exchange/coinbase/http_products.json")
    )
    http.add(
        responses.GET,
        f"{cb}/products?product_type=FUTURE",
        json=fixture_json("exchange/coinbase/http_products_future.json"),
    )
    pricebook = fixture_json("exchange/coinbase/http_product_book.json")
    ticker = fixture_json("exchange/coinbase/http_ticker.json")
    http.add(responses.GET, re.compile(rf"{cb}/product_book\?"), json=pricebook)
    http.add(responses.GET, re.compile(rf"{cb}/products/BTC-USD/ticker"), json=ticker)
    coinbase = channel("coinbase", policy)
    book = coinbase.fetch_order_book("BTC/USD", depth=5)
    assert [(lv.price, lv.amount) for lv in book.bids] == [
        (float(x["price"]), float(x["size"])) for x in pricebook["pricebook"]["bids"]
    ]
    tick = coinbase.fetch_ticker("BTC/USD")
    assert (tick.bid, tick.ask) == (float(ticker["best_bid"]), float(ticker["best_ask"]))
    assert tick.last == float(ticker["trades"][0]["price"])


# -- what each exchange declares ------------------------------------------------------------


@pytest.mark.parametrize("exchange", sorted(EXCHANGES))
def test_info_declares_ccxt_rate_limit_and_doc(exchange: str) -> None:
    ch = CcxtChannel(exchange)
    assert ch.exchange.enableRateLimit is True
    assert ch.info.rate_limit_per_minute == pytest.approx(60_000 / ch.exchange.rateLimit, 1e-3)
    assert ch.info.doc_url.startswith("https://")
    assert "1m" in ch.info.timeframes
    assert "1d" in ch.info.timeframes


def test_unsupported_exchange_is_named() -> None:
    with pytest.raises(ParameterError, match="exchange 'mtgox' is not supported"):
        CcxtChannel("mtgox")
