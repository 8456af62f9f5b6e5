"""News store choice from settings: the candle store's rule (QuestDB when its URL is set,
files under the data dir locally, refused elsewhere naming the variable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from algotrendy.config import ConfigurationError, Settings
from algotrendy.signals.wiring import build_news_store
from algotrendy.storage.local_news import LocalNewsStore
from algotrendy.storage.questdb_news import QuestDBNewsStore

SECRET = "wiring-tests-secret-0123456789abcdef"


def test_local_news_lives_under_the_data_dir(tmp_path: Path) -> None:
    store = build_news_store(Settings(stage="local", data_dir=str(tmp_path)))
    assert isinstance(store, LocalNewsStore)
    assert store.root == tmp_path / "news"


def test_questdb_url_selects_the_questdb_news_store() -> None:
    settings = Settings(stage="dev", jwt_secret=SECRET, questdb_url="http://questdb:9000")
    store = build_news_store(settings)
    assert isinstance(store, QuestDBNewsStore)
    assert store.address == "questdb:9000"


def test_aws_without_questdb_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="ALGOTRENDY_QUESTDB_URL"):
        build_news_store(Settings(stage="dev", jwt_secret=SECRET))
