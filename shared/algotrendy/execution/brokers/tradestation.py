"""TradeStation through its REST API v3 (api.tradestation.com/docs), with `requests`.

Authentication is OAuth2's refresh-token grant: `POST https://signin.tradestation.com/
oauth/token` (form-encoded `grant_type=refresh_token`, `client_id`, `client_secret`,
`refresh_token`) returns an access token valid 20 minutes ("Refresh Tokens" docs). The
adapter refreshes `refresh_margin` seconds before expiry, keeps a rotated refresh token when
the key is configured to rotate, and refreshes once more on a 401.

Orders: `POST /v3/orderexecution/orders` with `AccountID, Symbol, Quantity, OrderType
(Market | Limit | StopMarket | StopLimit), TradeAction (BUY | SELL), TimeInForce {Duration:
DAY | GTC | IOC | FOK}, LimitPrice, StopPrice, Route`; a trailing stop is a StopMarket with
`AdvancedOptions.TrailingStop.Percent`. Status: `GET /v3/brokerage/accounts/{id}/orders/
{orderId}`; cancel: `DELETE /v3/orderexecution/orders/{orderId}`; positions: `GET
/v3/brokerage/accounts/{id}/positions`.

What TradeStation does not have, and what the adapter does instead:
* no client order id on orders. Idempotency is kept by the adapter: the map client order
  id -> TradeStation OrderID is written to `state_path` (JSON, atomic replace) right after
  the venue answers, and a submit whose client id is in the map returns that order. The
  window between TradeStation accepting a POST and the map being written (a crash or a lost
  reply) cannot be closed without a venue-side id: such a submit raises SubmitTimeoutError,
  the engine marks the order UNKNOWN, `get_order` finds nothing, and the operator must check
  the account — this is said in the error message;
* no per-execution records in the order payload: it carries the cumulative `ExecQuantity`
  (per leg) and average `FilledPrice`. Fills are derived from successive observations: each
  increase of the cumulative quantity is one fill of the difference, priced so that the
  fills' VWAP equals the reported average, id `<OrderID>:<cumulative qty>` (the quantity
  written exactly, `_fill_qty`); the observed levels are kept in `state_path` too;
* no reduce-only flag: refused with InvalidOrderError.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from algotrendy.domain.orders import OrderIntent, OrderStatus, OrderType, TimeInForce
from algotrendy.execution.brokers.base import BrokerFill, BrokerOrder, BrokerPosition
from algotrendy.execution.brokers.credentials import BrokerCredentials
from algotrendy.execution.brokers.ratelimit import RateLimiter, shared_limiter
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

LIVE_URL = "https://api.tradestation.com/v3"
SIM_URL = "https://sim-api.tradestation.com/v3"
TOKEN_URL = "https://signin.tradestation.com/oauth/token"

_ORDER_TYPE = {
    OrderType.MARKET: "Market",
    OrderType.LIMIT: "Limit",
    OrderType.STOP: "StopMarket",
    OrderType.STOP_LIMIT: "StopLimit",
    OrderType.TRAILING_STOP: "StopMarket",
}
_DURATION = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC",
             TimeInForce.FOK: "FOK"}  # fmt: skip

# TradeStation v3 order status codes ("Order Status" in the v3 reference).
_STATUS: dict[str, OrderStatus] = {
    "ACK": OrderStatus.SUBMITTED,  # received
    "OPN": OrderStatus.SUBMITTED,  # sent
    "DON": OrderStatus.SUBMITTED,  # queued
    "UCN": OrderStatus.SUBMITTED,  # cancel sent (still working until confirmed)
    "UCH": OrderStatus.SUBMITTED,  # replace sent
    "RJC": OrderStatus.SUBMITTED,  # cancel request rejected: still working
    "CND": OrderStatus.SUBMITTED,  # condition met
    "OSO": OrderStatus.SUBMITTED,  # order sends order
    "PLA": OrderStatus.SUBMITTED,  # placed
    "LAT": OrderStatus.SUBMITTED,  # too late to cancel
    "FPR": OrderStatus.PARTIALLY_FILLED,  # partial fill, alive
    "FLL": OrderStatus.FILLED,
    "FLP": OrderStatus.CANCELLED,  # partial fill, UROut (rest cancelled)
    "OUT": OrderStatus.CANCELLED,  # UROut
    "CAN": OrderStatus.CANCELLED,
    "TSC": OrderStatus.CANCELLED,  # trade server cancelled
    "SCN": OrderStatus.CANCELLED,  # stop cancelled
    "EXP": OrderStatus.EXPIRED,
    "REJ": OrderStatus.REJECTED,
    "BRO": OrderStatus.REJECTED,  # broken
}


@dataclass
class _Tracked:
    order_id: str
    symbol: str
    quantity: float
    levels: list[tuple[float, float, float]] = field(default_factory=list)  # (cum qty, avg, fee)


class TradeStationBroker:
    name = "tradestation"

    def __init__(
        self,
        account_id: str,
        credentials: BrokerCredentials,
        *,
        simulation: bool = True,
        state_path: Path | None = None,
        route: str = "Intelligent",
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        missing = credentials.missing("client_id", "client_secret", "refresh_token")
        if missing:
            raise AuthenticationError(
                f"tradestation: credentials missing {', '.join(missing)} "
                "(ALGOTRENDY_BROKER_TRADESTATION_<FIELD>)"
            )
        self.account_id = account_id
        self.credentials = credentials
        self.base_url = SIM_URL if simulation else LIVE_URL
        self.route = route
        self.session = session or requests.Session()
        self.limiter = limiter if limiter is not None else shared_limiter("tradestation")
        self._clock = clock
        self._margin = refresh_margin
        self._timeout = timeout
        self._refresh_token: SecretStr = credentials.refresh_token  # type: ignore[assignment]
        self._access: SecretStr | None = None
        self._expires_at = 0.0
        self._lock = threading.RLock()
        self.state_path = state_path
        self._orders: dict[str, _Tracked] = {}
        self._load()

    def __repr__(self) -> str:
        return f"TradeStationBroker(account_id={self.account_id!r}, base_url={self.base_url!r})"

    # -- state -----------------------------------------------------------------------------
    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        raw = json.loads(self.state_path.read_text())
        for coid, t in raw.items():
            self._orders[coid] = _Tracked(
                t["order_id"], t["symbol"], t["quantity"], [tuple(x) for x in t["levels"]]
            )

    def _save(self) -> None:
        if self.state_path is None:
            return
        data = {c: {"order_id": t.order_id, "symbol": t.symbol, "quantity": t.quantity,
                    "levels": t.levels} for c, t in self._orders.items()}  # fmt: skip
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_path)

    # -- auth ------------------------------------------------------------------------------
    def _token(self, force: bool = False) -> str:
        with self._lock:
            if force or self._access is None or self._clock() >= self._expires_at - self._margin:
                self._refresh()
            assert self._access is not None
            return self._access.get_secret_value()

    def _refresh(self) -> None:
        data = {
            "grant_type": "refresh_token",
            "client_id": BrokerCredentials.reveal(self.credentials.client_id),
            "client_secret": BrokerCredentials.reveal(self.credentials.client_secret),
            "refresh_token": self._refresh_token.get_secret_value(),
        }
        try:
            resp = self.session.post(TOKEN_URL, data=data, timeout=self._timeout)
        except requests.RequestException as exc:
            raise RetryableBrokerError(f"tradestation: token refresh failed: {exc}") from exc
        if resp.status_code in (400, 401, 403):
            raise AuthenticationError(
                f"tradestation: refresh token refused ({resp.status_code}); sign in again"
            )
        if resp.status_code != 200:
            raise RetryableBrokerError(f"tradestation: token endpoint {resp.status_code}")
        body = resp.json()
        self._access = SecretStr(body["access_token"])
        self._expires_at = self._clock() + float(body.get("expires_in", 1200))
        if body.get("refresh_token"):  # rotating refresh tokens
            self._refresh_token = SecretStr(body["refresh_token"])

    # -- http ------------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, bucket: str, *, body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None, submitting: bool = False,
    ) -> Any:  # fmt: skip
        self.limiter.acquire((bucket, 1.0))
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token(force=attempt == 2)}"}
            try:
                resp = self.session.request(method, self.base_url + path, json=body,
                                            params=params, headers=headers,
                                            timeout=self._timeout)  # fmt: skip
            except (requests.Timeout, requests.ConnectionError) as exc:
                msg = f"tradestation {method} {path}: {type(exc).__name__}"
                if submitting:
                    raise SubmitTimeoutError(msg + self._unknown_note()) from exc
                raise RetryableBrokerError(msg) from exc
            if resp.status_code == 401 and attempt == 1:
                continue  # token revoked or expired early: refresh once and retry
            return self._check(resp, method, path, submitting)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _unknown_note() -> str:
        return (
            " — the order may have been placed; TradeStation has no client order id to "
            "look it up by, check the account's orders"
        )

    def _check(self, resp: requests.Response, method: str, path: str, submitting: bool) -> Any:
        code = resp.status_code
        try:
            payload = resp.json()
        except ValueError:
            payload = {}
        message = (payload.get("Message") or payload.get("Error") or resp.reason or "") \
            if isinstance(payload, dict) else ""  # fmt: skip
        msg = f"tradestation {method} {path}: {code} {message}".strip()
        if code < 300:
            return payload
        if code in (401, 403):
            raise AuthenticationError(msg)
        if code == 429:
            after = resp.headers.get("Retry-After")
            raise RateLimitedError(msg, retry_after=float(after) if after else None)
        if code == 404:
            raise OrderNotFoundError(msg)
        if code >= 500:
            if submitting:
                raise SubmitTimeoutError(msg + self._unknown_note())
            raise RetryableBrokerError(msg)
        raise self._order_error(msg)

    @staticmethod
    def _order_error(msg: str) -> BrokerError:
        if "buying power" in msg.lower() or "insufficient" in msg.lower():
            return InsufficientFundsError(msg)
        return InvalidOrderError(msg)

    # -- the Broker port -------------------------------------------------------------------
    def order_body(self, intent: OrderIntent) -> dict[str, Any]:
        if intent.reduce_only:
            raise InvalidOrderError("tradestation: no reduce-only flag on v3 orders")
        body: dict[str, Any] = {
            "AccountID": self.account_id,
            "Symbol": intent.symbol,
            "Quantity": _number(intent.quantity),
            "OrderType": _ORDER_TYPE[intent.order_type],
            "TradeAction": "BUY" if intent.side.value == "buy" else "SELL",
            "TimeInForce": {"Duration": _DURATION[intent.time_in_force]},
            "Route": self.route,
        }
        if intent.limit_price is not None and intent.order_type in (
            OrderType.LIMIT, OrderType.STOP_LIMIT
        ):  # fmt: skip
            body["LimitPrice"] = _number(intent.limit_price)
        if intent.stop_price is not None and intent.order_type in (
            OrderType.STOP, OrderType.STOP_LIMIT
        ):  # fmt: skip
            body["StopPrice"] = _number(intent.stop_price)
        if intent.order_type is OrderType.TRAILING_STOP:
            if intent.trail_percent is None:  # OrderIntent requires it; never send a guess
                raise InvalidOrderError("tradestation: trailing stop without trail_percent")
            percent = _number(intent.trail_percent)
            body["AdvancedOptions"] = {"TrailingStop": {"Percent": percent}}
        return body

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        coid = intent.client_order_id
        with self._lock:
            if coid in self._orders:
                found = self.get_order(coid)
                if found is not None:
                    return found
            body = self.order_body(intent)
            reply = self._request("POST", "/orderexecution/orders", "orders", body=body,
                                  submitting=True)  # fmt: skip
            errors = reply.get("Errors") or []
            placed = [o for o in reply.get("Orders") or [] if o.get("OrderID")]
            if errors or not placed:
                text = "; ".join(str(e.get("Message") or e.get("Error")) for e in errors)
                raise self._order_error(f"tradestation: order refused: {text or reply}")
            order_id = str(placed[0]["OrderID"])
            self._orders[coid] = _Tracked(order_id, intent.symbol, intent.quantity)
            self._save()
            return BrokerOrder(coid, order_id, intent.symbol, OrderStatus.SUBMITTED,
                               intent.quantity)  # fmt: skip

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        tracked = self._orders.get(client_order_id)
        if tracked is None:
            return None
        path = f"/brokerage/accounts/{self.account_id}/orders/{tracked.order_id}"
        reply = self._request("GET", path, "orders")
        raw = next((o for o in reply.get("Orders") or []
                    if str(o.get("OrderID")) == tracked.order_id), None)  # fmt: skip
        if raw is None:
            # Not a current-day order: the historical endpoint keeps up to 90 days.
            since = (datetime.now(UTC) - timedelta(days=89)).strftime("%m-%d-%Y")
            path = f"/brokerage/accounts/{self.account_id}/historicalorders/{tracked.order_id}"
            reply = self._request("GET", path, "orders", params={"since": since})
            raw = next((o for o in reply.get("Orders") or []
                        if str(o.get("OrderID")) == tracked.order_id), None)  # fmt: skip
        if raw is None:
            return None
        return self._to_order(client_order_id, tracked, raw)

    def cancel(self, client_order_id: str) -> BrokerOrder:
        tracked = self._orders.get(client_order_id)
        if tracked is None:
            raise OrderNotFoundError(f"tradestation: no order {client_order_id}")
        current = self.get_order(client_order_id)
        if current is not None and current.status not in (
            OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED
        ):  # fmt: skip
            return current
        self._request("DELETE", f"/orderexecution/orders/{tracked.order_id}", "orders")
        after = self.get_order(client_order_id)
        if after is None:
            raise OrderNotFoundError(f"tradestation: order {tracked.order_id} vanished")
        return after

    def open_orders(self) -> list[BrokerOrder]:
        reply = self._request("GET", f"/brokerage/accounts/{self.account_id}/orders", "orders")
        by_id = {t.order_id: c for c, t in self._orders.items()}
        out = []
        for raw in reply.get("Orders") or []:
            oid = str(raw.get("OrderID"))
            coid = by_id.get(oid, f"tradestation:{oid}")
            tracked = self._orders.get(coid) or _Tracked(oid, _leg_symbol(raw), _leg_qty(raw))
            order = self._to_order(coid, tracked, raw)
            if order.status in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
                out.append(order)
        return out

    def positions(self) -> list[BrokerPosition]:
        path = f"/brokerage/accounts/{self.account_id}/positions"
        reply = self._request("GET", path, "positions")
        out = []
        for p in reply.get("Positions") or []:
            qty = abs(float(p.get("Quantity") or 0.0))
            if not qty:
                continue
            sign = -1.0 if str(p.get("LongShort", "")).lower() == "short" else 1.0
            avg = p.get("AveragePrice")
            out.append(BrokerPosition(str(p["Symbol"]), sign * qty, float(avg) if avg else None))
        return out

    # -- payload -> ours -------------------------------------------------------------------
    def _to_order(self, coid: str, tracked: _Tracked, raw: Mapping[str, Any]) -> BrokerOrder:
        status = _STATUS.get(str(raw.get("Status")), OrderStatus.SUBMITTED)
        cum = _leg_exec(raw)
        avg = float(raw.get("FilledPrice") or 0.0)
        fee = float(raw.get("CommissionFee") or 0.0)
        if cum > 0 and (not tracked.levels or cum > tracked.levels[-1][0]):
            tracked.levels.append((cum, avg, fee))
            if coid in self._orders:
                self._save()
        when = _parse_time(raw.get("ClosedDateTime") or raw.get("OpenedDateTime"))
        fills = []
        prev_q = prev_cost = prev_fee = 0.0
        for q, a, f in tracked.levels:
            dq = q - prev_q
            price = (q * a - prev_cost) / dq
            fills.append(BrokerFill(f"{tracked.order_id}:{_fill_qty(q)}", dq, price, f - prev_fee,
                                    when))  # fmt: skip
            prev_q, prev_cost, prev_fee = q, q * a, f
        if status is OrderStatus.FILLED and cum <= 0:
            status = OrderStatus.SUBMITTED  # a fill without quantity is not one yet
        reason = raw.get("RejectReason") or None
        if status in (OrderStatus.REJECTED, OrderStatus.CANCELLED) and not reason:
            reason = raw.get("StatusDescription")
        return BrokerOrder(
            client_order_id=coid,
            broker_order_id=tracked.order_id,
            symbol=tracked.symbol,
            status=status,
            quantity=_leg_qty(raw) or tracked.quantity,
            filled_quantity=cum,
            avg_fill_price=avg if cum > 0 else None,
            fills=tuple(fills),
            reason=str(reason) if reason else None,
        )


def _number(value: float) -> str:
    """`value` in plain decimal notation, every digit kept: `:g` keeps 6 significant digits
    (a quantity of 1,000,001 went out as "1e+06", a limit of 10000.25 as "10000.2")."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _fill_qty(cum: float) -> str:
    """A cumulative quantity as written in fill ids: `:g` where that is exact, as in the ids
    already recorded (so they stay the same), else `repr`. `:g` alone made 1,000,001 and
    1,000,003 both "1e+06", and the engine dropped the second fill as a duplicate."""
    short = f"{cum:g}"
    return short if float(short) == cum else repr(cum)


def _leg_exec(raw: Mapping[str, Any]) -> float:
    return sum(float(leg.get("ExecQuantity") or 0.0) for leg in raw.get("Legs") or [])


def _leg_qty(raw: Mapping[str, Any]) -> float:
    return sum(float(leg.get("QuantityOrdered") or 0.0) for leg in raw.get("Legs") or [])


def _leg_symbol(raw: Mapping[str, Any]) -> str:
    legs = raw.get("Legs") or [{}]
    return str(legs[0].get("Symbol") or raw.get("Symbol") or "")


def _parse_time(value: Any) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
