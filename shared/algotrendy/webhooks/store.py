"""Where webhook configs live: the `WebhookConfigStore` port and three adapters.

Configs are found by the SHA-256 of the URL token, never by the token itself. The
in-memory store serves tests and the local shape; the JSON-document stores serve Lambda
(a file, or one SSM SecureString parameter) until the relational store arrives with the
API. The document is `{"version": 1, "webhooks": [<WebhookConfig>, ...]}`; a bad document
fails on load with a `ConfigurationError` naming the webhook and the field.

Revocation = removing the entry or setting `enabled: false`; the document stores re-read
their source after `cache_seconds`, so a revoked token stops working within that time.

Creating a webhook by hand until the API does it::

    token = generate_webhook_token()          # give the URL .../tradingview/<token> to the user
    entry = WebhookConfig(name="btc-breakout", token_sha256=hash_webhook_token(token),
                          symbols={"BINANCE:BTCUSDT": "BTC/USDT"}, quantity_mode="contracts",
                          passphrase_hash=hash_passphrase("a long passphrase"))
    # add entry.model_dump(mode="json") to the document, then
    # aws ssm put-parameter --type SecureString --overwrite \
    #     --name /algotrendy/<stage>/webhooks --value file://webhooks.json
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from algotrendy.config import ConfigurationError
from algotrendy.documents import CachedDocument, file_reader, ssm_reader
from algotrendy.webhooks.auth import hash_webhook_token
from algotrendy.webhooks.config import WebhookConfig


class WebhookStoreUnavailableError(Exception):
    """The config source could not be read (transient: the caller should retry)."""


@runtime_checkable
class WebhookConfigStore(Protocol):
    def get(self, token_sha256: str) -> WebhookConfig | None:
        """The config whose token hashes to `token_sha256`, enabled or not; None if none."""
        ...


class WebhookConfigDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    webhooks: list[WebhookConfig]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [w.name for w in self.webhooks]
        tokens = [w.token_sha256 for w in self.webhooks]
        dup_names = sorted({n for n in names if names.count(n) > 1})
        if dup_names:
            raise ValueError(f"webhook names must be unique: {', '.join(dup_names)}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("two webhooks share a token_sha256")
        return self


def load_webhook_configs(text: str, *, source: str) -> dict[str, WebhookConfig]:
    """Parse a config document; the error names the source, webhook index/name and field."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{source}: webhook configs are not JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    try:
        doc = WebhookConfigDocument.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc) or "document"
        if len(loc) >= 2 and loc[0] == "webhooks" and isinstance(loc[1], int):
            name = _name_at(raw, loc[1])
            if name:
                where = f"{where} ({name})"
        raise ConfigurationError(f"{source}: {where}: {err['msg']}") from None
    return {w.token_sha256: w for w in doc.webhooks}


def _name_at(raw: Any, index: int) -> str | None:
    try:
        name = raw["webhooks"][index]["name"]
    except (KeyError, IndexError, TypeError):
        return None
    return name if isinstance(name, str) else None


class InMemoryWebhookConfigStore:
    """Thread-safe dict of configs by token hash (tests, local shape)."""

    def __init__(self, configs: Iterable[WebhookConfig] = ()) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, WebhookConfig] = {}
        for config in configs:
            self.put(config)

    def get(self, token_sha256: str) -> WebhookConfig | None:
        with self._lock:
            return self._by_hash.get(token_sha256)

    def put(self, config: WebhookConfig) -> None:
        with self._lock:
            for existing in self._by_hash.values():
                if existing.name == config.name and existing.token_sha256 != config.token_sha256:
                    raise ValueError(f"webhook name {config.name!r} is already used")
            self._by_hash[config.token_sha256] = config

    def revoke(self, token: str) -> bool:
        """Forget a token (given in clear, as the owner holds it); True if it existed."""
        with self._lock:
            return self._by_hash.pop(hash_webhook_token(token), None) is not None


class _CachedDocumentStore:
    """Re-reads its document at most every `cache_seconds`; keeps nothing else."""

    def __init__(
        self,
        source: str,
        read: Callable[[], str],
        *,
        cache_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._document = CachedDocument(
            source,
            read,
            lambda text: load_webhook_configs(text, source=source),
            cache_seconds=cache_seconds,
            clock=clock,
        )

    def get(self, token_sha256: str) -> WebhookConfig | None:
        return self._document.value().get(token_sha256)


class JsonFileWebhookConfigStore(_CachedDocumentStore):
    """Configs from a JSON document on disk (local shape, tests, a file baked into an image)."""

    def __init__(
        self,
        path: str | Path,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        read = file_reader(self.path, "webhook config")
        super().__init__(str(self.path), read, cache_seconds=cache_seconds, clock=clock)


class SsmParameterWebhookConfigStore(_CachedDocumentStore):
    """Configs from one SSM parameter (SecureString, decrypted on read), for Lambda.

    The client is injected (built once per container). A failed read raises
    `WebhookStoreUnavailableError` (503: TradingView resends); a missing parameter is an
    operator error (`ConfigurationError`)."""

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        read = ssm_reader(client, name, "webhook configs", WebhookStoreUnavailableError)
        super().__init__(f"ssm:{name}", read, cache_seconds=cache_seconds, clock=clock)
