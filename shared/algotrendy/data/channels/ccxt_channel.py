"""Crypto exchanges through ccxt: one adapter, parametrised by the ccxt exchange id.

ccxt already builds each exchange's requests, signs them, parses the replies into its
unified structures and throttles itself to the exchange's published limit
(``enableRateLimit`` with ``rateLimit`` milliseconds between requests, see
https://docs.ccxt.com/#/README?id=rate-limit). This adapter adds what ccxt leaves to the
caller: pagination over a ``[since, until)`` range, bounded retries with backoff for
transient errors (ccxt's manual, "Error Handling": ``NetworkError`` and its subclasses are
recoverable, ``ExchangeError`` and its subclasses are not), one-line errors, and the
conversion to the platform's records.

Markets are loaded for one market type only (``spot`` by default) and without the
currency list: market data needs neither, and on several exchanges the currencies call is
private (needs API keys) or a separate request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

import ccxt
import pandas as pd

from algotrendy.data.channels.base import ChannelInfo, ProgressCallback
from algotrendy.data.channels.retry import RetryPolicy, Verdict, call_with_retry, one_line
from algotrendy.data.normalise import (
    candles_from_rows,
    fetch_window,
    from_epoch_ms,
    timeframe_seconds,
    to_epoch_ms,
    utc_now,
)
from algotrendy.domain.market import (
    AssetClass,
    DataKind,
    OrderBook,
    OrderBookLevel,
    Tick,
    Trade,
)
from algotrendy.errors import ParameterError, SourceUnavailableError
from algotrendy.storage.base import empty_candle_frame

MarketType = Literal["spot", "swap"]


@dataclass(frozen=True)
class ExchangeSpec:
    """What ccxt does not tell us: the largest candle page the exchange serves and where
    the exchange documents its rate limit (the number itself comes from ccxt's
    ``rateLimit``, which ccxt's maintainers set from that page)."""

    page_limit: int
    rate_limit_doc: str
    # ccxt option `fetchMarkets.types` values per market type (None: option not supported).
    market_types: Mapping[str, tuple[str, ...]] | None = None
    # Whether a candle request for this ccxt market covers a bounded time window (start to
    # start + limit bars) rather than "the next `limit` candles from start". Exchanges
    # send no candle for a bucket without trades, so on a windowed API an empty page only
    # means "nothing in this window", never "nothing after it".
    windowed: Callable[[Mapping[str, Any]], bool] = lambda market: False


EXCHANGES: dict[str, ExchangeSpec] = {
    # GET /api/v3/klines: limit default 500, max 1000.
    "binance": ExchangeSpec(
        1000,
        "https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits",
        {"spot": ("spot",), "swap": ("linear", "inverse")},
        # Spot and USD-M klines are "the next `limit` from startTime"; for COIN-M
        # (inverse) ccxt always adds endTime = startTime + limit bars (ccxt issue 8454).
        windowed=lambda market: bool(market.get("inverse")),
    ),
    # GET /v5/market/kline: limit [1, 1000].
    "bybit": ExchangeSpec(
        1000,
        "https://bybit-exchange.github.io/docs/v5/rate-limit",
        {"spot": ("spot",), "swap": ("linear", "inverse")},
    ),
    # GET /api/v5/market/candles and history-candles (ccxt switches for bars older than
    # 1439 bars): limit max 300 for both since 2025 (it was 100 for history-candles; ccxt
    # issue 26705, PR 26723). Requests are windows: before=since-1, after=since+limit bars.
    "okx": ExchangeSpec(
        300,
        "https://www.okx.com/docs-v5/en/#overview-rate-limits",
        {"spot": ("spot",), "swap": ("swap",)},
        windowed=lambda market: True,
    ),
    # Advanced Trade GET /products/{id}/candles: at most 350 candles per request, always
    # for a window [start, end] (ccxt sends end = start + 300 bars when not given).
    "coinbase": ExchangeSpec(
        300,
        "https://docs.cdp.coinbase.com/advanced-trade/docs/rest-api-rate-limits",
        windowed=lambda market: True,
    ),
    # GET /0/public/OHLC: returns up to 720 candles.
    "kraken": ExchangeSpec(
        720,
        "https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits",
    ),
}


def classify_ccxt_error(exc: BaseException) -> Verdict | None:
    """ccxt's own split: OperationFailed and its NetworkError branch (timeouts, 5xx,
    429/DDoS protection, maintenance, "server overloaded") may succeed later;
    ExchangeError (4xx, bad symbol, bad key) never will."""
    if isinstance(exc, ccxt.OperationFailed):
        return Verdict.TRANSIENT
    if isinstance(exc, ccxt.BaseError):
        return Verdict.PERMANENT
    return None


class CcxtChannel:
    """Candles, tickers, trades and order books from one ccxt exchange."""

    def __init__(
        self,
        exchange_id: str,
        *,
        market_type: MarketType = "spot",
        retry: RetryPolicy | None = None,
        page_limit: int | None = None,
        config: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if exchange_id not in EXCHANGES:
            raise ParameterError(
                f"exchange {exchange_id!r} is not supported; choose one of "
                f"{', '.join(sorted(EXCHANGES))}"
            )
        if market_type not in ("spot", "swap"):
            raise ParameterError(f"market_type must be 'spot' or 'swap', got {market_type!r}")
        spec = EXCHANGES[exchange_id]
        self.name = exchange_id
        self.market_type: MarketType = market_type
        self.retry = retry or RetryPolicy()
        self.page_limit = page_limit or spec.page_limit
        if self.page_limit < 1:
            raise ParameterError(f"page_limit must be >= 1, got {self.page_limit}")
        self._clock = clock
        settings = dict(config or {})
        options = {**dict(settings.pop("options", {}) or {}), "defaultType": market_type}
        exchange: Any = getattr(ccxt, exchange_id)(
            {"enableRateLimit": True, **settings, "options": options}
        )
        if spec.market_types is not None:
            current = exchange.options.get("fetchMarkets")
            base = dict(current) if isinstance(current, dict) else {}
            exchange.options["fetchMarkets"] = {
                **base,
                "types": list(spec.market_types[market_type]),
            }
        # Instance-level copy: ccxt's `has` is a class attribute shared by all instances.
        exchange.has = {**exchange.has, "fetchCurrencies": False}
        self.exchange = exchange
        self.info = ChannelInfo(
            name=exchange_id,
            asset_classes=(AssetClass.CRYPTO,)
            if market_type == "spot"
            else (AssetClass.CRYPTO, AssetClass.FUTURES),
            kinds=(DataKind.OHLCV, DataKind.TICKER, DataKind.TRADES, DataKind.ORDER_BOOK),
            timeframes=tuple(exchange.timeframes or ()),
            rate_limit_per_minute=round(60_000 / float(exchange.rateLimit), 3),
            doc_url=spec.rate_limit_doc,
        )

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], Any], symbol: str | None = None) -> Any:
        def translate(exc: BaseException) -> Exception:
            if isinstance(exc, ccxt.BadSymbol):
                return ParameterError(
                    f"{self.name}: unknown symbol {symbol!r} for {self.market_type} markets "
                    f"({one_line(exc)})"
                )
            if isinstance(exc, ccxt.NotSupported):
                return ParameterError(f"{self.name}: {what} is not supported ({one_line(exc)})")
            if isinstance(exc, ccxt.BadRequest):
                return ParameterError(f"{self.name}: {what} rejected ({one_line(exc)})")
            return SourceUnavailableError(f"{self.name}: {what} refused ({one_line(exc)})")

        return call_with_retry(
            self.name,
            what,
            call,
            classify=classify_ccxt_error,
            policy=self.retry,
            translate=translate,
        )

    def _market(self, symbol: str) -> Mapping[str, Any]:
        """ccxt's market for `symbol`, which may be unified (``BTC/USDT``) or an exchange id
        such as ``BTCUSDT``; loads markets once."""
        self._call("load markets", self.exchange.load_markets)
        market: Mapping[str, Any] = self._call(
            f"look up {symbol!r}", lambda: self.exchange.market(symbol), symbol
        )
        return market

    def _symbol(self, symbol: str) -> str:
        """The unified symbol (``BTC/USDT``) for `symbol`."""
        return str(self._market(symbol)["symbol"])

    def canonical_symbol(self, symbol: str) -> str:
        """The key a series is stored under: an exchange id (``BTCUSDT``, Binance's) is
        resolved to its market's unified symbol (``BTC/USDT``), so both spellings are one
        series. A symbol already written the unified way (with ``/``) is kept as typed,
        after checking the exchange knows it: series stored before this rule keep their
        keys, and strategy configs naming ``BTC/USDT`` on a swap channel still match."""
        resolved = self._symbol(symbol)  # the channel's clear error for an unknown one
        return symbol.strip() if "/" in symbol else resolved

    # -- CandleChannel ----------------------------------------------------------------

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> pd.DataFrame:
        """Candles with open time in [since, until), fetched page by page.

        Each page asks for `page_limit` candles from a cursor; the next cursor is the last
        candle received plus one bar, so page boundaries never repeat a candle. Where the
        exchange answers for a bounded window (``ExchangeSpec.windowed``) the window is
        sent explicitly (ccxt's ``until``) and the cursor then moves at least to its end,
        so a no-trade stretch longer than a page is stepped over instead of ending the
        fetch; the cursor grows by at least one bar per request, so at most
        ceil(range / (page_limit bars)) requests are made. Elsewhere the loop ends at a
        page that brings nothing new (empty, or an exchange that ignored `since`). Either
        way it ends at `until`; `until=None` means "up to the bar still forming now", i.e.
        closed bars only.
        """
        timeframe_seconds(timeframe)  # a malformed timeframe is refused as such first
        window = fetch_window(self.name, timeframe, self.info.timeframes, since, until, self._clock)
        if window is None:
            return empty_candle_frame()
        start, end = window
        market = self._market(symbol)
        unified = str(market["symbol"])
        windowed = EXCHANGES[self.name].windowed(market)
        step_ms = timeframe_seconds(timeframe) * 1000
        cursor, end_ms = to_epoch_ms(start), to_epoch_ms(end)
        rows: list[list[Any]] = []
        while cursor < end_ms:
            page_since = cursor
            # [page_since, window_end) is what a windowed exchange is asked for; ccxt maps
            # `until` to the exchange's inclusive end (Coinbase end, Binance endTime) or
            # exclusive one (OKX after), and one ms less excludes the bar at window_end in
            # both readings.
            window_end = min(end_ms, cursor + self.page_limit * step_ms)
            params = {"until": window_end - 1} if windowed else {}
            page = self._call(
                f"fetch {timeframe} candles for {unified} from {from_epoch_ms(page_since)}",
                partial(
                    self.exchange.fetch_ohlcv,
                    unified,
                    timeframe,
                    since=page_since,
                    limit=self.page_limit,
                    params=params,
                ),
                unified,
            )
            fresh = sorted(
                (r for r in page if page_since <= int(r[0]) < end_ms), key=lambda r: int(r[0])
            )
            if fresh:
                rows.extend(fresh)
                if progress is not None:
                    progress(len(fresh))
                cursor = int(fresh[-1][0]) + step_ms
            if windowed:
                cursor = max(cursor, window_end)
            elif not fresh:
                break
        return candles_from_rows(rows, unit="ms", source=f"{self.name} {unified} {timeframe}")

    # -- MarketChannel ----------------------------------------------------------------

    def fetch_ticker(self, symbol: str) -> Tick:
        unified = self._symbol(symbol)
        raw = self._call(
            f"fetch ticker for {unified}", lambda: self.exchange.fetch_ticker(unified), unified
        )
        return Tick(
            exchange=self.name,
            symbol=str(raw.get("symbol") or unified),
            time=self._time(raw.get("timestamp")),
            bid=_opt_float(raw.get("bid")),
            ask=_opt_float(raw.get("ask")),
            last=_opt_float(raw.get("last")),
            bid_size=_opt_float(raw.get("bidVolume")),
            ask_size=_opt_float(raw.get("askVolume")),
        )

    def fetch_trades(self, symbol: str, since: datetime | None = None) -> list[Trade]:
        """Recent public trades (the exchange's default count), oldest first."""
        unified = self._symbol(symbol)
        since_ms = to_epoch_ms(since) if since is not None else None
        raw = self._call(
            f"fetch trades for {unified}",
            lambda: self.exchange.fetch_trades(unified, since=since_ms),
            unified,
        )
        trades = [
            Trade(
                exchange=self.name,
                symbol=str(t.get("symbol") or unified),
                time=self._time(t.get("timestamp")),
                trade_id=None if t.get("id") is None else str(t["id"]),
                side=t.get("side"),
                price=float(t["price"]),
                amount=float(t["amount"]),
            )
            for t in raw
        ]
        return sorted(trades, key=lambda t: t.time)

    def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        if depth < 1:
            raise ParameterError(f"depth must be >= 1, got {depth}")
        unified = self._symbol(symbol)
        raw = self._call(
            f"fetch order book for {unified}",
            lambda: self.exchange.fetch_order_book(unified, limit=depth),
            unified,
        )
        return OrderBook(
            exchange=self.name,
            symbol=str(raw.get("symbol") or unified),
            time=self._time(raw.get("timestamp")),
            bids=tuple(
                OrderBookLevel(price=float(p), amount=float(a)) for p, a, *_ in raw["bids"][:depth]
            ),
            asks=tuple(
                OrderBookLevel(price=float(p), amount=float(a)) for p, a, *_ in raw["asks"][:depth]
            ),
        )

    def _time(self, ms: Any) -> datetime:
        """Exchange timestamp, or the time of receipt when the exchange sends none (Binance
        spot depth and some tickers carry no time)."""
        return from_epoch_ms(float(ms)) if ms is not None else self._clock()


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
