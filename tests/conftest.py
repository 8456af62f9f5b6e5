"""Shared fixtures: paths to the real market data copied into tests/fixtures (see its README)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
OHLCV = FIXTURES / "ohlcv"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def goog_path() -> Path:
    return OHLCV / "backtesting_GOOG_1d.csv"


@pytest.fixture(scope="session")
def goog(goog_path: Path) -> pd.DataFrame:
    from algotrendy.data import load_ohlcv

    return load_ohlcv(goog_path)


@pytest.fixture(scope="session")
def btc_1m() -> pd.DataFrame:
    from algotrendy.data import load_ohlcv

    return load_ohlcv(OHLCV / "nautilus_btc-perp_1m_20211231-20220201.csv")
