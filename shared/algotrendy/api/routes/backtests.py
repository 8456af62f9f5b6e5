"""Backtests and sweeps: started through the `BacktestLauncher` (a background thread
locally, Step Functions in aws), followed by id, results ranked by the run's metric."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from algotrendy.api.deps import Ctx, Trader, Viewer
from algotrendy.api.launcher import BacktestLauncher, LaunchError
from algotrendy.api.problems import Problem, field_error, invalid
from algotrendy.api.routes.strategies import strategy_or_422, validated_params
from algotrendy.api.schemas import (
    BacktestAccepted,
    BacktestOut,
    BacktestRequest,
    BacktestResultOut,
)
from algotrendy.errors import ParameterError
from algotrendy.storage.relational.api_models import BacktestResultRow, BacktestRow

if TYPE_CHECKING:
    from algotrendy.storage.base import CandleStore

router = APIRouter(prefix="/backtests", tags=["backtests"])
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _launcher(ctx: Ctx) -> BacktestLauncher:
    if ctx.launcher is None:
        raise Problem(
            503,
            "unavailable",
            "backtests are not configured here: set ALGOTRENDY_BACKTEST_STATE_MACHINE_ARN",
        )
    return ctx.launcher


def _out(row: BacktestRow) -> BacktestOut:
    return BacktestOut.model_validate(row, from_attributes=True)


def _get(ctx: Ctx, backtest_id: str, *, sync: bool = True) -> BacktestRow:
    row = ctx.backtests.get(backtest_id)
    if row is None:
        raise Problem(404, "not-found", f"no backtest {backtest_id!r}")
    if sync and ctx.launcher is not None and row.launcher == ctx.launcher.name:
        ctx.launcher.sync(row)
        row = ctx.backtests.get(backtest_id) or row
    return row


def _validate(body: BacktestRequest) -> None:
    strat = strategy_or_422(body.strategy, "strategy")
    if body.params is not None and body.grid is not None:
        raise Problem(
            422,
            "validation",
            "give params (one backtest) or grid (a sweep), not both",
            errors=[field_error("grid", "not with params")],
        )
    if body.params is not None:
        validated_params(strat, body.params)
    if body.grid is not None:
        from algotrendy.backtest.grid import expand_grid

        try:
            combos = expand_grid(strat, body.grid).n_combos
        except ParameterError as exc:
            raise invalid("grid", str(exc).removeprefix("grid: ")) from None
        if combos == 0:
            raise invalid("grid", "no valid parameter combination")
    # Metric names live beside the metric code (numpy): only starting a backtest loads it.
    from algotrendy.backtest.metric_names import METRICS

    if body.metric not in METRICS:
        raise invalid("metric", f"unknown metric {body.metric!r}; known: {', '.join(METRICS)}")
    if body.start is not None and body.end is not None and body.end <= body.start:
        raise invalid("end", "must be after start")
    if len(set(body.symbols)) != len(body.symbols):
        raise invalid("symbols", "a symbol is listed twice")
    from algotrendy.data.normalise import timeframe_seconds

    try:
        timeframe_seconds(body.timeframe)
    except ParameterError as exc:
        raise invalid("timeframe", str(exc)) from None


def _check_candles(body: BacktestRequest, candles: CandleStore | None, exchange: str) -> None:
    """A symbol without stored candles fails now, naming it, rather than after the 202 in
    the background. Not when `data` gives S3 locations (Step Functions reads those, and the
    plan step checks they exist)."""
    if body.data is not None or candles is None:
        return
    for i, symbol in enumerate(body.symbols):
        if candles.last_timestamp(exchange, symbol, body.timeframe) is None:
            raise invalid(f"symbols.{i}", f"no {body.timeframe} candles of {symbol} on {exchange}")


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=BacktestAccepted)
def start_backtest(
    body: BacktestRequest, request: Request, response: Response, user: Trader, ctx: Ctx
) -> BacktestAccepted:
    """Start a backtest (`params`) or a parameter sweep (`grid`); 202 with the run id."""
    launcher = _launcher(ctx)
    _validate(body)
    backtest_id = uuid.uuid4().hex
    kind = "single" if body.grid is None else "sweep"
    exchange = body.exchange or ctx.settings.candle_exchange
    _check_candles(body, ctx.candles, exchange)
    ctx.backtests.create(
        id=backtest_id,
        kind=kind,
        status="queued",
        strategy=body.strategy,
        request=body.model_dump(mode="json"),
        launcher=launcher.name,
        created_by=user.username,
    )
    request.state.audit_action = "backtest.start"
    request.state.audit_target = f"backtest:{backtest_id}"
    # The row exists from here on: a start that fails must end it, or it stays queued
    # forever (nothing else ever moves a run that never started).
    try:
        launcher.start(backtest_id, body, exchange)
    except ParameterError as exc:
        ctx.backtests.transition(backtest_id, "failed", error=str(exc))
        raise invalid("data", str(exc)) from None
    except LaunchError as exc:
        ctx.backtests.transition(
            backtest_id, "failed", error=str(exc), finished_at=datetime.now(UTC)
        )
        raise Problem(
            503,
            "unavailable",
            f"backtest {backtest_id} could not be started: {exc}",
            extra={"backtest_id": backtest_id},
        ) from None
    except Exception as exc:
        ctx.backtests.transition(
            backtest_id,
            "failed",
            error=f"internal error while starting ({type(exc).__name__})",
            finished_at=datetime.now(UTC),
        )
        raise
    row = ctx.backtests.get(backtest_id)
    response.headers["Location"] = f"/backtests/{backtest_id}"
    return BacktestAccepted(id=backtest_id, status=row.status if row else "queued", kind=kind)


@router.get("", response_model=list[BacktestOut])
def list_backtests(
    user: Viewer,
    ctx: Ctx,
    status_: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[BacktestOut]:
    if status_ is not None and status_ not in STATUSES:
        raise invalid("status", f"one of {', '.join(STATUSES)}", location="query")
    return [_out(r) for r in ctx.backtests.recent(status=status_, limit=limit)]


@router.get("/{backtest_id}", response_model=BacktestOut)
def get_backtest(backtest_id: str, user: Viewer, ctx: Ctx) -> BacktestOut:
    """Status and, once succeeded, the summary (best row, counts)."""
    return _out(_get(ctx, backtest_id))


@router.get("/{backtest_id}/results", response_model=list[BacktestResultOut])
def backtest_results(
    backtest_id: str,
    user: Viewer,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[BacktestResultOut]:
    """Ranked rows, best first by the run's metric."""
    row = _get(ctx, backtest_id)
    if row.status != "succeeded":
        raise Problem(
            409,
            "conflict",
            f"backtest {backtest_id} is {row.status}; results exist once it succeeded",
        )
    return [
        BacktestResultOut(
            rank=r.rank,
            symbol=r.symbol,
            params=r.params,
            metrics=r.metrics,
            has_trades=bool(r.has_trades),
        )
        for r in ctx.backtests.results(backtest_id, limit=limit, offset=offset)
    ]


