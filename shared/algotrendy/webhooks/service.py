"""`WebhookService.handle_alert`: one TradingView delivery in, one reply out, at most one
order intent on the queue per distinct alert.

Order of checks (each refusal is final and nothing is enqueued):

1. token -> config (404 for unknown, malformed, revoked or disabled: which of them is not
   revealed);
2. source address against the webhook's allow-list (403);
3. body -> `Alert` (400 unreadable, 413 too large, 422 unusable);
4. passphrase, when the webhook has one (401);
5. replay window on `{{timenow}}` (422 stale/future), or 422 if the webhook requires it;
6. alert -> `OrderIntent` through the config (422 naming the field);
7. `run_once(intent id)` -> `send_intent` to orders.fifo (FIFO de-duplication id = intent
   id as a second guard). Store/queue failures are 503 so TradingView resends; the
   resend finds either the stored reply or no record, never a half-done one.

A duplicate delivery gets the first delivery's reply (200), not an error: from
TradingView's side the alert was delivered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from algotrendy.config import TRADINGVIEW_WEBHOOK_IPS, ConfigurationError, Settings
from algotrendy.domain.orders import OrderIntent
from algotrendy.messaging import Queue, send_intent
from algotrendy.webhooks.alerts import Alert, parse_alert
from algotrendy.webhooks.auth import (
    PassphraseVerifier,
    check_replay,
    hash_webhook_token,
    looks_like_token,
    parse_networks,
    source_allowed,
)
from algotrendy.webhooks.config import WebhookConfig
from algotrendy.webhooks.idempotency import (
    DuplicateInFlightError,
    IdempotencyStore,
    IdempotencyUnavailableError,
    Reply,
)
from algotrendy.webhooks.mapping import build_intent
from algotrendy.webhooks.problems import PROBLEM_CONTENT_TYPE, WebhookError
from algotrendy.webhooks.store import WebhookConfigStore, WebhookStoreUnavailableError

RETRY_AFTER_SECONDS = 5  # TradingView's own resend delay


@dataclass(frozen=True)
class WebhookPolicy:
    """Service-wide defaults; a webhook's config may override the allow-list."""

    allowed_ips: tuple[str, ...] = TRADINGVIEW_WEBHOOK_IPS
    replay_window_seconds: int = 120
    max_clock_skew_seconds: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookPolicy:
        return cls(
            allowed_ips=tuple(settings.tradingview_allowed_ips),
            replay_window_seconds=settings.webhook_replay_window_seconds,
            max_clock_skew_seconds=settings.webhook_max_clock_skew_seconds,
        )


@dataclass(frozen=True)
class WebhookResult:
    """The HTTP reply, plus what the caller logs (never the token or the body)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    webhook: str | None = None
    intent_id: str | None = None
    problem: WebhookError | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400

    def reply_body(self) -> str:
        """The body as sent. Keys sorted: a duplicate's reply comes back from the
        idempotency table with its keys in another order; sorted, every reply to the same
        alert is byte-identical (Lambda and local serve alike)."""
        return json.dumps(self.body, separators=(",", ":"), sort_keys=True)

    def reply_headers(self) -> dict[str, str]:
        return {**self.headers, "Cache-Control": "no-store"}

    def log_fields(self) -> dict[str, Any]:
        """What the caller logs of the alert's fate: never the token or the body."""
        fields: dict[str, Any] = {"status": self.status, "webhook": self.webhook}
        if self.intent_id:
            fields["intent_id"] = self.intent_id
        if self.problem is not None:
            fields["problem"] = self.problem.kind
            fields["detail"] = self.problem.detail
            if self.problem.internal:
                fields["cause"] = self.problem.internal
        return fields

    @classmethod
    def refused(cls, problem: WebhookError, webhook: str | None = None) -> WebhookResult:
        headers = {"Content-Type": PROBLEM_CONTENT_TYPE}
        if problem.retry_after is not None:
            headers["Retry-After"] = str(problem.retry_after)
        if problem.status == 401:
            # RFC 9110 15.5.2: a 401 carries a challenge; this one names the body field.
            headers["WWW-Authenticate"] = 'Passphrase realm="tradingview-webhook"'
        return cls(problem.status, problem.body(), headers, webhook, None, problem)


