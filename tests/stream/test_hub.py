from __future__ import annotations

import asyncio

import pytest

from algotrendy.stream.hub import StreamHub


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_topic_and_symbol_filtering() -> None:
    async def scenario() -> list[dict[str, object]]:
        hub = StreamHub()
        sub = hub.subscribe(["orders", "alerts"], ["BTC/USDT"])
        hub.publish("orders", {"symbol": "BTC/USDT", "id": 1})
        hub.publish("orders", {"symbol": "ETH/USDT", "id": 2})
        hub.publish("positions", {"symbol": "BTC/USDT", "id": 3})
        hub.publish("alerts", {"message": "kill switch", "id": 4})
        return [await sub.next() for _ in range(2)]  # type: ignore[misc]

    got = run(scenario())
    assert [m["data"]["id"] for m in got] == [1, 4]  # type: ignore[index]


def test_slow_client_never_blocks_and_gets_dropped() -> None:
    async def scenario() -> tuple[int, object, str | None, int]:
        hub = StreamHub(max_queue=10, max_dropped=50)
        slow = hub.subscribe(["market"])
        fast = hub.subscribe(["market"])
        received = 0
        for i in range(200):
            hub.publish("market", {"symbol": "X", "i": i})  # returns at once, every time
            while not fast.queue.empty():
                await fast.next()
                received += 1
        return received, await slow.next(), slow.reason, hub.subscribers

    received, closed, reason, left = run(scenario())
    assert received == 200  # the fast client saw everything
    assert closed is None  # the slow one was closed
    assert reason == "too slow: 51 events dropped"
    assert left == 1


def test_bounded_queue_keeps_newest() -> None:
    async def scenario() -> list[int]:
        hub = StreamHub(max_queue=3, max_dropped=100)
        sub = hub.subscribe(["market"])
        for i in range(6):
            hub.publish("market", {"i": i})
        out = []
        while not sub.queue.empty():
            msg = await sub.next()
            assert msg is not None
            out.append(msg["data"]["i"])
        return out

    assert run(scenario()) == [3, 4, 5]


def test_unknown_topic_named() -> None:
    hub = StreamHub()
    with pytest.raises(ValueError, match="unknown topic\\(s\\) trades; choose from"):
        hub.subscribe(["orders", "trades"])
