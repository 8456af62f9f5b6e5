"""Strategies: the interface, the registry and the built-ins (registered on import)."""

from algotrendy.strategies import builtin as _builtin  # noqa: F401  (registers built-ins)
from algotrendy.strategies.base import BarContext, Strategy, StrategyParams, crossover
from algotrendy.strategies.registry import get_strategy, register, strategy_names

__all__ = [
    "BarContext",
    "Strategy",
    "StrategyParams",
    "crossover",
    "get_strategy",
    "register",
    "strategy_names",
]
