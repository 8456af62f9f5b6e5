"""In-process fan-out to stream clients, built so a slow client can never slow the
publisher: each subscription has a bounded queue; publishing never waits; when a client's
queue is full its oldest event is dropped and counted, and a client that keeps falling
behind (more than `max_dropped` drops) is disconnected. The engine thread publishes with
`publish_threadsafe`, which only schedules work on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

TOPICS = frozenset({"market", "positions", "orders", "fills", "alerts"})


@dataclass(eq=False)
class Subscription:
    topics: frozenset[str]
    symbols: frozenset[str] | None
    queue: asyncio.Queue[dict[str, Any]]
    dropped: int = 0
    closed: bool = False
    reason: str | None = None
    delivered: int = field(default=0)

    def matches(self, topic: str, event: dict[str, Any]) -> bool:
        if topic not in self.topics:
            return False
        if self.symbols is None:
            return True
        symbol = event.get("symbol")
        return symbol is None or symbol in self.symbols  # symbol-less events (alerts) pass

    async def next(self) -> dict[str, Any] | None:
        """The next message, or None once the hub has closed this subscription."""
        if self.closed and self.queue.empty():
            return None
        msg = await self.queue.get()
        if msg.get("topic") == "__closed__":
            return None
        self.delivered += 1
        return msg


class StreamHub:
    def __init__(self, *, max_queue: int = 1000, max_dropped: int = 5000) -> None:
        self.max_queue = max_queue
        self.max_dropped = max_dropped
        self._subs: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(
        self, topics: Iterable[str], symbols: Iterable[str] | None = None
    ) -> Subscription:
        wanted = frozenset(topics)
        unknown = wanted - TOPICS
        if not wanted or unknown:
            raise ValueError(
                f"unknown topic(s) {', '.join(sorted(unknown)) or '(none given)'}; "
                f"choose from {', '.join(sorted(TOPICS))}"
            )
        sub = Subscription(
            topics=wanted,
            symbols=frozenset(symbols) if symbols else None,
            queue=asyncio.Queue(maxsize=self.max_queue + 1),  # +1: room for the close marker
        )
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Deliver to every matching subscription; never blocks (call on the loop thread)."""
        self.published += 1
        msg = {"topic": topic, "data": event}
        for sub in list(self._subs):
            if sub.closed or not sub.matches(topic, event):
                continue
            if sub.queue.qsize() >= self.max_queue:
                sub.queue.get_nowait()  # drop the oldest: fresh state beats stale history
                sub.dropped += 1
                if sub.dropped > self.max_dropped:
                    self._close(sub, f"too slow: {sub.dropped} events dropped")
                    continue
            sub.queue.put_nowait(msg)

    def publish_threadsafe(self, topic: str, event: dict[str, Any]) -> None:
        if self._loop is None:
            raise RuntimeError("StreamHub.bind(loop) must be called before publishing from threads")
        self._loop.call_soon_threadsafe(self.publish, topic, event)

    def _close(self, sub: Subscription, reason: str) -> None:
        sub.closed = True
        sub.reason = reason
        self._subs.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait({"topic": "__closed__", "data": {"reason": reason}})
        log.warning("stream client dropped: %s", reason)


class HubPublisher:
    """EventPublisher for the local shape: the engine thread publishes straight to the hub."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        self.hub.publish_threadsafe(topic, json.loads(json.dumps(event, default=str)))
