"""Alert + WebhookConfig -> OrderIntent: sizing, sides, symbols, order types, intent ids,
and a 422 naming the field for every alert that cannot become one order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from webhook_helpers import FIXTURE_01_NOW, fixture_json, fixture_text, make_config

from algotrendy.domain.orders import OrderType, Side
from algotrendy.webhooks import WebhookError, build_intent, derive_intent_id, parse_alert

NOW = FIXTURE_01_NOW


def intent_for(body: str, **config: Any) -> Any:
    return build_intent(parse_alert(body), make_config(**config), now=NOW)


def refusal(body: str, **config: Any) -> WebhookError:
    with pytest.raises(WebhookError) as info:
        intent_for(body, **config)
    assert info.value.status == 422
    return info.value


def test_strategy_alert_becomes_the_order_tradingview_reports() -> None:
    name = "01_passphrase_bar_strategy.filled.json"
    raw = fixture_json(name)
    intent = intent_for(fixture_text(name))
    assert intent.symbol == "DOGE/USDT"  # BINANCE:DOGEUSDT through the config's mapping
    assert intent.side == Side(raw["strategy"]["order_action"])
    assert intent.quantity == raw["strategy"]["order_contracts"]
    assert intent.order_type is OrderType.MARKET
    assert intent.account == "binance-main"
    assert intent.strategy == "doge_breakout"
    assert intent.source == "webhook"
    assert intent.created_at == NOW
    assert intent.reduce_only is False  # flat -> long is an entry
    assert intent.message_group_id == "binance-main:DOGE/USDT"


def test_contracts_multiplier_converts_tradingview_contracts() -> None:
    name = "01_passphrase_bar_strategy.filled.json"
    contracts = fixture_json(name)["strategy"]["order_contracts"]
    intent = intent_for(fixture_text(name), contracts_multiplier=0.001)
    assert intent.quantity == pytest.approx(contracts * 0.001)


def test_equity_alert_maps_bare_ticker() -> None:
    name = "02_passphrase_bar_strategy_equity.filled.json"
    raw = fixture_json(name)
    intent = intent_for(fixture_text(name), name="aapl", symbols={"AAPL": "AAPL"})
    assert (intent.symbol, intent.side, intent.quantity) == ("AAPL", Side.BUY, 171.0)
    assert intent.quantity == raw["strategy"]["order_contracts"]


@pytest.mark.parametrize(
    ("before", "after", "side", "sizes", "reduce_only"),
    [
        ("long", "flat", "sell", (10, 0), True),  # exit
        ("short", "flat", "buy", (10, 0), True),
        ("long", "long", "sell", (10, 4), True),  # partial exit
        ("long", "long", "buy", (4, 10), False),  # pyramiding
        ("long", "short", "sell", (10, 10), False),  # reversal: closes and opens
        ("flat", "long", "buy", (0, 10), False),
    ],
)
def test_reduce_only_follows_the_strategy_position(
    before: str, after: str, side: str, sizes: tuple[int, int], reduce_only: bool
) -> None:
    body = json.dumps(
        {
            "ticker": "DOGEUSDT",
            "exchange": "BINANCE",
            "strategy": {
                "order_action": side,
                "order_contracts": 5,
                "prev_market_position": before,
                "market_position": after,
                "prev_market_position_size": sizes[0],
                "market_position_size": sizes[1],
            },
        }
    )
    assert intent_for(body).reduce_only is reduce_only


def test_action_contradicting_the_position_change_is_refused() -> None:
    body = json.dumps(
        {
            "ticker": "DOGEUSDT",
            "action": "buy",
            "quantity": 1,
            "prev_market_position": "long",
            "market_position": "flat",
        }
    )
    problem = refusal(body)
    assert "contradicts market position long -> flat" in problem.detail


def test_openalgo_limit_order_when_the_config_takes_the_alerts_type() -> None:
    name = "04_openalgo_limit.filled.json"
    raw = fixture_json(name)
    config = {"name": "nse", "symbols": {"NSE:RELIANCE": "RELIANCE.NS"}, "order_type": "alert"}
    intent = intent_for(fixture_text(name), **config)
    assert intent.order_type is OrderType.LIMIT
    assert intent.limit_price == float(raw["price"])
    assert intent.quantity == float(raw["quantity"])
    assert intent.symbol == "RELIANCE.NS"


def test_limit_config_without_price_is_refused() -> None:
    problem = refusal('{"ticker": "DOGEUSDT", "action": "buy", "quantity": 1}', order_type="limit")
    assert problem.field == "price"


def test_openalgo_smart_order_is_refused_unless_told_to_ignore_the_target() -> None:
    name = "04_openalgo_smartorder.filled.json"
    config = {"name": "nse", "symbols": {"SBIN": "SBIN.NS"}}
    problem = refusal(fixture_text(name), **config)
    assert "position_size=-75" in problem.detail
    assert "ignore_unsupported" in problem.detail
    intent = intent_for(fixture_text(name), ignore_unsupported=True, **config)
    assert (intent.side, intent.quantity) == (Side.SELL, 150.0)


def test_percent_size_is_a_share_of_percent_of() -> None:
    name = "05_signal_leverage_fraction.filled.json"
    cfg = {
        "symbols": {"BTCUSDT": "BTC/USDT"},
        "quantity_mode": "auto",
        "percent_of": 2.0,
        "ignore_unsupported": True,
    }
    intent = intent_for(fixture_text(name), **cfg)
    assert intent.side is Side.SELL
    assert intent.quantity == pytest.approx(2.5 / 100 * 2.0)


def test_percent_without_percent_of_is_refused() -> None:
    body = fixture_text("11_side_amount_overrides.filled.json")
    problem = refusal(
        body, quantity_mode="auto", default_symbol="BTC/USDT", ignore_unsupported=True
    )
    assert "percent_of" in problem.detail


def test_bracket_alert_is_refused_by_default() -> None:
    problem = refusal(fixture_text("06_signal_sl_tp.filled.json"), symbols={"XAUUSD": "XAU/USD"})
    assert "sl=2318.00" in problem.detail
    assert "tp1=2352.80" in problem.detail


def test_bracket_alert_with_fixed_size_when_ignoring_the_brackets() -> None:
    intent = intent_for(
        fixture_text("06_signal_sl_tp.filled.json"),
        symbols={"XAUUSD": "XAU/USD"},
        quantity_mode="fixed",
        quantity=0.5,
        ignore_unsupported=True,
    )
    assert (intent.symbol, intent.side, intent.quantity) == ("XAU/USD", Side.BUY, 0.5)


def test_key_value_open_uses_default_side() -> None:
    text = fixture_text("07_keyvalue_text_open.txt")
    cfg = {"symbols": {"SOL-USDT-SWAP": "SOL/USDT:USDT"}, "default_side": "buy"}
    intent = intent_for(text, **cfg)
    assert (intent.symbol, intent.side, intent.quantity) == ("SOL/USDT:USDT", Side.BUY, 250.0)
    assert intent.reduce_only is False


def test_open_without_default_side_is_refused() -> None:
    text = fixture_text("07_keyvalue_text_open.txt")
    problem = refusal(text, symbols={"SOL-USDT-SWAP": "SOL/USDT:USDT"})
    assert "default_side" in problem.detail
    assert problem.field == "action"


def test_close_without_quantity_is_refused() -> None:
    text = fixture_text("07_keyvalue_text_close.txt")
    cfg = {"symbols": {"SOL-USDT-SWAP": "SOL/USDT:USDT"}, "default_side": "buy"}
    problem = refusal(text, **cfg)
    assert "does not know the open position" in problem.detail
    problem = refusal(fixture_text("11_side_amount_close.json"), default_symbol="BTC/USDT",
                      default_side="buy")  # fmt: skip
    assert problem.field == "quantity"


def test_close_with_quantity_sells_reduce_only() -> None:
    body = "type_of_signal: close\npair: SOL-USDT-SWAP\namount: 40"
    cfg = {"symbols": {"SOL-USDT-SWAP": "SOL/USDT:USDT"}, "default_side": "buy"}
    intent = intent_for(body, **cfg)
    assert (intent.side, intent.quantity, intent.reduce_only) == (Side.SELL, 40.0, True)


def test_command_lines_refused_then_sized_by_percent() -> None:
    text = fixture_text("08_command_text_long.txt")
    cfg = {"default_symbol": "BTC/USDT", "quantity_mode": "auto", "percent_of": 1.0}
    problem = refusal(text, **cfg)
    assert "c=position b=short t=market" in problem.detail
    intent = intent_for(text, ignore_unsupported=True, **cfg)
    assert (intent.symbol, intent.side, intent.quantity) == ("BTC/USDT", Side.BUY, 0.25)


def test_alertatron_script_long() -> None:
    text = fixture_text("10_script_bot_text_long.txt")
    cfg = {"default_symbol": "BTC/USDT", "quantity_mode": "percent", "percent_of": 0.1}
    problem = refusal(text, **cfg)
    assert "stopOrder()" in problem.detail
    intent = intent_for(text, ignore_unsupported=True, **cfg)
    # BTCUSDT matches default_symbol BTC/USDT written without the separator
    assert (intent.symbol, intent.side, intent.quantity) == ("BTC/USDT", Side.BUY, 0.05)


@pytest.mark.parametrize(
    ("name", "field"),
    [("09_price_alert_message.filled.json", "action"), ("03_notify_key_msg.filled.json", "action")],
)
def test_notification_alerts_have_no_order(name: str, field: str) -> None:
    problem = refusal(fixture_text(name), default_symbol="ETH/USD")
    assert problem.field == field
    assert "no order action" in problem.detail


def test_unmapped_ticker_is_refused_naming_the_mapping() -> None:
    problem = refusal('{"ticker": "ETHUSDT", "exchange": "BINANCE", "action": "buy", "qty": 1}')
    assert problem.field == "ticker"
    assert "BINANCE:ETHUSDT or ETHUSDT" in problem.detail
    assert "BINANCE:DOGEUSDT" in problem.detail


def test_ticker_with_exchange_prefix_and_case() -> None:
    body = '{"ticker": "binance:dogeusdt", "action": "sell", "qty": 3}'
    assert intent_for(body).symbol == "DOGE/USDT"


def test_bare_ticker_matches_the_one_prefixed_mapping() -> None:
    body = '{"ticker": "DOGEUSDT", "action": "sell", "qty": 3}'
    assert intent_for(body).symbol == "DOGE/USDT"
    both = {"BINANCE:DOGEUSDT": "DOGE/USDT", "BYBIT:DOGEUSDT": "DOGE/USDT:USDT"}
    problem = refusal(body, symbols=both)
    assert "several exchanges" in problem.detail


def test_alert_without_ticker_needs_default_symbol() -> None:
    problem = refusal('{"action": "buy", "qty": 1}')
    assert "default_symbol" in problem.detail
    assert intent_for('{"action": "buy", "qty": 1}', default_symbol="DOGE/USDT").symbol == (
        "DOGE/USDT"
    )


@pytest.mark.parametrize(
    ("body", "config", "needle"),
    [
        ('{"ticker": "DOGEUSDT", "action": "buy"}', {"quantity_mode": "auto"}, "no quantity"),
        ('{"ticker": "DOGEUSDT", "action": "buy", "qty": 0}', {}, "nothing to trade"),
        ('{"ticker": "DOGEUSDT", "action": "buy", "qty": 5}', {"max_quantity": 4}, "max_quantity"),
        (
            '{"ticker": "DOGEUSDT", "action": "buy", "amount": "150%"}',
            {"quantity_mode": "auto", "percent_of": 1},
            "(0, 100]",
        ),
        ('{"ticker": "DOGEUSDT", "action": "hold", "qty": 1}', {}, "'hold' is not buy/sell"),
        (
            '{"ticker": "DOGEUSDT", "action": "buy", "qty": 1, "type": "stop"}',
            {"order_type": "alert"},
            "'stop' is not market or limit",
        ),
        (
            '{"ticker": "DOGEUSDT", "action": "buy", "amount": "10%"}',
            {"quantity_mode": "contracts"},
            "sizes by contracts",
        ),
        (
            '{"ticker": "DOGEUSDT", "action": "buy", "qty": 1}',
            {"quantity_mode": "percent", "percent_of": 1},
            "sizes by percent",
        ),
    ],
)
def test_unusable_alerts_are_refused(body: str, config: dict[str, Any], needle: str) -> None:
    assert needle in refusal(body, **config).detail


def test_fixed_mode_ignores_the_alerts_size() -> None:
    body = '{"ticker": "DOGEUSDT", "action": "buy", "qty": 999}'
    assert intent_for(body, quantity_mode="fixed", quantity=7).quantity == 7


def test_config_validation_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="quantity_mode fixed needs quantity"):
        make_config(quantity_mode="fixed")
    with pytest.raises(ValidationError, match="needs percent_of"):
        make_config(quantity_mode="percent")
    with pytest.raises(ValidationError, match="hex SHA-256"):
        make_config(token_sha256="not-a-hash")
    with pytest.raises(ValidationError, match=r"'10\.0\.0\.300' is not an IP"):
        make_config(allowed_ips=("10.0.0.300",))
    with pytest.raises(ValidationError, match="listed twice"):
        make_config(symbols={"btcusdt": "BTC/USDT", "BTCUSDT": "BTC/USDT"})
    with pytest.raises(ValidationError, match="scrypt"):
        make_config(passphrase_hash="plaintext")


# ------------------------------------------------------------------------------ intent ids


def test_intent_id_is_deterministic_and_fits_the_wire_formats() -> None:
    body = fixture_text("01_passphrase_bar_strategy.filled.json")
    a, b = intent_for(body), intent_for(body)
    assert a.intent_id == b.intent_id
    assert a.client_order_id == b.client_order_id
    assert a.intent_id.startswith("tv-")
    assert len(a.intent_id) == 43
    assert len(a.intent_id) <= 128  # SQS MessageDeduplicationId limit


def test_intent_id_ignores_formatting_and_passphrase_but_not_content() -> None:
    raw = fixture_json("01_passphrase_bar_strategy.filled.json")
    base = intent_for(json.dumps(raw)).intent_id
    reformatted = intent_for(json.dumps(raw, indent=8, sort_keys=True)).intent_id
    other_secret = intent_for(json.dumps({**raw, "passphrase": "rotated-passphrase"})).intent_id
    assert base == reformatted == other_secret
    later = {**raw, "time": "2020-09-06T01:45:17Z"}  # same template, fired a minute later
    next_bar = {**raw, "bar": {**raw["bar"], "time": "2020-09-06T01:44:00Z"}}
    bigger = {**raw, "strategy": {**raw["strategy"], "order_contracts": 20000}}
    ids = {base} | {intent_for(json.dumps(d)).intent_id for d in (later, next_bar, bigger)}
    assert len(ids) == 4


def test_intent_id_depends_on_the_webhook() -> None:
    alert = parse_alert(fixture_text("01_passphrase_bar_strategy.filled.json"))
    assert derive_intent_id("one", alert) != derive_intent_id("two", alert)
    assert derive_intent_id("one", alert) == derive_intent_id("one", alert)
