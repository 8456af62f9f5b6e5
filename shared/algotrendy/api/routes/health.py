"""Liveness and dependencies: database, queue, cache, and the data channels' health as
the channel manager recorded it. No token needed (load balancers and uptime checks)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from algotrendy.api.deps import Ctx
from algotrendy.storage.base import StoreError

router = APIRouter(tags=["health"])


@router.get("/health")
def health(ctx: Ctx, response: Response) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    try:
        with ctx.db.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    checks["orders_queue"] = "absent" if ctx.orders_queue is None else ctx.orders_queue.name
    checks["backtests"] = "absent" if ctx.launcher is None else ctx.launcher.name
    checks["rate_limiter"] = ctx.limiter.name
    channels: dict[str, Any] = {}
    if ctx.cache is not None:
        from algotrendy.data.manager import all_health

        try:
            channels = {
                name: {
                    "status": h.status,
                    "last_success": h.last_success,
                    "last_error": h.last_error,
                    "consecutive_failures": h.consecutive_failures,
                }
                for name, h in all_health(ctx.cache).items()
            }
            checks["cache"] = "ok"
        except StoreError as exc:
            checks["cache"] = f"error: {exc}"
    ok = checks["database"] == "ok"
    if not ok:
        response.status_code = 503
    return {
        "status": "ok" if ok else "degraded",
        "stage": ctx.settings.stage,
        "checks": checks,
        "channels": channels,
    }
