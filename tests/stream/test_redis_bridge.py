"""Real Redis at 127.0.0.1:6379: an engine process publishes, a stream server relays.
Skips with the reason when Redis is absent, except in CI (CI=true) where it fails."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis
import redis.asyncio as aioredis

from algotrendy.stream.hub import StreamHub
from algotrendy.stream.redis_bridge import RedisPublisher, bridge

URL = os.environ.get("ALGOTRENDY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def sync_client() -> redis.Redis:
    client = redis.Redis.from_url(URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis not reachable at {URL}: {exc}")
        pytest.skip(f"Redis not reachable at {URL}: {exc}")
    return client


def test_events_flow_from_publisher_to_stream_clients(sync_client: redis.Redis) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    publisher = RedisPublisher(sync_client, prefix=prefix)

    async def scenario() -> list[dict[str, object]]:
        hub = StreamHub()
        sub = hub.subscribe(["positions", "orders"], ["BTC/USDT"])
        ready = asyncio.Event()
        client = aioredis.Redis.from_url(URL)
        task = asyncio.create_task(bridge(client, hub, prefix=prefix, ready=ready))
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, publisher.publish, "orders",
                                   {"symbol": "ETH/USDT", "n": 0})  # fmt: skip
        await loop.run_in_executor(None, publisher.publish, "positions",
                                   {"account": "a", "strategy": "s", "symbol": "BTC/USDT",
                                    "quantity": 2.0})  # fmt: skip
        got = [await asyncio.wait_for(sub.next(), 5)]
        task.cancel()
        await client.aclose()
        return got  # type: ignore[return-value]

    try:
        got = asyncio.run(scenario())
        assert got == [
            {"topic": "positions",
             "data": {"account": "a", "strategy": "s", "symbol": "BTC/USDT", "quantity": 2.0}}
        ]  # fmt: skip
        assert publisher.latest_positions() == [got[0]["data"]]
    finally:
        sync_client.delete(f"{prefix}positions")
