"""YFinanceChannel with yfinance's own request/parse code running on Yahoo chart-API JSON
(built by us in Yahoo's wire format from real prices, see tests/fixtures/README.md)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import requests
import responses

from algotrendy.data import load_ohlcv
from algotrendy.data.channels.alphavantage import parse_series
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.data.channels.yfinance_channel import YFinanceChannel
from algotrendy.errors import ParameterError, SourceUnavailableError

Loader = Callable[[str], Any]
YAHOO = r"https://query[12]\.finance\.yahoo\.com"


@pytest.fixture(autouse=True)
def yf_cache(tmp_path: Path) -> Iterator[None]:
    """yfinance caches time zones and cookies on disk: keep them in the test's tmp dir."""
    import yfinance as yf

    yf.set_tz_cache_location(str(tmp_path / "yf-cache"))
    return


def chart_server(chart: dict[str, Any], calls: list[dict[str, list[str]]]) -> Any:
    """Yahoo chart API: bars with timestamp in [period1, period2); without a period
    (yfinance's time-zone probe, range=1d) the last bar."""

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(request.url).query)
        calls.append(query)
        body = json.loads(json.dumps(chart))
        result = body["chart"]["result"][0]
        stamps = result["timestamp"]
        if "period1" in query:
            lo, hi = int(query["period1"][0]), int(query["period2"][0])
            keep = [i for i, t in enumerate(stamps) if lo <= t < hi]
        else:
            keep = [len(stamps) - 1]
        result["timestamp"] = [stamps[i] for i in keep]
        blocks = result["indicators"]["quote"] + result["indicators"].get("adjclose", [])
        for block in blocks:
            for key in block:
                block[key] = [block[key][i] for i in keep]
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    return reply


def serve_yahoo(http: responses.RequestsMock, symbol: str, chart: dict[str, Any]) -> list[Any]:
    calls: list[dict[str, list[str]]] = []
    http.add_callback(
        responses.GET,
        re.compile(rf"{YAHOO}/v8/finance/chart/{symbol}\?"),
        callback=chart_server(chart, calls),
    )
    # yfinance's cookie and crumb handshake (cookie page, then /v1/test/getcrumb).
    http.add(responses.GET, "https://fc.yahoo.com/", body="")
    http.add(responses.GET, re.compile(rf"{YAHOO}/v1/test/getcrumb"), body="test-crumb")
    return calls


@pytest.fixture
def loose_http() -> Iterator[responses.RequestsMock]:
    # The handshake is retried by yfinance at its own discretion, so not every reply
    # must fire; unmatched requests still fail.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_daily_bars_are_labelled_by_trading_date(
    loose_http: responses.RequestsMock, fixture_json: Loader, fixtures_dir: Path
) -> None:
    calls = serve_yahoo(
        loose_http, "GOOG", fixture_json("exchange/yahoo/ours_chart_GOOG_1d_2013-02.json")
    )
    channel = YFinanceChannel(session=requests.Session(), retry=RetryPolicy(attempts=1))
    seen: list[int] = []
    since, until = datetime(2013, 2, 4, tzinfo=UTC), datetime(2013, 2, 16, tzinfo=UTC)
    frame = channel.fetch_ohlcv("GOOG", "1d", since, until, progress=seen.append)
    # Same prices as the GOOG daily file the chart was built from, read by load_ohlcv.
    goog = load_ohlcv(fixtures_dir / "ohlcv" / "backtesting_GOOG_1d.csv")
    expected = goog[(goog.index >= since) & (goog.index < until)]
    pd.testing.assert_frame_equal(frame, expected, check_freq=False)
    assert seen == [len(expected)]
    assert len(expected) > 0
    period_calls = [c for c in calls if "period1" in c]
    assert period_calls[0]["interval"] == ["1d"]
    # A day more on each side (sessions east of UTC open the day before their date).
    assert int(period_calls[0]["period1"][0]) == int((since - timedelta(days=1)).timestamp())
    assert int(period_calls[0]["period2"][0]) == int((until + timedelta(days=1)).timestamp())


def sydney_chart(chart: dict[str, Any]) -> dict[str, Any]:
    """The GOOG chart as if listed on the ASX: each trading date's bar opens at 10:00
    Australia/Sydney (AEDT in February, 23:00 UTC the day before its date)."""
    out = json.loads(json.dumps(chart))
    result = out["chart"]["result"][0]
    meta = result["meta"]
    meta.update(
        symbol="BHP.AX",
        exchangeName="ASX",
        timezone="AEDT",
        gmtoffset=39600,
        exchangeTimezoneName="Australia/Sydney",
        currency="AUD",
    )
    for period in ("pre", "regular", "post"):
        meta["currentTradingPeriod"][period].update(timezone="AEDT", gmtoffset=39600)
    dates = [pd.Timestamp(t, unit="s", tz="America/New_York").date() for t in result["timestamp"]]
    result["timestamp"] = [
        int(pd.Timestamp(f"{d} 10:00", tz="Australia/Sydney").timestamp()) for d in dates
    ]
    return out


