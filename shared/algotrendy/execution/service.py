"""Composition root of the engine container (`algotrendy engine`): wires settings into the
engine, its queue, broker, stores and the live-stream app, and runs them until SIGTERM.

Shutdown is graceful: uvicorn turns SIGTERM into the app's lifespan shutdown, which stops
the consumer loop after the message in hand (its effect is durable before the loop looks
at the stop flag) and waits for the thread; undeleted messages simply come back.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from algotrendy.config import ConfigurationError, Settings
from algotrendy.execution.brokers.base import Broker
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.ports import EventPublisher, PriceSource, StaticPrices
from algotrendy.execution.risk import RiskConfig, RiskLimits, RiskManager
from algotrendy.messaging.base import Queue
from algotrendy.messaging.memory import InMemoryQueue
from algotrendy.storage.relational import create_db_engine, upgrade_database
from algotrendy.storage.relational.repositories import SqlExecutionRepository
from algotrendy.stream.hub import HubPublisher, StreamHub

log = logging.getLogger(__name__)


class KillSwitch(BaseModel):
    """Body of POST /kill-switch (module level so FastAPI can resolve the annotation)."""

    on: bool


class RedisPrices:
    """Latest prices cached in Redis by ingestion (hash `algotrendy:prices`)."""

    def __init__(self, client: Any, key: str = "algotrendy:prices") -> None:
        self.client = client
        self.key = key

    def last_price(self, symbol: str) -> float | None:
        raw = self.client.hget(self.key, symbol)
        return float(raw) if raw is not None else None


@dataclass
class EngineRuntime:
    engine: ExecutionEngine
    queue: Queue
    hub: StreamHub
    settings: Settings


def _risk(settings: Settings) -> RiskManager:
    try:
        limits = RiskLimits.model_validate(json.loads(settings.risk_limits))
    except ValueError as exc:
        raise ConfigurationError(f"ALGOTRENDY_RISK_LIMITS is not valid: {exc}") from exc
    return RiskManager(RiskConfig(account=limits))


def _queue(settings: Settings) -> Queue:
    if settings.orders_queue_url:
        import boto3

        from algotrendy.messaging.sqs import SqsQueue

        return SqsQueue(boto3.client("sqs"), settings.orders_queue_url)
    return InMemoryQueue("orders.fifo")


def _broker(settings: Settings, prices: PriceSource) -> Broker:
    if settings.broker == "paper":
        state = Path(settings.data_dir) / "paper_broker.db"
        state.parent.mkdir(parents=True, exist_ok=True)
        return PaperBroker(prices, fee=settings.paper_fee, slippage=settings.paper_slippage,
                           state_path=state)  # fmt: skip
    raise ConfigurationError(
        f"broker {settings.broker!r} needs its adapter settings (see README: brokers); "
        "only 'paper' runs without credentials"
    )


def build_runtime(
    settings: Settings,
    *,
    queue: Queue | None = None,
    prices: PriceSource | None = None,
    broker: Broker | None = None,
) -> EngineRuntime:
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    db = create_db_engine(settings.database_url)
    upgrade_database(db)
    hub = StreamHub()
    publisher: EventPublisher = HubPublisher(hub)
    if settings.redis_url:
        import redis

        from algotrendy.stream.redis_bridge import RedisPublisher

        client = redis.Redis.from_url(settings.redis_url)
        publisher = RedisPublisher(client)
        prices = prices or RedisPrices(client)
    prices = prices or StaticPrices()
    engine = ExecutionEngine(
        repo=SqlExecutionRepository(db),
        broker=broker or _broker(settings, prices),
        risk=_risk(settings),
        prices=prices,
        publisher=publisher,
    )
    engine.reconcile_interval = settings.reconcile_interval_seconds or None
    return EngineRuntime(
        engine=engine,
        queue=queue if queue is not None else _queue(settings),
        hub=hub,
        settings=settings,
    )


def create_app(runtime: EngineRuntime) -> Any:
    """The stream app with the engine's consumer thread bound to its lifespan."""
    from fastapi import FastAPI

    from algotrendy.stream.app import create_stream_app

    engine = runtime.engine
    state: dict[str, Any] = {}

    def health() -> dict[str, Any]:
        thread = state.get("thread")
        alive = bool(thread and thread.is_alive())
        return {
            "status": "ok" if alive else "degraded",
            "consumer": "running" if alive else "stopped",
            "kill_switch": engine.kill_switch,
            "open_orders": len(engine.repo.open_orders()),
            "processed": engine.stats.processed,
            "rejected": engine.stats.rejected,
            # the latest pass: start-up's, then the running engine's periodic ones
            "reconciliation": engine.reconciliation_notes,
        }

    background: Callable[[StreamHub], Any] | None = None
    if runtime.settings.redis_url:
        import redis.asyncio as aioredis

        from algotrendy.stream.redis_bridge import bridge

        url = runtime.settings.redis_url

        def background(hub: StreamHub) -> Any:
            return bridge(aioredis.Redis.from_url(url), hub)

    stream = create_stream_app(
        runtime.hub,
        secret=runtime.settings.require_jwt_secret(),
        health=health,
        background=background,
    )
    from fastapi import Header
    from fastapi.responses import JSONResponse

    from algotrendy.auth import Role, TokenError, verify_token

    @stream.post("/kill-switch")
    def kill_switch(body: KillSwitch, authorization: str | None = Header(None)) -> Any:
        """Turn the kill switch on (block new orders, cancel working ones) or off."""
        token = authorization.removeprefix("Bearer ").strip() if authorization else None
        try:
            claims = verify_token(token, secret=runtime.settings.require_jwt_secret())
        except TokenError as exc:
            return JSONResponse({"title": "Unauthorized", "status": 401, "detail": str(exc)},
                                status_code=401, media_type="application/problem+json")  # fmt: skip
        if claims.role not in (Role.ADMIN, Role.TRADER):
            return JSONResponse(
                {"title": "Forbidden", "status": 403,
                 "detail": f"role {claims.role.value} may not change the kill switch"},
                status_code=403, media_type="application/problem+json",
            )  # fmt: skip
        result = engine.apply_kill_switch(body.on, actor=claims.sub)
        # What could not be cancelled is in the reply, not only in an alert: the operator
        # who pulled the switch must see which orders may still be live at the venue.
        reply: dict[str, Any] = {"kill_switch": body.on, "cancelled": result.cancelled,
                                 "not_cancelled": result.not_cancelled,
                                 "unanswered_submits": result.unanswered_submits}  # fmt: skip
        if result.unsaved is None:
            return reply
        # ON and swept, but only in memory: a 5xx so no client takes it for done, with the
        # sweep's result, since the orders it could not cancel matter most right now.
        return JSONResponse(
            {"title": "Kill switch not saved", "status": 503,
             "detail": f"the kill switch is ON in this engine and working orders were swept, "
                       f"but saving it failed ({result.unsaved}): a restart would turn it "
                       "off. Post it again once the database is back.",
             "persisted": False, **reply},
            status_code=503, media_type="application/problem+json",
        )  # fmt: skip

    inner_lifespan = stream.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner_lifespan(app):
            notes = engine.start()
            thread = threading.Thread(
                target=engine.run, args=(runtime.queue,), name="engine-consumer", daemon=True
            )
            state["thread"] = thread
            thread.start()
            log.info("engine started; reconciliation: %s", notes or "clean")
            try:
                yield
            finally:
                engine.stop()
                thread.join(timeout=30)
                log.info("engine stopped")

    stream.router.lifespan_context = lifespan
    return stream


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    runtime = build_runtime(settings)
    uvicorn.run(create_app(runtime), host=host, port=port, log_level="info")
