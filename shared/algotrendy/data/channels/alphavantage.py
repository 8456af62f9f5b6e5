"""Alpha Vantage: daily and intraday series for stocks, forex and crypto.

API reference: https://www.alphavantage.co/documentation/. Its quirks, handled here:
numbered keys (``"1. open"``; the old digital-currency layout ``"1a. open (CNY)"``),
numbers sent as strings, rows newest first, and the series' time zone given only in the
metadata (``"6. Time Zone": "US/Eastern"`` for stocks, UTC for forex/crypto).
Errors arrive with HTTP 200: ``{"Error Message": ...}`` for a bad call or symbol,
``{"Note"|"Information": ...}`` for throttling, quota or premium-only endpoints.

The free tier allows 25 requests per day (https://www.alphavantage.co/support/#api-key).
A small JSON file in a state directory counts the calls of the current UTC day across
processes, and the channel refuses *before* sending the request that would exceed it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from algotrendy.data.channels.base import ChannelInfo, ProgressCallback
from algotrendy.data.channels.http import get_json
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.data.normalise import (
    as_utc,
    candle_frame,
    fetch_window,
    is_intraday,
    restrict,
    utc_now,
)
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import DataError, ParameterError, SourceUnavailableError
from algotrendy.storage.base import empty_candle_frame

SOURCE = "alphavantage"
URL = "https://www.alphavantage.co/query"
FREE_DAILY_QUOTA = 25
API_KEY_ENV = "ALGOTRENDY_ALPHAVANTAGE_API_KEY"
STATE_DIR_ENV = "ALGOTRENDY_STATE_DIR"
_INTRADAY = {"1m": "1min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "60min"}
TIMEFRAMES = (*_INTRADAY, "1d")
# Codes treated as crypto in "BASE/QUOTE" symbols; anything else with a slash is forex.
# Pass asset_class= to override for a coin not listed here.
CRYPTO_CODES = frozenset(
    {"BTC", "ETH", "LTC", "XRP", "BCH", "ADA", "DOT", "SOL", "DOGE", "BNB", "AVAX", "LINK",
     "MATIC", "TRX", "XLM", "ETC", "UNI", "ATOM", "XMR", "USDT", "USDC"}
)  # fmt: skip
_KEY_NUMBER = re.compile(r"^(\d+)")


class CallCounter:
    """Calls made today (UTC), persisted as ``{"date": "YYYY-MM-DD", "calls": n}``."""

    def __init__(self, path: Path, quota: int, clock: Callable[[], datetime]) -> None:
        self.path = path
        self.quota = quota
        self._clock = clock

    def _today(self) -> str:
        return as_utc(self._clock()).strftime("%Y-%m-%d")

    def used(self) -> int:
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: unreadable Alpha Vantage call counter ({exc})") from exc
        if not isinstance(state, dict) or state.get("date") != self._today():
            return 0
        return int(state.get("calls", 0))

    def take(self) -> int:
        """Count one call, or refuse if the quota is spent. Returns calls used so far."""
        used = self.used()
        if used >= self.quota:
            raise SourceUnavailableError(
                f"{SOURCE}: daily quota spent ({used}/{self.quota} calls on {self._today()} "
                f"UTC, counted in {self.path}); no request sent, retry after 00:00 UTC"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"date": self._today(), "calls": used + 1}))
        tmp.replace(self.path)
        return used + 1


class AlphaVantageChannel:
    """Stocks (``MSFT``), forex (``EUR/USD``) and crypto (``BTC/USD``) candles."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        state_dir: Path | str | None = None,
        daily_quota: int = FREE_DAILY_QUOTA,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """`api_key` defaults to ``$ALGOTRENDY_ALPHAVANTAGE_API_KEY``; `state_dir` (where
        the call counter lives) to ``$ALGOTRENDY_STATE_DIR`` or ``~/.algotrendy/state``."""
        key = api_key or os.environ.get(API_KEY_ENV, "")
        if not key:
            raise ParameterError(
                f"{SOURCE}: no API key; pass api_key= or set {API_KEY_ENV} "
                "(free key: https://www.alphavantage.co/support/#api-key)"
            )
        if daily_quota < 1:
            raise ParameterError(f"daily_quota must be >= 1, got {daily_quota}")
        self.name = SOURCE
        self._key = key
        self._session = session or requests.Session()
        self.retry = retry or RetryPolicy()
        self._clock = clock
        directory = Path(
            state_dir or os.environ.get(STATE_DIR_ENV) or Path.home() / ".algotrendy" / "state"
        ).expanduser()
        self.counter = CallCounter(directory / "alphavantage_calls.json", daily_quota, clock)
        self.info = ChannelInfo(
            name=SOURCE,
            asset_classes=(AssetClass.EQUITY, AssetClass.FOREX, AssetClass.CRYPTO),
            kinds=(DataKind.OHLCV,),
            timeframes=TIMEFRAMES,
            # Free tier: 25 requests/day (no per-minute figure is published any more).
            rate_limit_per_minute=daily_quota / 1440,
            doc_url="https://www.alphavantage.co/support/#api-key",
        )

    @staticmethod
    def canonical_symbol(symbol: str) -> str:
        """The symbol as requested: upper case, pair parts trimmed (``eur / usd`` ->
        ``EUR/USD``), so spellings of one series share one key."""
        if not symbol or not symbol.strip():
            raise ParameterError(f"{SOURCE}: symbol must not be empty")
        return "/".join(part.strip() for part in symbol.strip().upper().split("/"))

    # -- request building ----------------------------------------------------------------

    @staticmethod
    def asset_class_of(symbol: str) -> AssetClass:
        if "/" not in symbol:
            return AssetClass.EQUITY
        base = symbol.split("/", 1)[0].strip().upper()
        return AssetClass.CRYPTO if base in CRYPTO_CODES else AssetClass.FOREX

    def _params(self, symbol: str, timeframe: str, asset_class: AssetClass) -> dict[str, str]:
        intraday = timeframe != "1d"
        if asset_class is AssetClass.EQUITY:
            if intraday:
                return {
                    "function": "TIME_SERIES_INTRADAY",
                    "symbol": symbol,
                    "interval": _INTRADAY[timeframe],
                    "outputsize": "full",
                }
            return {"function": "TIME_SERIES_DAILY", "symbol": symbol, "outputsize": "full"}
        parts = [p.strip().upper() for p in symbol.split("/")]
        if len(parts) != 2 or not all(parts):
            raise ParameterError(f"{SOURCE}: symbol {symbol!r} must look like BASE/QUOTE")
        base, quote = parts
        if asset_class is AssetClass.FOREX:
            if intraday:
                return {
                    "function": "FX_INTRADAY",
                    "from_symbol": base,
                    "to_symbol": quote,
                    "interval": _INTRADAY[timeframe],
                    "outputsize": "full",
                }
            return {
                "function": "FX_DAILY",
                "from_symbol": base,
                "to_symbol": quote,
                "outputsize": "full",
            }
        if asset_class is AssetClass.CRYPTO:
            if intraday:
                return {
                    "function": "CRYPTO_INTRADAY",
                    "symbol": base,
                    "market": quote,
                    "interval": _INTRADAY[timeframe],
                    "outputsize": "full",
                }
            return {"function": "DIGITAL_CURRENCY_DAILY", "symbol": base, "market": quote}
        raise ParameterError(f"{SOURCE}: asset class {asset_class} is not served")

    def _query(self, params: dict[str, str], what: str) -> dict[str, Any]:
        self.counter.take()
        reply = get_json(
            self._session,
            SOURCE,
            what,
            URL,
            {**params, "apikey": self._key},
            policy=self.retry,
        )
        if not isinstance(reply, dict):
            raise DataError(f"{SOURCE}: {what}: expected a JSON object, got {type(reply).__name__}")
        if "Error Message" in reply:
            raise ParameterError(f"{SOURCE}: {what} rejected ({reply['Error Message']})")
        for key in ("Note", "Information"):
            if key in reply:
                raise SourceUnavailableError(f"{SOURCE}: {what} refused ({reply[key]})")
        return reply

    # -- CandleChannel ---------------------------------------------------------------------

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
        *,
        progress: ProgressCallback | None = None,
        asset_class: AssetClass | None = None,
    ) -> pd.DataFrame:
        """Candles with open time in [since, until). One request returns the whole
        available series (``outputsize=full``), so there is nothing to paginate."""
        window = fetch_window(SOURCE, timeframe, TIMEFRAMES, since, until, self._clock)
        if window is None:
            return empty_candle_frame()
        start, end = window
        kind = asset_class or self.asset_class_of(symbol)
        params = self._params(self.canonical_symbol(symbol), timeframe, kind)
        what = f"{params['function']} {symbol} {timeframe}"
        reply = self._query(params, what)
        frame = parse_series(reply, source=f"{SOURCE} {what}", intraday=is_intraday(timeframe))
        frame = restrict(frame, start, end)
        if progress is not None:
            progress(len(frame))
        return frame


