"""A strategy's TradingView webhook as a `WebhookConfig` in the document the webhook reads.

The strategies table keeps only the token's SHA-256; the webhook (Lambda or local server)
authenticates against the config document (`algotrendy.webhooks.store`). So every route
that changes a strategy's webhook also publishes it, through the publisher the settings
choose (`build_webhook_publisher`):

* `ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER` set -> the SSM SecureString parameter (aws);
* else `ALGOTRENDY_WEBHOOK_CONFIG_FILE` set -> that JSON file (the local shape);
* neither -> nothing is published: the token is recorded in the table only (a bare API
  for tests and tools; the local server also finds tokens in the table).

The entry of strategy `id` is the one named ``strategy-<id>`` or, failing that, the one
holding the strategy's current token hash (an entry seeded or written by hand). Issuing
or rotating replaces it: new token hash; `strategy` = the strategy's name; `enabled` =
the strategy's; `symbols` = each of the strategy's symbols under its own name and its
compact form (BTC/USDT answers to the ``{{ticker}}`` BTCUSDT too), plus any ticker alias
already in the entry that still points at one of them; `default_symbol` when there is
exactly one symbol. Sizing, account and passphrase come from the request, else from the
entry being replaced, else WebhookConfig's defaults (account "default", sizing "auto":
the alert's contracts or percent, which TradingView strategy alerts carry). The
passphrase is stored as the scrypt hash the webhook verifies (`hash_passphrase`);
allowed sources stay the service default (TradingView's addresses) unless the entry set
its own.

Disabling the strategy republishes the entry with `enabled: false` (the webhook answers
404, as for an unknown token; the document store's own definition of a revoked entry),
so enabling it again restores the same URL. Deleting the strategy or its webhook removes
the entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from algotrendy.config import Settings
from algotrendy.storage.relational.api_models import StrategyConfigRow
from algotrendy.webhooks.auth import hash_passphrase
from algotrendy.webhooks.config import WebhookConfig
from algotrendy.webhooks.store import (
    Change,
    JsonFileWebhookConfigPublisher,
    Match,
    SsmParameterWebhookConfigPublisher,
    WebhookConfigPublisher,
)

if TYPE_CHECKING:
    from algotrendy.api.schemas import WebhookIssue

# What an issue request may set, besides the passphrase (WebhookIssue's field names).
ISSUE_FIELDS = ("account", "quantity_mode", "quantity", "percent_of", "max_quantity")


def build_webhook_publisher(
    settings: Settings, client: Callable[[str], Any] | None = None
) -> WebhookConfigPublisher | None:
    """The publisher the settings name (module docstring); `client` builds AWS clients
    (boto3.client by default)."""
    if settings.webhook_config_parameter:
        if client is None:
            import boto3

            client = boto3.client
        return SsmParameterWebhookConfigPublisher(client("ssm"), settings.webhook_config_parameter)
    if settings.webhook_config_file:
        return JsonFileWebhookConfigPublisher(settings.webhook_config_file)
    return None


def entry_name(strategy_id: int) -> str:
    return f"strategy-{strategy_id}"


def owned_by(row: StrategyConfigRow) -> Match:
    """Selects the strategy's entry: by its name, or by the strategy's current token."""
    name, digest = entry_name(row.id), row.webhook_token_sha256

    def match(config: WebhookConfig) -> bool:
        return config.name == name or (digest is not None and config.token_sha256 == digest)

    return match


def _compact(symbol: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", symbol.upper())


def ticker_map(symbols: list[str], previous: dict[str, str] | None = None) -> dict[str, str]:
    """TradingView ticker (upper case) -> our symbol. A key two symbols would share (two
    symbols equal but for case or punctuation) is left out rather than guessed."""
    candidates: dict[str, set[str]] = {}
    for symbol in symbols:
        for key in {symbol.upper(), _compact(symbol)}:
            if key:
                candidates.setdefault(key, set()).add(symbol)
    out = {k: next(iter(v)) for k, v in candidates.items() if len(v) == 1}
    for key, symbol in (previous or {}).items():
        if symbol in symbols and key not in candidates:
            out[key] = symbol
    return out


def issue_change(row: StrategyConfigRow, token_sha256: str, issue: WebhookIssue | None) -> Change:
    """The entry for a newly issued token (module docstring for where each field comes
    from). The passphrase is hashed once, here, not on every retry of the change."""
    given = issue.model_fields_set if issue is not None else set()
    overrides: dict[str, Any] = {f: getattr(issue, f) for f in ISSUE_FIELDS if f in given}
    if issue is not None and "passphrase" in given:
        overrides["passphrase_hash"] = (
            hash_passphrase(issue.passphrase) if issue.passphrase is not None else None
        )

    def change(current: WebhookConfig | None) -> WebhookConfig:
        fields: dict[str, Any] = current.model_dump() if current is not None else {}
        fields.update(overrides)
        fields["name"] = current.name if current is not None else entry_name(row.id)
        fields["token_sha256"] = token_sha256
        fields.update(_from_row(row, current))
        return WebhookConfig.model_validate(fields)

    return change


def refresh_change(row: StrategyConfigRow) -> Change:
    """After a strategy changed: its entry follows (name, symbols, enabled); no entry, no
    change (a strategy without a published webhook gets none)."""

    def change(current: WebhookConfig | None) -> WebhookConfig | None:
        if current is None:
            return None
        return WebhookConfig.model_validate({**current.model_dump(), **_from_row(row, current)})

    return change


def _from_row(row: StrategyConfigRow, current: WebhookConfig | None) -> dict[str, Any]:
    symbols = list(row.symbols)
    mapped = ticker_map(symbols, current.symbols if current is not None else None)
    return {
        "strategy": row.name,
        "enabled": row.enabled,
        "symbols": mapped,
        "default_symbol": symbols[0] if len(symbols) == 1 else None,
    }


def remove_change(current: WebhookConfig | None) -> None:
    return None


def config_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, message) of a WebhookConfig validation error, for a 422 problem."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        field = "passphrase" if loc == "passphrase_hash" else (loc or "webhook")
        out.append((field, err["msg"].removeprefix("Value error, ")))
    return out
