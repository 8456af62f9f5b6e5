"""parse_alert: every real alert body in tests/fixtures/tradingview is parsed (values read
back against the file's own content) or refused with a named reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from webhook_helpers import TRADINGVIEW, fixture_json, fixture_text

from algotrendy.webhooks import AlertFormat, WebhookError, parse_alert
from algotrendy.webhooks.alerts import MAX_ALERT_BYTES, parse_amount, parse_timestamp

# Every alert file of the fixture set -> the format it parses as, or the problem it gets.
EXPECTED_FORMAT: dict[str, AlertFormat | tuple[int, str]] = {
    "01_passphrase_bar_strategy.filled.json": AlertFormat.JSON,
    "01_passphrase_bar_strategy.template.txt": (422, "{{strategy.order.action}}"),
    "02_passphrase_bar_strategy_equity.filled.json": AlertFormat.JSON,
    "03_notify_key_msg.filled.json": AlertFormat.JSON,
    "03_notify_key_msg.template.json": (422, "{{ticker}}"),
    "04_openalgo_limit.filled.json": AlertFormat.JSON,
    "04_openalgo_smartorder.filled.json": AlertFormat.JSON,
    "04_openalgo_smartorder.template.json": (422, "{{strategy.order.contracts}}"),
    "05_signal_leverage_fraction.filled.json": AlertFormat.JSON,
    "06_signal_sl_tp.filled.json": AlertFormat.JSON,
    "06_signal_sl_tp.template.json": (422, "{{strategy.order.stop_loss}}"),
    "07_keyvalue_text_add.txt": AlertFormat.KEY_VALUE,
    "07_keyvalue_text_close.txt": AlertFormat.KEY_VALUE,
    "07_keyvalue_text_open.txt": AlertFormat.KEY_VALUE,
    "08_command_text_long.txt": AlertFormat.COMMANDS,
    "08_command_text_short.txt": AlertFormat.COMMANDS,
    "09_price_alert_message.filled.json": AlertFormat.JSON,
    "09_price_alert_message.template.json": (422, "{{plot_0}}"),
    "10_script_bot_text_flatten.txt": AlertFormat.SCRIPT,
    "10_script_bot_text_long.txt": AlertFormat.SCRIPT,
    "11_side_amount_close.json": AlertFormat.JSON,
    "11_side_amount_overrides.filled.json": AlertFormat.JSON,
}


def test_the_table_covers_every_fixture() -> None:
    files = {p.name for p in TRADINGVIEW.iterdir() if p.name[:2].isdigit()}
    assert files == set(EXPECTED_FORMAT)


@pytest.mark.parametrize("name", sorted(EXPECTED_FORMAT))
def test_fixture_parses_or_is_refused_with_a_reason(name: str) -> None:
    expected = EXPECTED_FORMAT[name]
    if isinstance(expected, AlertFormat):
        assert parse_alert(fixture_text(name)).format is expected
    else:
        status, needle = expected
        with pytest.raises(WebhookError) as info:
            parse_alert(fixture_text(name))
        assert info.value.status == status
        assert needle in info.value.detail
        assert "template" in info.value.detail


def test_strategy_template_fields_are_read_from_the_nested_object() -> None:
    name = "01_passphrase_bar_strategy.filled.json"
    raw, alert = fixture_json(name), parse_alert(fixture_text(name))
    strategy = raw["strategy"]
    assert alert.ticker == raw["ticker"]
    assert alert.exchange == raw["exchange"]
    assert alert.action == strategy["order_action"]
    assert alert.quantity == strategy["order_contracts"]
    assert alert.percent is None
    assert alert.price == strategy["order_price"]
    assert alert.market_position == strategy["market_position"]
    assert alert.prev_market_position == strategy["prev_market_position"]
    assert alert.market_position_size == strategy["market_position_size"]
    assert alert.prev_market_position_size == strategy["prev_market_position_size"]
    assert alert.order_id == strategy["order_id"]
    # {{time}} (bar) is bar.time; the top-level "time" is this template's {{timenow}},
    # which only the webhook config can say (timenow_field), so the parser reads bar.time.
    assert alert.time == datetime.fromisoformat(raw["bar"]["time"])
    assert alert.timenow is None
    assert alert.timestamp("time") == datetime.fromisoformat(raw["time"])
    assert alert.passphrase == raw["passphrase"]
    assert alert.unsupported == ()


def test_equity_variant_without_exchange_and_with_tabs() -> None:
    name = "02_passphrase_bar_strategy_equity.filled.json"
    raw, alert = fixture_json(name), parse_alert(fixture_text(name))
    assert (alert.ticker, alert.exchange) == (raw["ticker"], None)
    assert alert.quantity == raw["strategy"]["order_contracts"]
    assert alert.passphrase == raw["passphrase"]


def test_secret_fields_never_reach_the_canonical_content_or_fields() -> None:
    for name in (
        "01_passphrase_bar_strategy.filled.json",
        "03_notify_key_msg.filled.json",
        "04_openalgo_limit.filled.json",
    ):
        raw = fixture_json(name)
        secret = next(raw[k] for k in ("passphrase", "key", "apikey") if k in raw)
        alert = parse_alert(fixture_text(name))
        assert alert.passphrase == secret
        assert secret not in alert.canonical
        assert secret not in json.dumps(dict(alert.fields), default=str)
        assert secret not in repr(alert)


def test_openalgo_values_are_strings_and_limit_type_is_kept() -> None:
    name = "04_openalgo_limit.filled.json"
    raw, alert = fixture_json(name), parse_alert(fixture_text(name))
    assert alert.quantity == float(raw["quantity"])
    assert alert.price == float(raw["price"])
    assert alert.order_type == raw["pricetype"].lower()
    assert alert.unsupported == ()


def test_openalgo_smart_order_target_position_is_flagged() -> None:
    alert = parse_alert(fixture_text("04_openalgo_smartorder.filled.json"))
    assert len(alert.unsupported) == 1
    assert alert.unsupported[0].startswith("position_size=-75")


def test_fraction_size_and_leverage() -> None:
    name = "05_signal_leverage_fraction.filled.json"
    raw, alert = fixture_json(name), parse_alert(fixture_text(name))
    numerator, denominator = (float(x) for x in raw["size"].split("/"))
    assert alert.percent == pytest.approx(numerator / denominator * 100)
    assert alert.quantity is None
    assert alert.action == raw["action"]  # "action" wins over "direction"
    # takeprofit/trailstop "0.0" mean none; leverage 5 is more than one order carries.
    assert alert.unsupported == (f"leverage={raw['leverage']}",)


def test_stop_loss_and_take_profit_are_flagged_not_dropped() -> None:
    name = "06_signal_sl_tp.filled.json"
    raw, alert = fixture_json(name), parse_alert(fixture_text(name))
    assert alert.action == raw["direction"]
    assert alert.price == float(raw["entry_price"])
    assert set(alert.unsupported) == {f"sl={raw['sl']}", f"tp1={raw['tp1']}"}


@pytest.mark.parametrize("name", ["07_keyvalue_text_open.txt", "07_keyvalue_text_add.txt"])
def test_key_value_lines(name: str) -> None:
    lines = {
        k.strip(): v.strip()
        for k, v in (ln.split(":", 1) for ln in fixture_text(name).splitlines() if ln.strip())
    }
    alert = parse_alert(fixture_text(name))
    assert alert.action == lines["type_of_signal"]
    assert alert.ticker == lines["pair"]
    assert alert.quantity == float(lines["amount"])
    assert alert.passphrase == lines["connector_secret"]
    assert lines["connector_secret"] not in alert.canonical


def test_key_value_close_has_no_amount() -> None:
    alert = parse_alert(fixture_text("07_keyvalue_text_close.txt"))
    assert (alert.action, alert.quantity, alert.percent) == ("close", None, None)


@pytest.mark.parametrize(
    ("name", "side"), [("08_command_text_long.txt", "long"), ("08_command_text_short.txt", "short")]
)
def test_command_lines_read_the_order_line_and_flag_the_rest(name: str, side: str) -> None:
    alert = parse_alert(fixture_text(name))
    order_line = fixture_text(name).strip().splitlines()[-1]
    tokens = dict(tok.split("=", 1) for tok in order_line.split())
    assert alert.action == tokens["b"] == side
    assert alert.percent == float(tokens["q"].rstrip("%"))
    assert alert.order_type == tokens["t"]
    # cancel orders, close the opposite position, wait, leverage: none fits one intent.
    assert "c=order t=open" in alert.unsupported
    assert any(u.startswith("c=position") for u in alert.unsupported)
    assert "delay=2" in alert.unsupported
    assert f"leverage l={tokens['l']}" in alert.unsupported


def test_alertatron_script_parses_every_statement() -> None:
    alert = parse_alert(fixture_text("10_script_bot_text_long.txt"))
    assert alert.ticker == "BTCUSDT"
    assert alert.fields["keys"] == "MyKeys"
    names = [c.name for c in alert.commands]
    assert names == ["market", "stopOrder", "oneCancelsOther", "limit", "limit", "oneCancelsOther"]
    market = alert.commands[0]
    assert market.get("side") == "buy" == alert.action
    assert market.get("amount") == "50%a"
    assert alert.percent == 50.0
    assert set(alert.unsupported) == {f"{n}()" for n in names[1:]}


def test_alertatron_flatten_script_has_no_order() -> None:
    alert = parse_alert(fixture_text("10_script_bot_text_flatten.txt"))
    assert alert.action is None
    assert alert.unsupported == ("limit()", "cancel()")


def test_alertatron_signals_lite_json() -> None:
    raw = fixture_json("11_side_amount_overrides.filled.json")
    alert = parse_alert(fixture_text("11_side_amount_overrides.filled.json"))
    assert alert.action == raw["side"]
    assert alert.percent == float(raw["amount"].rstrip("%"))
    assert set(alert.unsupported) == {"takeprofit=True", "stoploss=True", "closeexisting=True"}


def test_price_alert_message_has_no_order_fields() -> None:
    alert = parse_alert(fixture_text("09_price_alert_message.filled.json"))
    assert (alert.action, alert.quantity, alert.percent) == (None, None, None)
    assert alert.ticker == "ETHUSD"


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ("", 400, "empty"),
        ("   \n ", 400, "empty"),
        ('{"action": "buy",', 400, "not valid JSON"),
        ('{"action": "buy", "action": "sell"}', 400, "'action' twice"),
        ('{"Action": "buy", "action": "sell"}', 400, "'action' twice"),
        ('["buy"]', 400, "must be an object"),
        ('{"action": "buy", "quantity": NaN}', 400, "NaN"),
        ("just some words", 400, "plain-text alert not understood"),
        ("c=order t=open\nnot a command", 400, "plain-text alert not understood"),
        ("KEYS(BTCUSDT) { market side=buy; }", 400, "not name(args)"),
        ("KEYS(BTCUSDT) { market(buy); }", 400, "not name=value"),
        ('{"action": "buy", "quantity": "lots"}', 422, "quantity: 'lots' is not a number"),
        ('{"action": "buy", "quantity": -3}', 422, "negative"),
        ('{"action": "buy", "amount": "1/0"}', 422, "divides by zero"),
        ('{"action": "buy", "amount": "5%z"}', 422, "percent suffix"),
        ('{"action": "buy", "timenow": "yesterday"}', 422, "timenow: 'yesterday'"),
        ('{"action": "buy", "price": true}', 422, "price: expected a number"),
        ('{"action": "buy", "ticker": "{{ticker}}"}', 422, "{{ticker}}"),
        ("type_of_signal: open\ntype_of_signal: add", 400, "twice"),
    ],
)
def test_bad_bodies_are_refused_naming_the_problem(body: str, status: int, needle: str) -> None:
    with pytest.raises(WebhookError) as info:
        parse_alert(body)
    assert info.value.status == status
    assert needle in info.value.detail
    assert info.value.body()["status"] == status


def test_refusal_names_the_field() -> None:
    with pytest.raises(WebhookError) as info:
        parse_alert('{"strategy": {"order_contracts": "ten"}, "action": "buy"}')
    assert info.value.field == "strategy.order_contracts"
    assert info.value.body()["field"] == "strategy.order_contracts"


def test_oversized_body_is_413() -> None:
    body = json.dumps({"action": "buy", "pad": "x" * MAX_ALERT_BYTES})
    with pytest.raises(WebhookError) as info:
        parse_alert(body)
    assert info.value.status == 413


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(WebhookError) as info:
        parse_alert("[" * 20_000 + "]" * 20_000)
    assert info.value.status in (400, 413)


# ------------------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-09-06T01:44:17Z", datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC)),
        ("2020-09-06T03:44:17+02:00", datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC)),
        ("2020-09-06T01:44:17", datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC)),  # naive = UTC
        (1599356657, datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC)),  # epoch s
        (1599356657000, datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC)),  # epoch ms (Pine)
        ("1599356657000", datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC)),
    ],
)
def test_timestamps(value: str | int, expected: datetime) -> None:
    assert parse_timestamp(value, "timenow") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (25, (25.0, None, None)),
        ("0.5", (0.5, None, None)),
        ("25%", (None, 25.0, None)),
        ("50%a", (None, 50.0, None)),
        ("100%p", (None, 100.0, "open position")),
        ("2.5/100", (None, 2.5, None)),
        ("1/4", (None, 25.0, None)),
    ],
)
def test_amounts(value: str | int, expected: tuple[float | None, float | None, str | None]) -> None:
    assert parse_amount(value, "amount") == expected


def test_percent_of_position_is_unsupported() -> None:
    alert = parse_alert('{"side": "sell", "amount": "100%p"}')
    assert alert.percent is None
    assert alert.unsupported == ("amount=100%p (percent of the open position)",)


# ------------------------------------------------------------------------------ canonical form

_scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12).filter(
        lambda s: "{{" not in s  # a placeholder left in would be refused, rightly
    ),
)
# "x_" keeps generated names clear of the field aliases (a random "time" would have to be a
# timestamp), so every generated document is a readable alert.
_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).map(
    lambda k: "x_" + k
)


@given(st.dictionaries(_keys, _scalars, max_size=8), st.randoms(use_true_random=False))
def test_canonical_content_ignores_key_order_and_whitespace(
    content: dict[str, object], rnd: object
) -> None:
    items = list(content.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    compact = json.dumps(dict(items), separators=(",", ":"))
    pretty = json.dumps(content, indent="\t")
    a, b = parse_alert(compact), parse_alert(pretty)
    assert a.canonical == b.canonical
    assert a.fields == b.fields


@given(st.text(min_size=8, max_size=40).filter(lambda s: "{{" not in s))
def test_passphrase_value_does_not_change_the_canonical_content(secret: str) -> None:
    base = {"action": "buy", "ticker": "BTCUSDT", "quantity": 1}
    a = parse_alert(json.dumps({**base, "passphrase": secret}))
    b = parse_alert(json.dumps({**base, "passphrase": "something-else"}))
    assert a.canonical == b.canonical
    assert a.passphrase == secret
