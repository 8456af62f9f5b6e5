"""Runtime settings: one validated object read from the environment, for every shape.

Locally the defaults are enough (`stage="local"`, no cloud resources); in AWS the SAM
template sets the `ALGOTRENDY_*` variables on each function (see `template.yaml`,
`Globals.Function.Environment`). Settings are read lazily through `get_settings()` and
cached, so a test can set the environment first and `get_settings.cache_clear()` after
(the habit of pydantic-settings' docs, "Settings management", and of the Powertools
handler cookbook's env-var model). Nothing here reads secrets yet; when they come they are
`SecretStr` fields resolved from SSM/Secrets Manager so they are never logged.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from algotrendy.errors import AlgoTrendyError

Stage = Literal["local", "dev", "prod"]


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
    jwt_secret: SecretStr = Field(
        SecretStr("local-development-secret-change-me-0000"),
        description="HS256 signing secret (>= 32 chars); must be set outside local",
    )

    @model_validator(mode="after")
    def _no_placeholder_secret_outside_local(self) -> Self:
        if self.stage != "local" and "change-me" in self.jwt_secret.get_secret_value():
            raise ValueError(
                "ALGOTRENDY_JWT_SECRET must be set outside the local stage "
                "(the built-in placeholder is refused)"
            )
        return self

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
