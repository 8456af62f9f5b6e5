"""Constants and configs shared by the signal tests (the GOOG series as the store keys
it)."""

from __future__ import annotations

from pathlib import Path

from algotrendy.signals import StrategyConfig

OHLCV = Path(__file__).resolve().parents[1] / "fixtures" / "ohlcv"
EXCHANGE = "nasdaq"
SYMBOL = "GOOG"
TIMEFRAME = "1d"
INFRA = Path(__file__).resolve().parents[1] / "infra"
QTY = 3.0


def sma_config(**overrides: object) -> StrategyConfig:
    """The GOOG SMA 10/20 config the evaluator tests run, with `overrides` applied."""
    raw: dict[str, object] = {
        "id": "goog-sma",
        "name": "GOOG SMA 10/20",
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 20, "allow_short": True},
        "exchange": EXCHANGE,
        "symbols": [SYMBOL],
        "timeframe": TIMEFRAME,
        "account": "acct-1",
        "quantity": QTY,
        "max_signal_age_bars": None,
    }
    raw.update(overrides)
    return StrategyConfig.model_validate(raw)
