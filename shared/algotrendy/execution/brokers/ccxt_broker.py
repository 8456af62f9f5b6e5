"""Crypto venues through ccxt: Binance and Bybit first-class, any other ccxt exchange by id.

The adapter speaks ccxt's unified API (`create_order`, `fetch_order`, `fetch_my_trades`,
...), so ccxt builds and signs the venue's requests and parses its replies; this module only
translates between the engine's vocabulary and ccxt's, and ccxt's errors into the engine's.

Order mapping (intent -> `create_order(symbol, type, side, amount, price, params)`):

| intent | ccxt type, price | params |
|---|---|---|
| market | `market`, None | - |
| limit | `limit`, limit_price | `timeInForce` |
| stop | `market`, None | `triggerPrice` (1) |
| stop_limit | `limit`, limit_price | `triggerPrice`, `timeInForce` (2) |
| trailing_stop | `market`, None | `trailingPercent` (3) |

(1) Binance spot STOP_LOSS / futures STOP_MARKET; Bybit conditional market order with
`triggerDirection` rise for buys, fall for sells. (2) Binance STOP_LOSS_LIMIT / STOP.
(3) Binance USD-M/COIN-M TRAILING_STOP_MARKET with `callbackRate` (an algo order).

Every order carries the intent's client order id in the venue's own field: Binance
`newClientOrderId`, Bybit `orderLinkId`, others ccxt's unified `clientOrderId`.

Not supported, refused with `InvalidOrderError` before anything is sent:
* trailing stops on spot markets and on Bybit. Binance spot's `trailingDelta` only works on
  STOP_LOSS/TAKE_PROFIT orders with different semantics (basis points from a trigger), and
  Bybit's `trailingStop` is a *position* attribute set through
  `/v5/position/trading-stop`: it has no order id and no `orderLinkId`, so it could never be
  found again by client order id, which idempotency and reconciliation need;
* time in force DAY (crypto venues trade around the clock and offer GTC/IOC/FOK only);
* reduce-only on spot markets (a spot venue has no position to reduce).

Idempotency: a submit whose client order id the venue already has is refused by the venue
(Binance -2010 "Duplicate order sent." / futures -4116; Bybit 110072 / 170141 / 12141);
that refusal becomes a lookup, and the existing order is returned. Errors: ccxt's classes
map onto `algotrendy.execution.errors` (see `_translate`); a network error or timeout on a
submit is a `SubmitTimeoutError` because the order may exist.

Fills: an order's fills are its trades (`fetch_my_trades` filtered by order id, or the
trades Binance returns inline with a FULL new-order response).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

import ccxt

from algotrendy.domain.orders import OrderIntent, OrderStatus, OrderType, TimeInForce
from algotrendy.execution.brokers.base import BrokerFill, BrokerOrder, BrokerPosition
from algotrendy.execution.brokers.credentials import BrokerCredentials, RedactingFilter
from algotrendy.execution.brokers.ratelimit import VENUE_LIMITS, RateLimiter, shared_limiter
from algotrendy.execution.errors import (
    AuthenticationError,
    BrokerError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    RateLimitedError,
    RetryableBrokerError,
    SubmitTimeoutError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
MarketType = Literal["spot", "linear", "inverse"]

# The venue's field for the client order id on a new order.
CLIENT_ID_PARAM: dict[str, str] = {"binance": "newClientOrderId", "bybit": "orderLinkId"}

# The venue's refusal of a client order id it already has, as ccxt puts it in the message
# (`"<id> <raw body>"`). ccxt maps these codes to InvalidOrder/BadRequest, not to
# DuplicateOrderId, so the codes are matched here.
# Binance spot: -2010 NEW_ORDER_REJECTED with msg "Duplicate order sent."; USD-M futures:
# -4116 DUPLICATED_CLIENT_ORDER_ID (Binance "Error Codes"). Bybit v5: 110072 "OrderLinkedID
# is duplicate", 170141 "Duplicate clientOrderId" (spot), 12141 (spot v3) (Bybit "Error Codes").
DUPLICATE_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    "binance": (
        re.compile(r"Duplicate order sent", re.IGNORECASE),
        re.compile(r'"code"\s*:\s*-4116\b'),
    ),
    "bybit": (re.compile(r'"retCode"\s*:\s*(110072|170141|12141)\b'),),
}

# Binance REQUEST_WEIGHT of each call (Binance spot API docs, "Weight" of each endpoint);
# other venues count one unit per request.
BINANCE_WEIGHTS: dict[str, float] = {
    "create_order": 1, "cancel_order": 1, "fetch_order": 4, "fetch_open_orders": 6,
    "fetch_canceled_and_closed_orders": 20, "fetch_my_trades": 20, "fetch_balance": 20,
    "fetch_positions": 5, "load_markets": 20,
}  # fmt: skip

_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}


class _DuplicateClientOrderIdError(BrokerError):
    """The venue already has an order with this client order id."""


@dataclass(frozen=True, slots=True)
class _Known:
    symbol: str
    conditional: bool


class CcxtBroker:
    """A ccxt exchange behind the Broker port.

    `symbols` are the unified symbols this broker trades; they are where `get_order` looks
    for a client order id it did not place in this process (after a restart), and what
    `open_orders`/`positions` cover (Binance and Bybit need a symbol for those calls).
    """

    def __init__(
        self,
        exchange_id: str = "binance",
        *,
        credentials: BrokerCredentials | None = None,
        sandbox: bool = False,
        market_type: MarketType = "spot",
        symbols: Sequence[str] = (),
        exchange: ccxt.Exchange | None = None,
        limiter: RateLimiter | None = None,
        timeout_ms: int = 10_000,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.name = exchange_id
        self.market_type: MarketType = market_type
        self.credentials = credentials or BrokerCredentials()
        if exchange is None:
            exchange = self._build_exchange(exchange_id, timeout_ms, options or {})
        self.exchange = exchange
        if sandbox:
            try:
                exchange.set_sandbox_mode(True)
            except ccxt.NotSupported as exc:
                raise InvalidOrderError(f"{exchange_id} has no sandbox/testnet") from exc
        self.sandbox = sandbox
        self.limiter = limiter if limiter is not None else shared_limiter(self._limit_key())
        self.symbols = list(symbols)
        self._known: dict[str, _Known] = {}
        # Client order ids the venue refused as duplicates before a lookup could see them:
        # it has them, so `get_order` must never answer None (= "never got it") for them.
        self._acknowledged: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"CcxtBroker({self.exchange_id!r}, market_type={self.market_type!r}, "
            f"sandbox={self.sandbox}, credentials={self.credentials!r})"
        )

    # -- construction --------------------------------------------------------------------
    def _build_exchange(
        self, exchange_id: str, timeout_ms: int, options: Mapping[str, Any]
    ) -> ccxt.Exchange:
        cls = getattr(ccxt, exchange_id, None)
        if cls is None or exchange_id not in ccxt.exchanges:
            raise ValueError(f"exchange_id: ccxt has no exchange {exchange_id!r}")
        secrets = self.credentials.secret_values()
        ex_log = logging.getLogger(f"{__name__}.{exchange_id}")
        if secrets:
            ex_log.addFilter(RedactingFilter(secrets))
        default_type = "spot" if self.market_type == "spot" else "swap"
        config: dict[str, Any] = {
            "timeout": timeout_ms,
            # Our own limiter holds the venue's documented budget; ccxt's sleeps would
            # double-count. Venues without a documented entry keep ccxt's throttle.
            "enableRateLimit": exchange_id not in VENUE_LIMITS,
            "logger": ex_log,
            "options": {"defaultType": default_type, **dict(options)},
        }
        if self.market_type != "spot":
            config["options"].setdefault("defaultSubType", self.market_type)
        key = BrokerCredentials.reveal(self.credentials.api_key)
        secret = BrokerCredentials.reveal(self.credentials.api_secret)
        passphrase = BrokerCredentials.reveal(self.credentials.passphrase)
        if key:
            config["apiKey"] = key
        if secret:
            config["secret"] = secret
        if passphrase:
            config["password"] = passphrase
        exchange: ccxt.Exchange = cls(config)
        if exchange_id in ("binance", "bybit"):
            # Load only the market type we trade: fewer calls, no option chains.
            current = exchange.options.get("fetchMarkets")
            base = dict(current) if isinstance(current, dict) else {}
            exchange.options["fetchMarkets"] = {**base, "types": [self.market_type]}
            # Currency metadata (deposit networks) is a private wallet call that trading
            # does not need; precision comes from the markets. Skip it on load.
            exchange.options["fetchCurrencies"] = False
            exchange.options["fetchMargins"] = False  # margin pairs: not traded here
            exchange.has = {**exchange.has, "fetchCurrencies": False}
        return exchange

    def _limit_key(self) -> str:
        if self.exchange_id == "binance" and self.market_type != "spot":
            return "binanceusdm"
        return self.exchange_id

    # -- calls and errors ----------------------------------------------------------------
    def _call(self, method: str, fn: Callable[[], T], *, submitting: bool = False) -> T:
        weight = BINANCE_WEIGHTS.get(method, 1.0) if self.exchange_id == "binance" else 1.0
        costs: list[tuple[str, float]] = [("weight", weight)]
        if method in ("create_order", "cancel_order"):
            costs.append(("orders", 1.0))
        self.limiter.acquire(*costs)
        try:
            return fn()
        except ccxt.BaseError as exc:
            raise self._translate(exc, submitting=submitting) from exc

    def _translate(self, exc: ccxt.BaseError, *, submitting: bool) -> BrokerError:
        """ccxt's error classes -> the engine's (freqtrade's exchange wrapper does the same)."""
        msg = f"{self.exchange_id}: {exc}"
        if submitting and self._is_duplicate(exc):
            return _DuplicateClientOrderIdError(msg)
        if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
            return RateLimitedError(msg, retry_after=self._retry_after())
        if isinstance(exc, ccxt.InvalidNonce):
            # The venue refused the request's timestamp: nothing was placed.
            return RetryableBrokerError(msg)
        if isinstance(exc, ccxt.NetworkError):
            # RequestTimeout, ExchangeNotAvailable, connection errors: a submit may have
            # reached the venue.
            return SubmitTimeoutError(msg) if submitting else RetryableBrokerError(msg)
        if isinstance(exc, ccxt.BadResponse):
            return SubmitTimeoutError(msg) if submitting else RetryableBrokerError(msg)
        if isinstance(exc, ccxt.AuthenticationError):  # includes PermissionDenied
            return AuthenticationError(msg)
        if isinstance(exc, ccxt.InsufficientFunds):
            return InsufficientFundsError(msg)
        if isinstance(exc, ccxt.OrderNotFound):
            return OrderNotFoundError(msg)
        if isinstance(
            exc,
            (
                ccxt.InvalidOrder,
                ccxt.BadRequest,
                ccxt.ArgumentsRequired,
                ccxt.NotSupported,
                ccxt.OperationRejected,
            ),
        ):
            return InvalidOrderError(msg)
        return BrokerError(msg)

    def _is_duplicate(self, exc: ccxt.BaseError) -> bool:
        if isinstance(exc, ccxt.DuplicateOrderId):
            return True
        if not isinstance(exc, ccxt.ExchangeError):
            return False
        text = str(exc)
        return any(p.search(text) for p in DUPLICATE_PATTERNS.get(self.exchange_id, ()))

    def _retry_after(self) -> float | None:
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        try:
            value = headers.get("Retry-After") or headers.get("retry-after")
        except AttributeError:
            return None
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    # -- markets -------------------------------------------------------------------------
    def _market(self, symbol: str) -> dict[str, Any]:
        self._call("load_markets", lambda: self.exchange.load_markets())
        try:
            market: dict[str, Any] = self.exchange.market(symbol)
        except ccxt.BaseError as exc:
            raise InvalidOrderError(f"{self.exchange_id}: unknown symbol {symbol!r}") from exc
        return market

    def _is_contract(self, market: Mapping[str, Any]) -> bool:
        return bool(market.get("contract"))

    # -- intent -> ccxt arguments --------------------------------------------------------
    def order_args(
        self, intent: OrderIntent, market: Mapping[str, Any]
    ) -> tuple[str, float | None, dict[str, Any]]:
        """(ccxt type, price, params) for `intent`, or InvalidOrderError if unsupported."""
        venue = f"{self.exchange_id} {market.get('type', self.market_type)}"
        contract = self._is_contract(market)
        if intent.time_in_force is TimeInForce.DAY:
            raise InvalidOrderError(
                f"{venue}: time in force DAY is not offered (GTC, IOC, FOK only)"
            )
        if intent.reduce_only and not contract:
            raise InvalidOrderError(f"{venue}: reduce_only needs a derivatives market")
        params: dict[str, Any] = {
            CLIENT_ID_PARAM.get(self.exchange_id, "clientOrderId"): intent.client_order_id
        }
        if intent.reduce_only:
            params["reduceOnly"] = True
        kind = intent.order_type
        tif = {"timeInForce": _TIF[intent.time_in_force]}
        if kind is OrderType.MARKET:
            return "market", None, params
        if kind is OrderType.LIMIT:
            return "limit", intent.limit_price, {**params, **tif}
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT):
            params["triggerPrice"] = intent.stop_price
            if self.exchange_id == "bybit" and contract:
                # Bybit conditional orders need the direction the price must cross:
                # a buy stop triggers on a rise, a sell stop on a fall.
                params["triggerDirection"] = (
                    "ascending" if intent.side.value == "buy" else "descending"
                )
            if kind is OrderType.STOP:
                return "market", None, params
            return "limit", intent.limit_price, {**params, **tif}
        # trailing stop
        if self.exchange_id == "binance" and contract:
            params["trailingPercent"] = intent.trail_percent
            return "market", None, params
        raise InvalidOrderError(
            f"{venue}: no native percent trailing stop that can be tracked by client order "
            "id (Binance supports it on USD-M/COIN-M futures only; Bybit's trailingStop is "
            "a position setting without an order id)"
        )

    def _conditional(self, intent: OrderIntent, market: Mapping[str, Any]) -> bool:
        """Binance futures route conditional orders to its algo-order endpoints."""
        return (
            self.exchange_id == "binance"
            and self._is_contract(market)
            and intent.order_type in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)
        )

    # -- the Broker port -------------------------------------------------------------------
    def submit(self, intent: OrderIntent) -> BrokerOrder:
        market = self._market(intent.symbol)
        symbol = str(market["symbol"])
        type_, price, params = self.order_args(intent, market)
        coid = intent.client_order_id
        known = _Known(symbol, self._conditional(intent, market))
        self._known[coid] = known
        try:
            raw = self._call(
                "create_order",
                lambda: self.exchange.create_order(
                    symbol, type_, intent.side.value, intent.quantity, price, params
                ),
                submitting=True,
            )
        except _DuplicateClientOrderIdError as dup:
            existing = self._lookup(coid, [(known.symbol, known.conditional)])
            if existing is None:
                # The venue says it has the order but does not show it yet (its reads lag
                # its writes): the order exists, its state is unknown. A timeout, not a
                # refusal, so the engine keeps it UNKNOWN and asks again instead of
                # rejecting it; `get_order` will not call it absent meanwhile.
                self._acknowledged.add(coid)
                raise SubmitTimeoutError(
                    f"{dup}; duplicate client order id {coid} not found on lookup"
                ) from dup
            return existing
        order = self._to_order(raw, coid, symbol)
        if order.filled_quantity > 0 and not order.fills:
            order = self._with_fills(order, symbol)
        return order

    def cancel(self, client_order_id: str) -> BrokerOrder:
        order = self.get_order(client_order_id)
        if order is None:
            raise OrderNotFoundError(f"{self.exchange_id}: no order {client_order_id}")
        if order.status not in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
            return order
        known = self._known[client_order_id]
        params: dict[str, Any] = {"trigger": True} if known.conditional else {}
        self._call(
            "cancel_order",
            lambda: self.exchange.cancel_order(order.broker_order_id, known.symbol, params),
        )
        after = self._lookup(client_order_id, [(known.symbol, known.conditional)])
        return after if after is not None else order

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        known = self._known.get(client_order_id)
        if known is not None:
            candidates = [(known.symbol, known.conditional)]
        else:
            candidates = []
            for s in self.symbols:
                market = self._market(s)
                candidates.append((str(market["symbol"]), False))
                if self.exchange_id == "binance" and self._is_contract(market):
                    candidates.append((str(market["symbol"]), True))
        found = self._lookup(client_order_id, candidates)
        if found is not None:
            self._acknowledged.discard(client_order_id)
        elif client_order_id in self._acknowledged:
            # None would tell the engine the venue never got it; the venue said it has it.
            raise RetryableBrokerError(
                f"{self.exchange_id}: order {client_order_id} was reported by the venue as "
                "a duplicate but is not visible yet"
            )
        return found

    def open_orders(self) -> list[BrokerOrder]:
        symbols = dict.fromkeys(
            [str(self._market(s)["symbol"]) for s in self.symbols]
            + [k.symbol for k in self._known.values()]
        )
        out: list[BrokerOrder] = []
        for symbol in symbols:
            raws = self._call("fetch_open_orders", partial(self.exchange.fetch_open_orders, symbol))
            for raw in raws:
                coid = raw.get("clientOrderId") or f"{self.exchange_id}:{raw.get('id')}"
                out.append(self._to_order(raw, str(coid), symbol))
        return out

    def positions(self) -> list[BrokerPosition]:
        """Contracts: the venue's positions (signed). Spot: the total balance of each traded
        symbol's base asset, which is what a spot "position" is at the venue."""
        if self.market_type == "spot":
            balance = self._call("fetch_balance", lambda: self.exchange.fetch_balance())
            totals = balance.get("total") or {}
            out = []
            for s in self.symbols:
                market = self._market(s)
                qty = float(totals.get(market["base"]) or 0.0)
                if qty:
                    out.append(BrokerPosition(str(market["symbol"]), qty))
            return out
        # All of the account's positions, not only `symbols`: reconciliation must see drift
        # on any market the account holds.
        self._call("load_markets", lambda: self.exchange.load_markets())
        raws = self._call("fetch_positions", lambda: self.exchange.fetch_positions())
        result = []
        for p in raws:
            contracts = float(p.get("contracts") or 0.0)
            if not contracts:
                continue
            size = contracts * float(p.get("contractSize") or 1.0)
            sign = -1.0 if p.get("side") == "short" else 1.0
            avg = p.get("entryPrice")
            result.append(
                BrokerPosition(str(p["symbol"]), sign * size, float(avg) if avg else None)
            )
        return result

    # -- lookups -------------------------------------------------------------------------
    def _lookup(self, coid: str, candidates: Iterable[tuple[str, bool]]) -> BrokerOrder | None:
        for symbol, conditional in candidates:
            raw = self._fetch_by_client_id(coid, symbol, conditional)
            if raw is not None:
                self._known[coid] = _Known(symbol, conditional)
                return self._with_fills(self._to_order(raw, coid, symbol), symbol)
        return None

    def _fetch_by_client_id(
        self, coid: str, symbol: str, conditional: bool
    ) -> dict[str, Any] | None:
        ex = self.exchange
        try:
            if self.exchange_id == "binance":
                params: dict[str, Any] = {"origClientOrderId": coid}
                if conditional:
                    params = {"clientAlgoId": coid, "trigger": True}
                raw: dict[str, Any] = self._call(
                    "fetch_order", lambda: ex.fetch_order("", symbol, params)
                )
                return raw
            if self.exchange_id == "bybit":
                # /v5/order/realtime holds open orders (and, for unified accounts, the
                # latest closed ones); /v5/order/history the rest.
                q = {"orderLinkId": coid}
                found = self._call(
                    "fetch_open_orders", lambda: ex.fetch_open_orders(symbol, None, None, q)
                )
                if not any(o.get("clientOrderId") == coid for o in found):
                    found = self._call(
                        "fetch_canceled_and_closed_orders",
                        lambda: ex.fetch_canceled_and_closed_orders(symbol, None, None, q),
                    )
                return next((o for o in found if o.get("clientOrderId") == coid), None)
            found = self._call("fetch_open_orders", lambda: ex.fetch_open_orders(symbol))
            if ex.has.get("fetchClosedOrders"):
                found = found + self._call(
                    "fetch_closed_orders", lambda: ex.fetch_closed_orders(symbol)
                )
            return next((o for o in found if o.get("clientOrderId") == coid), None)
        except OrderNotFoundError:
            return None

    def _with_fills(self, order: BrokerOrder, symbol: str) -> BrokerOrder:
        if order.filled_quantity <= 0 or order.fills or order.broker_order_id is None:
            return order
        oid = order.broker_order_id
        trades = self._call(
            "fetch_my_trades",
            lambda: self.exchange.fetch_my_trades(symbol, None, None, {"orderId": oid}),
        )
        fills = tuple(self._to_fill(t) for t in trades if str(t.get("order")) == oid)
        if not fills:
            return order
        return replace(order, fills=fills, avg_fill_price=fill_vwap(fills))

    # -- ccxt structures -> ours ---------------------------------------------------------
    @staticmethod
    def _to_fill(trade: Mapping[str, Any], default_ms: int | None = None) -> BrokerFill:
        """`default_ms`: the order's time, for fills reported inline without their own time
        (Binance's FULL new-order response lists fills without timestamps)."""
        fee = trade.get("fee") or {}
        ts = trade.get("timestamp") or default_ms
        when = datetime.fromtimestamp(ts / 1000, UTC) if ts is not None else datetime.now(UTC)
        return BrokerFill(
            fill_id=str(trade.get("id")),
            quantity=float(trade["amount"]),
            price=float(trade["price"]),
            fee=float(fee.get("cost") or 0.0),
            time=when,
            fee_currency=fee.get("currency"),
        )

    def _to_order(self, raw: Mapping[str, Any], coid: str, symbol: str) -> BrokerOrder:
        amount = float(raw.get("amount") or 0.0)
        filled = float(raw.get("filled") or 0.0)
        status = map_status(raw.get("status"), filled, amount)
        when = raw.get("lastTradeTimestamp") or raw.get("timestamp")
        trades = raw.get("trades") or []
        fills = tuple(self._to_fill(t, when) for t in trades if t.get("id"))
        avg = fill_vwap(fills) if fills else raw.get("average")
        reason = None
        info = raw.get("info") or {}
        if status in (OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            why = (
                info.get("rejectReason") or info.get("cancelType")
                if isinstance(info, dict)
                else None
            )
            if raw.get("status") == "rejected" and filled > 0:
                reason = f"rejected after a partial fill ({why or 'no reason given'})"
            elif why and why not in ("EC_NoError", "UNKNOWN", ""):
                reason = str(why)
        return BrokerOrder(
            client_order_id=coid,
            broker_order_id=str(raw["id"]) if raw.get("id") is not None else None,
            symbol=str(raw.get("symbol") or symbol),
            status=status,
            quantity=amount,
            filled_quantity=filled,
            avg_fill_price=float(avg) if avg else None,
            fills=fills,
            reason=reason,
        )


def fill_vwap(fills: Sequence[BrokerFill]) -> float | None:
    """Average fill price = sum(q_i * p_i) / sum(q_i): the fills are the venue's record of
    what traded, so they win over a venue-computed average (Binance derives its average from
    `cummulativeQuoteQty`, which its documentation example does not keep consistent)."""
    qty = sum(f.quantity for f in fills)
    return sum(f.quantity * f.price for f in fills) / qty if qty > 0 else None


def map_status(status: str | None, filled: float, amount: float) -> OrderStatus:
    """ccxt's unified order status -> ours.

    ccxt reports `open` for both untouched and partly filled working orders, so `filled`
    decides between SUBMITTED and PARTIALLY_FILLED. A venue that rejects an order after a
    partial fill (Bybit can: `Rejected` with `cumExecQty > 0`) ends it as CANCELLED: the
    fills stand and the rest will never trade, and REJECTED after fills is not a lifecycle
    transition (`algotrendy.execution.lifecycle`).
    """
    if status in (None, "open", "canceling"):
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
    if status == "closed":
        return OrderStatus.FILLED
    if status == "canceled":
        return OrderStatus.CANCELLED
    if status == "expired":
        return OrderStatus.EXPIRED
    if status == "rejected":
        return OrderStatus.CANCELLED if filled > 0 else OrderStatus.REJECTED
    log.warning("unknown ccxt order status %r (filled %s of %s)", status, filled, amount)
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
