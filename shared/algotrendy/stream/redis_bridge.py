"""Redis pub/sub between publishers (engine, API, ingestion) and stream servers.

Channel per topic: `algotrendy:<topic>`, JSON bodies. The engine also keeps the latest
position per account/strategy/symbol in the hash `algotrendy:positions`, so a client that
connects late can be sent the current state first.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from algotrendy.stream.hub import StreamHub

log = logging.getLogger(__name__)

PREFIX = "algotrendy:"
POSITIONS_KEY = "algotrendy:positions"


class RedisPublisher:
    """EventPublisher over redis-py (sync client, injected)."""

    def __init__(self, client: Any, prefix: str = PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        body = json.dumps(event, default=str)
        pipe = self.client.pipeline(transaction=False)
        pipe.publish(f"{self.prefix}{topic}", body)
        if topic == "positions":
            key = f"{event.get('account')}|{event.get('strategy')}|{event.get('symbol')}"
            pipe.hset(f"{self.prefix}positions", key, body)
        pipe.execute()

    def latest_positions(self) -> list[dict[str, Any]]:
        raw = self.client.hgetall(f"{self.prefix}positions")
        return [json.loads(v) for v in raw.values()]


async def bridge(redis: Any, hub: StreamHub, *, prefix: str = PREFIX,
                 ready: asyncio.Event | None = None) -> None:  # fmt: skip
    """Forward every `prefix*` message from Redis (redis.asyncio client) to the hub."""
    pubsub = redis.pubsub()
    await pubsub.psubscribe(f"{prefix}*")
    if ready is not None:
        ready.set()
    try:
        async for message in pubsub.listen():
            if message.get("type") != "pmessage":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            topic = channel[len(prefix) :]
            try:
                event = json.loads(message["data"])
            except (ValueError, TypeError):
                log.warning("ignored non-JSON message on %s", channel)
                continue
            hub.publish(topic, event)
    finally:
        await pubsub.aclose()
