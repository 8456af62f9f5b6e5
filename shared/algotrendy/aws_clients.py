"""AWS clients that exist only once a call needs them.

The API serves many routes from one Lambda function, and most of them (health, login,
positions, strategy configs, market data) never call AWS; only placing an order (SQS),
starting a backtest (Step Functions) and publishing webhook configs (SSM) do. Building
the three clients with the app's composition root made every cold start pay for the
AWS SDK (the import and each service model), whatever the route. A `LazyClient` builds
its client on the first attribute it is asked for and keeps it, so the routes that call
AWS pay once per container and the others never do.

This is not a way to defer work every invocation needs: a function whose every
invocation calls AWS (webhook, evaluator, backtest steps) builds its clients at import,
in the init phase, as AWS recommends, or on its first record.

`botocore_client` builds such clients without boto3 for the functions that make only
plain API calls (see its docstring).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

ClientFactory = Callable[[str], Any]
"""Builds the client for a service name (`boto3.client`, or a traced variant)."""


def boto3_client(service: str) -> Any:
    import boto3

    return boto3.client(service)


_session_lock = threading.Lock()
_session: Any = None


def botocore_client(service: str) -> Any:
    """The client `boto3.client(service)` would return for plain API calls, built by
    botocore alone: boto3 adds its resources and s3transfer (with multiprocessing and
    concurrent.futures), ~30-50 ms of a cold start that functions making only plain calls
    (put/get/list, send_message, get_parameter) never use. A function that needs
    s3transfer's managed transfers (the backtest worker's `download_file`) uses boto3.
    One botocore session per process, as boto3's default session; the lock because a
    session's client creation is not thread-safe."""
    global _session
    with _session_lock:
        if _session is None:
            import botocore.session

            _session = botocore.session.get_session()
        return _session.create_client(service)


class LazyClient:
    """Stands in for `factory(service)` and builds it on first use (thread-safe: the
    local server runs routes on a thread pool)."""

    def __init__(self, service: str, factory: ClientFactory = boto3_client) -> None:
        self._service = service
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def service(self) -> str:
        return self._service

    @property
    def built(self) -> bool:
        return self._client is not None

    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory(self._service)
        return self._client

    def __getattr__(self, name: str) -> Any:
        # Only attributes LazyClient itself lacks reach here: the client's operations,
        # `exceptions`, `meta`, paginators.
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.client(), name)

    def __repr__(self) -> str:
        state = "built" if self.built else "not built yet"
        return f"LazyClient({self._service!r}, {state})"
