"""Why an alert was refused, as RFC 9457 problem details (`application/problem+json`).

Every refusal is a `WebhookError` carrying its HTTP status, a stable problem type, and a
one-line detail that names the field or setting at fault, so the alert's author can fix the
TradingView message without reading our logs. 4xx problems are final: TradingView does not
resend them. The 5xx ones (store or queue unavailable) ask for a resend: TradingView resends
a webhook answered with 500-599 except 504, after 5 s, up to three times (TradingView help,
"Webhook resubmission").
"""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
# A tag URI (RFC 4151) names each problem type without promising a page behind it, which
# RFC 9457 section 3.1.1 allows; consumers must not dereference `type` automatically anyway.
_TYPE_PREFIX = "tag:algotrendy,2025:webhook/"

_TITLES = {
    "unknown-webhook": "Unknown or revoked webhook",
    "forbidden-source": "Source address not allowed",
    "bad-passphrase": "Wrong or missing passphrase",
    "payload-too-large": "Alert body too large",
    "unreadable-alert": "Alert body not understood",
    "invalid-alert": "Alert cannot become an order",
    "stale-alert": "Alert outside the replay window",
    "duplicate-in-flight": "Same alert still being processed",
    "unavailable": "Order pipeline temporarily unavailable",
    "misconfigured": "Webhook service misconfigured",
}


class WebhookError(Exception):
    """A refused alert: `status`, `kind` (the problem type's slug), the `detail` shown to the
    caller, optionally the `field` of the alert at fault, and `internal`, what only the
    operator's logs may see (names of parameters, tables, exception text)."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        internal: str | None = None,
    ) -> None:
        if kind not in _TITLES:
            raise ValueError(f"unknown webhook problem kind {kind!r}")
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.field = field
        self.retry_after = retry_after
        self.internal = internal  # for the operator's logs only, never in the reply

    @property
    def title(self) -> str:
        return _TITLES[self.kind]

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": _TYPE_PREFIX + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            out["field"] = self.field
        return out

    def __repr__(self) -> str:
        return f"WebhookError({self.status}, {self.kind!r}, {self.detail!r})"


def unreadable(detail: str, *, field: str | None = None) -> WebhookError:
    """400: the body is not an alert in any supported format."""
    return WebhookError(400, "unreadable-alert", detail, field=field)


def invalid(detail: str, *, field: str | None = None) -> WebhookError:
    """422: a readable alert that cannot be turned into an order (missing or bad field)."""
    return WebhookError(422, "invalid-alert", detail, field=field)
