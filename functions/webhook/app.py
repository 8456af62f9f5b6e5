"""TradingView webhook: `POST /webhooks/tradingview/{webhook_id}` (API Gateway REST, proxy
integration) -> an order intent on orders.fifo, at most once per distinct alert.

Thin on purpose: read the event (token from the path, body, source address), call
`WebhookService.handle_alert` (algotrendy.webhooks), shape the reply. TradingView waits
about 3 s and cannot send headers (TradingView help, "How to configure webhook alerts"),
so the work here is bounded: one config lookup (cached), one idempotency record
(DynamoDB, Powertools) and one SQS send; the execution engine does everything else.

Replies: 200 with the intent id for an accepted alert and for every duplicate of it;
4xx `application/problem+json` naming the problem (never enqueued, never resent by
TradingView); 5xx when the store or queue failed, which TradingView resends.

Imports stay light (no numpy/pandas/ccxt; see tests/functions/test_webhook_handler.py):
AWS clients are built once per container, on the first request, by `service()`.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the container, and
# the collector scanning them as they load is ~10% of the import (30 ms of the webhook's,
# 120 ms of the API's, bench/bench_cold_imports.py). It is paused until this module is
# built, then everything built so far is frozen out of later collections (end of file).
gc.disable()

import base64
import binascii
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from algotrendy.config import ConfigurationError, get_settings
from algotrendy.messaging import InMemoryQueue, Queue
from algotrendy.messaging.sqs import SqsQueue
from algotrendy.webhooks import (
    IdempotencyStore,
    InMemoryIdempotency,
    JsonFileWebhookConfigStore,
    SsmParameterWebhookConfigStore,
    WebhookConfigStore,
    WebhookError,
    WebhookPolicy,
    WebhookResult,
    WebhookService,
)
from algotrendy.webhooks.dynamodb import DynamoDbIdempotency

logger = Logger()
# Only botocore is traced (its calls are the SQS/DynamoDB/SSM work); the default patches
# every library X-Ray supports that happens to be importable, which costs import time.
tracer = Tracer(patch_modules=["botocore"])


@cache
def service() -> WebhookService:
    """The service with its AWS adapters, built on first use and kept while the container
    is warm. Outside the local stage every resource must be configured: a webhook that
    silently queued into process memory would lose orders."""
    settings = get_settings()
    local = settings.stage == "local"

    store: WebhookConfigStore
    if settings.webhook_config_parameter:
        store = SsmParameterWebhookConfigStore(
            boto3.client("ssm"),
            settings.webhook_config_parameter,
            cache_seconds=settings.webhook_config_cache_seconds,
        )
    elif settings.webhook_config_file:
        store = JsonFileWebhookConfigStore(
            settings.webhook_config_file, cache_seconds=settings.webhook_config_cache_seconds
        )
    else:
        raise ConfigurationError(
            "ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER (or ALGOTRENDY_WEBHOOK_CONFIG_FILE) is not "
            "set: the webhook has no configs to authenticate alerts against"
        )

    queue: Queue
    if settings.orders_queue_url:
        queue = SqsQueue(boto3.client("sqs"), settings.orders_queue_url)
    elif local:
        queue = InMemoryQueue("orders.fifo")
    else:
        raise ConfigurationError(
            "ALGOTRENDY_ORDERS_QUEUE_URL is not set: the webhook has nowhere to queue intents"
        )

    idempotency: IdempotencyStore
    if settings.idempotency_table:
        idempotency = DynamoDbIdempotency(
            settings.idempotency_table,
            client=boto3.client("dynamodb"),
            expires_after_seconds=settings.webhook_idempotency_ttl_seconds,
        )
    elif local:
        idempotency = InMemoryIdempotency(
            expires_after_seconds=settings.webhook_idempotency_ttl_seconds
        )
    else:
        raise ConfigurationError(
            "ALGOTRENDY_IDEMPOTENCY_TABLE is not set: duplicates could not be recognised"
        )
    return WebhookService(store, queue, idempotency, WebhookPolicy.from_settings(settings))


def now() -> datetime:
    """The receipt time (a function so tests can fix the clock)."""
    return datetime.now(UTC)


def _body(event: dict[str, Any]) -> str:
    raw = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(raw)
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise WebhookError(
            400, "unreadable-alert", "alert body is not base64-encoded UTF-8 text"
        ) from None


def _source_ip(event: dict[str, Any]) -> str | None:
    ctx = event.get("requestContext") or {}
    ip = (ctx.get("identity") or {}).get("sourceIp") or (ctx.get("http") or {}).get("sourceIp")
    return str(ip) if ip else None


def _reply(result: WebhookResult) -> dict[str, Any]:
    return {
        "statusCode": result.status,
        "headers": result.reply_headers(),
        "body": result.reply_body(),
        "isBase64Encoded": False,
    }


def _log(result: WebhookResult) -> None:
    extra = result.log_fields()
    if result.status >= 500:
        logger.error("webhook alert not queued", extra=extra)
    elif result.status >= 400:
        logger.warning("webhook alert refused", extra=extra)
    else:
        logger.info("webhook alert accepted", extra=extra)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        svc = service()
        if isinstance(svc.idempotency, DynamoDbIdempotency):
            svc.idempotency.register_lambda_context(context)
        token = (event.get("pathParameters") or {}).get("webhook_id")
        result = svc.handle_alert(token, _body(event), _source_ip(event), now())
    except WebhookError as problem:
        result = WebhookResult.refused(problem)
    except (ConfigurationError, ValidationError) as exc:  # missing or invalid ALGOTRENDY_*
        result = WebhookResult.refused(
            WebhookError(
                500, "misconfigured", "webhook service is not configured", internal=str(exc)
            )
        )
    except Exception:  # the edge: log the traceback, answer a problem
        logger.exception("webhook failed")
        result = WebhookResult.refused(
            WebhookError(500, "unavailable", "internal error; resend", retry_after=5)
        )
    _log(result)
    return _reply(result)


# End of the cold start (see the top): keep what the imports built out of collections.
gc.freeze()
gc.enable()
