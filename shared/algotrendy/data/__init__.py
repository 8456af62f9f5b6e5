"""Market data: file loading and validation (research), channels and pipeline (ingestion)."""

from algotrendy.data.loaders import load_ohlcv, validate_ohlcv

__all__ = ["load_ohlcv", "validate_ohlcv"]
