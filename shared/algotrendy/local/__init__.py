"""The local shape: the whole platform in one process (`algotrendy serve`).

`build_platform(local_settings(data_dir))` composes the REST API, the TradingView webhook,
the signal evaluator, the backtest launcher and the execution engine with its paper
broker around in-process queues, SQLite and the Parquet candle store
(`algotrendy.local.app` explains the routes and the life cycle).
"""

from algotrendy.local.app import LocalPlatform, build_platform, local_settings

__all__ = ["LocalPlatform", "build_platform", "local_settings"]
