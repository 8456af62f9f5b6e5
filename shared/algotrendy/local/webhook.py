"""The TradingView webhook in the local server: the same `WebhookService.handle_alert` the
Lambda (functions/webhook/app.py) calls, behind a FastAPI route instead of API Gateway.

Config lookup, in order:

1. `webhooks.json` in the data dir (or `ALGOTRENDY_WEBHOOK_CONFIG_FILE`): full
   `WebhookConfig`s, passphrases included (the seeded demo webhook lives here);
2. the API's `strategies` table: a token issued with `POST /strategies/{id}/webhook`
   works at once, as a config with the strategy's symbols, the paper account and no
   passphrase (alerts must then carry their size, e.g. `{{strategy.order.contracts}}`).

Source addresses: the service default (TradingView's published addresses) plus loopback,
because locally the caller is `curl` on the same machine. The token never reaches a log
line: only the webhook's name, the status and the intent id are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from algotrendy.config import ConfigurationError
from algotrendy.storage.relational.api_repositories import StrategyConfigRepository
from algotrendy.webhooks import (
    JsonFileWebhookConfigStore,
    WebhookConfig,
    WebhookError,
    WebhookResult,
    WebhookService,
)
from algotrendy.webhooks.alerts import MAX_ALERT_BYTES

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.0/8", "::1/128")


class LocalWebhookConfigStore:
    """`WebhookConfigStore` over the config file, then the strategies table."""

    def __init__(
        self,
        path: Path,
        strategies: StrategyConfigRepository | None,
        *,
        account: str,
        cache_seconds: float = 60.0,
    ) -> None:
        self.path = path
        self.file = JsonFileWebhookConfigStore(path, cache_seconds=cache_seconds)
        self.strategies = strategies
        self.account = account

    def get(self, token_sha256: str) -> WebhookConfig | None:
        if self.path.is_file():
            found = self.file.get(token_sha256)
            if found is not None:
                return found
        if self.strategies is None:
            return None
        row = self.strategies.by_webhook_hash(token_sha256)
        if row is None:
            return None
        try:
            return WebhookConfig(
                name=f"strategy-{row.id}",
                token_sha256=token_sha256,
                enabled=row.enabled,
                account=self.account,
                strategy=row.name,
                symbols={s.upper(): s for s in row.symbols},
                default_symbol=row.symbols[0] if len(row.symbols) == 1 else None,
            )
        except ValueError as exc:
            raise ConfigurationError(f"strategy {row.id} ({row.name}): {exc}") from None


def _reply(result: WebhookResult) -> Response:
    """As the Lambda's reply (`WebhookResult.reply_body`)."""
    return Response(result.reply_body(), status_code=result.status, headers=result.reply_headers())


def _log(result: WebhookResult) -> None:
    extra = result.log_fields()
    level = logging.ERROR if result.status >= 500 else logging.INFO
    log.log(level, "webhook %s: %s", result.webhook or "?", result.status, extra=extra)


async def _read_body(request: Request) -> str:
    """The body, refused with 413 beyond the parser's limit without reading all of it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_ALERT_BYTES:
            raise WebhookError(
                413, "payload-too-large", f"alert body exceeds {MAX_ALERT_BYTES} bytes"
            )
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookError(400, "unreadable-alert", "alert body is not UTF-8 text") from None


def webhook_router(
    service: WebhookService, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    @router.post(
        "/webhooks/tradingview/{webhook_id}",
        summary="TradingView alert -> order intent",
        responses={
            200: {"description": "accepted (or a duplicate of an accepted alert)"},
            401: {"description": "wrong or missing passphrase"},
            403: {"description": "source address not allowed"},
            404: {"description": "unknown or revoked webhook"},
            422: {"description": "alert does not describe one order"},
        },
    )
    async def tradingview(webhook_id: str, request: Request) -> Response:
        """Paste `http://<host>/webhooks/tradingview/<webhook id>` into TradingView's alert
        dialog; the alert message is the body (JSON or text, any supported format)."""
        source = request.client.host if request.client else None
        try:
            body = await _read_body(request)
            result = await run_in_threadpool(
                service.handle_alert, webhook_id, body, source, clock()
            )
        except WebhookError as problem:
            result = WebhookResult.refused(problem)
        except ConfigurationError as exc:
            result = WebhookResult.refused(
                WebhookError(500, "misconfigured", "webhook configs cannot be loaded",
                             internal=str(exc))
            )  # fmt: skip
        _log(result)
        return _reply(result)

    return router
