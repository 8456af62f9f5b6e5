"""Constants shared by the signal tests (the GOOG series as the store keys it)."""

from __future__ import annotations

from pathlib import Path

OHLCV = Path(__file__).resolve().parents[1] / "fixtures" / "ohlcv"
EXCHANGE = "nasdaq"
SYMBOL = "GOOG"
TIMEFRAME = "1d"
