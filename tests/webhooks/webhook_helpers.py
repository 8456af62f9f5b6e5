"""Shared helpers for the webhook tests: the real alert bodies (tests/fixtures/tradingview,
see its README for provenance), tokens and configs, and a service on in-process adapters.
A plain module rather than a conftest: test folders are not packages, so another folder's
conftest would shadow the name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from algotrendy.messaging import InMemoryQueue
from algotrendy.webhooks import (
    InMemoryIdempotency,
    InMemoryWebhookConfigStore,
    WebhookConfig,
    WebhookPolicy,
    WebhookService,
    hash_passphrase,
    hash_webhook_token,
)

TRADINGVIEW = Path(__file__).resolve().parents[1] / "fixtures" / "tradingview"
TOKEN = "tvwh_unit_test_token_aaaaaaaaaaaaaaaaaaaa01"
OTHER_TOKEN = "tvwh_unit_test_token_bbbbbbbbbbbbbbbbbbbb02"
TRADINGVIEW_IP = "52.89.214.238"
# The moment fixture 01's alert fired ({{timenow}} = its top-level "time") plus 3 s.
FIXTURE_01_NOW = datetime(2020, 9, 6, 1, 44, 20, tzinfo=UTC)
# Cheap scrypt cost for tests (the default 2^14 is exercised in test_webhook_auth).
FAST_N = 2**10


def fixture_text(name: str) -> str:
    return (TRADINGVIEW / name).read_text(encoding="utf-8")


def fixture_json(name: str) -> dict[str, Any]:
    data = json.loads(fixture_text(name))
    assert isinstance(data, dict)
    return data


def make_config(token: str = TOKEN, **overrides: Any) -> WebhookConfig:
    """A webhook for fixture 01 (BINANCE:DOGEUSDT strategy alerts) unless overridden."""
    fields: dict[str, Any] = {
        "name": "doge-breakout",
        "token_sha256": hash_webhook_token(token),
        "account": "binance-main",
        "strategy": "doge_breakout",
        "symbols": {"BINANCE:DOGEUSDT": "DOGE/USDT"},
        "quantity_mode": "contracts",
    }
    fields.update(overrides)
    return WebhookConfig(**fields)


def passphrase_hash(passphrase: str) -> str:
    return hash_passphrase(passphrase, n=FAST_N)


class Harness:
    """A service on in-process adapters, with its queue and idempotency store exposed."""

    def __init__(self, *configs: WebhookConfig, policy: WebhookPolicy | None = None) -> None:
        self.store = InMemoryWebhookConfigStore(configs)
        self.queue = InMemoryQueue("orders.fifo")
        self.idempotency = InMemoryIdempotency()
        self.service = WebhookService(self.store, self.queue, self.idempotency, policy)

    def post(
        self,
        body: str,
        *,
        token: str | None = TOKEN,
        ip: str | None = TRADINGVIEW_IP,
        now: datetime = FIXTURE_01_NOW,
    ) -> Any:
        return self.service.handle_alert(token, body, ip, now)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.queue.bodies()]