def _full_result(ctx: Ctx, backtest_id: str, rank: int) -> BacktestResultRow:
    row = _get(ctx, backtest_id)
    if row.status != "succeeded":
        raise Problem(409, "conflict", f"backtest {backtest_id} is {row.status}")
    result = ctx.backtests.result(backtest_id, rank)
    if result is None:
        raise Problem(404, "not-found", f"backtest {backtest_id} has no rank {rank}")
    if result.trades is None or result.equity is None:
        raise Problem(
            404,
            "not-found",
            f"rank {rank} of backtest {backtest_id} was not run in "
            "full (a sweep keeps trades and equity for its best row)",
        )
    return result


@router.get("/{backtest_id}/trades")
def backtest_trades(
    backtest_id: str, user: Viewer, ctx: Ctx, rank: Annotated[int, Query(ge=1)] = 1
) -> dict[str, Any]:
    """Closed round trips of one ranked row (columns: `backtest.result.TRADE_COLUMNS`)."""
    result = _full_result(ctx, backtest_id, rank)
    return {"rank": rank, "symbol": result.symbol, "params": result.params, "trades": result.trades}


@router.get("/{backtest_id}/equity")
def backtest_equity(
    backtest_id: str,
    user: Viewer,
    ctx: Ctx,
    rank: Annotated[int, Query(ge=1)] = 1,
    max_points: Annotated[int, Query(ge=2, le=100_000)] = 2000,
) -> dict[str, Any]:
    """Equity, position and drawdown by bar time. Longer curves are thinned to at most
    `max_points` evenly spaced bars, always keeping the first and last."""
    result = _full_result(ctx, backtest_id, rank)
    curve = dict(result.equity or {})
    n = len(curve.get("time", []))
    if n > max_points:
        step = (n - 1) / (max_points - 1)
        picks = sorted({round(i * step) for i in range(max_points)})
        curve = {k: [v[i] for i in picks] for k, v in curve.items()}
    return {
        "rank": rank,
        "symbol": result.symbol,
        "points": len(curve.get("time", [])),
        "bars": n,
        **curve,
    }


@router.post(
    "/{backtest_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=BacktestOut
)
def cancel_backtest(backtest_id: str, request: Request, user: Trader, ctx: Ctx) -> BacktestOut:
    """Stop a queued or running run; 409 if it already ended."""
    row = _get(ctx, backtest_id)
    request.state.audit_action = "backtest.cancel"
    request.state.audit_target = f"backtest:{backtest_id}"
    if row.status in ("succeeded", "failed", "cancelled"):
        raise Problem(409, "conflict", f"backtest {backtest_id} already {row.status}")
    ctx.backtests.request_cancel(backtest_id)
    if ctx.launcher is not None and row.launcher == ctx.launcher.name:
        ctx.launcher.cancel(row)
    return _out(_get(ctx, backtest_id, sync=False))
