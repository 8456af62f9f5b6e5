"""TradingView alert bodies -> `Alert`: one normalised view of every format we accept.

TradingView posts the alert message as typed, after substituting its `{{...}}` placeholders;
the content type is `application/json` when the message happens to be valid JSON and
`text/plain` otherwise (TradingView help, "How to configure webhook alerts"). So the format
is decided by the body, never by a header:

* JSON objects (strategy templates with `{{strategy.order.action}}`, `{{ticker}}`, ...;
  OpenAlgo-, Alertatron-"Signals Lite"- and bot-style payloads);
* `key: value` lines (one field per line);
* command lines of `key=value` tokens (`c=order t=open`, `b=long l=5 q=25% t=market`);
* Alertatron scripts `KEYS(SYMBOL) { market(side=buy, amount=50%a); ... } #bot`.

Parsing knows no webhook configuration: it extracts what the alert says under the field
names the public templates use (the `_ALIASES` tables) and records what a single order cannot
carry (`unsupported`: brackets, leverage, cancel/close commands) so the mapping can refuse
rather than silently drop a protective stop. A body that is none of the formats, or whose
fields do not parse, is refused with a `WebhookError` naming the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from algotrendy.webhooks.problems import WebhookError, invalid, unreadable

MAX_ALERT_BYTES = 64 * 1024  # far above any real alert; bounds parsing work per request

Scalar = str | int | float | bool | None


class AlertFormat(StrEnum):
    JSON = "json"
    KEY_VALUE = "key_value"
    COMMANDS = "commands"
    SCRIPT = "script"


# Field names (lower case; dotted = nested JSON) under which the public templates carry each
# piece of an order, most specific first. TradingView's own placeholders are listed in its
# help article "How to use a variable value in alert" ({{strategy.order.action}},
# {{strategy.order.contracts}}, {{strategy.market_position}}, {{ticker}}, {{close}},
# {{time}}, {{timenow}} ...); the other names come from the payload families in
# tests/fixtures/tradingview/README.md.
_ALIASES: dict[str, tuple[str, ...]] = {
    "action": (
        "action",
        "side",
        "strategy.order.action",
        "strategy.order_action",
        "order_action",
        "direction",
        "signal",
        "type_of_signal",
    ),
    "ticker": ("ticker", "symbol", "pair", "instrument", "tickerid"),
    "exchange": ("exchange",),
    "quantity": (
        "quantity",
        "qty",
        "contracts",
        "strategy.order.contracts",
        "strategy.order_contracts",
        "order_contracts",
        "amount",
        "size",
    ),
    "price": (
        "price",
        "limit_price",
        "order_price",
        "strategy.order.price",
        "strategy.order_price",
        "entry_price",
        "close",
        "bar.close",
    ),
    "order_type": ("order_type", "ordertype", "pricetype", "type"),
    "market_position": ("strategy.market_position", "market_position"),
    "prev_market_position": ("strategy.prev_market_position", "prev_market_position"),
    "market_position_size": ("strategy.market_position_size", "market_position_size"),
    "prev_market_position_size": (
        "strategy.prev_market_position_size",
        "prev_market_position_size",
    ),
    "order_id": ("strategy.order.id", "strategy.order_id", "order_id"),
    "time": ("bar.time", "time", "bar_time"),
    "timenow": ("timenow", "time_now"),
}
# Top-level fields that carry a shared secret. They are read for the passphrase check and
# never enter `fields`, the canonical content or the intent id.
PASSPHRASE_FIELDS = (
    "passphrase",
    "secret",
    "password",
    "connector_secret",
    "apikey",
    "api_key",
    "key",
    "token",
)
# Things a single market/limit order cannot express. Present with a "yes" value, the alert
# asks for more than the intent would do.
_BRACKET_FIELDS = frozenset(
    {
        "sl",
        "tp",
        "tp1",
        "tp2",
        "tp3",
        "stop_loss",
        "stoploss",
        "take_profit",
        "takeprofit",
        "trailstop",
        "trailing_stop",
        "closeexisting",
        "close_existing",
    }
)
# A top-level target position (OpenAlgo's "smart order") sizes the order against the open
# position, which the webhook does not know. Under `strategy.` the same name is
# TradingView's informative {{strategy.position_size}} (the position after the order).
_TARGET_POSITION_FIELDS = frozenset({"position_size", "target_position"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_KEY_VALUE_LINE = re.compile(r"^\s*([A-Za-z_][\w .-]{0,63}?)\s*:\s*(.*?)\s*$")
_COMMAND_TOKEN = re.compile(r"^([A-Za-z_]\w{0,31})=(\S*)$")
_SCRIPT = re.compile(
    r"^\s*(?P<keys>[A-Za-z0-9_-]{1,64})\s*\(\s*(?P<symbol>[^()\s]{0,64})\s*\)\s*"
    r"\{(?P<body>.*)\}\s*(?P<tag>#bot)?\s*$",
    re.DOTALL,
)
_SCRIPT_STATEMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.DOTALL)
_FALSY_WORDS = frozenset({"", "0", "false", "no", "none", "null", "off"})
# Command-line keys we understand on an order line (ProfitView-style syntax): b = side,
# q = quantity or percent, t = order type, p = price, s = symbol, l = leverage.
_ORDER_LINE_KEYS = frozenset({"b", "q", "t", "p", "s", "l"})


@dataclass(frozen=True, slots=True)
class Command:
    """One statement of an Alertatron script, e.g. `market(side=buy, amount=50%a)`."""

    name: str
    args: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        for k, v in self.args:
            if k == key:
                return v
        return None


@dataclass(frozen=True)
class Alert:
    """What an alert says, format-independent. `canonical` is the normalised content (the
    passphrase removed) that identifies the alert for de-duplication."""

    format: AlertFormat
    canonical: str
    fields: Mapping[str, Scalar]
    passphrase: str | None = field(default=None, repr=False)
    ticker: str | None = None
    exchange: str | None = None
    action: str | None = None
    quantity: float | None = None
    percent: float | None = None
    price: float | None = None
    order_type: str | None = None
    market_position: str | None = None
    prev_market_position: str | None = None
    market_position_size: float | None = None
    prev_market_position_size: float | None = None
    order_id: str | None = None
    time: datetime | None = None
    timenow: datetime | None = None
    unsupported: tuple[str, ...] = ()
    commands: tuple[Command, ...] = ()

    def timestamp(self, path: str) -> datetime | None:
        """The field at `path` (dotted, case-insensitive) read as a timestamp."""
        key = path.lower()
        if key not in self.fields:
            return None
        return parse_timestamp(self.fields[key], key)


def parse_alert(body: str) -> Alert:
    """Parse a webhook body in any supported format; refuse anything else with a problem
    naming what is wrong (400 unreadable, 413 too large, 422 unusable field)."""
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_ALERT_BYTES:
        raise WebhookError(
            413, "payload-too-large", f"alert body is {size} bytes; the limit is {MAX_ALERT_BYTES}"
        )
    text = body.lstrip("\ufeff").strip()
    if not text:
        raise unreadable("alert body is empty: put the alert message in TradingView's Message box")
    placeholders = sorted(set(_PLACEHOLDER.findall(text)))
    if placeholders:
        names = ", ".join("{{" + p + "}}" for p in placeholders)
        raise invalid(
            f"alert still contains TradingView placeholders {names}: this is the alert "
            "template, not a fired alert (TradingView substitutes them when the alert fires)"
        )
    if text[0] in "{[":
        return _parse_json(text)
    script = _SCRIPT.match(text)
    if script:
        return _parse_script(script)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if all(_is_command_line(ln) for ln in lines):
        return _parse_commands(lines)
    if all(_KEY_VALUE_LINE.match(ln) for ln in lines):
        return _parse_key_values(lines)
    # The body is not echoed back: an unrecognised body may carry a secret, and the detail
    # reaches the logs.
    raise unreadable(
        "plain-text alert not understood: expected a JSON object, 'key: value' lines, "
        "'key=value' command lines or an Alertatron script 'KEYS(SYMBOL) { ... }'"
    )


# ------------------------------------------------------------------------------ JSON


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKeyError(k)
        out[k] = v
    return out


class _DuplicateKeyError(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(text: str) -> Alert:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _DuplicateKeyError as exc:
        raise unreadable(
            f"JSON alert has the key {exc.args[0]!r} twice", field=exc.args[0]
        ) from None
    except json.JSONDecodeError as exc:
        raise unreadable(
            f"alert is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise unreadable(f"alert is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise unreadable(f"JSON alert must be an object, got {type(data).__name__}")
    secret: str | None = None
    content: dict[str, Any] = {}
    for key, value in data.items():
        if key.lower() in PASSPHRASE_FIELDS:
            if secret is None and isinstance(value, str | int):
                secret = str(value)
            continue
        content[key] = value
    fields: dict[str, Scalar] = {}
    _flatten(content, "", fields)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _build(AlertFormat.JSON, canonical, fields, secret, _bracket_requests(fields))


def _flatten(value: Any, prefix: str, out: dict[str, Scalar]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}{str(k).lower()}.", out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}{i}.", out)
    else:
        key = prefix[:-1]
        if key in out:  # e.g. "Action" and "action": ambiguous, so refused
            raise unreadable(f"alert has the field {key!r} twice (names are case-insensitive)")
        out[key] = value


def _bracket_requests(fields: Mapping[str, Scalar]) -> list[str]:
    found = []
    for key, value in fields.items():
        if key in _TARGET_POSITION_FIELDS and value is not None and str(value).strip():
            found.append(f"{key}={value} (target position: needs the open position)")
            continue
        leaf = key.rsplit(".", 1)[-1]
        if not _truthy(value):
            continue
        if leaf in _BRACKET_FIELDS or (leaf == "leverage" and not _is_one(value)):
            found.append(f"{key}={value}")
    return found


def _truthy(value: Scalar) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = value.strip().lower()
    if text in _FALSY_WORDS:
        return False
    try:
        return float(text) != 0.0
    except ValueError:
        return True


def _is_one(value: Scalar) -> bool:
    try:
        return float(str(value).strip().lower().removesuffix("x")) == 1.0
    except ValueError:
        return False


# ------------------------------------------------------------------------------ text formats


def _parse_key_values(lines: list[str]) -> Alert:
    fields: dict[str, Scalar] = {}
    kept: list[str] = []
    secret: str | None = None
    for line in lines:
        m = _KEY_VALUE_LINE.match(line)
        assert m is not None  # checked by the caller
        key, value = m.group(1).strip().lower(), m.group(2)
        if key in fields or (key in PASSPHRASE_FIELDS and secret is not None):
            raise unreadable(f"alert has the line {key!r} twice", field=key)
        if key in PASSPHRASE_FIELDS:
            secret = value
            continue
        fields[key] = value
        kept.append(f"{key}: {value}")
    return _build(AlertFormat.KEY_VALUE, "\n".join(kept), fields, secret, _bracket_requests(fields))


def _is_command_line(line: str) -> bool:
    return all(_COMMAND_TOKEN.match(tok) for tok in line.split())


def _parse_commands(lines: list[str]) -> Alert:
    """Command lines: a line with `b=` (and no `c=`) places an order; `c=...` lines cancel
    or close, `delay=` waits: neither fits one order intent, so they are `unsupported`."""
    parsed: list[list[tuple[str, str]]] = []
    for line in lines:
        pairs = [tok.partition("=") for tok in line.split()]
        parsed.append([(k.lower(), v) for k, _, v in pairs])
    unsupported: list[str] = []
    order_lines: list[list[tuple[str, str]]] = []
    for tokens in parsed:
        keys = [k for k, _ in tokens]
        if len(set(keys)) != len(keys):
            raise unreadable(f"command line {_join(tokens)!r} repeats a key")
        if "c" in keys or "b" not in keys:
            unsupported.append(_join(tokens))
        else:
            order_lines.append(tokens)
    if len(order_lines) > 1:
        unsupported.append(f"{len(order_lines)} order lines (one alert = one order)")
    fields: dict[str, Scalar] = {}
    if order_lines:
        for key, value in order_lines[-1]:
            if key not in _ORDER_LINE_KEYS:
                unsupported.append(f"{key}={value}")
            elif key == "l" and not _is_one(value):
                unsupported.append(f"leverage l={value}")
            fields[key] = value
    canonical = "\n".join(_join(tokens) for tokens in parsed)
    renamed = {"b": "action", "q": "quantity", "t": "order_type", "p": "price", "s": "ticker"}
    semantic = {renamed.get(k, k): v for k, v in fields.items()}
    return _build(AlertFormat.COMMANDS, canonical, semantic, None, unsupported)


def _join(tokens: list[tuple[str, str]]) -> str:
    return " ".join(f"{k}={v}" for k, v in tokens)


def _parse_script(match: re.Match[str]) -> Alert:
    """Alertatron script: the one `market(side=..., amount=...)` statement is the order;
    every other statement (stops, take-profit limits, cancels, OCO groups) is `unsupported`."""
    commands: list[Command] = []
    for raw in match["body"].split(";"):
        if not raw.strip():
            continue
        stmt = _SCRIPT_STATEMENT.match(raw)
        if stmt is None:
            raise unreadable(f"Alertatron statement {raw.strip()[:60]!r} is not name(args)")
        args: list[tuple[str, str]] = []
        for part in stmt.group(2).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise unreadable(
                    f"Alertatron statement {stmt.group(1)}(...): argument {part.strip()!r} "
                    "is not name=value"
                )
            k, v = part.split("=", 1)
            args.append((k.strip().lower(), v.strip()))
        commands.append(Command(stmt.group(1), tuple(args)))
    markets = [c for c in commands if c.name.lower() == "market"]
    unsupported = [f"{c.name}()" for c in commands if c.name.lower() != "market"]
    if len(markets) > 1:
        unsupported.append(f"{len(markets)} market() statements (one alert = one order)")
    fields: dict[str, Scalar] = {"keys": match["keys"], "ticker": match["symbol"] or None}
    if markets:
        order = markets[0]
        for key, value in order.args:
            if key not in ("side", "amount"):
                unsupported.append(f"market({key}={value})")
        fields["action"] = order.get("side")
        fields["quantity"] = order.get("amount")
    canonical = "\n".join(
        [f"{match['keys']}({match['symbol']})"]
        + [f"{c.name}({', '.join(f'{k}={v}' for k, v in c.args)})" for c in commands]
    )
    return _build(AlertFormat.SCRIPT, canonical, fields, None, unsupported, commands=commands)


# ------------------------------------------------------------------------------ values


def _build(
    fmt: AlertFormat,
    canonical: str,
    fields: Mapping[str, Scalar],
    secret: str | None,
    unsupported: list[str],
    *,
    commands: list[Command] | None = None,
) -> Alert:
    def first(kind: str) -> tuple[str, Scalar] | None:
        for name in _ALIASES[kind]:
            value = fields.get(name)
            if value is not None and not (isinstance(value, str) and not value.strip()):
                return name, value
        return None

    def text(kind: str) -> str | None:
        hit = first(kind)
        return None if hit is None else str(hit[1]).strip()

    def number(kind: str) -> float | None:
        hit = first(kind)
        return None if hit is None else parse_number(hit[1], hit[0])

    def stamp(kind: str) -> datetime | None:
        hit = first(kind)
        return None if hit is None else parse_timestamp(hit[1], hit[0])

    quantity = percent = None
    hit = first("quantity")
    if hit is not None:
        quantity, percent, basis = parse_amount(hit[1], hit[0])
        if basis is not None:
            unsupported.append(f"{hit[0]}={hit[1]} (percent of the {basis})")
            percent = None
    action = text("action")
    return Alert(
        format=fmt,
        canonical=canonical,
        fields=dict(fields),
        passphrase=secret,
        ticker=text("ticker"),
        exchange=text("exchange"),
        action=action.lower() if action else None,
        quantity=quantity,
        percent=percent,
        price=number("price"),
        order_type=(text("order_type") or "").lower() or None,
        market_position=(text("market_position") or "").lower() or None,
        prev_market_position=(text("prev_market_position") or "").lower() or None,
        market_position_size=number("market_position_size"),
        prev_market_position_size=number("prev_market_position_size"),
        order_id=text("order_id"),
        time=stamp("time"),
        timenow=stamp("timenow"),
        unsupported=tuple(unsupported),
        commands=tuple(commands or ()),
    )


def parse_number(value: Scalar, name: str) -> float:
    """A finite number from a JSON number or a numeric string (TradingView substitutes
    numbers into strings when the template quotes the placeholder)."""
    if isinstance(value, bool) or value is None:
        raise invalid(f"{name}: expected a number, got {value!r}", field=name)
    try:
        # float() of an int beyond ~1.8e308 raises OverflowError (a string gives inf).
        number = float(value) if isinstance(value, int | float) else float(value.strip())
    except OverflowError:
        number = math.inf
    except ValueError:
        raise invalid(f"{name}: {_short(value)} is not a number", field=name) from None
    if not math.isfinite(number):
        raise invalid(f"{name}: {_short(value)} is not a finite number", field=name)
    return number


def _short(value: Scalar) -> str:
    """A value for an error message, cut short: a 400-digit number need not come back."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_PERCENT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*%\s*([a-z]?)\s*$", re.IGNORECASE)