def parse_series(reply: dict[str, Any], *, source: str, intraday: bool) -> pd.DataFrame:
    """Candle frame from an Alpha Vantage time-series reply (any of the stock, FX or
    crypto layouts). Intraday times are localised in the metadata's zone, then UTC."""
    meta = reply.get("Meta Data")
    series_keys = [k for k in reply if k != "Meta Data" and isinstance(reply[k], dict)]
    if not isinstance(meta, dict) or len(series_keys) != 1:
        raise DataError(
            f"{source}: not an Alpha Vantage time series (keys: {', '.join(map(str, reply))})"
        )
    zone = next((str(v) for k, v in meta.items() if str(k).endswith("Time Zone")), "UTC")
    rows: dict[str, dict[str, Any]] = reply[series_keys[0]]
    if not rows:
        return empty_candle_frame()
    first = next(iter(rows.values()))
    field_of = _field_map(first, source)
    frame = pd.DataFrame.from_dict(rows, orient="index")[list(field_of)].rename(columns=field_of)
    try:
        index = pd.DatetimeIndex(pd.to_datetime(frame.index, format="ISO8601"))
    except ValueError as exc:
        raise DataError(f"{source}: unreadable timestamp ({exc})") from exc
    frame.index = index
    frame = frame.sort_index(kind="stable")
    if intraday:
        local = pd.DatetimeIndex(frame.index)
        try:
            frame.index = local.tz_localize(zone, ambiguous="infer", nonexistent="raise")
        except (ValueError, KeyError) as exc:
            raise DataError(f"{source}: cannot place times in zone {zone!r} ({exc})") from exc
    return candle_frame(frame, source=source, date_only=not intraday)


def _field_map(row: dict[str, Any], source: str) -> dict[str, str]:
    """Vendor key -> column, by the key's leading number (1 open .. 5 volume). Of
    several keys with one number (old crypto layout: "1a. open (CNY)", "1b. open (USD)")
    the first, in the market's own currency, is taken."""
    names = {1: "open", 2: "high", 3: "low", 4: "close", 5: "volume"}
    chosen: dict[str, str] = {}
    for key in sorted(row):
        match = _KEY_NUMBER.match(key)
        if match is None:
            continue
        name = names.get(int(match.group(1)))
        if name is None or name in chosen.values():
            continue
        if name not in key:
            raise DataError(f"{source}: unexpected field {key!r} (expected {name})")
        chosen[key] = name
    if not {"open", "high", "low", "close"} <= set(chosen.values()):
        raise DataError(f"{source}: rows lack OHLC fields (fields: {', '.join(sorted(row))})")
    return chosen
