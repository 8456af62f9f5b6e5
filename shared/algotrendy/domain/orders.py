"""Order vocabulary shared by the backtester, the execution engine, the webhook, the
signal evaluator and the API.

An `OrderIntent` is what producers (TradingView webhook, signal evaluator, API) put on the
`orders.fifo` queue; only the execution engine turns intents into broker orders, after the
risk check. Its `client_order_id` is derived from the intent id, so a redelivered intent,
a retried submit or a restart can never place a second order (brokers refuse a duplicate
client order id; Binance `newClientOrderId` allows 36 chars of `[.A-Z:/a-z0-9_-]`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    GTC = "gtc"  # good till cancelled
    IOC = "ioc"  # immediate or cancel
    FOK = "fok"  # fill or kill
    DAY = "day"


class OrderStatus(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # a submit timed out: resolved by asking the broker, never assumed


TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


# The price fields each order type needs.
_NEEDS: dict[OrderType, frozenset[str]] = {
    OrderType.MARKET: frozenset(),
    OrderType.LIMIT: frozenset({"limit_price"}),
    OrderType.STOP: frozenset({"stop_price"}),
    OrderType.STOP_LIMIT: frozenset({"limit_price", "stop_price"}),
    OrderType.TRAILING_STOP: frozenset({"trail_percent"}),
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OrderIntent(BaseModel):
    """A request to trade, not yet risk-checked. Immutable; version 1 of the wire format."""

    # Finite numbers only: JSON has no Infinity/NaN, so such an intent would reach the
    # queue as null (or as invalid JSON) and the engine could not read it back.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    version: Literal[1] = 1
    intent_id: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
    account: str = Field("default", min_length=1, max_length=64)
    strategy: str | None = Field(None, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    quantity: float = Field(gt=0, description="units of the base asset / shares / contracts")
    order_type: OrderType = OrderType.MARKET
    # validate_default: the check below must run when the price is left out, too.
    limit_price: float | None = Field(None, gt=0, validate_default=True)
    stop_price: float | None = Field(None, gt=0, validate_default=True)
    trail_percent: float | None = Field(None, gt=0, lt=100, validate_default=True)
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    source: str = Field("api", description="webhook | signal | api | cli")
    created_at: AwareDatetime = Field(default_factory=_utcnow)

    @field_validator("limit_price", "stop_price", "trail_percent")
    @classmethod
    def _price_fits_type(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A field validator rather than a model one, so the error names the missing
        field (`limit_price`) instead of the whole intent."""
        order_type = info.data.get("order_type")  # absent when order_type itself failed
        if value is None and order_type is not None and info.field_name in _NEEDS[order_type]:
            raise PydanticCustomError(
                "price_required",
                "{order_type} order needs {field}",
                {"order_type": order_type.value, "field": info.field_name},
            )
        return value

    @property
    def client_order_id(self) -> str:
        """Deterministic id sent to the broker: same intent, same id, at most one order."""
        digest = hashlib.sha256(f"{self.account}|{self.intent_id}".encode()).hexdigest()
        return f"at-{digest[:29]}"

    @property
    def message_group_id(self) -> str:
        """SQS FIFO group: orders for one account and symbol stay in sequence."""
        return f"{self.account}:{self.symbol}"


class Fill(BaseModel):
    """One execution reported by a broker."""

    model_config = ConfigDict(frozen=True)

    broker: str
    broker_fill_id: str
    client_order_id: str
    account: str
    strategy: str | None
    symbol: str
    side: Side
    quantity: float = Field(gt=0)
    price: float = Field(gt=0)
    fee: float = 0.0
    fee_currency: str | None = None
    time: AwareDatetime


class Order(BaseModel):
    """An order as the engine tracks it; status changes go through execution.lifecycle."""

    model_config = ConfigDict(validate_assignment=False)

    client_order_id: str
    intent_id: str
    account: str
    strategy: str | None
    broker: str
    broker_order_id: str | None = None
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce = TimeInForce.GTC
    quantity: float
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: float = 0.0
    avg_fill_price: float | None = None
    fees: float = 0.0
    reason: str | None = None
    source: str = "api"
    created_at: AwareDatetime = Field(default_factory=_utcnow)
    updated_at: AwareDatetime = Field(default_factory=_utcnow)

    @classmethod
    def from_intent(cls, intent: OrderIntent, broker: str) -> Order:
        return cls(
            client_order_id=intent.client_order_id,
            intent_id=intent.intent_id,
            account=intent.account,
            strategy=intent.strategy,
            broker=broker,
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            time_in_force=intent.time_in_force,
            quantity=intent.quantity,
            limit_price=intent.limit_price,
            stop_price=intent.stop_price,
            trail_percent=intent.trail_percent,
            source=intent.source,
        )

    @property
    def remaining(self) -> float:
        return max(self.quantity - self.filled_quantity, 0.0)
