"""`WebhookConfig`: how one strategy's TradingView alerts become order intents.

One config per webhook token. It is the whole contract between an alert template and the
order pipeline: which account and strategy the orders belong to, how TradingView tickers
map to our symbols, how the size is read, which order type is sent, and the webhook's
own security settings (token hash, passphrase hash, allowed sources). Configs are stored
by an operator (a JSON document in SSM now, the relational store with the API later);
validation here makes a bad document fail on load, naming the webhook and the field.
"""

from __future__ import annotations

import re
from ipaddress import ip_network
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from algotrendy.domain.orders import Side, TimeInForce
from algotrendy.webhooks.auth import parse_passphrase_hash

QuantityMode = Literal["auto", "fixed", "contracts", "percent"]
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class WebhookConfig(BaseModel):
    """Per-strategy webhook settings. Sizing (`quantity_mode`):

    * ``fixed``: always `quantity` units, whatever the alert says;
    * ``contracts``: the alert's quantity (e.g. ``{{strategy.order.contracts}}``) times
      `contracts_multiplier` (TradingView contracts -> exchange units); required in the alert;
    * ``percent``: the alert's percent (``"25%"``, ``"2.5/100"``) of `percent_of` units,
      i.e. `percent_of` is the size 100 % stands for (the webhook knows no balances);
    * ``auto``: contracts if the alert has a quantity, else percent if it has one, else
      the fixed `quantity`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="non-secret identifier: logs, replies and intent ids use it, never the token",
    )
    token_sha256: str = Field(description="SHA-256 (hex) of the URL token")
    enabled: bool = True
    account: str = Field("default", min_length=1, max_length=64)
    strategy: str | None = Field(None, max_length=64)

    symbols: dict[str, str] = Field(
        default_factory=dict,
        description='TradingView ticker -> our symbol, e.g. {"BINANCE:BTCUSDT": "BTC/USDT"}; '
        "keys with or without the exchange prefix, case-insensitive",
    )
    default_symbol: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="symbol for alerts that name none; also accepts the same ticker "
        "written without separators (BTCUSDT for BTC/USDT)",
    )

    quantity_mode: QuantityMode = "auto"
    quantity: float | None = Field(None, gt=0, description="fixed / fallback size in units")
    contracts_multiplier: float = Field(1.0, gt=0)
    percent_of: float | None = Field(None, gt=0, description="units that 100 % stands for")
    max_quantity: float | None = Field(None, gt=0, description="refuse alerts sized above")
    default_side: Side | None = Field(
        None,
        description="direction of alerts that say only open/add/close (e.g. a long-only bot)",
    )

    order_type: Literal["market", "limit", "alert"] = Field(
        "market", description='"alert" = the alert\'s order type field (market or limit)'
    )
    time_in_force: TimeInForce = TimeInForce.GTC

    passphrase_hash: str | None = Field(None, description="scrypt$N$r$p$salt$hash, or none")
    allowed_ips: tuple[str, ...] | None = Field(
        None,
        description="sources allowed for this webhook; None = the service default "
        '(TradingView\'s addresses); ("0.0.0.0/0",) = any',
    )
    timenow_field: str | None = Field(
        None,
        max_length=128,
        description="dotted field holding {{timenow}} when it is not called timenow "
        '(e.g. "time" in the hackingthemarkets template)',
    )
    require_timenow: bool = Field(
        False,
        description="refuse alerts without {{timenow}}: with it, identical alerts fired at "
        "different times are different orders; without it they are one order per "
        "idempotency window",
    )
    ignore_unsupported: bool = Field(
        False,
        description="trade the entry alone when the alert also asks for stops, "
        "take-profits, leverage or cancels (default: refuse the alert)",
    )

    @field_validator("token_sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not _SHA256_HEX.match(value):
            raise ValueError("must be the 64-character lower-case hex SHA-256 of the token")
        return value

    @field_validator("passphrase_hash")
    @classmethod
    def _scrypt_hash(cls, value: str | None) -> str | None:
        if value is not None:
            parse_passphrase_hash(value)
        return value

    @field_validator("allowed_ips")
    @classmethod
    def _networks(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for entry in value or ():
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR block") from None
        return value

    @field_validator("symbols")
    @classmethod
    def _upper_keys(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, symbol in value.items():
            norm = key.strip().upper()
            if not norm or not symbol.strip() or len(symbol) > 32:
                raise ValueError(f"{key!r} -> {symbol!r}: ticker and symbol must be non-empty")
            if norm in out:
                raise ValueError(f"ticker {key!r} listed twice (keys are case-insensitive)")
            out[norm] = symbol.strip()
        return out

    @model_validator(mode="after")
    def _sizing_complete(self) -> Self:
        if self.quantity_mode == "fixed" and self.quantity is None:
            raise ValueError("quantity_mode fixed needs quantity")
        if self.quantity_mode == "percent" and self.percent_of is None:
            raise ValueError("quantity_mode percent needs percent_of")
        if (
            self.max_quantity is not None
            and self.quantity is not None
            and self.quantity > self.max_quantity
        ):
            raise ValueError(f"quantity {self.quantity} exceeds max_quantity {self.max_quantity}")
        return self
