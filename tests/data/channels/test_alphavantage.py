"""Alpha Vantage: recorded and documented-format replies, quirks, and the call quota."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
import responses

from algotrendy.data import load_ohlcv
from algotrendy.data.channels.alphavantage import AlphaVantageChannel
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.domain.market import AssetClass
from algotrendy.errors import DataError, ParameterError, SourceUnavailableError

URL = re.compile(r"https://www\.alphavantage\.co/query\?")
Loader = Callable[[str], Any]
NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


def make(tmp_path: Path, policy: RetryPolicy, **kw: Any) -> AlphaVantageChannel:
    return AlphaVantageChannel(
        "demo-key", state_dir=tmp_path, retry=policy, clock=lambda: NOW, **kw
    )


def test_intraday_us_eastern_becomes_utc_ascending(
    http: responses.RequestsMock, fixture_json: Loader, tmp_path: Path, policy: RetryPolicy
) -> None:
    raw = fixture_json("alphavantage/TIME_SERIES_INTRADAY_MSFT_1min.json")
    http.add(responses.GET, URL, json=raw)
    since, until = datetime(2017, 12, 18, 18, 0, tzinfo=UTC), datetime(2017, 12, 19, tzinfo=UTC)
    frame = make(tmp_path, policy).fetch_ohlcv("MSFT", "1m", since, until)
    query = parse_qs(urlsplit(http.calls[0].request.url).query)
    assert query["function"] == ["TIME_SERIES_INTRADAY"]
    assert query["interval"] == ["1min"]
    rows = raw["Time Series (1min)"]
    assert len(frame) == len(rows)
    assert frame.index.is_monotonic_increasing
    # 2017-12-18 is EST (UTC-5): 14:56 New York = 19:56 UTC.
    last = rows["2017-12-18 14:56:00"]
    assert frame.index[-1] == pd.Timestamp("2017-12-18 19:56:00", tz="UTC")
    assert frame.iloc[-1].tolist() == [
        float(last[k]) for k in ("1. open", "2. high", "3. low", "4. close", "5. volume")
    ]


def test_daily_and_crypto_layouts(
    http: responses.RequestsMock,
    fixture_json: Loader,
    fixtures_dir: Path,
    tmp_path: Path,
    policy: RetryPolicy,
) -> None:
    http.add(responses.GET, URL, json=fixture_json("alphavantage/ours_TIME_SERIES_DAILY_GOOG.json"))
    http.add(
        responses.GET, URL, json=fixture_json("alphavantage/ours_CRYPTO_INTRADAY_XRP_ETH_5min.json")
    )
    channel = make(tmp_path, policy)
    since, until = datetime(2013, 2, 1, tzinfo=UTC), datetime(2013, 3, 2, tzinfo=UTC)
    daily = channel.fetch_ohlcv("GOOG", "1d", since, until)
    goog = load_ohlcv(fixtures_dir / "ohlcv" / "backtesting_GOOG_1d.csv")
    pd.testing.assert_frame_equal(
        daily, goog[(goog.index >= since) & (goog.index < until)], check_freq=False
    )

    xrp = load_ohlcv(fixtures_dir / "ohlcv" / "freqtrade_XRP_ETH_5m.csv", validate=False)
    start = xrp.index[0].to_pydatetime()
    crypto = channel.fetch_ohlcv("XRP/ETH", "5m", start, xrp.index[48].to_pydatetime())
    pd.testing.assert_frame_equal(crypto, xrp.iloc[:48], check_freq=False)
    query = parse_qs(urlsplit(http.calls[1].request.url).query)
    assert query["function"] == ["CRYPTO_INTRADAY"]
    assert query["market"] == ["ETH"]


def test_old_price_only_crypto_layout_is_refused(
    http: responses.RequestsMock, fixture_json: Loader, tmp_path: Path, policy: RetryPolicy
) -> None:
    http.add(
        responses.GET, URL, json=fixture_json("alphavantage/CRYPTO_INTRADAY_BTC_CNY_5min.json")
    )
    with pytest.raises(DataError, match=r"unexpected field '1a. price \(CNY\)'"):
        make(tmp_path, policy).fetch_ohlcv(
            "BTC/CNY", "5m", datetime(2017, 12, 20, tzinfo=UTC), datetime(2017, 12, 21, tzinfo=UTC)
        )


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        ({"Error Message": "Invalid API call."}, ParameterError, "Invalid API call"),
        (
            {"Information": "We have detected your API key as ... 25 requests per day."},
            SourceUnavailableError,
            "25 requests per day",
        ),
    ],
)
def test_errors_sent_with_http_200(
    http: responses.RequestsMock,
    tmp_path: Path,
    policy: RetryPolicy,
    sleeps: Any,
    body: dict[str, str],
    error: type[Exception],
    text: str,
) -> None:
    http.add(responses.GET, URL, json=body)
    with pytest.raises(error, match=text) as info:
        make(tmp_path, policy).fetch_ohlcv("IBM", "1d", datetime(2024, 1, 1, tzinfo=UTC))
    assert str(info.value).startswith("alphavantage: ")
    assert sleeps.delays == []


def test_quota_stops_before_the_call_that_would_exceed_it(
    http: responses.RequestsMock, fixture_json: Loader, tmp_path: Path, policy: RetryPolicy
) -> None:
    http.add(responses.GET, URL, json=fixture_json("alphavantage/ours_TIME_SERIES_DAILY_GOOG.json"))
    since = datetime(2013, 2, 1, tzinfo=UTC)
    first = make(tmp_path, policy, daily_quota=2)
    first.fetch_ohlcv("GOOG", "1d", since, datetime(2013, 3, 1, tzinfo=UTC))
    # A new process (new channel object) sees the persisted count.
    second = make(tmp_path, policy, daily_quota=2)
    second.fetch_ohlcv("GOOG", "1d", since, datetime(2013, 3, 1, tzinfo=UTC))
    with pytest.raises(SourceUnavailableError) as info:
        second.fetch_ohlcv("GOOG", "1d", since, datetime(2013, 3, 1, tzinfo=UTC))
    assert len(http.calls) == 2  # the third request was never sent
    message = str(info.value)
    assert "daily quota spent (2/2 calls on 2024-06-03 UTC" in message
    assert "\n" not in message
    state = json.loads((tmp_path / "alphavantage_calls.json").read_text())
    assert state == {"date": "2024-06-03", "calls": 2}
    # The next UTC day starts from zero.
    tomorrow = AlphaVantageChannel(
        "k", state_dir=tmp_path, clock=lambda: datetime(2024, 6, 4, tzinfo=UTC)
    )
    assert tomorrow.counter.used() == 0


def test_symbol_routing_and_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AlphaVantageChannel.asset_class_of("MSFT") is AssetClass.EQUITY
    assert AlphaVantageChannel.asset_class_of("EUR/USD") is AssetClass.FOREX
    assert AlphaVantageChannel.asset_class_of("BTC/USD") is AssetClass.CRYPTO
    monkeypatch.delenv("ALGOTRENDY_ALPHAVANTAGE_API_KEY", raising=False)
    with pytest.raises(ParameterError, match="no API key"):
        AlphaVantageChannel()
    assert np.isclose(AlphaVantageChannel("k").info.rate_limit_per_minute or 0, 25 / 1440)
