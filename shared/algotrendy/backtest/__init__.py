"""Backtesting: a vectorised fast path and an event-driven engine with one set of
semantics, metrics, sweeps, walk-forward and reports.

The public names are imported lazily (PEP 562 module `__getattr__`): importing a
submodule such as `algotrendy.backtest.metrics` does not pull in pandas, the strategies
or numba, which keeps cold starts (CLI, Lambda) short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from algotrendy.lazy import lazy_exports

if TYPE_CHECKING:
    from algotrendy.backtest.config import BacktestConfig
    from algotrendy.backtest.result import BacktestResult
    from algotrendy.backtest.runner import evaluate, run_backtest

__all__ = ["BacktestConfig", "BacktestResult", "evaluate", "run_backtest"]

_HOME = {
    "BacktestConfig": "algotrendy.backtest.config",
    "BacktestResult": "algotrendy.backtest.result",
    "evaluate": "algotrendy.backtest.runner",
    "run_backtest": "algotrendy.backtest.runner",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())
