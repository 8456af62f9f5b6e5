"""The FastAPI app, one for Lambda (functions/api/app.py wraps it with Mangum) and for the
local server.

Per request, the middleware: takes the request id from `X-Request-Id` (when it is a sane
token), else from API Gateway's `requestContext.requestId`, else makes one; puts it on the
log lines (Powertools correlation id), in problem bodies and in the `X-Request-Id` reply
header; and writes an audit row for every state-changing call (POST/PUT/PATCH/DELETE)
whatever its outcome, naming the actor, the action, the target, the status and the
client address. Routes refine the action/target/detail through `request.state`.
"""

from __future__ import annotations

import email.message
import re
import threading
import time
import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from algotrendy.api import problems
from algotrendy.api.context import ApiContext, build_context
from algotrendy.api.deps import client_ip
from algotrendy.api.observability import logger
from algotrendy.api.routes import admin, auth, backtests, health, market, orders, portfolio
from algotrendy.api.routes import strategies as strategy_routes
from algotrendy.api.routes import users as user_routes
from algotrendy.api.schemas import INT32_MAX, INT32_MIN
from algotrendy.aws_clients import ClientFactory, boto3_client
from algotrendy.config import Settings, get_settings
from algotrendy.errors import AlgoTrendyError

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_NUL = "must not contain a NUL character (\\u0000)"

DESCRIPTION = """AlgoTrendy REST API. Sign in at `POST /auth/login`, then send
`Authorization: Bearer <access token>`. Errors are `application/problem+json` (RFC 9457)."""


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    event = request.scope.get("aws.event") or {}
    aws_id = (event.get("requestContext") or {}).get("requestId")
    if aws_id and _REQUEST_ID.fullmatch(str(aws_id)):
        return str(aws_id)
    return uuid.uuid4().hex


def _is_int_param(annotation: Any) -> bool:
    if annotation is int:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_int_param(a) for a in typing.get_args(annotation))
    return False


def _params(dependant: Dependant) -> Iterator[tuple[str, str, Any]]:
    """(location, name, annotation) of every path and query parameter of a route,
    including those its dependencies declare."""
    for location, fields in (("path", dependant.path_params), ("query", dependant.query_params)):
        for f in fields:
            yield location, f.alias, f.field_info.annotation
    for sub in dependant.dependencies:
        yield from _params(sub)


def _nul_at(value: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where in parsed JSON the first string (key or value) holding a NUL is, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return (*path, k)
            items.append((k, v))
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    for key, item in items:
        found = _nul_at(item, (*path, key))
        if found is not None:
            return found
    return None


def _is_json(content_type: str) -> bool:
    """Whether FastAPI would parse a body of this type as JSON (its own rule)."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def check_request(request: Request) -> None:
    """Input rules every route shares, run before the route's own validation (an app-wide
    dependency, so the route and its parameters are known): no NUL character in any
    string (PostgreSQL text cannot hold one, so it failed as a 500 deep in a query), no
    integer parameter beyond the id columns' range (`schemas.INT32_MAX`), and a JSON body
    where a route takes one (else 415, rather than a 422 saying the body is no object)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise problems.invalid(name, _NUL, location="path")
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise problems.invalid(name.replace("\x00", "\\u0000"), _NUL, location="query")
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if isinstance(dependant, Dependant):
        for location, name, annotation in _params(dependant):
            if not _is_int_param(annotation):
                continue
            if location == "path":
                raws = [str(request.path_params.get(name, ""))]
            else:
                raws = request.query_params.getlist(name)
            for raw in raws:
                if _INTEGER.match(raw) and not INT32_MIN <= int(raw) <= INT32_MAX:
                    raise problems.invalid(
                        name,
                        f"{raw.strip()} is outside {INT32_MIN} .. {INT32_MAX}",
                        location=location,
                    )
    if getattr(route, "body_field", None) is None or not await request.body():
        return
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise problems.unsupported_media_type(
            request, f"content type {content_type!r} is not accepted here; send {problems.JSON}"
        )
    # An ASCII-only body parses whatever charset it declares; refuse a non-UTF-8 one here
    # too, so the answer does not depend on which characters the body happens to hold.
    wrong_charset = problems.unsupported_charset(request)
    if wrong_charset is not None:
        raise wrong_charset
    found = _nul_at(await request.json(), ())  # parsed (and cached) by FastAPI already
    if found is not None:
        raise problems.invalid(".".join(found) or "body", _NUL)