_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*/\s*([0-9]*\.?[0-9]+)\s*$")
# Alertatron amount suffixes: %a = of available balance (what percent sizing means here),
# %p = of the open position, %x = of equity with leverage.
_PERCENT_BASIS = {"": None, "a": None, "p": "open position", "x": "leveraged equity"}


def parse_amount(value: Scalar, name: str) -> tuple[float | None, float | None, str | None]:
    """(units, percent, unsupported percent basis) of a size field: `25`, `"0.5"`,
    `"25%"`, `"50%a"`, `"2.5/100"` (= 2.5 %)."""
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if m:
            suffix = m.group(2).lower()
            if suffix not in _PERCENT_BASIS:
                raise invalid(f"{name}: unknown percent suffix in {value!r}", field=name)
            return None, _finite_part(m.group(1), value, name), _PERCENT_BASIS[suffix]
        m = _FRACTION.match(value)
        if m:
            denominator = _finite_part(m.group(2), value, name)
            if denominator == 0:
                raise invalid(f"{name}: {_short(value)} divides by zero", field=name)
            percent = _finite_part(m.group(1), value, name) / denominator * 100.0
            if not math.isfinite(percent):
                raise invalid(f"{name}: {_short(value)} is not a finite amount", field=name)
            return None, percent, None
    units = parse_number(value, name)
    if units < 0:
        raise invalid(f"{name}: {value!r} is negative; the side gives the direction", field=name)
    return units, None, None


