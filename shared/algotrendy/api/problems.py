"""Every error as RFC 9457 problem details (`application/problem+json`).

Members: `type` (a tag URI, RFC 4151, naming the problem kind without promising a page,
which RFC 9457 section 3.1.1 allows), `title` (fixed per kind), `status`, `detail` (this
occurrence, naming the field or value at fault), `instance` (the request path) and
`request_id`. Validation problems add `errors`: one entry per field, with `detail`,
`pointer` (a JSON Pointer into the body, as in RFC 9457's own example) or `parameter`
(query/path/header name), and `location`. 5xx problems never carry internals; the log
line with the same request id does.
"""

from __future__ import annotations

import codecs
import email.message
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from algotrendy.auth.tokens import TokenError
from algotrendy.errors import DataError, ParameterError, UnknownStrategyError

PROBLEM_CONTENT_TYPE = "application/problem+json"
JSON = "application/json"
TYPE_PREFIX = "tag:algotrendy,2025:api/"

TITLES: dict[str, str] = {
    "bad-request": "Bad request",
    "validation": "Request validation failed",
    "unauthorized": "Authentication required",
    "forbidden": "Not allowed for this role",
    "not-found": "Resource not found",
    "method-not-allowed": "Method not allowed",
    "conflict": "Conflict with the current state",
    "unsupported-media-type": "Unsupported media type",
    "rate-limited": "Too many requests",
    "refresh-reuse": "Refresh token reuse detected",
    "unavailable": "Service unavailable",
    "internal": "Internal server error",
}

_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
    503: "unavailable",
}


class Problem(Exception):  # noqa: N818 - reads as what it answers with
    """Raise anywhere in a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if kind not in TITLES:
            raise ValueError(f"unknown problem kind {kind!r}")
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def field_error(field: str, detail: str, *, location: str = "body") -> dict[str, str]:
    """One `errors` entry; body fields get a JSON Pointer, others the parameter name."""
    entry = {"location": location, "field": field, "detail": detail}
    if location == "body":
        entry["pointer"] = "#/" + "/".join(
            p.replace("~", "~0").replace("/", "~1") for p in field.split(".") if p
        )
    else:
        entry["parameter"] = field
    return entry


def body_error(detail: str) -> dict[str, str]:
    """An `errors` entry for the body as a whole (not UTF-8, not JSON, missing, not an
    object): its pointer is the document itself."""
    return {**field_error("body", detail), "pointer": "#"}


def invalid(field: str, detail: str, *, location: str = "body") -> Problem:
    """A 422 for one field."""
    return Problem(
        422,
        "validation",
        f"{field}: {detail}",
        errors=[field_error(field, detail, location=location)],
    )


def unsupported_media_type(request: Request, detail: str) -> Problem:
    """A 415 saying what is accepted instead (RFC 9110 section 15.5.16, RFC 5789)."""
    header = "Accept-Post" if request.method == "POST" else "Accept-Patch"
    return Problem(415, "unsupported-media-type", detail, headers={header: JSON})


def unsupported_charset(request: Request) -> Problem | None:
    """A 415 when the body declares a charset other than UTF-8: RFC 8259 section 8.1
    requires UTF-8 for JSON exchanged between systems, and the parser reads UTF-8 only,
    so another charset is refused by name whatever bytes the body happens to hold."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        return None
    message = email.message.Message()
    message["content-type"] = content_type
    charset = message.get_content_charset()
    if charset is None:
        return None
    try:
        name = codecs.lookup(charset).name  # "utf-8" for its aliases too: UTF8, utf_8
    except LookupError:
        name = charset  # an unknown charset is no more UTF-8 than a known other one
    if name == "utf-8":
        return None
    return unsupported_media_type(
        request, f"charset {charset!r} is not accepted; JSON bodies must be UTF-8 (RFC 8259)"
    )


def _not_utf8(exc: UnicodeDecodeError) -> Problem:
    """A 400 naming where the body stops being UTF-8 text (the status FastAPI gave it;
    the problem document says why), pointing at the body as malformed JSON is."""
    bad = exc.object[exc.start : exc.start + 1].hex()
    detail = f"not valid UTF-8: {exc.reason} (byte 0x{bad}) at byte {exc.start}"
    return Problem(400, "bad-request", f"body: {detail}", errors=[body_error(detail)])


def problem_response(request: Request | None, problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + problem.kind,
        "title": TITLES[problem.kind],
        "status": problem.status,
        "detail": problem.detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        rid = getattr(request.state, "request_id", None)
        if rid:
            body["request_id"] = rid
    if problem.errors is not None:
        body["errors"] = problem.errors
    body.update(problem.extra)
    headers = dict(problem.headers)
    if "request_id" in body:
        # Set here too: a 500 is answered outside the middleware that sets it otherwise.
        headers["X-Request-Id"] = body["request_id"]
    return JSONResponse(
        body, status_code=problem.status, headers=headers, media_type=PROBLEM_CONTENT_TYPE
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            # FastAPI's loc is ("body", character offset): the offset is no field, so the
            # whole body is at fault and the position goes into the detail.
            loc_ = err.get("loc", ())
            where = f" at character {loc_[1]}" if len(loc_) > 1 else ""
            reason = (err.get("ctx") or {}).get("error", "JSON decode error")
            out.append(body_error(f"not valid JSON: {reason}{where}"))
            continue
        loc = [str(p) for p in err.get("loc", ())]
        location = loc[0] if loc else "body"
        path = loc[1:] if loc else []
        # A body given as a model: pydantic's loc may end with the validator context.
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "missing":
            msg = "required"
        if location == "body" and not path:  # the body as a whole
            out.append(body_error(msg))
        else:
            out.append(field_error(".".join(path) or location, msg, location=location))
    return out


async def validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    detail = "; ".join(f"{e['field']}: {e['detail']}" for e in errors[:5])
    return problem_response(request, Problem(422, "validation", detail, errors=errors))


async def problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


async def http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        # FastAPI's plain 400 "There was an error parsing the body" for a body the JSON
        # parser could not decode: name the declared charset, else the first bad byte.
        return problem_response(request, unsupported_charset(request) or _not_utf8(cause))
    kind = _BY_STATUS.get(exc.status_code, "internal" if exc.status_code >= 500 else "bad-request")
    detail = exc.detail if isinstance(exc.detail, str) else TITLES[kind]
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    problem = Problem(exc.status_code, kind, detail, headers=exc.headers)
    return problem_response(request, problem)


async def domain_handler(request: Request, exc: Exception) -> JSONResponse:
    """Library errors carry messages meant for the caller (algotrendy.errors)."""
    if isinstance(exc, TokenError):
        problem = Problem(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
    elif isinstance(exc, ParameterError | DataError | UnknownStrategyError):
        problem = Problem(422, "validation", str(exc))
    else:
        problem = Problem(400, "bad-request", str(exc))
    return problem_response(request, problem)


async def unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    from algotrendy.api.observability import logger

    logger.exception(
        "unhandled error",
        extra={"request_id": getattr(request.state, "request_id", None), "path": request.url.path},
    )
    rid = getattr(request.state, "request_id", None)
    detail = "internal error" + (f"; quote request id {rid}" if rid else "")
    return problem_response(request, Problem(500, "internal", detail))
