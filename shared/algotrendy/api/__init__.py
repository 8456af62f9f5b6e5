"""The REST API (FastAPI): one app for Lambda (via Mangum) and for the local server.

`create_app()` builds it; `algotrendy.api.context.build_context` wires settings into the
repositories, the orders queue, the backtest launcher, the candle store and the rate
limiter. Importing this package does not import FastAPI's app module eagerly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from algotrendy.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from algotrendy.api.app import create_app

        return create_app
    raise AttributeError(f"module 'algotrendy.api' has no attribute {name!r}")