@pytest.mark.parametrize(
    "cuts",
    [
        pytest.param([], id="one-request"),
        pytest.param([datetime(2013, 2, 13, tzinfo=UTC)], id="resumed-at-a-seam"),
    ],
)
def test_daily_bars_of_a_session_opening_before_utc_midnight_are_all_kept(
    loose_http: responses.RequestsMock,
    fixture_json: Loader,
    fixtures_dir: Path,
    cuts: list[datetime],
) -> None:
    """An ASX bar dated 02-04 opens 02-03 23:00 UTC: asked from 02-04 00:00 UTC, Yahoo
    leaves it out, so every request (and every ingest resume) lost its first date."""
    chart = sydney_chart(fixture_json("exchange/yahoo/ours_chart_GOOG_1d_2013-02.json"))
    serve_yahoo(loose_http, r"BHP\.AX", chart)
    channel = YFinanceChannel(session=requests.Session(), retry=RetryPolicy(attempts=1))
    since, until = datetime(2013, 2, 4, tzinfo=UTC), datetime(2013, 2, 16, tzinfo=UTC)
    bounds = [since, *cuts, until]
    parts = [channel.fetch_ohlcv("BHP.AX", "1d", a, b) for a, b in pairwise(bounds)]
    frame = pd.concat(parts)
    goog = load_ohlcv(fixtures_dir / "ohlcv" / "backtesting_GOOG_1d.csv")
    expected = goog[(goog.index >= since) & (goog.index < until)]
    assert len(expected) == 10
    pd.testing.assert_frame_equal(frame, expected, check_freq=False)


def test_intraday_bars_match_alpha_vantage_for_the_same_minutes(
    loose_http: responses.RequestsMock, fixture_json: Loader
) -> None:
    """The Yahoo chart was built from Alpha Vantage's recorded MSFT minutes: two vendors,
    two wire formats (epoch seconds vs US/Eastern local text), one UTC frame."""
    serve_yahoo(
        loose_http, "MSFT", fixture_json("exchange/yahoo/ours_chart_MSFT_1m_2017-12-18.json")
    )
    channel = YFinanceChannel(session=requests.Session(), retry=RetryPolicy(attempts=1))
    since, until = (
        datetime(2017, 12, 18, 19, 0, tzinfo=UTC),
        datetime(2017, 12, 18, 19, 30, tzinfo=UTC),
    )
    frame = channel.fetch_ohlcv("MSFT", "1m", since, until)
    av = parse_series(
        fixture_json("alphavantage/TIME_SERIES_INTRADAY_MSFT_1min.json"), source="av", intraday=True
    )
    expected = av[(av.index >= since) & (av.index < until)]
    assert len(frame) == 30
    pd.testing.assert_frame_equal(frame, expected, check_freq=False)


def test_offline_is_an_error_not_an_empty_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: object, **kwargs: object) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    sleeps: list[float] = []
    channel = YFinanceChannel(
        session=requests.Session(), retry=RetryPolicy(attempts=3, sleep=sleeps.append)
    )
    since = datetime(2024, 1, 2, tzinfo=UTC)
    with pytest.raises(SourceUnavailableError) as info:
        channel.fetch_ohlcv("AAPL", "1d", since, datetime(2024, 1, 10, tzinfo=UTC))
    message = str(info.value)
    assert message.startswith("yfinance: ")
    assert "\n" not in message
    assert sleeps == []


def test_empty_history_becomes_source_unavailable() -> None:
    """What `yf.download` returns offline (an empty frame) is never a success."""
    empty = SimpleNamespace(history=lambda **kw: pd.DataFrame())
    channel = YFinanceChannel(ticker_factory=lambda s: empty)
    with pytest.raises(SourceUnavailableError, match=r"yfinance: no 1d candles for AAPL"):
        channel.fetch_ohlcv(
            "AAPL", "1d", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 10, tzinfo=UTC)
        )


def test_unknown_timeframe() -> None:
    with pytest.raises(ParameterError, match="timeframe '4h' not served"):
        YFinanceChannel().fetch_ohlcv("AAPL", "4h", datetime(2024, 1, 2, tzinfo=UTC))


def test_option_chain_and_fundamentals_are_separate_calls() -> None:
    calls = pd.DataFrame(
        {
            "contractSymbol": ["AAPL240119C00150000"],
            "strike": [150.0],
            "lastTradeDate": ["2024-01-05 20:59:59+00:00"],
        }
    )
    puts = pd.DataFrame(
        {
            "contractSymbol": ["AAPL240119P00150000"],
            "strike": [150.0],
            "lastTradeDate": ["2024-01-05 20:00:00+00:00"],
        }
    )
    fake = SimpleNamespace(
        options=("2024-01-19", "2024-01-26"),
        option_chain=lambda expiry: SimpleNamespace(calls=calls, puts=puts),
        info={"sector": "Technology", "marketCap": 3.0e12},
    )
    channel = YFinanceChannel(ticker_factory=lambda s: fake)
    chain = channel.fetch_option_chain("AAPL")
    assert list(chain["type"]) == ["call", "put"]
    assert set(chain["expiry"]) == {"2024-01-19"}
    assert str(chain["lastTradeDate"].dt.tz) == "UTC"
    with pytest.raises(ParameterError, match="no options expiring 2025-01-01"):
        channel.fetch_option_chain("AAPL", "2025-01-01")
    assert channel.fetch_fundamentals("AAPL")["sector"] == "Technology"


def test_a_range_without_trading_dates_is_empty_when_yahoo_answers(
    loose_http: responses.RequestsMock, fixture_json: Loader
) -> None:
    """A weekend: the day added on each side brings Friday's and Monday's bars, so Yahoo
    did answer and the range simply holds no trading date (no error, no bar)."""
    calls = serve_yahoo(
        loose_http, "GOOG", fixture_json("exchange/yahoo/ours_chart_GOOG_1d_2013-02.json")
    )
    channel = YFinanceChannel(session=requests.Session(), retry=RetryPolicy(attempts=1))
    saturday, monday = datetime(2013, 2, 9, tzinfo=UTC), datetime(2013, 2, 11, tzinfo=UTC)
    frame = channel.fetch_ohlcv("GOOG", "1d", saturday, monday)
    assert frame.empty
    assert any("period1" in c for c in calls)
