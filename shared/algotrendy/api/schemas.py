"""Request and response bodies. Requests refuse unknown fields (`extra="forbid"`), so a
typo is a 422 naming the field instead of a silently ignored value."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from algotrendy.auth.tokens import Role
from algotrendy.backtest.config import BacktestConfig
from algotrendy.domain.orders import OrderStatus, OrderType, Side, TimeInForce
from algotrendy.webhooks.auth import MIN_PASSPHRASE_LENGTH
from algotrendy.webhooks.config import QuantityMode


class _In(BaseModel):
    # Python's JSON parser reads Infinity, NaN and 1e400 (as inf): no quantity, price or
    # setting of this API is meaningful there, and JSON cannot carry them onward.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- shared field types ------------------------------------------------------------------
# Symbols: one rule for orders, strategies and backtests. NFKC folds full-width and other
# compatibility forms ("ＧＯＯＧ" -> "GOOG") so one instrument has one spelling; then a
# conservative shape that every venue symbol we trade fits (BTC/USDT:USDT, BRK.B, ^GSPC,
# BTC-PERP) and no path trick ("..") or blank does.
SYMBOL_MAX_LENGTH = 32
_SYMBOL = re.compile(r"[A-Za-z0-9^][A-Za-z0-9._:/!^=&+\-]*")


def normalise_symbol(value: Any) -> Any:
    """NFKC + strip; anything else is left for the type check to refuse."""
    return unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else value


def _check_symbol(value: str) -> str:
    if not value:
        raise PydanticCustomError("symbol_blank", "symbol is empty")
    if len(value) > SYMBOL_MAX_LENGTH or not _SYMBOL.fullmatch(value):
        raise PydanticCustomError(
            "symbol_invalid",
            "symbol '{symbol}' is not 1-{max} characters of letters, digits and ._:/!^=&+- "
            "starting with a letter, digit or ^",
            {"symbol": value, "max": SYMBOL_MAX_LENGTH},
        )
    return value


Symbol = Annotated[str, BeforeValidator(normalise_symbol), AfterValidator(_check_symbol)]

# API datetimes: one rule for query parameters and bodies. A time without offset is UTC
# (as the webhook reads TradingView's times), and it must lie where pandas' nanosecond
# timestamps reach (1677-09-21 .. 2262-04-11; rounded inwards), since candles, indicators
# and backtests index by them: outside it a request could only fail later.
DATETIME_MIN = datetime(1678, 1, 1, tzinfo=UTC)
DATETIME_MAX = datetime(2262, 1, 1, tzinfo=UTC)


def utc_in_range(value: datetime) -> datetime:
    """`value` in UTC (naive read as UTC), or a validation error naming the range."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 lies before year 1 in UTC
        utc = None
    if utc is None or not DATETIME_MIN <= utc < DATETIME_MAX:
        raise PydanticCustomError(
            "datetime_range",
            "{value} is outside the supported range {lo} .. {hi} (UTC)",
            {
                "value": value.isoformat(),
                "lo": DATETIME_MIN.date().isoformat(),
                "hi": DATETIME_MAX.date().isoformat(),
            },
        )
    return utc


ApiDatetime = Annotated[datetime, AfterValidator(utc_in_range)]

# Integers in paths and query strings are ids, limits, offsets, ranks and indicator
# periods. The id columns are INTEGER (PostgreSQL int4): a larger value names nothing,
# while past 2**31 psycopg (past 2**63 SQLite) fails on it with a 500 instead.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


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

    symbol: Symbol
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
    symbols: list[Symbol] = Field(default_factory=list, max_length=500)
    enabled: bool = False


class StrategyUpdate(_In):
    name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    params: dict[str, Any] | None = None
    symbols: list[Symbol] | None = Field(None, max_length=500)
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
    symbols: list[Symbol] = Field(min_length=1, max_length=100)
    exchange: str | None = Field(None, min_length=1, max_length=64)
    timeframe: str = Field("1d", min_length=1, max_length=16)
    start: ApiDatetime | None = None
    end: ApiDatetime | None = None
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
