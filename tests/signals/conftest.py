"""Fixtures of the signal tests: real GOOG daily bars in a local candle store; for the
scheduled-ingest tests an empty store, a cache and the runs' clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from signal_helpers import EXCHANGE, OHLCV, SYMBOL, TIMEFRAME

from algotrendy.data import load_ohlcv
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore


@pytest.fixture(scope="session")
def goog_frame() -> pd.DataFrame:
    return load_ohlcv(OHLCV / "backtesting_GOOG_1d.csv")


@pytest.fixture(scope="session")
def goog_store(
    tmp_path_factory: pytest.TempPathFactory, goog_frame: pd.DataFrame
) -> LocalCandleStore:
    """All 2,148 GOOG bars, written once (tests only read)."""
    store = LocalCandleStore(tmp_path_factory.mktemp("candles"), fsync=False)
    store.write(goog_frame, EXCHANGE, SYMBOL, TIMEFRAME)
    return store


@pytest.fixture
def btc(btc_1m: pd.DataFrame) -> pd.DataFrame:
    """Real BTC 1m bars for the scheduled-ingest tests (a module may take fewer)."""
    return btc_1m.iloc[:3000]


@pytest.fixture
def store(tmp_path: Path) -> LocalCandleStore:
    return LocalCandleStore(tmp_path, fsync=False)


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache()


@pytest.fixture
def clock(btc: pd.DataFrame) -> list[datetime]:
    """The runs' clock over the `btc` bars, a list the test moves on: first 20 s into bar
    1001, so bar 1000 is the last closed one."""
    return [btc.index[1001].to_pydatetime() + timedelta(seconds=20)]
