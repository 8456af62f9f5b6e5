"""Composition root of the API: everything a request needs, built once per process (a
Lambda container, a local server) from `Settings`, or handed in whole by tests.

Choices by shape: SQS when `ALGOTRENDY_ORDERS_QUEUE_URL` is set, else an in-process queue
(local only: elsewhere orders would vanish with the process, so order routes answer 503);
Step Functions when `ALGOTRENDY_BACKTEST_STATE_MACHINE_ARN` is set, else backtests run in
a background thread (local only: a Lambda is frozen after its reply); Redis for rate
limits and the price/health cache when `ALGOTRENDY_REDIS_URL` is set; QuestDB for
candles when `ALGOTRENDY_QUESTDB_URL` is set (where ingestion writes them in aws, as for
the signal evaluator), else the Parquet store under `data_dir`. Webhook configs are
published to the SSM parameter `ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER`, else the file
`ALGOTRENDY_WEBHOOK_CONFIG_FILE`, else nowhere (`algotrendy.api.webhook_configs`).
Migrations run at start in the local shape only; in aws they are a deployment step (many
cold starts at once must not race on DDL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from algotrendy.api.launcher import (
    BacktestLauncher,
    LocalBacktestLauncher,
    StepFunctionsBacktestLauncher,
)
from algotrendy.api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from algotrendy.api.runtime_config import RUNTIME_KEYS, Errors, validated
from algotrendy.auth.passwords import PasswordHasher
from algotrendy.auth.refresh import RefreshTokenService
from algotrendy.auth.users import UserService
from algotrendy.aws_clients import ClientFactory, LazyClient, boto3_client
from algotrendy.config import Settings
from algotrendy.messaging.base import Queue
from algotrendy.storage.base import Cache, CandleStore
from algotrendy.storage.relational.api_repositories import (
    AuditRepository,
    BacktestRepository,
    ConfigurationRepository,
    OrderRequestRepository,
    RefreshTokenRepository,
    StrategyConfigRepository,
    TradingReadRepository,
    UserRepository,
)
from algotrendy.webhooks.store import WebhookConfigPublisher

if TYPE_CHECKING:
    import pandas as pd

    from algotrendy.domain.bars import Bars

log = logging.getLogger(__name__)
OVERRIDE_CACHE_SECONDS = 5.0


@dataclass
class ApiContext:
    settings: Settings
    db: Engine
    users: UserService
    tokens: RefreshTokenService
    audit: AuditRepository
    strategies: StrategyConfigRepository
    backtests: BacktestRepository
    configs: ConfigurationRepository
    trading: TradingReadRepository
    order_requests: OrderRequestRepository
    orders_queue: Queue | None
    launcher: BacktestLauncher | None
    candles: CandleStore | None
    cache: Cache | None
    limiter: RateLimiter
    webhooks: WebhookConfigPublisher | None = None
    _overrides: tuple[float, dict[str, Any]] = field(default=(0.0, {}), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def overrides(self) -> dict[str, Any]:
        """Admin overrides, re-read at most every few seconds (one query per request
        would double the database load of cheap routes)."""
        with self._lock:
            at, cached = self._overrides
            if time.monotonic() - at < OVERRIDE_CACHE_SECONDS:
                return cached
        values: dict[str, Any] = {}
        for key, row in self.configs.all().items():
            if key not in RUNTIME_KEYS:
                continue
            errors: Errors = []
            # Types and bounds, not the PATCH route's lockout floors: a value an operator
            # wrote into the table on purpose is honoured.
            value = validated(key, row.value, errors, floors=False)
            if errors:  # stored under older, looser rules: the environment's value holds
                log.warning(
                    "runtime setting %s ignored: stored value %r is invalid (%s)",
                    key,
                    row.value,
                    "; ".join(f"{name}: {detail}" for name, detail in errors),
                )
                continue
            values[key] = value
        with self._lock:
            self._overrides = (time.monotonic(), values)
        return values

    def forget_overrides(self) -> None:
        with self._lock:
            self._overrides = (0.0, {})

    def setting(self, key: str) -> Any:
        values = self.overrides()
        return values[key] if key in values else getattr(self.settings, key)


class LazyCandleStore:
    """The candle store, built on its first use. Both adapters import numpy (the Parquet
    one pandas and pyarrow too, the QuestDB one pandas and its driver when used): built
    with the context, they would load them on the first request of every container,
    whatever the route; most routes (auth, orders, positions, configs) never read a
    candle."""

    def __init__(self, build: Callable[[], CandleStore]) -> None:
        self._build = build
        self._store: CandleStore | None = None
        self._lock = threading.Lock()

    def built(self) -> CandleStore:
        """The real store (built now if no route needed it yet)."""
        with self._lock:
            if self._store is None:
                self._store = self._build()
            return self._store

    @property
    def name(self) -> str:
        return self.built().name

    @name.setter
    def name(self, value: str) -> None:
        self.built().name = value

    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
        return self.built().write(frame, exchange, symbol, timeframe)

    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        return self.built().read(exchange, symbol, timeframe, start, end)

    def read_bars(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Bars:
        return self.built().read_bars(exchange, symbol, timeframe, start, end)

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> datetime | None:
        return self.built().last_timestamp(exchange, symbol, timeframe)


def repositories(db: Engine, settings: Settings, hasher: PasswordHasher) -> dict[str, Any]:
    return {
        "db": db,
        "users": UserService(UserRepository(db), hasher),
        "tokens": RefreshTokenService(
            RefreshTokenRepository(db), settings.jwt_secret.get_secret_value()
        ),
        "audit": AuditRepository(db),
        "strategies": StrategyConfigRepository(db),
        "backtests": BacktestRepository(db),
        "configs": ConfigurationRepository(db),
        "trading": TradingReadRepository(db),
        "order_requests": OrderRequestRepository(db),
    }


def build_context(
    settings: Settings,
    *,
    db: Engine | None = None,
    hasher: PasswordHasher | None = None,
    migrate: bool | None = None,
    aws_client: ClientFactory = boto3_client,
) -> ApiContext:
    """The context for `settings` (see the module docstring for what is chosen when).

    AWS clients are `LazyClient`s over `aws_client`: built by the first route that calls
    AWS, so the routes that never do (most of them) load no AWS SDK."""
    from pathlib import Path

    from algotrendy.storage.relational import create_db_engine, upgrade_database

    local = settings.stage == "local"
    if db is None:
        if settings.database_url.startswith("sqlite:///"):
            Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        db = create_db_engine(settings.database_url)
    if migrate if migrate is not None else local:
        upgrade_database(db)
    parts = repositories(db, settings, hasher or PasswordHasher())

    queue: Queue | None = None
    if settings.orders_queue_url:
        from algotrendy.messaging.sqs import SqsQueue

        queue = SqsQueue(LazyClient("sqs", aws_client), settings.orders_queue_url)
    elif local:
        from algotrendy.messaging.memory import InMemoryQueue

        queue = InMemoryQueue("orders.fifo")

    from algotrendy.api.webhook_configs import build_webhook_publisher
    from algotrendy.storage.cache import MemoryCache, RedisCache

    data_dir = Path(settings.data_dir)
    candles = LazyCandleStore(lambda: build_candle_store(settings))
    cache: Cache = (
        RedisCache(settings.redis_url)
        if settings.redis_url
        else MemoryCache(data_dir / "cache.json")
    )
    limiter: RateLimiter = (
        RedisRateLimiter.from_url(settings.redis_url) if settings.redis_url else MemoryRateLimiter()
    )
    ctx = ApiContext(
        settings=settings,
        orders_queue=queue,
        launcher=None,
        candles=candles,
        cache=cache,
        limiter=limiter,
        webhooks=build_webhook_publisher(settings, lambda service: LazyClient(service, aws_client)),
        **parts,
    )
    launcher: BacktestLauncher | None = None
    if settings.backtest_state_machine_arn:
        launcher = StepFunctionsBacktestLauncher(
            LazyClient("stepfunctions", aws_client),
            settings.backtest_state_machine_arn,
            ctx.backtests,
            chunk_size=lambda: int(ctx.setting("backtest_chunk_size")),
        )
    elif local:
        launcher = LocalBacktestLauncher(
            ctx.backtests, candles, chunk_size=lambda: int(ctx.setting("backtest_chunk_size"))
        )
    ctx.launcher = launcher
    if settings.admin_username and settings.admin_password:
        ctx.users.ensure_admin(settings.admin_username, settings.admin_password.get_secret_value())
    return ctx


def build_candle_store(settings: Settings) -> CandleStore:
    """QuestDB when `ALGOTRENDY_QUESTDB_URL` is set (built as `signals.wiring` builds the
    evaluator's; nothing connects until the first read), else the Parquet store under
    `data_dir`."""
    if settings.questdb_url:
        from algotrendy.storage.questdb_store import QuestDBCandleStore

        return QuestDBCandleStore.from_url(settings.questdb_url)
    from pathlib import Path

    from algotrendy.storage.local import LocalCandleStore

    return LocalCandleStore(Path(settings.data_dir))
