"""TradingView webhook: alerts in, order intents on orders.fifo out, exactly once.

`parse_alert` reads every supported alert format; `WebhookConfig` says how one strategy's
alerts become orders; `WebhookService.handle_alert` authenticates, maps and enqueues under
an idempotency key derived from the alert. The Lambda handler (functions/webhook) is a thin
adapter; the DynamoDB idempotency adapter lives in `algotrendy.webhooks.dynamodb` so this
package imports no AWS SDK.
"""

from algotrendy.webhooks.alerts import Alert, AlertFormat, Command, parse_alert
from algotrendy.webhooks.auth import (
    PassphraseVerifier,
    generate_webhook_token,
    hash_passphrase,
    hash_webhook_token,
    verify_passphrase,
)
from algotrendy.webhooks.config import WebhookConfig
from algotrendy.webhooks.idempotency import (
    DuplicateInFlightError,
    IdempotencyStore,
    IdempotencyUnavailableError,
    InMemoryIdempotency,
)
from algotrendy.webhooks.mapping import build_intent, derive_intent_id
from algotrendy.webhooks.problems import PROBLEM_CONTENT_TYPE, WebhookError
from algotrendy.webhooks.service import WebhookPolicy, WebhookResult, WebhookService
from algotrendy.webhooks.store import (
    InMemoryWebhookConfigStore,
    JsonFileWebhookConfigStore,
    SsmParameterWebhookConfigStore,
    WebhookConfigDocument,
    WebhookConfigStore,
    WebhookStoreUnavailableError,
    load_webhook_configs,
)

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "Alert",
    "AlertFormat",
    "Command",
    "DuplicateInFlightError",
    "IdempotencyStore",
    "IdempotencyUnavailableError",
    "InMemoryIdempotency",
    "InMemoryWebhookConfigStore",
    "JsonFileWebhookConfigStore",
    "PassphraseVerifier",
    "SsmParameterWebhookConfigStore",
    "WebhookConfig",
    "WebhookConfigDocument",
    "WebhookConfigStore",
    "WebhookError",
    "WebhookPolicy",
    "WebhookResult",
    "WebhookService",
    "WebhookStoreUnavailableError",
    "build_intent",
    "derive_intent_id",
    "generate_webhook_token",
    "hash_passphrase",
    "hash_webhook_token",
    "load_webhook_configs",
    "parse_alert",
    "verify_passphrase",
]
