"""Strategies: the interface, the registry and the built-ins (registered on import).

`crossover`, array code, is exported lazily (PEP 562): importing the package to look a
strategy up or validate its parameters loads no numpy.
"""

from typing import TYPE_CHECKING

from algotrendy.lazy import lazy_exports
from algotrendy.strategies import builtin as _builtin  # noqa: F401  (registers built-ins)
from algotrendy.strategies.base import BarContext, Strategy, StrategyParams
from algotrendy.strategies.registry import get_strategy, register, strategy_names

if TYPE_CHECKING:
    from algotrendy.strategies.kernels import crossover

__all__ = [
    "BarContext",
    "Strategy",
    "StrategyParams",
    "crossover",
    "get_strategy",
    "register",
    "strategy_names",
]

__getattr__, __dir__ = lazy_exports(
    __name__, {"crossover": "algotrendy.strategies.kernels"}, globals()
)