def _action(request: Request) -> str:
    named = getattr(request.state, "audit_action", None)
    if named:
        return str(named)
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return f"{request.method} {path}"[:64]


def create_app(
    context: ApiContext | Callable[[], ApiContext] | None = None,
    *,
    settings: Settings | None = None,
    aws_client: ClientFactory | None = None,
) -> FastAPI:
    """The app. `context` is the composition root, or a factory called on first use (so
    importing the Lambda module touches no database); by default built from settings,
    with AWS clients from `aws_client` (`boto3.client` by default) built on first use."""
    cfg = settings or (context.settings if isinstance(context, ApiContext) else get_settings())
    app = FastAPI(
        title="AlgoTrendy API",
        version="1.0",
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
        dependencies=[Depends(check_request)],
    )

    lock = threading.Lock()
    built: list[ApiContext] = [context] if isinstance(context, ApiContext) else []
    factory = context if callable(context) and not isinstance(context, ApiContext) else None

    def get_context() -> ApiContext:
        if built:
            return built[0]
        with lock:
            if not built:
                built.append(
                    factory()
                    if factory is not None
                    else build_context(cfg, aws_client=aws_client or boto3_client)
                )
            return built[0]

    app.state.context = get_context

    if cfg.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cfg.api_cors_origins),
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            expose_headers=[
                "X-Request-Id",
                "Location",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
            max_age=600,
        )

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = _request_id(request)
        request.state.request_id = rid
        logger.set_correlation_id(rid)
        started = time.perf_counter()
        response = await call_next(request)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        response.headers["X-Request-Id"] = rid
        decision = getattr(request.state, "ratelimit", None)
        if decision is not None:
            for key, value in decision.headers().items():
                response.headers.setdefault(key, value)
        if request.method in _MUTATING:
            await run_in_threadpool(_audit, request, response.status_code)
        logger.info(
            "request",
            extra={
                "request_id": rid,
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "duration_ms": elapsed_ms,
                "actor": getattr(request.state, "actor", None),
            },
        )
        return response

    def _audit(request: Request, status: int) -> None:
        detail: dict[str, Any] = {
            "status": status,
            "request_id": request.state.request_id,
            "method": request.method,
            "path": request.url.path,
        }
        detail.update(getattr(request.state, "audit_detail", None) or {})
        try:
            get_context().audit.write(
                actor=str(getattr(request.state, "actor", None) or "anonymous")[:128],
                action=_action(request),
                target=(getattr(request.state, "audit_target", None) or request.url.path)[:256],
                detail=detail,
                ip=client_ip(request),
            )
        except Exception:  # noqa: BLE001 - the reply is decided; an audit gap is logged loudly
            logger.exception("audit write failed", extra={"request_id": request.state.request_id})

    app.add_exception_handler(problems.Problem, problems.problem_handler)
    app.add_exception_handler(RequestValidationError, problems.validation_handler)
    app.add_exception_handler(StarletteHTTPException, problems.http_handler)
    app.add_exception_handler(AlgoTrendyError, problems.domain_handler)
    app.add_exception_handler(Exception, problems.unhandled_handler)

    for module in (
        health,
        auth,
        user_routes,
        orders,
        portfolio,
        strategy_routes,
        backtests,
        market,
        admin,
    ):
        app.include_router(module.router)
    return app
