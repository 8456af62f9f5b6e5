"""US (and other) equities through yfinance: OHLCV, options chains, fundamentals.

yfinance wraps Yahoo Finance's unofficial endpoints (chart API ``/v8/finance/chart``,
``/v7/finance/options``, ``/v10/finance/quoteSummary``). Yahoo publishes no rate limit; the
yfinance README asks users to keep volume low, and Yahoo answers bursts with HTTP 429
(``YFRateLimitError``), which is retried here with backoff.

yfinance reports many failures by printing and returning an *empty* frame (``yf.download``
does so when the network is down). This channel turns yfinance's exceptions on
(``yf.config.debug.hide_exceptions = False``) and still treats an empty result as a
failure: an ingest must never record "no data" as a success.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import requests
import yfinance as yf
from yfinance import exceptions as yfx

from algotrendy.data.channels.base import ChannelInfo, ProgressCallback
from algotrendy.data.channels.retry import RetryPolicy, Verdict, call_with_retry, one_line
from algotrendy.data.normalise import (
    candle_frame,
    fetch_window,
    is_intraday,
    restrict,
    utc_now,
)
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import DataError, ParameterError, SourceUnavailableError
from algotrendy.storage.base import empty_candle_frame

SOURCE = "yfinance"
# Our timeframe -> Yahoo chart `interval` (yfinance docs, `Ticker.history(interval=...)`).
INTERVALS = {
    "1m": "1m",
    "2m": "2m",
    "5m": "5m",
    "15m": "15m",
    "30m": "30m",
    "1h": "1h",
    "1d": "1d",
    "1w": "1wk",
    "1M": "1mo",
}
_ONE_DAY = timedelta(days=1)
_YAHOO_COLUMNS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Volume": "volume",
}


def classify_yfinance_error(exc: BaseException) -> Verdict | None:
    if isinstance(exc, yfx.YFRateLimitError):
        return Verdict.TRANSIENT
    if isinstance(exc, yfx.YFException):
        return Verdict.PERMANENT
    # requests' and curl_cffi's connection/timeout errors are OSError subclasses.
    if isinstance(exc, requests.ConnectionError | requests.Timeout | OSError):
        return Verdict.TRANSIENT
    if isinstance(exc, requests.RequestException):
        return Verdict.PERMANENT
    return None


class YFinanceChannel:
    """Equity candles (daily and intraday), option chains and fundamentals."""

    def __init__(
        self,
        *,
        session: Any | None = None,
        adjust: bool = True,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        ticker_factory: Callable[[str], Any] | None = None,
    ) -> None:
        """`session`: a requests or curl_cffi session for yfinance (default: its own);
        `adjust`: split/dividend-adjusted OHLC (yfinance ``auto_adjust``), what backtests
        of long equity histories need; `ticker_factory` replaces ``yf.Ticker`` in tests."""
        self.name = SOURCE
        self.adjust = adjust
        self.retry = retry or RetryPolicy()
        self._session = session
        self._clock = clock
        self._ticker_factory = ticker_factory
        # yfinance >= 1.0 hides download errors (prints, returns empty) unless told not
        # to; this process-wide switch replaced `history(raise_errors=True)`.
        yf.config.debug.hide_exceptions = False
        self.info = ChannelInfo(
            name=SOURCE,
            asset_classes=(AssetClass.EQUITY,),
            kinds=(DataKind.OHLCV, DataKind.OPTIONS, DataKind.FUNDAMENTALS),
            timeframes=tuple(INTERVALS),
            rate_limit_per_minute=None,  # not published; Yahoo throttles with HTTP 429
            doc_url="https://github.com/ranaroussi/yfinance#legal-stuff",
        )

    def canonical_symbol(self, symbol: str) -> str:
        """The ticker as Yahoo keys it, upper case (``aapl`` and ``AAPL`` are one
        series)."""
        if not symbol or not symbol.strip():
            raise ParameterError("symbol must not be empty")
        return symbol.strip().upper()

    def _ticker(self, symbol: str) -> Any:
        ticker = self.canonical_symbol(symbol)
        if self._ticker_factory is not None:
            return self._ticker_factory(ticker)
        return yf.Ticker(ticker, session=self._session)

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        def translate(exc: BaseException) -> Exception:
            return SourceUnavailableError(f"{SOURCE}: {what} failed ({one_line(exc)})")

        return call_with_retry(
            SOURCE,
            what,
            call,
            classify=classify_yfinance_error,
            policy=self.retry,
            translate=translate,
        )

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> pd.DataFrame:
        """Candles with open time in [since, until).

        Intraday bars keep their exact UTC open time; daily and longer bars are labelled
        with the trading date at 00:00 UTC (see ``algotrendy.data.normalise``). Yahoo
        serves 1m bars for the last ~30 days only and other intraday bars for ~60 days
        (730 for 1h); outside that window it returns nothing, reported as an error here.
        """
        window = fetch_window(SOURCE, timeframe, INTERVALS, since, until, self._clock)
        if window is None:
            return empty_candle_frame()
        start, end = window
        daily = not is_intraday(timeframe)
        # Yahoo selects bars by their real open time in [period1, period2), but daily and
        # longer bars are labelled by local trading date: an ASX session opens at 23:00
        # UTC the day before its date, so asking from `start` itself would leave out the
        # first date. Ask a day more on each side; `restrict` below keeps [start, end)
        # by label.
        ask_start, ask_end = (start - _ONE_DAY, end + _ONE_DAY) if daily else (start, end)
        ticker = self._ticker(symbol)
        what = f"fetch {timeframe} candles for {symbol} from {start:%Y-%m-%d %H:%M} UTC"
        raw = self._call(
            what,
            lambda: ticker.history(
                start=ask_start,
                end=ask_end,
                interval=INTERVALS[timeframe],
                auto_adjust=self.adjust,
                actions=False,
            ),
        )
        if not isinstance(raw, pd.DataFrame) or raw.empty:
            raise SourceUnavailableError(
                f"{SOURCE}: no {timeframe} candles for {symbol} between {start:%Y-%m-%d} and "
                f"{end:%Y-%m-%d} (unknown or delisted symbol, range outside Yahoo's history, "
                "or Yahoo unreachable)"
            )
        frame = candle_frame(
            raw,
            columns=_YAHOO_COLUMNS,
            source=f"{SOURCE} {symbol} {timeframe}",
            date_only=daily,
        )
        frame = restrict(frame, start, end)
        if progress is not None:
            progress(len(frame))
        return frame

    def fetch_option_chain(self, symbol: str, expiry: str | None = None) -> pd.DataFrame:
        """All calls and puts for one expiry (default: the nearest), one row per contract,
        with ``type`` (call | put) and ``expiry`` columns added to Yahoo's fields."""
        ticker = self._ticker(symbol)
        expiries = tuple(self._call(f"list option expiries for {symbol}", lambda: ticker.options))
        if not expiries:
            raise SourceUnavailableError(f"{SOURCE}: no listed options for {symbol}")
        chosen = expiry or expiries[0]
        if chosen not in expiries:
            raise ParameterError(
                f"{SOURCE}: {symbol} has no options expiring {chosen}; "
                f"expiries: {', '.join(expiries[:12])}{' ...' if len(expiries) > 12 else ''}"
            )
        chain = self._call(
            f"fetch {symbol} option chain {chosen}", lambda: ticker.option_chain(chosen)
        )
        parts = []
        for kind, frame in (("call", chain.calls), ("put", chain.puts)):
            part = pd.DataFrame(frame).copy()
            part.insert(0, "type", kind)
            part.insert(1, "expiry", chosen)
            parts.append(part)
        out = pd.concat(parts, ignore_index=True)
        if "lastTradeDate" in out.columns:
            out["lastTradeDate"] = pd.to_datetime(out["lastTradeDate"], utc=True)
        return out

    def fetch_fundamentals(self, symbol: str) -> dict[str, Any]:
        """Yahoo's company summary (``Ticker.info``: sector, market cap, ratios ...)."""
        ticker = self._ticker(symbol)
        info = self._call(f"fetch fundamentals for {symbol}", lambda: ticker.info)
        if not isinstance(info, dict) or not info:
            raise DataError(f"{SOURCE}: empty fundamentals for {symbol}")
        return dict(info)
