"""Adapter choice from settings: local defaults, and aws refusing to run without its
resources (naming the variable to set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from algotrendy.config import ConfigurationError, Settings
from algotrendy.messaging import InMemoryQueue
from algotrendy.signals import JsonFileStrategyConfigStore
from algotrendy.signals.wiring import (
    build_cache,
    build_candle_store,
    build_config_store,
    build_orders_queue,
    build_signals_queue,
)
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore
from algotrendy.storage.questdb_store import QuestDBCandleStore

SECRET = "wiring-tests-secret-0123456789abcdef"


def no_client(name: str) -> Any:
    raise AssertionError(f"no AWS client expected, asked for {name}")


def test_local_shape_needs_no_server(tmp_path: Path) -> None:
    settings = Settings(stage="local", data_dir=str(tmp_path), strategy_config_file="s.json")
    assert isinstance(build_candle_store(settings), LocalCandleStore)
    assert isinstance(build_cache(settings), MemoryCache)
    assert isinstance(build_orders_queue(settings, no_client), InMemoryQueue)
    assert isinstance(build_signals_queue(settings, no_client), InMemoryQueue)
    assert isinstance(build_config_store(settings, no_client), JsonFileStrategyConfigStore)


def test_questdb_url_selects_questdb() -> None:
    settings = Settings(stage="dev", jwt_secret=SECRET, questdb_url="http://questdb:9000")
    store = build_candle_store(settings)
    assert isinstance(store, QuestDBCandleStore)
    assert store.address == "questdb:9000"


@pytest.mark.parametrize(
    ("build", "variable"),
    [
        (lambda s: build_candle_store(s), "ALGOTRENDY_QUESTDB_URL"),
        (lambda s: build_cache(s), "ALGOTRENDY_REDIS_URL"),
        (lambda s: build_orders_queue(s, no_client), "ALGOTRENDY_ORDERS_QUEUE_URL"),
        (lambda s: build_signals_queue(s, no_client), "ALGOTRENDY_SIGNALS_QUEUE_URL"),
        (lambda s: build_config_store(s, no_client), "ALGOTRENDY_STRATEGY_CONFIG_PARAMETER"),
    ],
)
def test_aws_refuses_missing_resources(build: Any, variable: str) -> None:
    settings = Settings(stage="dev", jwt_secret=SECRET)
    with pytest.raises(ConfigurationError, match=variable):
        build(settings)
