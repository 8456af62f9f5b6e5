"""Composition root of the local shape (`algotrendy serve`): the whole platform in one
process, on embedded defaults, with no network and no AWS.

One ASGI app:

* `/health` (this module): the API's checks plus the engine consumer and the signal
  evaluator threads; 503 when any of them is down;
* `POST /webhooks/tradingview/{webhook_id}` (`algotrendy.local.webhook`): the Lambda's
  `WebhookService`;
* `/docs`, `/openapi.json`: one schema for the API and the two routes above;
* `/engine/...`: the engine's stream app (`/engine/health`, `/engine/metrics`,
  `/engine/stream` WebSocket, `/engine/sse`, `/engine/kill-switch`);
* everything else: the REST API (`algotrendy.api.create_app`), mounted at the root.

Shared objects (where the cloud shapes have a managed service): one in-process orders.fifo
that the API, the webhook and the signal evaluator send to and the engine consumes; one
in-process signals queue the evaluator consumes; one SQLite file for the API and the
engine; the Parquet candle store and the JSON-file cache under the data dir.

Life cycle (the app's lifespan): start = the signal evaluator thread, then the engine
(reconciliation, consumer thread). Stop, in reverse, after the server stopped accepting
requests: the evaluator finishes its message in hand, then the engine finishes its own
(the stream app's lifespan), then backtests still running are asked to cancel at their
next check and the launcher's pool is drained.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from algotrendy.api.context import ApiContext, build_context
from algotrendy.config import Settings
from algotrendy.execution.service import EngineRuntime, build_runtime
from algotrendy.execution.service import create_app as create_engine_app
from algotrendy.local.seed import (
    DEMO_ACCOUNT,
    LIVE_STRATEGIES_FILE,
    SAMPLE_EXCHANGE,
    WEBHOOKS_FILE,
    SeedReport,
    find_samples_dir,
    seed,
)
from algotrendy.local.webhook import LOOPBACK, LocalWebhookConfigStore, webhook_router
from algotrendy.local.workers import CachePrices, SignalConsumer
from algotrendy.messaging.memory import InMemoryQueue
from algotrendy.signals.config import (
    InMemoryStrategyConfigStore,
    JsonFileStrategyConfigStore,
    StrategyConfig,
    StrategyConfigStore,
)
from algotrendy.signals.messages import CandlesClosed, send_candles_closed
from algotrendy.webhooks import InMemoryIdempotency, WebhookPolicy, WebhookService

log = logging.getLogger(__name__)

ENGINE_PREFIX = "/engine"


def local_settings(data_dir: Path, base: Settings | None = None) -> Settings:
    """`base` (default: the environment) with every cloud resource switched off and every
    local file under `data_dir`: SQLite, candles, cache, paper broker, webhook and live
    strategy configs. The JWT secret, risk limits, paper fees and the bootstrap admin are
    kept from `base`."""
    values = (base or Settings()).model_dump()
    data_dir = data_dir.expanduser().resolve()
    values.update(
        stage="local",
        data_dir=str(data_dir),
        database_url=f"sqlite:///{data_dir / 'algotrendy.db'}",
        orders_queue_url=None,
        signals_queue_url=None,
        redis_url=None,
        questdb_url=None,
        artefacts_bucket=None,
        backtest_state_machine_arn=None,
        webhook_config_parameter=None,
        strategy_config_parameter=None,
        idempotency_table=None,
        webhook_config_file=str(data_dir / WEBHOOKS_FILE),
        strategy_config_file=str(data_dir / LIVE_STRATEGIES_FILE),
        broker="paper",
    )
    return Settings(**values)


@dataclass
class LocalPlatform:
    """Everything `algotrendy serve` runs, for the CLI and for tests."""

    settings: Settings
    data_dir: Path
    context: ApiContext
    runtime: EngineRuntime
    orders_queue: InMemoryQueue
    signals_queue: InMemoryQueue
    signals: SignalConsumer
    webhooks: WebhookService
    seeded: SeedReport | None
    app: FastAPI
    engine_app: FastAPI

    def announce(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        last_bar: datetime,
        new_since: datetime | None = None,
    ) -> str:
        """Put a `candles.closed` message on the signals queue, as an ingest would after
        storing the bars (there is no live ingestion without network)."""
        message = CandlesClosed.for_bars(
            exchange, symbol, timeframe, last_bar=last_bar, new_since=new_since
        )
        return send_candles_closed(self.signals_queue, message)

    def engine_health(self) -> dict[str, Any]:
        """The engine app's own /health body (consumer thread, kill switch, counters)."""
        for route in self.engine_app.routes:
            if isinstance(route, APIRoute) and route.path == "/health":
                reply = route.endpoint()
                body: dict[str, Any] = json.loads(bytes(reply.body))
                return body
        return {"status": "degraded", "consumer": "absent"}


