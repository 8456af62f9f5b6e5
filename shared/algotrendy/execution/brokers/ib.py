"""Interactive Brokers through `ib_async` (the maintained successor of ib_insync) against a
running TWS or IB Gateway. `ib_async` is imported lazily, so this module imports without it;
install it where the IB adapter runs (`pip install ib_async`).

Mapping: market -> `MKT`, limit -> `LMT`, stop -> `STP` (`auxPrice`), stop_limit -> `STP LMT`,
trailing_stop -> `TRAIL` with `trailingPercent` (IB's native percent trailing stop); time in
force DAY/GTC/IOC/FOK as IB's `tif`. Reduce-only does not exist at IB: refused.

The client order id travels in the order's `orderRef` ("order reference ... for the
client's use", TWS API `Order` class) and comes back on every open, completed and executed
order, so idempotency needs no local state: before placing, the adapter looks for a trade
with that `orderRef` among this session's trades (which include the open orders TWS sends on
connect) and, failing that, among completed orders (`reqCompletedOrders`).

Statuses (TWS API "Order Status"): PendingSubmit/ApiPending/PreSubmitted/Submitted/
PendingCancel -> SUBMITTED (PARTIALLY_FILLED once something filled), Filled -> FILLED,
Cancelled/ApiCancelled -> CANCELLED, Inactive -> REJECTED (IB's state for an order it did not
accept or that was deactivated), or CANCELLED when it had already filled in part.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC
from typing import Any

from algotrendy.domain.orders import OrderIntent, OrderStatus, OrderType, TimeInForce
from algotrendy.execution.brokers.base import BrokerFill, BrokerOrder, BrokerPosition
from algotrendy.execution.brokers.ratelimit import RateLimiter, shared_limiter
from algotrendy.execution.errors import (
    InvalidOrderError,
    OrderNotFoundError,
    RetryableBrokerError,
)

_IB_TYPE = {
    OrderType.MARKET: "MKT",
    OrderType.LIMIT: "LMT",
    OrderType.STOP: "STP",
    OrderType.STOP_LIMIT: "STP LMT",
    OrderType.TRAILING_STOP: "TRAIL",
}
_TIF = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC",
        TimeInForce.FOK: "FOK"}  # fmt: skip
_WORKING = {"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "PendingCancel",
            "ApiUpdate", "ValidationError", ""}  # fmt: skip


def _ib_async() -> Any:
    try:
        return importlib.import_module("ib_async")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the IB adapter needs the 'ib_async' package: pip install ib_async"
        ) from exc


class IbBroker:
    name = "ib"

    def __init__(
        self,
        ib: Any | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        account: str = "",
        contract_for: Callable[[str], Any] | None = None,
        limiter: RateLimiter | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        """`ib`: an `ib_async.IB` (connected or not); built and connected lazily if None.
        `contract_for(symbol)`: the IB contract of a symbol (default: a SMART-routed USD
        stock, qualified with TWS)."""
        self._ib = ib
        self.host, self.port, self.client_id = host, port, client_id
        self.account = account
        self._contract_for = contract_for
        self.limiter = limiter if limiter is not None else shared_limiter("ib")
        self._timeout = connect_timeout
        self._completed_loaded = False

    @property
    def ib(self) -> Any:
        if self._ib is None:
            self._ib = _ib_async().IB()
        if not self._ib.isConnected():
            try:
                self._ib.connect(self.host, self.port, clientId=self.client_id,
                                 timeout=self._timeout)  # fmt: skip
            except (OSError, TimeoutError) as exc:
                raise RetryableBrokerError(
                    f"ib: cannot reach TWS/Gateway at {self.host}:{self.port}: {exc}"
                ) from exc
        return self._ib

    def _send(self, messages: float = 1.0) -> Any:
        self.limiter.acquire(("messages", messages))
        return self.ib

    # -- mapping ---------------------------------------------------------------------------
    def contract(self, symbol: str) -> Any:
        if self._contract_for is not None:
            return self._contract_for(symbol)
        stock = _ib_async().Stock(symbol, "SMART", "USD")
        qualified = self._send().qualifyContracts(stock)
        if not qualified:
            raise InvalidOrderError(f"ib: no contract for symbol {symbol!r}")
        return qualified[0]

    def order_for(self, intent: OrderIntent) -> Any:
        if intent.reduce_only:
            raise InvalidOrderError("ib: IB orders have no reduce-only flag")
        fields: dict[str, Any] = {
            "action": "BUY" if intent.side.value == "buy" else "SELL",
            "totalQuantity": intent.quantity,
            "orderType": _IB_TYPE[intent.order_type],
            "tif": _TIF[intent.time_in_force],
            "orderRef": intent.client_order_id,
        }
        if self.account:
            fields["account"] = self.account
        if intent.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            fields["lmtPrice"] = intent.limit_price
        if intent.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
            fields["auxPrice"] = intent.stop_price
        if intent.order_type is OrderType.TRAILING_STOP:
            fields["trailingPercent"] = intent.trail_percent
        return _ib_async().Order(**fields)

    # -- the Broker port -------------------------------------------------------------------
    def submit(self, intent: OrderIntent) -> BrokerOrder:
        existing = self._find(intent.client_order_id)
        if existing is not None:
            return self._to_order(existing)
        contract = self.contract(intent.symbol)
        order = self.order_for(intent)
        trade = self._send().placeOrder(contract, order)
        return self._to_order(trade)

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        trade = self._find(client_order_id)
        return None if trade is None else self._to_order(trade)

    def cancel(self, client_order_id: str) -> BrokerOrder:
        trade = self._find(client_order_id)
        if trade is None:
            raise OrderNotFoundError(f"ib: no order with orderRef {client_order_id}")
        if trade.orderStatus.status in _WORKING:
            self._send().cancelOrder(trade.order)
        return self._to_order(trade)

    def open_orders(self) -> list[BrokerOrder]:
        return [self._to_order(t) for t in self._send().openTrades()]

    def positions(self) -> list[BrokerPosition]:
        out = []
        for p in self._send().positions(self.account):
            if not p.position:
                continue
            # avgCost is per contract incl. the multiplier (futures, options).
            mult = float(getattr(p.contract, "multiplier", "") or 1.0)
            out.append(BrokerPosition(p.contract.symbol, float(p.position), p.avgCost / mult))
        return out

    # -- lookups ---------------------------------------------------------------------------
    def _find(self, coid: str) -> Any | None:
        ib = self._send()
        for trade in ib.trades():
            if trade.order.orderRef == coid:
                return trade
        if not self._completed_loaded:
            # Orders finished before this session: TWS lists them on request.
            self._completed_loaded = True
            for trade in self._send().reqCompletedOrders(True):
                if trade.order.orderRef == coid:
                    return trade
        return None

    def _to_order(self, trade: Any) -> BrokerOrder:
        st = trade.orderStatus
        fills = tuple(
            BrokerFill(
                fill_id=f.execution.execId,
                quantity=float(f.execution.shares),
                price=float(f.execution.price),
                fee=float(f.commissionReport.commission or 0.0),
                time=f.execution.time if f.execution.time.tzinfo else
                f.execution.time.replace(tzinfo=UTC),
                fee_currency=f.commissionReport.currency or None,
            )
            for f in trade.fills
        )  # fmt: skip
        filled = float(st.filled) if st.filled else sum(f.quantity for f in fills)
        status = map_ib_status(st.status, filled)
        reason = None
        if status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
            messages = [e.message for e in trade.log if getattr(e, "message", "")]
            reason = trade.advancedError or (messages[-1] if messages else None)
        avg = float(st.avgFillPrice) if filled and st.avgFillPrice else None
        return BrokerOrder(
            client_order_id=trade.order.orderRef,
            broker_order_id=str(trade.order.permId or trade.order.orderId) or None,
            symbol=trade.contract.symbol,
            status=status,
            quantity=float(trade.order.totalQuantity),
            filled_quantity=filled,
            avg_fill_price=avg,
            fills=fills,
            reason=reason or None,
        )


def map_ib_status(status: str, filled: float) -> OrderStatus:
    if status == "Filled":
        return OrderStatus.FILLED
    if status in ("Cancelled", "ApiCancelled"):
        return OrderStatus.CANCELLED
    if status == "Inactive":
        return OrderStatus.CANCELLED if filled > 0 else OrderStatus.REJECTED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
