"""Strategies by name, so the CLI, sweeps, the API and live evaluation share one lookup."""

from __future__ import annotations

from typing import Any

from algotrendy.errors import UnknownStrategyError
from algotrendy.strategies.base import Strategy

_REGISTRY: dict[str, type[Strategy[Any]]] = {}


def register(cls: type[Strategy[Any]]) -> type[Strategy[Any]]:
    """Class decorator: make a strategy available by its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"strategy name {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def get_strategy(name_or_instance: str | Strategy[Any]) -> Strategy[Any]:
    """An instance for a registered name (or the instance itself)."""
    if isinstance(name_or_instance, Strategy):
        return name_or_instance
    try:
        return _REGISTRY[name_or_instance]()
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownStrategyError(
            f"unknown strategy {name_or_instance!r}; known: {known}"
        ) from None


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)
