"""The Cache port on its three backends: in-process, in-process persisted to a file, and a
real Redis at 127.0.0.1:6379 (each test under its own key prefix, deleted afterwards).
Redis tests skip with the reason when Redis is absent, except in CI (CI=true), where they
fail instead."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from algotrendy.storage.base import (
    Cache,
    LatestPrice,
    StoreError,
    StoreUnavailableError,
    get_latest_price,
    put_latest_price,
)
from algotrendy.storage.cache import MemoryCache, RedisCache

REDIS_URL = os.environ.get("ALGOTRENDY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_cache() -> RedisCache:
    cache = RedisCache(REDIS_URL, prefix=f"test-{uuid.uuid4().hex[:12]}")
    try:
        cache.ping()
    except StoreUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    return cache


@pytest.fixture(params=["memory", "memory-file", "redis"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cache]:
    if request.param == "memory":
        yield MemoryCache()
    elif request.param == "memory-file":
        yield MemoryCache(tmp_path / "cache.json")
    else:
        live = redis_cache()
        try:
            yield live
        finally:
            live.clear()
            live.close()


def test_put_get_roundtrip_and_overwrite(cache: Cache) -> None:
    assert cache.get("health", "binance") is None
    cache.put("health", "binance", {"runs": 1, "last_error": None, "nested": {"a": [1, 2]}})
    assert cache.get("health", "binance") == {
        "runs": 1,
        "last_error": None,
        "nested": {"a": [1, 2]},
    }
    cache.put("health", "binance", {"runs": 2})
    assert cache.get("health", "binance") == {"runs": 2}


def test_namespaces_are_separate_and_get_all_lists_one(cache: Cache) -> None:
    cache.put("health", "binance", {"runs": 1})
    cache.put("health", "yfinance", {"runs": 3})
    cache.put("price", "binance", {"price": 1.5})
    assert cache.get_all("health") == {"binance": {"runs": 1}, "yfinance": {"runs": 3}}
    assert cache.get_all("price") == {"binance": {"price": 1.5}}
    assert cache.get_all("nothing") == {}


def test_delete(cache: Cache) -> None:
    cache.put("health", "binance", {"runs": 1})
    cache.delete("health", "binance")
    cache.delete("health", "never-there")
    assert cache.get("health", "binance") is None


def test_stored_documents_are_detached_from_the_caller(cache: Cache) -> None:
    doc = {"levels": [1, 2]}
    cache.put("x", "k", doc)
    doc["levels"].append(3)
    got = cache.get("x", "k")
    assert got == {"levels": [1, 2]}
    assert got is not None
    got["levels"].append(4)
    assert cache.get("x", "k") == {"levels": [1, 2]}


def test_latest_price_helpers_roundtrip(cache: Cache) -> None:
    price = LatestPrice(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        price=42000.5,
        time=datetime(2024, 1, 1, 1, tzinfo=UTC),
        updated_at=datetime(2024, 1, 1, 1, 0, 3, tzinfo=UTC),
    )
    put_latest_price(cache, price)
    assert get_latest_price(cache, "binance", "BTC/USDT") == price
    assert get_latest_price(cache, "binance", "ETH/USDT") is None


def test_file_backed_memory_cache_is_shared_between_instances(tmp_path: Path) -> None:
    writer, reader = MemoryCache(tmp_path / "c.json"), MemoryCache(tmp_path / "c.json")
    writer.put("health", "binance", {"runs": 1})
    assert reader.get("health", "binance") == {"runs": 1}
    reader.put("health", "kraken", {"runs": 2})
    assert sorted(writer.get_all("health")) == ["binance", "kraken"]


def test_unreadable_cache_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match=r"cache\.json"):
        MemoryCache(path).get("health", "binance")


def test_redis_keeps_one_hash_per_namespace_under_the_prefix() -> None:
    live = redis_cache()
    try:
        live.put("health", "binance", {"runs": 1})
        import redis

        raw = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        assert raw.hgetall(f"{live.prefix}:health") == {"binance": '{"runs": 1}'}
        raw.close()
    finally:
        live.clear()
        live.close()


def test_redis_clear_deletes_only_its_prefix() -> None:
    a, b = redis_cache(), redis_cache()
    try:
        a.put("health", "x", {"v": 1})
        b.put("health", "x", {"v": 2})
        a.clear()
        assert a.get_all("health") == {}
        assert b.get("health", "x") == {"v": 2}
    finally:
        for live in (a, b):
            live.clear()
            live.close()


def test_unreachable_redis_is_one_clear_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    with pytest.raises(StoreUnavailableError, match=rf"redis at redis://127.0.0.1:{port}/0"):
        cache.put("health", "binance", {"runs": 1})


def test_bad_redis_url_is_refused() -> None:
    with pytest.raises(StoreError, match="bad URL"):
        RedisCache("localhost:6379")
