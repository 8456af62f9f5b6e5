"""HTTP GET for the vendors reached without an SDK (Alpha Vantage, FRED, news feeds).

Status handling follows RFC 9110: 408, 429 and 5xx may succeed if repeated later
(transient); any other 4xx is the client's fault and is never retried. Messages name the
host and path but never the query string, which carries API keys.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import requests

from algotrendy.data.channels.retry import RetryPolicy, Verdict, call_with_retry, one_line
from algotrendy.errors import DataError, ParameterError, SourceUnavailableError

TIMEOUT_SECONDS = 30.0
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpStatusError(Exception):
    def __init__(self, status: int, reason: str, where: str, body: str) -> None:
        super().__init__(f"HTTP {status} {reason} from {where}")
        self.status = status
        self.body = body


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def classify_http_error(exc: BaseException) -> Verdict | None:
    if isinstance(exc, HttpStatusError):
        return Verdict.TRANSIENT if exc.status in _TRANSIENT_STATUS else Verdict.PERMANENT
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return Verdict.TRANSIENT
    if isinstance(exc, requests.RequestException):
        return Verdict.PERMANENT
    return None


def _get(session: requests.Session, url: str, params: dict[str, Any]) -> requests.Response:
    response = session.get(url, params=params, timeout=TIMEOUT_SECONDS)
    if response.status_code >= 400:
        raise HttpStatusError(
            response.status_code, response.reason or "", _where(url), response.text[:500]
        )
    return response


def _translate(source: str, what: str) -> Any:
    def translate(exc: BaseException) -> Exception:
        if isinstance(exc, HttpStatusError) and exc.status in (400, 404, 422):
            return ParameterError(f"{source}: {what} rejected ({exc}: {exc.body[:200]})")
        return SourceUnavailableError(f"{source}: {what} refused ({one_line(exc)})")

    return translate


def get_text(
    session: requests.Session,
    source: str,
    what: str,
    url: str,
    params: dict[str, Any],
    *,
    policy: RetryPolicy,
) -> str:
    response: requests.Response = call_with_retry(
        source,
        what,
        lambda: _get(session, url, params),
        classify=classify_http_error,
        policy=policy,
        translate=_translate(source, what),
    )
    return response.text


def get_json(
    session: requests.Session,
    source: str,
    what: str,
    url: str,
    params: dict[str, Any],
    *,
    policy: RetryPolicy,
) -> Any:
    text = get_text(session, source, what, url, params, policy=policy)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DataError(
            f"{source}: {what}: reply from {_where(url)} is not JSON ({text[:80]!r})"
        ) from exc
