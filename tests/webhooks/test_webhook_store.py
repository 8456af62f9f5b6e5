"""Webhook config stores: the document format, the JSON file and SSM adapters (moto), the
in-memory store and revocation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from webhook_helpers import OTHER_TOKEN, TOKEN, TRADINGVIEW, make_config

from algotrendy.config import ConfigurationError
from algotrendy.webhooks import (
    InMemoryWebhookConfigStore,
    JsonFileWebhookConfigStore,
    SsmParameterWebhookConfigStore,
    WebhookConfigStore,
    WebhookStoreUnavailableError,
    hash_webhook_token,
    load_webhook_configs,
)


def document(*configs: Any) -> str:
    return json.dumps({"version": 1, "webhooks": [c.model_dump(mode="json") for c in configs]})


def test_sample_document_loads() -> None:
    """tests/fixtures/tradingview/webhook_configs.json (the events' configs) is valid."""
    path = TRADINGVIEW / "webhook_configs.json"
    configs = load_webhook_configs(path.read_text(), source=str(path))
    assert {c.name for c in configs.values()} == {"doge-breakout", "sol-flux", "aapl-revoked"}
    assert all(h == c.token_sha256 for h, c in configs.items())


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not JSON"),
        ('{"version": 2, "webhooks": []}', "version"),
        ('{"webhooks": [{"name": "x"}]}', "webhooks.0.token_sha256 (x): Field required"),
        (
            json.dumps({"webhooks": [{"name": "x", "token_sha256": "0" * 64, "typo": 1}]}),
            "webhooks.0.typo (x): Extra inputs are not permitted",
        ),
    ],
)
def test_bad_documents_name_source_webhook_and_field(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_webhook_configs(text, source="ssm:/algotrendy/dev/webhooks")
    assert str(info.value).startswith("ssm:/algotrendy/dev/webhooks: ")
    assert needle in str(info.value)


def test_duplicate_names_and_tokens_are_refused() -> None:
    a = make_config(TOKEN)
    with pytest.raises(ConfigurationError, match="names must be unique: doge-breakout"):
        load_webhook_configs(document(a, make_config(OTHER_TOKEN)), source="s")
    with pytest.raises(ConfigurationError, match="share a token_sha256"):
        load_webhook_configs(document(a, make_config(TOKEN, name="other")), source="s")


def test_in_memory_store_get_put_revoke() -> None:
    store = InMemoryWebhookConfigStore([make_config(TOKEN)])
    assert isinstance(store, WebhookConfigStore)
    config = store.get(hash_webhook_token(TOKEN))
    assert config is not None
    assert config.name == "doge-breakout"
    assert store.get(hash_webhook_token(OTHER_TOKEN)) is None
    with pytest.raises(ValueError, match="already used"):
        store.put(make_config(OTHER_TOKEN))
    assert store.revoke(TOKEN) is True
    assert store.get(hash_webhook_token(TOKEN)) is None
    assert store.revoke(TOKEN) is False


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_json_file_store_rereads_after_cache_time(tmp_path: Path) -> None:
    path = tmp_path / "webhooks.json"
    path.write_text(document(make_config(TOKEN)))
    clock = FakeClock()
    store = JsonFileWebhookConfigStore(path, cache_seconds=60, clock=clock)
    assert store.get(hash_webhook_token(TOKEN)) is not None
    path.write_text(document(make_config(OTHER_TOKEN, name="rotated")))
    clock.t = 59.0
    assert store.get(hash_webhook_token(TOKEN)) is not None  # cached
    clock.t = 60.0
    assert store.get(hash_webhook_token(TOKEN)) is None  # revoked within the cache time
    assert store.get(hash_webhook_token(OTHER_TOKEN)) is not None


def test_json_file_store_missing_file(tmp_path: Path) -> None:
    store = JsonFileWebhookConfigStore(tmp_path / "nope.json")
    with pytest.raises(ConfigurationError, match=r"nope\.json: webhook config file does not exist"):
        store.get("0" * 64)


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def test_ssm_store_reads_a_secure_string(ssm: Any) -> None:
    name = "/algotrendy/dev/webhooks"
    ssm.put_parameter(Name=name, Value=document(make_config(TOKEN)), Type="SecureString")
    clock = FakeClock()
    store = SsmParameterWebhookConfigStore(ssm, name, cache_seconds=60, clock=clock)
    config = store.get(hash_webhook_token(TOKEN))
    assert config is not None
    assert config.account == "binance-main"
    ssm.put_parameter(
        Name=name, Value=document(make_config(TOKEN, enabled=False)), Overwrite=True,
        Type="SecureString",
    )  # fmt: skip
    clock.t = 61.0
    refreshed = store.get(hash_webhook_token(TOKEN))
    assert refreshed is not None
    assert refreshed.enabled is False


def test_ssm_store_missing_parameter_is_a_configuration_error(ssm: Any) -> None:
    store = SsmParameterWebhookConfigStore(ssm, "/algotrendy/dev/missing")
    with pytest.raises(ConfigurationError, match="/algotrendy/dev/missing"):
        store.get("0" * 64)


def test_ssm_store_transport_failure_is_transient() -> None:
    class Broken:
        def get_parameter(self, **_: Any) -> Any:
            raise TimeoutError("read timed out")

    store = SsmParameterWebhookConfigStore(Broken(), "/algotrendy/dev/webhooks")
    with pytest.raises(WebhookStoreUnavailableError, match="TimeoutError"):
        store.get("0" * 64)
