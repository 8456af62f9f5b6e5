"""Webhooks issued by the API work in the webhook: the API publishes each issue, rotation
and revocation into the document the webhook reads (an SSM SecureString under moto, or a
JSON file), and the real `WebhookService.handle_alert`, reading that same document through
its own store, accepts or refuses the tokens. The alert is TradingView fixture 01 (a
hackingthemarkets strategy alert: BINANCE:DOGEUSDT, 10000 contracts, passphrase
"abcdefgh"), sent from one of TradingView's published addresses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from api_helpers import Session, assert_problem
from fastapi.testclient import TestClient
from moto import mock_aws

from algotrendy.api.context import ApiContext
from algotrendy.config import TRADINGVIEW_WEBHOOK_IPS
from algotrendy.messaging import InMemoryQueue
from algotrendy.webhooks import (
    InMemoryIdempotency,
    JsonFileWebhookConfigStore,
    SsmParameterWebhookConfigStore,
    WebhookConfig,
    WebhookConfigStore,
    WebhookService,
    hash_webhook_token,
    load_webhook_configs,
    verify_passphrase,
)
from algotrendy.webhooks.store import (
    JsonFileWebhookConfigPublisher,
    SsmParameterWebhookConfigPublisher,
    WebhookConfigPublisher,
    render_webhook_configs,
)

FIXTURE_01 = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "tradingview"
    / "01_passphrase_bar_strategy.filled.json"
)
PARAMETER = "/algotrendy/dev/webhooks"
TRADINGVIEW_IP = TRADINGVIEW_WEBHOOK_IPS[0]
FIRED = datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC)  # fixture 01's "time"
# An entry written by hand (not by the API): every API edit must leave it as it is.
HAND_TOKEN = "hand_written_token_aaaaaaaaaaaaaaaaaaaaaaaa"
HAND = WebhookConfig(
    name="hand-written",
    token_sha256=hash_webhook_token(HAND_TOKEN),
    symbols={"NASDAQ:AAPL": "AAPL"},
    quantity_mode="fixed",
    quantity=1,
)


def alert(n: int = 0, passphrase: str = "abcdefgh") -> str:
    """Fixture 01, fired `n` seconds later (a distinct alert: its own intent id)."""
    body: dict[str, Any] = json.loads(FIXTURE_01.read_text(encoding="utf-8"))
    body["time"] = (FIRED + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    body["passphrase"] = passphrase
    return json.dumps(body)


class Webhook:
    """The webhook side: the real service over a store reading the published document."""

    def __init__(self, store: WebhookConfigStore) -> None:
        self.queue = InMemoryQueue("orders.fifo")
        self.service = WebhookService(store, self.queue, InMemoryIdempotency())

    def post(self, token: str, n: int = 0, passphrase: str = "abcdefgh") -> Any:
        now = FIRED + timedelta(seconds=n + 3)
        return self.service.handle_alert(token, alert(n, passphrase), TRADINGVIEW_IP, now)


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def _strategy(client: TestClient, trader: Session, **body: Any) -> int:
    payload = {
        "name": "doge-breakout",
        "strategy_type": "sma_cross",
        "symbols": ["DOGE/USDT"],
        "enabled": True,
        **body,
    }
    reply = client.post("/strategies", json=payload, headers=trader.headers)
    assert reply.status_code == 201, reply.text
    return int(reply.json()["id"])


def _issue(client: TestClient, trader: Session, sid: int, body: Any = None) -> str:
    reply = client.post(f"/strategies/{sid}/webhook", json=body, headers=trader.headers)
    assert reply.status_code == 201, reply.text
    assert reply.json()["published"] is True
    token: str = reply.json()["webhook_id"]
    return token


def _lifecycle(
    client: TestClient, trader: Session, ctx: ApiContext, hook: Webhook, read: Any
) -> None:
    """Issue, use, rotate, disable, enable, revoke, delete; `read()` is the document."""
    sid = _strategy(client, trader)
    token = _issue(client, trader, sid, {"passphrase": "abcdefgh", "account": "binance-main"})

    accepted = hook.post(token)
    assert accepted.status == 200, accepted.body
    intent = accepted.body
    assert intent["account"] == "binance-main"
    assert (intent["symbol"], intent["side"]) == ("DOGE/USDT", "buy")
    assert intent["quantity"] == 10000  # the alert's strategy.order_contracts
    assert hook.post(token, 1, passphrase="wrong-passphrase").status == 401

    (entry,) = [w for w in read() if w.name == f"strategy-{sid}"]
    assert entry.token_sha256 == hash_webhook_token(token)
    assert entry.strategy == "doge-breakout"
    assert entry.allowed_ips is None  # the service default: TradingView's addresses
    assert entry.passphrase_hash is not None
    assert verify_passphrase("abcdefgh", entry.passphrase_hash)
    assert read()[0] == HAND

    # Rotate without a body: a new token; account and passphrase are kept.
    rotated = _issue(client, trader, sid)
    assert rotated != token
    assert hook.post(token, 2).status == 404
    again = hook.post(rotated, 2)
    assert again.status == 200, again.body
    assert again.body["account"] == "binance-main"
    assert hook.post(rotated, 3, passphrase="wrong-passphrase").status == 401

    # Disabling the strategy turns its webhook off; enabling it restores the same URL.
    off = client.patch(f"/strategies/{sid}", json={"enabled": False}, headers=trader.headers)
    assert off.status_code == 200, off.text
    assert hook.post(rotated, 4).status == 404
    on = client.patch(f"/strategies/{sid}", json={"enabled": True}, headers=trader.headers)
    assert on.status_code == 200, on.text
    assert hook.post(rotated, 5).status == 200

    assert client.delete(f"/strategies/{sid}/webhook", headers=trader.headers).status_code == 204
    assert hook.post(rotated, 6).status == 404
    assert [w.name for w in read()] == ["hand-written"]

    # Deleting a strategy removes its entry too.
    fresh = _issue(client, trader, sid)
    assert hook.post(fresh, 7).status == 200
    assert client.delete(f"/strategies/{sid}", headers=trader.headers).status_code == 204
    assert hook.post(fresh, 8).status == 404
    assert read() == [HAND]
    # The hand-written webhook still answers (it maps NASDAQ:AAPL only, so 422, not 404).
    assert hook.post(HAND_TOKEN, 9).status == 422
    assert len(hook.queue) == 4  # one intent per accepted alert: 0, 2, 5 and 7


def test_api_issued_tokens_work_in_the_webhook_through_ssm(
    ssm: Any, client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=render_webhook_configs([HAND]), Type="SecureString")
    ctx.webhooks = SsmParameterWebhookConfigPublisher(ssm, PARAMETER)
    hook = Webhook(SsmParameterWebhookConfigStore(ssm, PARAMETER, cache_seconds=0))

    def read() -> list[WebhookConfig]:
        param = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]
        assert param["Type"] == "SecureString"
        assert "abcdefgh" not in param["Value"]  # only the scrypt hash is stored
        return list(load_webhook_configs(param["Value"], source=PARAMETER).values())

    _lifecycle(client, trader, ctx, hook, read)


def test_api_issued_tokens_work_in_the_webhook_through_a_file(
    tmp_path: Path, client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    path = tmp_path / "conf" / "webhooks.json"
    path.parent.mkdir()
    path.write_text(render_webhook_configs([HAND], indent=2))
    ctx.webhooks = JsonFileWebhookConfigPublisher(path)
    hook = Webhook(JsonFileWebhookConfigStore(path, cache_seconds=0))

    def read() -> list[WebhookConfig]:
        assert "abcdefgh" not in path.read_text()
        assert path.stat().st_mode & 0o777 == 0o600  # passphrase hashes: owner only
        return list(load_webhook_configs(path.read_text(), source=str(path)).values())

    _lifecycle(client, trader, ctx, hook, read)
    # Atomic writes leave only the document and its lock file behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["webhooks.json", "webhooks.json.lock"]


def test_without_a_publisher_tokens_are_only_recorded(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    assert ctx.webhooks is None
    sid = _strategy(client, trader)
    reply = client.post(f"/strategies/{sid}/webhook", headers=trader.headers)
    assert reply.status_code == 201
    assert reply.json()["published"] is False


def test_issue_settings_are_validated_as_the_webhook_would(
    tmp_path: Path, client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    path = tmp_path / "webhooks.json"
    ctx.webhooks = JsonFileWebhookConfigPublisher(path)
    sid = _strategy(client, trader)
    url = f"/strategies/{sid}/webhook"
    short = client.post(url, json={"passphrase": "short"}, headers=trader.headers)
    assert "passphrase" in assert_problem(short, 422)["detail"]
    fixed = client.post(url, json={"quantity_mode": "fixed"}, headers=trader.headers)
    body = assert_problem(fixed, 422, "validation")
    assert "quantity_mode fixed needs quantity" in body["detail"]
    assert not path.exists()  # nothing published, nothing recorded
    row = ctx.strategies.get(sid)
    assert row is not None
    assert row.webhook_token_sha256 is None

    token = _issue(client, trader, sid, {"quantity_mode": "fixed", "quantity": 250})
    hook = Webhook(JsonFileWebhookConfigStore(path, cache_seconds=0))
    reply = hook.post(token)
    assert reply.status == 200, reply.body
    assert reply.body["quantity"] == 250  # fixed size, whatever the alert says
    assert reply.body["account"] == "default"


def test_an_entry_written_by_hand_for_the_strategy_is_rotated_in_place(
    tmp_path: Path, client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    """A webhook seeded by hand (the local demo's) and recorded on the strategy row is the
    strategy's entry: rotating replaces its token and keeps its name and settings."""
    path = tmp_path / "webhooks.json"
    sid = _strategy(client, trader)
    ctx.strategies.update(sid, webhook_token_sha256=HAND.token_sha256)
    path.write_text(render_webhook_configs([HAND]))
    ctx.webhooks = JsonFileWebhookConfigPublisher(path)
    token = _issue(client, trader, sid)
    (entry,) = load_webhook_configs(path.read_text(), source=str(path)).values()
    assert entry.name == "hand-written"
    assert entry.token_sha256 == hash_webhook_token(token)
    assert (entry.quantity_mode, entry.quantity) == ("fixed", 1)
    # The strategy's symbol is mapped; the old alias of a symbol it no longer trades is not.
    assert entry.symbols == {"DOGE/USDT": "DOGE/USDT", "DOGEUSDT": "DOGE/USDT"}
    assert entry.default_symbol == "DOGE/USDT"


def test_a_full_ssm_document_is_a_conflict_and_changes_nothing(
    ssm: Any, client: TestClient, ctx: ApiContext, trader: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import algotrendy.webhooks.store as store

    ssm.put_parameter(Name=PARAMETER, Value=render_webhook_configs([HAND]), Type="SecureString")
    monkeypatch.setattr(store, "SSM_MAX_VALUE_BYTES", len(render_webhook_configs([HAND])) + 10)
    ctx.webhooks = SsmParameterWebhookConfigPublisher(ssm, PARAMETER)
    sid = _strategy(client, trader)
    reply = client.post(f"/strategies/{sid}/webhook", headers=trader.headers)
    assert "an SSM parameter holds at most" in assert_problem(reply, 409, "conflict")["detail"]
    assert list(_doc(ssm).values()) == [HAND]
    row = ctx.strategies.get(sid)
    assert row is not None
    assert row.webhook_token_sha256 is None


# -- the SSM read-modify-write under concurrent writers -----------------------------------


class Interleaving:
    """An SSM client whose `put_parameter` first lets `others` write (a competing writer
    that read the same version and wins the race to put), then does ours."""

    def __init__(self, client: Any, others: list[str]) -> None:
        self.client = client
        self.others = others
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_parameter(self, **kwargs: Any) -> Any:
        self.puts += 1
        while self.others:
            self.client.put_parameter(
                Name=kwargs["Name"], Value=self.others.pop(0), Type="SecureString", Overwrite=True
            )
        return self.client.put_parameter(**kwargs)


def _doc(client: Any) -> dict[str, WebhookConfig]:
    value = client.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]
    return {w.name: w for w in load_webhook_configs(value, source=PARAMETER).values()}


def _entry(name: str, n: int) -> WebhookConfig:
    return WebhookConfig(name=name, token_sha256=hash_webhook_token(f"{name}-token-{n:040d}"))


def test_concurrent_writes_replaced_by_our_put_are_restored(ssm: Any) -> None:
    a, b, c = _entry("a", 0), _entry("b", 0), _entry("c", 0)
    ssm.put_parameter(Name=PARAMETER, Value=render_webhook_configs([a]), Type="SecureString")
    # Two other writers put (b added; then a rotated and b kept) after our read of version
    # 1 and before our put: our put lands on version 4, replacing both.
    a2 = _entry("a", 2)
    racing = Interleaving(ssm, [render_webhook_configs([a, b]), render_webhook_configs([a2, b])])
    SsmParameterWebhookConfigPublisher(racing, PARAMETER).put(c)
    assert _doc(ssm) == {"a": a2, "b": b, "c": c}
    assert racing.puts == 2  # ours, then the restoring put
    history = ssm.get_parameter_history(Name=PARAMETER, WithDecryption=True)["Parameters"]
    assert [h["Version"] for h in history] == [1, 2, 3, 4, 5]


def test_an_uncontended_write_is_one_put_and_keeps_the_kms_key(ssm: Any) -> None:
    key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    ssm.put_parameter(
        Name=PARAMETER, Value=render_webhook_configs([_entry("a", 0)]), Type="SecureString",
        KeyId=key,
    )  # fmt: skip
    counting = Interleaving(ssm, [])
    publisher = SsmParameterWebhookConfigPublisher(counting, PARAMETER)
    publisher.put(_entry("b", 0))
    assert counting.puts == 1
    assert publisher.revoke("a") is True
    assert publisher.revoke("a") is False  # nothing to change: no put
    assert counting.puts == 2
    assert set(_doc(ssm)) == {"b"}
    (described,) = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [PARAMETER]}]
    )["Parameters"]
    assert described["KeyId"] == key
    assert described["Version"] == 3