class _StrategyStore:
    """The live-config file when it exists, else no configs (a `--no-seed` start)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = JsonFileStrategyConfigStore(path)
        self.empty = InMemoryStrategyConfigStore()

    def _store(self) -> StrategyConfigStore:
        return self.file if self.path.is_file() else self.empty

    def get(self, config_id: str) -> StrategyConfig | None:
        return self._store().get(config_id)

    def list_configs(self) -> list[StrategyConfig]:
        return self._store().list_configs()

    def for_series(self, exchange: str, symbol: str, timeframe: str) -> list[StrategyConfig]:
        return self._store().for_series(exchange, symbol, timeframe)


def _health_router(platform_ref: list[LocalPlatform]) -> APIRouter:
    from algotrendy.api.routes.health import health as api_health

    router = APIRouter(tags=["health"])

    @router.get("/health")
    def health(response: Response) -> dict[str, Any]:
        """API dependencies, the engine's consumer and the signal evaluator. No token."""
        platform = platform_ref[0]
        inner = Response()
        body = api_health(platform.context, inner)
        engine = platform.engine_health()
        signals = {
            "consumer": "running" if platform.signals.running else "stopped",
            **asdict(platform.signals.stats),
        }
        ok = (
            inner.status_code == 200
            and engine.get("consumer") == "running"
            and signals["consumer"] == "running"
        )
        if not ok:
            response.status_code = 503
        return {
            **body,
            "status": "ok" if ok else "degraded",
            "engine": engine,
            "signals": signals,
        }

    return router


def build_platform(
    settings: Settings,
    *,
    seed_demo: bool = True,
    samples_dir: Path | None = None,
) -> LocalPlatform:
    """Build (and on first start seed) the local platform; nothing runs until the app's
    lifespan starts (`uvicorn.run(platform.app)`, or `TestClient(platform.app)` as a
    context manager)."""
    from algotrendy.api.app import create_app as create_api_app

    if settings.stage != "local":
        raise ValueError("build_platform needs local settings (see local_settings)")
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    orders = InMemoryQueue("orders.fifo")
    signals_queue = InMemoryQueue("signals")

    ctx = build_context(settings)
    ctx.orders_queue = orders  # the one queue the engine consumes
    assert ctx.candles is not None
    assert ctx.cache is not None

    report = None
    if seed_demo:
        report = seed(ctx, data_dir, samples_dir=find_samples_dir(samples_dir))
        if report.candles == {}:
            log.warning("sample data not found (samples/GOOG_1d.csv, ...): no candles seeded")

    exchanges = [SAMPLE_EXCHANGE, settings.candle_exchange]
    runtime = build_runtime(settings, queue=orders, prices=CachePrices(ctx.cache, exchanges))
    engine_app = create_engine_app(runtime)

    webhooks = WebhookService(
        LocalWebhookConfigStore(
            data_dir / WEBHOOKS_FILE,
            ctx.strategies,
            account=DEMO_ACCOUNT,
            # One process, one file: read it on every alert so a revoke or rotation through
            # the API takes effect at once (Lambda caches for webhook_config_cache_seconds).
            cache_seconds=0.0,
        ),
        orders,
        InMemoryIdempotency(expires_after_seconds=settings.webhook_idempotency_ttl_seconds),
        WebhookPolicy(
            allowed_ips=(*settings.tradingview_allowed_ips, *LOOPBACK),
            replay_window_seconds=settings.webhook_replay_window_seconds,
            max_clock_skew_seconds=settings.webhook_max_clock_skew_seconds,
        ),
    )
    consumer = SignalConsumer(
        signals_queue, orders, ctx.candles, _StrategyStore(data_dir / LIVE_STRATEGIES_FILE)
    )

    api = create_api_app(ctx)
    ref: list[LocalPlatform] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        consumer.start()
        try:
            async with engine_app.router.lifespan_context(engine_app):
                try:
                    yield
                finally:
                    # Before the engine stops: intents the evaluator still sends get consumed.
                    await run_in_threadpool(consumer.stop)
        finally:
            await run_in_threadpool(consumer.stop)
            await run_in_threadpool(_stop_backtests, ctx)
            log.info("local platform stopped")

    root = FastAPI(
        title=api.title,
        version=api.version,
        description=api.description,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    root.include_router(_health_router(ref))
    root.include_router(webhook_router(webhooks))

    def openapi() -> dict[str, Any]:
        """One schema: this app's routes (health, webhook) and the API's (its /health is
        shadowed by the one here)."""
        if root.openapi_schema is None:
            own = FastAPI.openapi(root)
            root.openapi_schema = None
            inner = api.openapi()
            paths = {k: v for k, v in inner.get("paths", {}).items() if k != "/health"}
            components = dict(inner.get("components", {}))
            for key, values in own.get("components", {}).items():
                components[key] = {**components.get(key, {}), **values}
            root.openapi_schema = {
                **inner,
                "paths": {**own.get("paths", {}), **paths},
                "components": components,
            }
        return root.openapi_schema

    root.openapi = openapi  # type: ignore[method-assign]
    root.mount(ENGINE_PREFIX, engine_app)
    root.mount("/", api)

    platform = LocalPlatform(
        settings=settings,
        data_dir=data_dir,
        context=ctx,
        runtime=runtime,
        orders_queue=orders,
        signals_queue=signals_queue,
        signals=consumer,
        webhooks=webhooks,
        seeded=report,
        app=root,
        engine_app=engine_app,
    )
    ref.append(platform)
    root.state.platform = platform
    return platform


def _stop_backtests(ctx: ApiContext) -> None:
    """Ask local runs still queued or running to cancel, then drain the launcher's pool
    (a run stops at its next cancellation check: between symbols, between chunks)."""
    launcher = ctx.launcher
    if launcher is None or launcher.name != "local":
        return
    for status in ("queued", "running"):
        for row in ctx.backtests.recent(status=status, limit=500):
            if row.launcher == launcher.name:
                ctx.backtests.request_cancel(row.id)
                launcher.cancel(row)
    shutdown = getattr(launcher, "shutdown", None)
    if callable(shutdown):
        shutdown()
