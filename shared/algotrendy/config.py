"""Runtime settings: one validated object read from the environment, for every shape.

Locally the defaults are enough (`stage="local"`, no cloud resources); in AWS the SAM
template sets the `ALGOTRENDY_*` variables on each function (see `template.yaml`,
`Globals.Function.Environment`). Settings are read lazily through `get_settings()` and
cached, so a test can set the environment first and `get_settings.cache_clear()` after
(the habit of pydantic-settings' docs, "Settings management", and of the Powertools
handler cookbook's env-var model). Secrets are `SecretStr` fields, so they are never
logged or printed with the settings.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_network
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from algotrendy.errors import AlgoTrendyError

Stage = Literal["local", "dev", "prod"]

# Where TradingView sends webhook requests from ("How to configure webhook alerts",
# TradingView help centre, article 43000529348); IPv4 only, IPv6 is not supported there.
TRADINGVIEW_WEBHOOK_IPS: tuple[str, ...] = (
    "52.89.214.238",
    "34.212.75.30",
    "54.218.53.128",
    "52.32.178.7",
)


class ConfigurationError(AlgoTrendyError):
    """A setting the running shape needs is missing or invalid: the operator must set it."""


class Settings(BaseSettings):
    """Every knob the library and the handlers read from the environment (`ALGOTRENDY_*`)."""

    model_config = SettingsConfigDict(
        env_prefix="ALGOTRENDY_", extra="ignore", frozen=True, validate_default=True
    )

    stage: Stage = Field("local", description="deployment stage: local | dev | prod")
    artefacts_bucket: str | None = Field(
        None,
        min_length=3,
        max_length=63,
        description="S3 bucket for backtest manifests, chunk results and rankings (aws only)",
    )
    backtest_chunk_size: int = Field(
        50,
        ge=1,
        le=10_000,
        description="parameter combinations per worker invocation when a request gives none",
    )
    backtest_top_n: int = Field(
        20, ge=1, le=10_000, description="ranked rows returned by the aggregate step by default"
    )

    # -- relational store, queues, cache (local defaults need no server) ------------------
    database_url: str = Field(
        "sqlite:///.algotrendy/algotrendy.db",
        description="SQLAlchemy URL: SQLite locally, postgresql://... in aws/vps",
    )
    orders_queue_url: str | None = Field(
        None, description="SQS URL of orders.fifo; unset = in-process queue (local shape)"
    )
    signals_queue_url: str | None = Field(None, description="SQS URL of the signals queue")
    redis_url: str | None = Field(None, description="redis://host:6379/0; unset = in-process")
    data_dir: str = Field(".algotrendy", description="local state: candles, paper broker")

    # -- execution engine -------------------------------------------------------------------
    broker: Literal["paper", "binance", "bybit", "ib", "tradestation", "ninjatrader"] = "paper"
    paper_fee: float = Field(0.001, ge=0, lt=0.1, description="paper broker fee per fill")
    paper_slippage: float = Field(0.0, ge=0, lt=0.1)
    risk_limits: str = Field(
        "{}",
        description='account risk limits as JSON, e.g. {"max_position": 5, '
        '"daily_loss_limit": 500}',
    )
    reconcile_interval_seconds: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="seconds between the running engine's reconciliations with the broker; "
        "0 = only at start",
    )
    jwt_secret: SecretStr = Field(
        SecretStr("local-development-secret-change-me-0000"),
        description="HS256 signing secret (>= 32 chars); must be set outside local",
    )

    # -- REST API (functions/api, algotrendy.api) -------------------------------------------
    api_cors_origins: tuple[str, ...] = Field(
        (),
        description="browser origins allowed by CORS, as JSON: '[\"https://app.example.com\"]'; "
        "empty = no cross-origin access",
    )
    api_rate_limit_per_minute: int = Field(
        120, ge=1, le=100_000, description="requests per user per minute (fixed window)"
    )
    api_login_rate_limit_per_minute: int = Field(
        10, ge=1, le=10_000, description="login/refresh attempts per client address per minute"
    )
    admin_username: str | None = Field(
        None,
        min_length=3,
        max_length=64,
        description="first admin, created at API start when no user of that name exists",
    )
    admin_password: SecretStr | None = Field(
        None, description="password of the bootstrap admin (needs admin_username)"
    )
    backtest_state_machine_arn: str | None = Field(
        None,
        min_length=20,
        max_length=2048,
        description="Step Functions backtest machine; unset = backtests run in the API "
        "process (local shape only)",
    )
    candle_exchange: str = Field(
        "binance", min_length=1, max_length=64, description="default exchange of candle reads"
    )

    # -- live signals (functions/ingest, functions/signal_evaluator, algotrendy.signals) ----
    questdb_url: str | None = Field(
        None,
        min_length=8,
        description="QuestDB HTTP address (ILP writes; PGWire reads on port 8812), "
        "http://user:password@host:9000; unset = local Parquet store under data_dir "
        "(local shape only)",
    )
    strategy_config_parameter: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="SSM parameter holding the live strategy configs as JSON",
    )
    strategy_config_file: str | None = Field(
        None, min_length=1, description="JSON file of live strategy configs (local shape, tests)"
    )

    # -- TradingView webhook (functions/webhook, algotrendy.webhooks) ------------------------
    webhook_config_parameter: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="SSM parameter (SecureString) holding the webhook configs as JSON",
    )
    webhook_config_file: str | None = Field(
        None, min_length=1, description="JSON file of webhook configs (local shape, tests)"
    )
    webhook_config_cache_seconds: float = Field(
        60.0, ge=0, le=3600, description="how long a loaded config document is reused"
    )
    idempotency_table: str | None = Field(
        None,
        min_length=3,
        max_length=255,
        description="DynamoDB table of Powertools idempotency records (key `id`, TTL "
        "`expiration`); unset = in-process records (local shape)",
    )
    tradingview_allowed_ips: tuple[str, ...] = Field(
        TRADINGVIEW_WEBHOOK_IPS,
        description="source addresses/CIDRs a webhook accepts unless its config says "
        'otherwise, as JSON: \'["52.89.214.238", "10.0.0.0/8"]\'; "0.0.0.0/0" = any',
    )
    webhook_replay_window_seconds: int = Field(
        120,
        ge=1,
        le=86_400,
        description="alerts whose {{timenow}} is older than this are refused as replays",
    )
    webhook_max_clock_skew_seconds: int = Field(
        30, ge=0, le=3600, description="how far in the future an alert's {{timenow}} may be"
    )
    webhook_idempotency_ttl_seconds: int = Field(
        3600,
        ge=60,
        le=7 * 86_400,
        description="how long a delivered alert is remembered (duplicates answered from it)",
    )

    @field_validator("tradingview_allowed_ips")
    @classmethod
    def _valid_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR block") from None
        return value

    @model_validator(mode="after")
    def _idempotency_outlives_replay_window(self) -> Self:
        """An alert young enough to pass the replay check must still be remembered by the
        idempotency store, or a replay inside the window would be enqueued a second time."""
        window = self.webhook_replay_window_seconds + self.webhook_max_clock_skew_seconds
        if self.webhook_idempotency_ttl_seconds < window:
            ttl = self.webhook_idempotency_ttl_seconds
            raise ValueError(
                f"ALGOTRENDY_WEBHOOK_IDEMPOTENCY_TTL_SECONDS ({ttl}) must be >= replay window "
                f"+ clock skew ({window})"
            )
        return self

    def require_jwt_secret(self) -> str:
        """The token signing secret; the built-in placeholder is refused outside local.

        Checked where it is used (API, engine) rather than at load, so functions that never
        sign or verify tokens (backtest workers, ingestion) need not carry the secret.
        """
        secret = self.jwt_secret.get_secret_value()
        if self.stage != "local" and "change-me" in secret:
            raise ConfigurationError(
                "ALGOTRENDY_JWT_SECRET must be set outside the local stage "
                "(the built-in placeholder is refused)"
            )
        return secret

    def require_artefacts_bucket(self) -> str:
        """The bucket, or an error naming the variable to set (handlers cannot run without)."""
        if not self.artefacts_bucket:
            raise ConfigurationError(
                "ALGOTRENDY_ARTEFACTS_BUCKET is not set: the backtest functions need the "
                "artefacts bucket (template.yaml sets it from ArtefactsBucket)"
            )
        return self.artefacts_bucket


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
