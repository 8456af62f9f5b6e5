"""Ports the engine depends on besides the broker (brokers/base.py) and the queue
(messaging/base.py): where prices come from and where events go."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PriceSource(Protocol):
    def last_price(self, symbol: str) -> float | None:
        """Latest trade/mark price, or None if unknown."""
        ...


@runtime_checkable
class EventPublisher(Protocol):
    """Fan-out of engine events (topics: orders, positions, alerts, market)."""

    def publish(self, topic: str, event: dict[str, Any]) -> None: ...


class StaticPrices:
    """A dict-backed price source (local shape, tests, paper trading from a snapshot)."""

    def __init__(self, prices: dict[str, float] | None = None) -> None:
        self.prices: dict[str, float] = dict(prices or {})

    def last_price(self, symbol: str) -> float | None:
        return self.prices.get(symbol)

    def set(self, symbol: str, price: float) -> None:
        self.prices[symbol] = price


class MemoryPublisher:
    """Keeps every event in order (local shape, tests)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        self.events.append((topic, event))

    def topic(self, name: str) -> list[dict[str, Any]]:
        return [e for t, e in self.events if t == name]