def _finite_part(text: str, value: str, name: str) -> float:
    number = float(text)  # digits only (the patterns above): never raises, may be inf
    if not math.isfinite(number):
        raise invalid(f"{name}: {_short(value)} is not a finite amount", field=name)
    return number


def parse_timestamp(value: Scalar, name: str) -> datetime:
    """TradingView's `{{time}}` / `{{timenow}}` are ISO 8601 UTC ("2020-09-06T01:44:17Z");
    epoch seconds or milliseconds (Pine's `timenow`) are accepted too. A timestamp without
    offset is read as UTC, TradingView's zone for these placeholders."""
    if isinstance(value, bool) or value is None:
        raise invalid(f"{name}: expected a timestamp, got {value!r}", field=name)
    if isinstance(value, int | float) or (isinstance(value, str) and _is_epoch(value)):
        try:
            epoch = float(value)
        except OverflowError:  # an int too large for a float
            raise _out_of_range(value, name) from None
        if not math.isfinite(epoch) or epoch < 0:
            raise invalid(f"{name}: {_short(value)} is not a timestamp", field=name)
        seconds = epoch / 1000.0 if epoch >= 1e11 else epoch  # 1e11 s is year 5138
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise _out_of_range(value, name) from None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid(
            f"{name}: {_short(value)} is not an ISO 8601 time such as 2020-09-06T01:44:17Z",
            field=name,
        ) from None
    try:
        # 0001-01-01T00:00:00+01:00 and 9999-12-31T23:59:59-01:00 fall outside datetime's
        # years 1-9999 once moved to UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise _out_of_range(value, name) from None


def _out_of_range(value: Scalar, name: str) -> WebhookError:
    return invalid(f"{name}: {_short(value)} is out of range", field=name)


def _is_epoch(text: str) -> bool:
    return bool(re.fullmatch(r"\s*\d{9,14}(\.\d+)?\s*", text))
