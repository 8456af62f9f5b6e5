"""`Alert` + `WebhookConfig` -> `OrderIntent`, with a deterministic intent id.

The intent id is what makes delivery exactly-once downstream: the idempotency record, the
SQS FIFO de-duplication id and the broker's client order id all derive from it. It hashes
the webhook's name, the alert's canonical content (passphrase removed) and its `{{time}}`
/ `{{timenow}}` values, so the same alert delivered twice (a TradingView resend, a network
duplicate) is the same intent, while the same template fired on another bar is another.

Refusals are 422 problems naming the field or config setting: the alert was read, but it
does not say enough (or says too much) for one order.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime

from pydantic import ValidationError

from algotrendy.domain.orders import OrderIntent, OrderType, Side
from algotrendy.webhooks.alerts import Alert
from algotrendy.webhooks.config import WebhookConfig
from algotrendy.webhooks.problems import invalid

_BUY = frozenset({"buy", "long"})
_SELL = frozenset({"sell", "short"})
_OPEN = frozenset({"open", "add", "entry", "enter", "increase"})
_CLOSE = frozenset({"close", "exit", "flat", "flatten", "reduce"})
_MARKET = frozenset({"market", "mkt"})
_LIMIT = frozenset({"limit", "lmt"})
_POSITIONS = frozenset({"long", "short", "flat"})


def derive_intent_id(webhook_name: str, alert: Alert) -> str:
    """`tv-` + 40 hex chars (160 bits) of SHA-256 over webhook, content and alert times.
    Fits the OrderIntent id pattern and SQS's 128-character de-duplication id."""
    h = hashlib.sha256()
    for part in (
        webhook_name,
        alert.format.value,
        alert.canonical,
        alert.time.isoformat() if alert.time else "",
        alert.timenow.isoformat() if alert.timenow else "",
    ):
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")  # unit separator: no part can run into the next
    return "tv-" + h.hexdigest()[:40]


