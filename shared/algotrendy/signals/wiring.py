"""Adapters for the signal functions, chosen from `Settings`: one place that decides what
runs in the local shape and what aws requires.

Outside the local stage every resource must be configured: an evaluator reading candles
from a container's disk, or an ingest announcing bars to a queue in its own memory, would
lose orders silently, so a missing setting is a `ConfigurationError` naming the variable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from algotrendy.config import ConfigurationError, Settings

if TYPE_CHECKING:
    from algotrendy.messaging.base import Queue
    from algotrendy.signals.config import StrategyConfigStore
    from algotrendy.storage.base import Cache, CandleStore, NewsStore

ClientFactory = Callable[[str], Any]  # boto3.client


def _local(settings: Settings) -> bool:
    return settings.stage == "local"


def build_candle_store(settings: Settings) -> CandleStore:
    """QuestDB when `ALGOTRENDY_QUESTDB_URL` is set, else the Parquet store under
    `data_dir` (local shape only)."""
    if settings.questdb_url:
        from algotrendy.storage.questdb_store import QuestDBCandleStore

        return QuestDBCandleStore.from_url(settings.questdb_url)
    if _local(settings):
        from algotrendy.storage.local import LocalCandleStore

        return LocalCandleStore(Path(settings.data_dir))
    raise ConfigurationError(
        "ALGOTRENDY_QUESTDB_URL is not set: outside the local stage candles live in QuestDB"
    )


def build_news_store(settings: Settings) -> NewsStore:
    """QuestDB's `news` table when `ALGOTRENDY_QUESTDB_URL` is set, else JSON Lines files
    under `data_dir` (local shape only): the candle store's rule, so both live together."""
    if settings.questdb_url:
        from algotrendy.storage.questdb_news import QuestDBNewsStore

        return QuestDBNewsStore.from_url(settings.questdb_url)
    if _local(settings):
        from algotrendy.storage.local_news import LocalNewsStore

        return LocalNewsStore(Path(settings.data_dir))
    raise ConfigurationError(
        "ALGOTRENDY_QUESTDB_URL is not set: outside the local stage news lives in QuestDB"
    )


def build_cache(settings: Settings) -> Cache:
    """Redis when `ALGOTRENDY_REDIS_URL` is set, else a JSON file under `data_dir` (local)."""
    if settings.redis_url:
        from algotrendy.storage.cache import RedisCache

        return RedisCache(settings.redis_url)
    if _local(settings):
        from algotrendy.storage.cache import MemoryCache

        return MemoryCache(Path(settings.data_dir) / "cache.json")
    raise ConfigurationError(
        "ALGOTRENDY_REDIS_URL is not set: outside the local stage latest prices go to Redis"
    )


def _queue(url: str | None, *, local_name: str, client: ClientFactory) -> Queue:
    if url:
        from algotrendy.messaging.sqs import SqsQueue

        return SqsQueue(client("sqs"), url)
    from algotrendy.messaging.memory import InMemoryQueue

    return InMemoryQueue(local_name)


def build_orders_queue(settings: Settings, client: ClientFactory) -> Queue:
    if not settings.orders_queue_url and not _local(settings):
        raise ConfigurationError(
            "ALGOTRENDY_ORDERS_QUEUE_URL is not set: the evaluator has nowhere to queue intents"
        )
    return _queue(settings.orders_queue_url, local_name="orders.fifo", client=client)


def build_signals_queue(settings: Settings, client: ClientFactory) -> Queue:
    if not settings.signals_queue_url and not _local(settings):
        raise ConfigurationError(
            "ALGOTRENDY_SIGNALS_QUEUE_URL is not set: the ingest has nowhere to announce bars"
        )
    return _queue(settings.signals_queue_url, local_name="signals", client=client)


def build_config_store(settings: Settings, client: ClientFactory) -> StrategyConfigStore:
    from algotrendy.signals.config import (
        JsonFileStrategyConfigStore,
        SsmParameterStrategyConfigStore,
    )

    if settings.strategy_config_parameter:
        return SsmParameterStrategyConfigStore(client("ssm"), settings.strategy_config_parameter)
    if settings.strategy_config_file:
        return JsonFileStrategyConfigStore(settings.strategy_config_file)
    raise ConfigurationError(
        "ALGOTRENDY_STRATEGY_CONFIG_PARAMETER (or ALGOTRENDY_STRATEGY_CONFIG_FILE) is not "
        "set: the evaluator has no strategies to run"
    )