class WebhookService:
    def __init__(
        self,
        store: WebhookConfigStore,
        queue: Queue,
        idempotency: IdempotencyStore,
        policy: WebhookPolicy | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.idempotency = idempotency
        self.policy = policy or WebhookPolicy()
        self._passphrases = PassphraseVerifier()

    def handle_alert(
        self, webhook_id: str | None, body: str, source_ip: str | None, now: datetime
    ) -> WebhookResult:
        config: WebhookConfig | None = None
        try:
            config = self._config(webhook_id)
            self._check_source(config, source_ip)
            alert = parse_alert(body)
            self._check_passphrase(config, alert)
            self._check_time(config, alert, now)
            intent = build_intent(alert, config, now=now)
            reply = self._enqueue_once(intent)
        except WebhookError as problem:
            return WebhookResult.refused(problem, config.name if config else None)
        return WebhookResult(
            200,
            reply,
            {"Content-Type": "application/json"},
            config.name,
            intent.intent_id,
        )

    # -- checks ------------------------------------------------------------------------
    def _config(self, webhook_id: str | None) -> WebhookConfig:
        unknown = WebhookError(
            404,
            "unknown-webhook",
            "no active webhook at this URL: the token is unknown or was revoked",
        )
        if not looks_like_token(webhook_id):
            raise unknown
        assert webhook_id is not None
        try:
            config = self.store.get(hash_webhook_token(webhook_id))
        except WebhookStoreUnavailableError as exc:
            raise WebhookError(
                503, "unavailable", "webhook configs cannot be read right now; resend",
                retry_after=RETRY_AFTER_SECONDS, internal=str(exc),
            ) from exc  # fmt: skip
        except ConfigurationError as exc:
            raise WebhookError(
                500, "misconfigured", "webhook configs cannot be loaded", internal=str(exc)
            ) from exc
        if config is None or not config.enabled:
            raise unknown
        return config

    def _check_source(self, config: WebhookConfig, source_ip: str | None) -> None:
        allowed = config.allowed_ips if config.allowed_ips is not None else self.policy.allowed_ips
        if not source_allowed(source_ip, parse_networks(tuple(allowed))):
            raise WebhookError(
                403,
                "forbidden-source",
                f"source address {source_ip or 'unknown'} is not allowed to post to this "
                "webhook (TradingView sends from its published addresses only)",
            )

    def _check_passphrase(self, config: WebhookConfig, alert: Alert) -> None:
        if config.passphrase_hash is None:
            return
        if alert.passphrase is None:
            raise WebhookError(
                401, "bad-passphrase", "this webhook requires a passphrase field in the alert",
                field="passphrase",
            )  # fmt: skip
        if not self._passphrases.verify(alert.passphrase, config.passphrase_hash):
            raise WebhookError(
                401, "bad-passphrase", "the alert's passphrase does not match this webhook's",
                field="passphrase",
            )  # fmt: skip

    def _check_time(self, config: WebhookConfig, alert: Alert, now: datetime) -> None:
        name = config.timenow_field or "timenow"
        sent_at = alert.timestamp(name) if config.timenow_field else alert.timenow
        if sent_at is None:
            if config.require_timenow:
                raise WebhookError(
                    422,
                    "invalid-alert",
                    f"this webhook requires {{{{timenow}}}} in the alert (field {name!r})",
                    field=name,
                )
            return
        check_replay(
            sent_at,
            now,
            window_seconds=self.policy.replay_window_seconds,
            max_skew_seconds=self.policy.max_clock_skew_seconds,
            field=name,
        )

    # -- effect --------------------------------------------------------------------------
    def _enqueue_once(self, intent: OrderIntent) -> Reply:
        def publish() -> Reply:
            message_id = send_intent(self.queue, intent)
            return {
                "status": "accepted",
                "intent_id": intent.intent_id,
                "client_order_id": intent.client_order_id,
                "message_id": message_id,
                "account": intent.account,
                "symbol": intent.symbol,
                "side": intent.side.value,
                "quantity": intent.quantity,
                "order_type": intent.order_type.value,
            }

        try:
            return self.idempotency.run_once(intent.intent_id, publish)
        except DuplicateInFlightError as exc:
            raise WebhookError(
                503,
                "duplicate-in-flight",
                f"the same alert (intent {intent.intent_id}) is still being queued by another "
                "delivery; resend to get its outcome",
                retry_after=RETRY_AFTER_SECONDS,
            ) from exc
        except IdempotencyUnavailableError as exc:
            raise WebhookError(
                503, "unavailable", "idempotency store unavailable; resend",
                retry_after=RETRY_AFTER_SECONDS, internal=str(exc),
            ) from exc  # fmt: skip
        except Exception as exc:
            # The queue adapters raise their transport's errors (botocore, QueueError); the
            # idempotency record was dropped, so a resend is safe and the right remedy.
            raise WebhookError(
                503, "unavailable", "could not queue the order intent; resend",
                retry_after=RETRY_AFTER_SECONDS, internal=f"{type(exc).__name__}: {exc}",
            ) from exc  # fmt: skip
