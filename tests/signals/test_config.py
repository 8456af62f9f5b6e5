"""Strategy configs: validated by the strategy itself, documents refused as a whole with
the config and field named, the file and SSM stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from algotrendy.config import ConfigurationError
from algotrendy.signals import (
    InMemoryStrategyConfigStore,
    JsonFileStrategyConfigStore,
    SsmParameterStrategyConfigStore,
    StrategyConfig,
    StrategyConfigStore,
    load_strategy_configs,
)


def raw_config(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "btc-sma",
        "name": "BTC SMA",
        "strategy": "sma_cross",
        "params": {"fast": 5, "slow": 30},
        "exchange": "binance",
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "timeframe": "1h",
        "quantity": 0.01,
    }
    raw.update(overrides)
    return raw


def document(*configs: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "strategies": list(configs)})


def test_params_are_validated_and_completed_by_the_strategy() -> None:
    config = StrategyConfig.model_validate(raw_config())
    assert config.params == {"fast": 5, "slow": 30, "allow_short": True}
    assert config.warmup() == 31
    assert config.window_bars() == 31 + 500


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"strategy": "nope"}, r"strategies\.0\.strategy \(btc-sma\): unknown strategy 'nope'"),
        ({"params": {"fast": 30, "slow": 5}}, r"strategies\.0\.params \(btc-sma\):.*fast \(30\)"),
        ({"params": {"fats": 3}}, r"strategies\.0\.params \(btc-sma\):.*fats: unknown parameter"),
        ({"timeframe": "1x"}, r"strategies\.0\.timeframe \(btc-sma\): timeframe '1x'"),
        ({"symbols": ["A", "A"]}, r"strategies\.0\.symbols \(btc-sma\): symbols listed twice: A"),
        ({"symbols": []}, r"strategies\.0\.symbols \(btc-sma\)"),
        ({"quantity": 0}, r"strategies\.0\.quantity \(btc-sma\)"),
        ({"id": "has:colon"}, r"strategies\.0\.id \(has:colon\)"),
        ({"id": "x" * 65}, r"strategies\.0\.id"),
        ({"extra": 1}, r"strategies\.0\.extra \(btc-sma\)"),
    ],
)
def test_bad_config_is_refused_naming_config_and_field(
    override: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_strategy_configs(document(raw_config(**override)), source="configs.json")


def test_document_level_errors() -> None:
    with pytest.raises(ConfigurationError, match=r"configs\.json: strategy configs are not JSON"):
        load_strategy_configs("{", source="configs.json")
    with pytest.raises(ConfigurationError, match="ids must be unique: btc-sma"):
        load_strategy_configs(document(raw_config(), raw_config()), source="x")
    with pytest.raises(ConfigurationError, match="version"):
        load_strategy_configs(json.dumps({"version": 2, "strategies": []}), source="x")


def test_stores_select_enabled_configs_of_a_series(tmp_path: Path) -> None:
    configs = [
        raw_config(id="b"),
        raw_config(id="a", params={"fast": 3, "slow": 9}),
        raw_config(id="off", enabled=False),
        raw_config(id="eth", symbols=["ETH/USDT"]),
    ]
    path = tmp_path / "strategies.json"
    path.write_text(document(*configs))
    file_store = JsonFileStrategyConfigStore(path)
    memory = InMemoryStrategyConfigStore(StrategyConfig.model_validate(c) for c in configs)
    for store in (file_store, memory):
        assert isinstance(store, StrategyConfigStore)
        assert [c.id for c in store.for_series("binance", "BTC/USDT", "1h")] == ["a", "b"]
        assert [c.id for c in store.for_series("binance", "ETH/USDT", "1h")] == ["a", "b", "eth"]
        assert store.for_series("binance", "BTC/USDT", "4h") == []
        assert [c.id for c in store.list_configs()] == ["a", "b", "eth", "off"]
        off = store.get("off")
        assert off is not None
        assert off.enabled is False
        assert store.get("missing") is None


def test_file_store_rereads_after_cache_seconds(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "strategies.json"
    path.write_text(document(raw_config()))
    store = JsonFileStrategyConfigStore(path, cache_seconds=60, clock=lambda: now[0])
    assert store.get("btc-sma") is not None
    path.write_text(document(raw_config(id="renamed")))
    now[0] = 59.0
    assert store.get("btc-sma") is not None  # cached
    now[0] = 60.0
    assert store.get("btc-sma") is None
    assert store.get("renamed") is not None


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    store = JsonFileStrategyConfigStore(tmp_path / "none.json")
    with pytest.raises(ConfigurationError, match=r"none\.json: strategy config file does not"):
        store.list_configs()


def test_ssm_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(
            Name="/algotrendy/dev/strategies", Value=document(raw_config()), Type="SecureString"
        )
        store = SsmParameterStrategyConfigStore(ssm, "/algotrendy/dev/strategies")
        assert [c.id for c in store.list_configs()] == ["btc-sma"]
        missing = SsmParameterStrategyConfigStore(ssm, "/algotrendy/dev/none")
        with pytest.raises(ConfigurationError, match=r"/algotrendy/dev/none .* does not exist"):
            missing.list_configs()
