"""Latest prices and channel health, kept where every process can read them quickly.

`RedisCache` (aws and vps shapes): one Redis hash per namespace, `<prefix>:<namespace>`,
fields are keys (`binance:BTC/USDT`, a channel name), values JSON documents. A hash keeps
a namespace's keys together, so `get_all` is one HGETALL instead of a SCAN.

`MemoryCache` (local shape): a dict in the process; given a `path` it also keeps the dict
in a JSON file (rewritten atomically under a lock), so `algotrendy channels status` in
another process sees the health an ingest recorded.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from algotrendy.storage.base import JSONDict, StoreError, StoreUnavailableError


class MemoryCache:
    """In-process `Cache`; optionally persisted to a JSON file shared by processes."""

    name = "memory"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path).expanduser()
        self._data: dict[str, dict[str, JSONDict]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryCache({str(self.path) if self.path else ''})"

    @contextlib.contextmanager
    def _state(self, *, write: bool) -> Iterator[dict[str, dict[str, JSONDict]]]:
        with self._lock:
            if self.path is None:
                yield self._data
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_name(self.path.name + ".lock"), "a+b") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                try:
                    data = self._load()
                    yield data
                    if write:
                        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
                        os.replace(tmp, self.path)
                finally:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _load(self) -> dict[str, dict[str, JSONDict]]:
        assert self.path is not None
        if not self.path.exists():
            return {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"memory cache: cannot read {self.path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise StoreError(f"memory cache: {self.path} does not hold a JSON object")
        return loaded

    def put(self, namespace: str, key: str, value: Mapping[str, Any]) -> None:
        document = json.loads(json.dumps(dict(value)))  # JSON-safe and detached, as Redis
        with self._state(write=True) as data:
            data.setdefault(namespace, {})[key] = document

    def get(self, namespace: str, key: str) -> JSONDict | None:
        with self._state(write=False) as data:
            found = data.get(namespace, {}).get(key)
            return None if found is None else copy.deepcopy(found)

    def get_all(self, namespace: str) -> dict[str, JSONDict]:
        with self._state(write=False) as data:
            return copy.deepcopy(data.get(namespace, {}))

    def delete(self, namespace: str, key: str) -> None:
        with self._state(write=True) as data:
            data.get(namespace, {}).pop(key, None)

    def clear(self) -> None:
        with self._state(write=True) as data:
            data.clear()


class RedisCache:
    """`Cache` on Redis with redis-py; every key under `<prefix>:`."""

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "algotrendy",
        socket_timeout: float = 2.0,
    ) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                decode_responses=True,
            )
        except ValueError as exc:
            raise StoreError(f"redis cache: bad URL {url!r} ({exc})") from exc

    def __repr__(self) -> str:
        return f"RedisCache({self.url!r}, prefix={self.prefix!r})"

    def _key(self, namespace: str) -> str:
        return f"{self.prefix}:{namespace}"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailableError(f"redis at {self.url}: unreachable ({exc})") from exc
        except redis.RedisError as exc:
            raise StoreError(f"redis at {self.url}: {exc}") from exc

    def ping(self) -> None:
        with self._errors():
            self._client.ping()

    def put(self, namespace: str, key: str, value: Mapping[str, Any]) -> None:
        with self._errors():
            self._client.hset(self._key(namespace), key, json.dumps(dict(value)))

    def get(self, namespace: str, key: str) -> JSONDict | None:
        with self._errors():
            raw = self._client.hget(self._key(namespace), key)
        return None if raw is None else _document(raw, namespace, key)

    def get_all(self, namespace: str) -> dict[str, JSONDict]:
        with self._errors():
            raw = self._client.hgetall(self._key(namespace))
        return {str(k): _document(v, namespace, str(k)) for k, v in raw.items()}

    def delete(self, namespace: str, key: str) -> None:
        with self._errors():
            self._client.hdel(self._key(namespace), key)

    def clear(self) -> None:
        """Delete every key under this cache's prefix (tests, `make clean`)."""
        with self._errors():
            keys = list(self._client.scan_iter(match=f"{self.prefix}:*"))
            if keys:
                self._client.delete(*keys)

    def close(self) -> None:
        self._client.close()


def _document(raw: Any, namespace: str, key: str) -> JSONDict:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise StoreError(f"redis cache: {namespace}/{key} is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise StoreError(f"redis cache: {namespace}/{key} is not a JSON object")
    return value