def test_a_missing_parameter_is_created_and_a_full_one_refused(ssm: Any) -> None:
    publisher = SsmParameterWebhookConfigPublisher(ssm, PARAMETER)
    publisher.put(_entry("a", 0))
    assert set(_doc(ssm)) == {"a"}
    from algotrendy.webhooks.store import SSM_MAX_VALUE_BYTES, WebhookPublishConflictError

    # Fill it up to the limit: every document that fits is accepted ...
    entries = [_entry("a", 0)]
    while True:
        candidate = _entry(f"w{len(entries)}", len(entries))
        if len(render_webhook_configs([*entries, candidate])) > SSM_MAX_VALUE_BYTES:
            break
        publisher.put(candidate)
        entries.append(candidate)
    assert list(_doc(ssm).values()) == entries
    assert len(entries) > 20
    # ... and the first that does not is refused, leaving the parameter as it was.
    with pytest.raises(WebhookPublishConflictError, match=f"at most {SSM_MAX_VALUE_BYTES}"):
        publisher.put(_entry("one-too-many", 0))
    assert "one-too-many" not in _doc(ssm)
    assert len(render_webhook_configs(_doc(ssm).values())) <= SSM_MAX_VALUE_BYTES


def test_publish_failure_is_a_503_and_changes_nothing(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    class Down:
        def get_parameter(self, **_: Any) -> Any:
            raise TimeoutError("read timed out")

    ctx.webhooks = SsmParameterWebhookConfigPublisher(Down(), PARAMETER)
    sid = _strategy(client, trader)
    reply = client.post(f"/strategies/{sid}/webhook", headers=trader.headers)
    body = assert_problem(reply, 503, "unavailable")
    assert "no token was issued" in body["detail"]
    assert reply.headers["retry-after"] == "5"
    row = ctx.strategies.get(sid)
    assert row is not None
    assert row.webhook_token_sha256 is None


# -- composition: which publisher and which candle store the settings choose -------------


def test_context_chooses_publisher_and_candle_store_from_settings(tmp_path: Path, ssm: Any) -> None:
    from algotrendy.api.context import LazyCandleStore, build_context
    from algotrendy.api.webhook_configs import build_webhook_publisher
    from algotrendy.config import Settings
    from algotrendy.storage.local import LocalCandleStore
    from algotrendy.storage.questdb_store import QuestDBCandleStore

    base = {
        "stage": "local",
        "jwt_secret": "context-tests-secret-0123456789abcdef",
        "data_dir": str(tmp_path / "data"),
        "database_url": f"sqlite:///{tmp_path / 'ctx.db'}",
    }
    plain = build_context(Settings(**base))
    assert isinstance(plain.candles, LazyCandleStore)  # built on first use (cold start)
    assert isinstance(plain.candles.built(), LocalCandleStore)
    assert plain.webhooks is None

    aws_like = build_context(
        Settings(
            **base,
            questdb_url="http://admin:secret@questdb.internal:9000",
            webhook_config_parameter=PARAMETER,
        )
    )
    assert isinstance(aws_like.candles, LazyCandleStore)
    questdb = aws_like.candles.built()
    assert isinstance(questdb, QuestDBCandleStore)
    assert questdb.address == "questdb.internal:9000"
    assert "password=secret" in questdb.pg_conninfo
    publisher = aws_like.webhooks
    assert isinstance(publisher, SsmParameterWebhookConfigPublisher)
    assert publisher.name == PARAMETER
    publisher.put(_entry("a", 0))  # the client it built reaches (moto's) SSM
    assert set(_doc(ssm)) == {"a"}

    both = Settings(**base, webhook_config_parameter=PARAMETER, webhook_config_file="x.json")
    assert isinstance(build_webhook_publisher(both), SsmParameterWebhookConfigPublisher)
    file_only = build_webhook_publisher(Settings(**base, webhook_config_file="x.json"))
    assert isinstance(file_only, JsonFileWebhookConfigPublisher)
    assert isinstance(file_only, WebhookConfigPublisher)
    for context in (plain, aws_like):
        if context.launcher is not None and hasattr(context.launcher, "shutdown"):
            context.launcher.shutdown()
        context.db.dispose()
