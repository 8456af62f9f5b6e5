"""Request and response bodies. Requests refuse unknown fields (`extra="forbid"`), so a
typo is a 422 naming the field instead of a silently ignored value."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from algotrendy.auth.tokens import Role
from algotrendy.backtest.config import BacktestConfig
from algotrendy.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from algotrendy.webhooks.auth import MIN_PASSPHRASE_LENGTH
from algotrendy.webhooks.config import QuantityMode


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- auth --------------------------------------------------------------------------------
class LoginRequest(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(_In):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutRequest(_In):
    refresh_token: str | None = Field(None, min_length=1, max_length=4096)
    everywhere: bool = Field(False, description="revoke every refresh token of the user")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str
    refresh_expires_in: int


class UserCreate(_In):
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    role: Role = Role.VIEWER


class UserUpdate(_In):
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=1, max_length=256)


class UserOut(BaseModel):
    username: str
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None


# -- orders ------------------------------------------------------------------------------
class OrderRequest(_In):
    """What a client may ask for; becomes an `OrderIntent` (source "api")."""

    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    quantity: float = Field(gt=0)
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = Field(None, gt=0)
    stop_price: float | None = Field(None, gt=0)
    trail_percent: float | None = Field(None, gt=0, lt=100)
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    account: str = Field("default", min_length=1, max_length=64)
    strategy: str | None = Field(None, max_length=64)
    intent_id: str | None = Field(
        None,
        min_length=8,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="client idempotency key: the same id never places a second order",
    )


class OrderAccepted(BaseModel):
    intent_id: str
    client_order_id: str
    message_id: str
    status: Literal["queued"] = "queued"


class CancelAccepted(BaseModel):
    client_order_id: str
    request_id: str
    message_id: str
    status: Literal["cancel_requested"] = "cancel_requested"


class FillOut(BaseModel):
    broker_fill_id: str
    side: Side
    quantity: float
    price: float
    fee: float
    fee_currency: str | None
    time: datetime


class OrderOut(BaseModel):
    client_order_id: str
    intent_id: str
    account: str
    strategy: str | None
    broker: str
    broker_order_id: str | None
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: float
    limit_price: float | None
    stop_price: float | None
    trail_percent: float | None
    status: OrderStatus
    filled_quantity: float
    avg_fill_price: float | None
    fees: float
    reason: str | None
    source: str
    created_at: datetime
    updated_at: datetime
    fills: list[FillOut] | None = None


class PositionOut(BaseModel):
    account: str
    strategy: str
    symbol: str
    quantity: float
    avg_price: float
    realized_pnl: float
    fees: float
    updated_at: datetime


class PnlDayOut(BaseModel):
    account: str
    strategy: str
    day: date
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    net: float = Field(description="realized_pnl + unrealized_pnl - fees")


class PnlOut(BaseModel):
    days: list[PnlDayOut]
    total_realized: float
    total_fees: float
    total_net: float


# -- strategies --------------------------------------------------------------------------
class StrategyCreate(_In):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    strategy_type: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    symbols: list[str] = Field(default_factory=list, max_length=500)
    enabled: bool = False


class StrategyUpdate(_In):
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    params: dict[str, Any] | None = None
    symbols: list[str] | None = Field(None, max_length=500)
    enabled: bool | None = None


class StrategyOut(BaseModel):
    id: int
    name: str
    strategy_type: str
    params: dict[str, Any]
    symbols: list[str]
    enabled: bool
    webhook: bool = Field(description="whether a webhook token is issued")
    webhook_issued_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookIssue(_In):
    """Optional settings of an issued webhook. A field left out keeps the value of the
    webhook being rotated (or the default); `null` clears a nullable one."""

    passphrase: str | None = Field(
        None,
        min_length=MIN_PASSPHRASE_LENGTH,
        max_length=256,
        description='a secret the alert body must carry as "passphrase"; stored as scrypt',
    )
    account: str = Field("default", min_length=1, max_length=64)
    quantity_mode: QuantityMode = Field(
        "auto", description="auto | fixed | contracts | percent (see WebhookConfig)"
    )
    quantity: float | None = Field(None, gt=0, description="fixed / fallback size in units")
    percent_of: float | None = Field(None, gt=0, description="units that 100 % stands for")
    max_quantity: float | None = Field(None, gt=0, description="refuse alerts sized above")


class WebhookIssued(BaseModel):
    webhook_id: str = Field(description="the secret token; shown once, store it now")
    path: str
    issued_at: datetime
    published: bool = Field(
        description="whether the webhook's config was written where the webhook reads it "
        "(false when the API has no webhook config parameter or file configured); the "
        "webhook sees it within its config cache time"
    )


# -- backtests ---------------------------------------------------------------------------
class BacktestRequest(_In):
    """One backtest (`params`) or a sweep (`grid`) of a registered strategy over symbols
    read from the candle store (or, on Step Functions, from S3 `data` URIs)."""

    strategy: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] | None = None
    grid: dict[str, list[Any] | str] | None = None
    symbols: list[str] = Field(min_length=1, max_length=100)
    exchange: str | None = Field(None, min_length=1, max_length=64)
    timeframe: str = Field("1d", min_length=1, max_length=16)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    config: BacktestConfig = Field(default_factory=BacktestConfig)
    metric: str = "sharpe"
    top: int = Field(20, ge=1, le=1000)
    data: dict[str, str] | None = Field(
        None, description="symbol -> s3:// URI of its candles (Step Functions launcher)"
    )


class BacktestOut(BaseModel):
    id: str
    kind: Literal["single", "sweep"]
    status: str
    strategy: str
    request: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    launcher: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class BacktestAccepted(BaseModel):
    id: str
    status: str
    kind: Literal["single", "sweep"]


class BacktestResultOut(BaseModel):
    rank: int
    symbol: str
    params: dict[str, Any]
    metrics: dict[str, float | None]
    has_trades: bool


# -- config ------------------------------------------------------------------------------
class ConfigUpdate(_In):
    values: dict[str, Any] = Field(min_length=1)
