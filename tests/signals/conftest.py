"""Fixtures of the signal tests: real GOOG daily bars in a local candle store."""

from __future__ import annotations

import pandas as pd
import pytest
from signal_helpers import EXCHANGE, OHLCV, SYMBOL, TIMEFRAME

from algotrendy.data import load_ohlcv
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