def build_intent(alert: Alert, config: WebhookConfig, *, now: datetime) -> OrderIntent:
    """The order the alert asks for under this webhook's config, or a 422 problem."""
    if alert.unsupported and not config.ignore_unsupported:
        raise invalid(
            "alert asks for more than one order can carry: "
            + ", ".join(alert.unsupported)
            + " (set ignore_unsupported in the webhook config to trade the entry alone)"
        )
    side, closing = _side(alert, config)
    reduce_only = closing or _reduces_position(alert, side)
    symbol = _symbol(alert, config)
    quantity = _quantity(alert, config, closing=closing)
    order_type, limit_price = _order_type(alert, config)
    try:
        return OrderIntent(
            intent_id=derive_intent_id(config.name, alert),
            account=config.account,
            strategy=config.strategy,
            symbol=symbol,
            side=side,
            quantity=quantity,
            order_type=order_type,
            limit_price=limit_price,
            time_in_force=config.time_in_force,
            reduce_only=reduce_only,
            source="webhook",
            created_at=now,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "intent"
        raise invalid(f"order intent refused: {loc}: {first['msg']}", field=loc) from None


def _side(alert: Alert, config: WebhookConfig) -> tuple[Side, bool]:
    """(side, closing). Buy/sell words are explicit; open/add and close need the webhook's
    `default_side` (the direction it trades), close meaning the opposite side."""
    word = alert.action
    if word is None:
        raise invalid(
            "alert has no order action: expected a field action, side, strategy.order.action "
            "({{strategy.order.action}}), order_action, direction or signal",
            field="action",
        )
    if word in _BUY:
        return Side.BUY, False
    if word in _SELL:
        return Side.SELL, False
    if word in _OPEN | _CLOSE:
        if config.default_side is None:
            raise invalid(
                f"action {word!r} gives no direction; set default_side in the webhook config "
                "or send buy/sell",
                field="action",
            )
        if word in _OPEN:
            return config.default_side, False
        opposite = Side.SELL if config.default_side is Side.BUY else Side.BUY
        return opposite, True
    raise invalid(f"action {word!r} is not buy/sell/long/short/open/add/close", field="action")


def _reduces_position(alert: Alert, side: Side) -> bool:
    """From TradingView's strategy placeholders: an order that ends flat, or shrinks a
    position on the same side, only reduces it (so the broker may never flip on it).
    Refuses an action that contradicts the reported position change."""
    before, after = alert.prev_market_position, alert.market_position
    if before not in _POSITIONS or after not in _POSITIONS:
        return False
    if before == "long" and after in ("flat", "short") and side is Side.BUY:
        raise invalid(f"action buy contradicts market position {before} -> {after}", field="action")
    if before == "short" and after in ("flat", "long") and side is Side.SELL:
        raise invalid(
            f"action sell contradicts market position {before} -> {after}", field="action"
        )
    if after == "flat":
        return before != "flat"
    if after == before and before != "flat":
        size_before, size_after = alert.prev_market_position_size, alert.market_position_size
        return (
            size_before is not None
            and size_after is not None
            and abs(size_after) < abs(size_before)
        )
    return False


def _compact(symbol: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", symbol.upper())


def _symbol(alert: Alert, config: WebhookConfig) -> str:
    ticker, exchange = alert.ticker, alert.exchange
    if ticker is None:
        if config.default_symbol is None:
            raise invalid(
                "alert names no symbol (ticker, symbol or pair) and the webhook has no "
                "default_symbol",
                field="ticker",
            )
        return config.default_symbol
    if ":" in ticker:  # {{exchange}}:{{ticker}} or syminfo.tickerid
        exchange, ticker = ticker.split(":", 1)
    ticker = ticker.strip().upper()
    candidates = [f"{exchange.strip().upper()}:{ticker}"] if exchange else []
    candidates.append(ticker)
    for candidate in candidates:
        if candidate in config.symbols:
            return config.symbols[candidate]
    if not exchange:  # {{ticker}} alone: a mapping key with one exchange prefix still fits
        prefixed = [k for k in config.symbols if k.partition(":")[2] == ticker]
        if len(prefixed) == 1:
            return config.symbols[prefixed[0]]
        if len(prefixed) > 1:
            raise invalid(
                f"ticker {ticker} is mapped on several exchanges ({', '.join(sorted(prefixed))})"
                "; send {{exchange}} too",
                field="ticker",
            )
    if config.default_symbol is not None and _compact(config.default_symbol) == _compact(ticker):
        return config.default_symbol
    known = ", ".join(sorted(config.symbols)) or "none"
    raise invalid(
        f"ticker {' or '.join(candidates)!s} is not mapped for this webhook "
        f"(mapped: {known}; default_symbol: {config.default_symbol})",
        field="ticker",
    )


def _quantity(alert: Alert, config: WebhookConfig, *, closing: bool) -> float:
    mode = config.quantity_mode
    if closing and alert.quantity is None and alert.percent is None:
        raise invalid(
            "a close alert needs a quantity: the webhook does not know the open position "
            "(send {{strategy.order.contracts}} or an amount)",
            field="quantity",
        )
    if mode == "fixed" and not closing:
        assert config.quantity is not None  # WebhookConfig guarantees it
        quantity = config.quantity
    elif alert.quantity is not None and mode in ("auto", "contracts", "fixed"):
        quantity = alert.quantity * config.contracts_multiplier
    elif alert.percent is not None and mode in ("auto", "percent", "fixed"):
        if config.percent_of is None:
            raise invalid(
                f"alert sizes by percent ({alert.percent:g} %) but the webhook config has no "
                "percent_of (the units that 100 % stands for)",
                field="quantity",
            )
        if not 0 < alert.percent <= 100:
            raise invalid(f"percent {alert.percent:g} is outside (0, 100]", field="quantity")
        quantity = alert.percent / 100.0 * config.percent_of
    elif mode == "contracts":
        raise invalid(
            "alert has no quantity and the webhook sizes by contracts "
            "(send {{strategy.order.contracts}})",
            field="quantity",
        )
    elif mode == "percent":
        raise invalid(
            "alert has no percent size and the webhook sizes by percent", field="quantity"
        )
    elif config.quantity is not None:
        quantity = config.quantity
    else:
        raise invalid(
            "alert has no quantity and the webhook config has no default quantity",
            field="quantity",
        )
    if not math.isfinite(quantity):  # e.g. 1e307 contracts x a multiplier of 100
        raise invalid(
            f"quantity is not a finite number (alert quantity {alert.quantity}, "
            f"contracts_multiplier {config.contracts_multiplier:g})",
            field="quantity",
        )
    if quantity <= 0:
        raise invalid(f"quantity {quantity:g}: nothing to trade", field="quantity")
    if config.max_quantity is not None and quantity > config.max_quantity:
        raise invalid(
            f"quantity {quantity:g} exceeds the webhook's max_quantity {config.max_quantity:g}",
            field="quantity",
        )
    return quantity


def _order_type(alert: Alert, config: WebhookConfig) -> tuple[OrderType, float | None]:
    kind = config.order_type
    if kind == "alert":
        word = alert.order_type
        if word is None or word in _MARKET:
            kind = "market"
        elif word in _LIMIT:
            kind = "limit"
        else:
            raise invalid(f"order type {word!r} is not market or limit", field="order_type")
    if kind == "market":
        return OrderType.MARKET, None
    if alert.price is None or alert.price <= 0:
        raise invalid(
            "limit order needs a positive price in the alert (price, order_price, "
            "{{strategy.order.price}} or {{close}})",
            field="price",
        )
    return OrderType.LIMIT, alert.price
