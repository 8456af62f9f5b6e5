"""Positions and daily PnL, as the execution engine recorded them (read-only)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from algotrendy.api.deps import Ctx, Viewer
from algotrendy.api.problems import invalid
from algotrendy.api.schemas import PnlDayOut, PnlOut, PositionOut

router = APIRouter(tags=["portfolio"])


@router.get("/positions", response_model=list[PositionOut])
def positions(
    user: Viewer,
    ctx: Ctx,
    account: str | None = None,
    strategy: str | None = None,
    symbol: str | None = None,
    include_flat: Annotated[bool, Query(description="also rows whose quantity is 0")] = False,
) -> list[PositionOut]:
    """One row per account, strategy and symbol (strategy "" = not attributed)."""
    rows = ctx.trading.positions(
        account=account, strategy=strategy, symbol=symbol, include_flat=include_flat
    )
    return [PositionOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/pnl/daily", response_model=PnlOut)
def pnl_daily(
    user: Viewer,
    ctx: Ctx,
    account: str | None = None,
    strategy: str | None = None,
    start: Annotated[date | None, Query(description="first day, inclusive (UTC)")] = None,
    end: Annotated[date | None, Query(description="last day, inclusive (UTC)")] = None,
) -> PnlOut:
    """Daily PnL rows and totals over them; net = realised + unrealised - fees."""
    if start is not None and end is not None and end < start:
        raise invalid("end", f"must not be before start ({start})", location="query")
    rows = ctx.trading.pnl_daily(account=account, strategy=strategy, start=start, end=end)
    days = [
        PnlDayOut(
            account=r.account,
            strategy=r.strategy,
            day=r.day,
            realized_pnl=r.realized_pnl,
            unrealized_pnl=r.unrealized_pnl,
            fees=r.fees,
            net=r.realized_pnl + r.unrealized_pnl - r.fees,
        )
        for r in rows
    ]
    return PnlOut(
        days=days,
        total_realized=sum(d.realized_pnl for d in days),
        total_fees=sum(d.fees for d in days),
        total_net=sum(d.net for d in days),
    )
