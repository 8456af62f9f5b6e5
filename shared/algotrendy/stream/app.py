"""The engine container's HTTP face: the live stream (WebSocket and SSE), a health check
and Prometheus metrics.

Clients authenticate with a JWT access token (`algotrendy.auth`). Browsers cannot set
headers on a WebSocket, so the token may come as the `token` query parameter; SSE clients
may use `Authorization: Bearer`. A bad token closes the socket with code 4401 (the 4xxx
range is application-defined, RFC 6455 §7.4.2) or answers 401.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from algotrendy.auth import TokenError, verify_token
from algotrendy.stream.hub import StreamHub, Subscription

WS_UNAUTHORIZED = 4401
WS_BAD_REQUEST = 4400
WS_TOO_SLOW = 4408


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def create_stream_app(
    hub: StreamHub,
    *,
    secret: str,
    health: Callable[[], dict[str, Any]] | None = None,
    background: Callable[[StreamHub], Any] | None = None,
) -> FastAPI:
    """`background(hub)` may return a coroutine (e.g. the Redis bridge) run for the app's life."""
    registry = CollectorRegistry()
    clients = Gauge("algotrendy_stream_clients", "connected stream clients", registry=registry)
    sent = Counter("algotrendy_stream_events_sent", "events sent to clients", registry=registry)
    dropped = Counter("algotrendy_stream_clients_dropped", "slow clients dropped",
                      registry=registry)  # fmt: skip
    published = Gauge("algotrendy_stream_events_published", "events published to the hub",
                      registry=registry)  # fmt: skip

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        task = None
        if background is not None:
            task = asyncio.create_task(background(hub))
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(title="AlgoTrendy engine", lifespan=lifespan)
    app.state.registry = registry

    def authorise(token: str | None) -> None:
        verify_token(token, secret=secret)

    @app.get("/health")
    def get_health() -> JSONResponse:
        body: dict[str, Any] = {"status": "ok", "stream_clients": hub.subscribers}
        if health is not None:
            body.update(health())
        code = 200 if body.get("status") == "ok" else 503
        return JSONResponse(body, status_code=code)

    @app.get("/metrics")
    def get_metrics() -> PlainTextResponse:
        published.set(hub.published)
        clients.set(hub.subscribers)
        return PlainTextResponse(generate_latest(registry).decode(),
                                 media_type="text/plain; version=0.0.4")  # fmt: skip

    @app.websocket("/stream")
    async def stream_ws(
        websocket: WebSocket,
        topics: str = Query("orders,positions,alerts"),
        symbols: str | None = Query(None),
        token: str | None = Query(None),
    ) -> None:
        try:
            authorise(token)
        except TokenError as exc:
            await websocket.close(code=WS_UNAUTHORIZED, reason=str(exc))
            return
        try:
            sub = hub.subscribe(_split(topics), _split(symbols) or None)
        except ValueError as exc:
            await websocket.close(code=WS_BAD_REQUEST, reason=str(exc))
            return
        await websocket.accept()
        clients.inc()
        try:
            while (msg := await sub.next()) is not None:
                await websocket.send_text(json.dumps(msg, default=str))
                sent.inc()
            dropped.inc()
            await websocket.close(code=WS_TOO_SLOW, reason=sub.reason or "closed")
        except WebSocketDisconnect:
            pass  # the client left: nothing to clean but the subscription (finally)
        finally:
            hub.unsubscribe(sub)
            clients.dec()

    @app.get("/sse")
    async def stream_sse(
        request: Request,
        topics: str = Query("orders,positions,alerts"),
        symbols: str | None = Query(None),
        token: str | None = Query(None),
        authorization: str | None = Header(None),
        limit: int | None = Query(None, ge=1, description="close after this many events"),
    ) -> Any:
        bearer = authorization.removeprefix("Bearer ").strip() if authorization else None
        try:
            authorise(bearer or token)
        except TokenError as exc:
            return JSONResponse(
                {"type": "about:blank", "title": "Unauthorized", "status": 401,
                 "detail": str(exc)},
                status_code=401, media_type="application/problem+json",
            )  # fmt: skip
        try:
            sub = hub.subscribe(_split(topics), _split(symbols) or None)
        except ValueError as exc:
            return JSONResponse(
                {"type": "about:blank", "title": "Bad Request", "status": 400,
                 "detail": str(exc)},
                status_code=400, media_type="application/problem+json",
            )  # fmt: skip

        async def events(s: Subscription) -> AsyncIterator[str]:
            n = 0
            try:
                yield ": connected\n\n"
                while (msg := await s.next()) is not None:
                    yield f"event: {msg['topic']}\ndata: {json.dumps(msg['data'], default=str)}\n\n"
                    sent.inc()
                    n += 1
                    if limit is not None and n >= limit:
                        return
            finally:
                hub.unsubscribe(s)

        return StreamingResponse(events(sub), media_type="text/event-stream")

    return app
