"""Each candle channel names the one symbol a user's spelling resolves to, and an ingest
keys its series by it: two spellings of one market are one stored series, resumed as one.

ccxt runs on recorded Binance markets and klines (only HTTP is replaced); yfinance runs
its own parser on a Yahoo-shaped frame from a stub ticker."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import responses
from ccxt_helpers import channel

from algotrendy.data.channels import canonical_symbol
from algotrendy.data.channels.alphavantage import AlphaVantageChannel
from algotrendy.data.channels.base import ChannelInfo
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.data.channels.yfinance_channel import YFinanceChannel
from algotrendy.data.ingest import IngestRequest, IngestService
from algotrendy.data.pipeline import CandlePipeline
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import ParameterError
from algotrendy.storage.local import LocalCandleStore

BINANCE = "https://api.binance.com/api/v3"
Loader = Callable[[str], Any]


def klines_served(
    http: responses.RequestsMock, klines: list[list[Any]]
) -> list[dict[str, list[str]]]:
    """Binance GET /api/v3/klines: the recorded klines from startTime on, at most `limit`."""
    calls: list[dict[str, list[str]]] = []

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(request.url).query)
        calls.append(query)
        start = int(query["startTime"][0])
        page = [k for k in klines if k[0] >= start][: int(query["limit"][0])]
        return 200, {"Content-Type": "application/json"}, json.dumps(page)

    http.add_callback(responses.GET, f"{BINANCE}/klines", callback=reply)
    return calls


@pytest.mark.usefixtures("binance_markets")
def test_ccxt_resolves_an_exchange_id_to_the_unified_symbol(policy: RetryPolicy) -> None:
    binance = channel("binance", policy)
    assert binance.canonical_symbol("BTCUSDT") == "BTC/USDT"
    # The common case, the unified symbol typed as such, keeps today's key.
    assert binance.canonical_symbol("BTC/USDT") == "BTC/USDT"
    with pytest.raises(ParameterError, match=r"binance: unknown symbol 'NOPE/USDT' for spot"):
        binance.canonical_symbol("NOPE/USDT")


@pytest.mark.usefixtures("binance_markets")
def test_ccxt_ingest_of_two_spellings_is_one_series_resumed_not_refetched(
    http: responses.RequestsMock, fixture_json: Loader, policy: RetryPolicy, tmp_path: Path
) -> None:
    klines = fixture_json("exchange/binance/http_spot_market_klines.json")
    calls = klines_served(http, klines)
    first = datetime.fromtimestamp(klines[0][0] / 1000, tz=UTC)
    last = datetime.fromtimestamp(klines[-1][0] / 1000, tz=UTC)
    now = last + timedelta(minutes=1)  # every recorded bar is closed
    store = LocalCandleStore(tmp_path, fsync=False)
    service = IngestService(
        channel("binance", policy), CandlePipeline([store], now=lambda: now), now=lambda: now
    )

    unified = service.run(IngestRequest("binance", "BTC/USDT", "1m", since=first))
    assert unified.written == len(klines)
    requests_after_first = len(calls)

    by_id = service.run(IngestRequest("binance", "BTCUSDT", "1m", since=first))
    assert by_id.request.symbol == "BTC/USDT"
    assert by_id.plan.resumed_from == last  # the series the unified spelling stored
    assert by_id.plan.up_to_date
    assert by_id.fetched == 0
    assert len(calls) == requests_after_first  # nothing downloaded again
    assert [p.name for p in (store.root / "binance").iterdir()] == ["BTC%2FUSDT"]


@pytest.mark.usefixtures("binance_markets")
def test_ccxt_ingest_of_an_unknown_symbol_fails_with_the_channel_error(
    policy: RetryPolicy, tmp_path: Path
) -> None:
    now = datetime(2024, 1, 2, tzinfo=UTC)
    store = LocalCandleStore(tmp_path, fsync=False)
    service = IngestService(
        channel("binance", policy), CandlePipeline([store], now=lambda: now), now=lambda: now
    )
    with pytest.raises(ParameterError, match=r"binance: unknown symbol 'btc/usdt' for spot"):
        service.run(IngestRequest("binance", "btc/usdt", "1m", since=now - timedelta(hours=1)))
    assert not (store.root / "binance").exists()


def yahoo_daily(dates: list[str]) -> pd.DataFrame:
    """What `Ticker.history` returns for daily bars: New York midnight stamps."""
    index = pd.DatetimeIndex(pd.to_datetime(dates), name="Date").tz_localize("America/New_York")
    close = [100.0 + i for i in range(len(dates))]
    return pd.DataFrame(
        {
            "Open": close,
            "High": [c + 1 for c in close],
            "Low": [c - 1 for c in close],
            "Close": close,
            "Volume": [1000.0] * len(dates),
        },
        index=index,
    )


def test_yfinance_keys_a_ticker_in_upper_case(tmp_path: Path) -> None:
    asked: list[str] = []
    dates = ["2024-01-02", "2024-01-03", "2024-01-04"]

    def ticker(symbol: str) -> SimpleNamespace:
        asked.append(symbol)
        return SimpleNamespace(history=lambda **kw: yahoo_daily(dates))

    now = datetime(2024, 1, 5, tzinfo=UTC)  # the 4th, the last date, has closed
    yahoo = YFinanceChannel(ticker_factory=ticker, clock=lambda: now)
    assert yahoo.canonical_symbol(" aapl ") == "AAPL"
    with pytest.raises(ParameterError, match="symbol must not be empty"):
        yahoo.canonical_symbol("  ")

    store = LocalCandleStore(tmp_path, fsync=False)
    service = IngestService(yahoo, CandlePipeline([store], now=lambda: now), now=lambda: now)
    since = datetime(2024, 1, 2, tzinfo=UTC)
    lower = service.run(IngestRequest("yfinance", "aapl", "1d", since=since))
    assert lower.request.symbol == "AAPL"
    assert lower.written == len(dates)
    upper = service.run(IngestRequest("yfinance", "AAPL", "1d", since=since))
    assert upper.plan.resumed_from == datetime(2024, 1, 4, tzinfo=UTC)
    assert upper.plan.up_to_date
    assert asked == ["AAPL"]  # the second spelling found the stored series
    assert [p.name for p in (store.root / "yfinance").iterdir()] == ["AAPL"]


def test_alphavantage_keys_the_symbol_it_requests() -> None:
    assert AlphaVantageChannel.canonical_symbol(" msft ") == "MSFT"
    assert AlphaVantageChannel.canonical_symbol("eur / usd") == "EUR/USD"
    with pytest.raises(ParameterError, match="alphavantage: symbol must not be empty"):
        AlphaVantageChannel.canonical_symbol("")


def test_a_channel_that_does_not_resolve_symbols_keeps_them_as_typed() -> None:
    plain = SimpleNamespace(
        info=ChannelInfo(name="plain", asset_classes=(AssetClass.CRYPTO,), kinds=(DataKind.OHLCV,))
    )
    assert canonical_symbol(plain, "btcusdt") == "btcusdt"


def test_ccxt_keeps_a_unified_symbol_as_typed_even_where_the_market_says_more(
    policy: RetryPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a swap channel ccxt resolves BTC/USDT to BTC/USDT:USDT; the series keeps the key
    it was stored under before (and strategy configs naming BTC/USDT still match)."""
    binance = channel("binance", policy)
    monkeypatch.setattr(binance, "_symbol", lambda s: "BTC/USDT:USDT")
    assert binance.canonical_symbol("BTC/USDT") == "BTC/USDT"
    assert binance.canonical_symbol("BTCUSDT") == "BTC/USDT:USDT"
