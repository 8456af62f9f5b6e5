"""Fixtures for the indicator tests: the real OHLCV files as float arrays."""

from __future__ import annotations

import numpy as np
import pytest
from talib_reference import FIXTURES, OHLCV, ohlcv_arrays

from algotrendy.data import load_ohlcv


@pytest.fixture(scope="session", params=sorted(FIXTURES), ids=sorted(FIXTURES))
def market(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    """Each real data set in turn, by catalogue input name (x = close)."""
    return ohlcv_arrays(load_ohlcv(OHLCV / FIXTURES[request.param]))


@pytest.fixture(scope="session")
def goog_arrays() -> dict[str, np.ndarray]:
    return ohlcv_arrays(load_ohlcv(OHLCV / FIXTURES["goog_1d"]))
