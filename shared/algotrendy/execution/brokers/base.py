"""The Broker port. Every venue adapter (`PaperBroker`, `CcxtBroker`, `IbBroker`,
`TradeStationBroker`, `NinjaTraderBroker`) implements it; the engine never sees a
venue's own types.

Submits are idempotent by client order id: an adapter that finds an order with the same
client order id at the venue returns it instead of placing another (venues refuse a
duplicate `newClientOrderId`/`orderLinkId`; the adapter turns that refusal into a lookup).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from algotrendy.domain.orders import OrderIntent, OrderStatus


@dataclass(frozen=True, slots=True)
class BrokerFill:
    fill_id: str
    quantity: float
    price: float
    fee: float
    time: datetime
    fee_currency: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    client_order_id: str
    broker_order_id: str | None
    symbol: str
    status: OrderStatus
    quantity: float
    filled_quantity: float = 0.0
    avg_fill_price: float | None = None
    fills: tuple[BrokerFill, ...] = field(default_factory=tuple)
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    symbol: str
    quantity: float
    avg_price: float | None = None


@runtime_checkable
class Broker(Protocol):
    name: str

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        """Place the order for `intent` under `intent.client_order_id` (idempotent)."""
        ...

    def cancel(self, client_order_id: str) -> BrokerOrder: ...

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The venue's view of one order, with its fills; None if the venue never got it."""
        ...

    def open_orders(self) -> list[BrokerOrder]: ...

    def positions(self) -> list[BrokerPosition]: ...
