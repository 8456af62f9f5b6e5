"""Market data: candles from the candle store, the latest price (cache, else the last
stored close), and indicators computed over a range.

An indicator over [start, end) is computed on the stored history up to `end` and then cut
to the range, so its first values are real values rather than warm-up NaN whenever enough
earlier bars are stored; `warmup_bars` says how many leading values are undefined by
construction (TA-Lib's lookback).

Times follow the API's one rule (`schemas.ApiDatetime`): a time without offset is UTC, and
times must lie within 1678-01-01 .. 2262-01-01 (what the candle index can represent).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from algotrendy.api.deps import Ctx, Viewer
from algotrendy.api.problems import Problem, field_error, invalid
from algotrendy.api.schemas import INT32_MAX, INT32_MIN, ApiDatetime
from algotrendy.errors import ParameterError
from algotrendy.storage.base import CandleStore, StoreUnavailableError, get_latest_price

router = APIRouter(prefix="/market", tags=["market data"])
_RANGE_PARAMS = {"exchange", "symbol", "timeframe", "start", "end", "limit"}


def _store(ctx: Ctx) -> CandleStore:
    if ctx.candles is None:
        raise Problem(503, "unavailable", "no candle store configured")
    return ctx.candles


def _num(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def _read(
    ctx: Ctx,
    exchange: str | None,
    symbol: str,
    timeframe: str,
    start: datetime | None,
    end: datetime | None,
) -> Any:
    if start is not None and end is not None and end <= start:
        raise invalid("end", "must be after start", location="query")
    try:
        return _store(ctx).read(
            exchange or ctx.settings.candle_exchange, symbol, timeframe, start, end
        )
    except StoreUnavailableError as exc:
        raise Problem(503, "unavailable", str(exc)) from None


@router.get("/candles")
def candles(
    user: Viewer,
    ctx: Ctx,
    symbol: str,
    timeframe: str = "1d",
    exchange: str | None = None,
    start: Annotated[
        ApiDatetime | None, Query(description="bar open time >= start (no offset: UTC)")
    ] = None,
    end: Annotated[
        ApiDatetime | None, Query(description="bar open time < end (no offset: UTC)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000, description="the last N bars")] = 5000,
) -> dict[str, Any]:
    frame = _read(ctx, exchange, symbol, timeframe, start, end).tail(limit)
    rows = [
        {"time": t.isoformat(), "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for t, o, h, lo, c, v in zip(
            frame.index,
            frame["open"],
            frame["high"],
            frame["low"],
            frame["close"],
            frame["volume"],
            strict=True,
        )
    ]
    return {
        "exchange": exchange or ctx.settings.candle_exchange,
        "symbol": symbol,
        "timeframe": timeframe,
        "count": len(rows),
        "candles": rows,
    }


@router.get("/price")
def latest_price(
    user: Viewer, ctx: Ctx, symbol: str, exchange: str | None = None, timeframe: str = "1m"
) -> dict[str, Any]:
    """The cached latest price; without one, the close of the newest stored `timeframe` bar."""
    exch = exchange or ctx.settings.candle_exchange
    if ctx.cache is not None:
        try:
            cached = get_latest_price(ctx.cache, exch, symbol)
        except StoreUnavailableError:
            cached = None
        if cached is not None:
            return {**cached.model_dump(mode="json"), "source": "cache"}
    store = _store(ctx)
    last = store.last_timestamp(exch, symbol, timeframe)
    if last is None:
        raise Problem(
            404,
            "not-found",
            f"no price for {exch}:{symbol} (nothing cached, no {timeframe} candles stored)",
        )
    frame = store.read(exch, symbol, timeframe, last, None)
    return {
        "exchange": exch,
        "symbol": symbol,
        "timeframe": timeframe,
        "price": float(frame["close"].iloc[-1]),
        "time": last.isoformat(),
        "source": "candles",
    }


@router.get("/indicators")
def indicator_catalogue(user: Viewer) -> list[dict[str, Any]]:
    from algotrendy.indicators import INDICATORS

    return [info.to_dict() for info in INDICATORS.values()]


def _coerce(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if isinstance(default, int):
            number = int(raw)
            if not INT32_MIN <= number <= INT32_MAX:  # the kernels take C ints
                raise invalid(
                    name, f"{number} is outside {INT32_MIN} .. {INT32_MAX}", location="query"
                )
            return number
        value = float(raw)
        if not math.isfinite(value):
            raise invalid(name, f"expected a finite number, got {raw!r}", location="query")
        return value
    except ValueError:
        kind = "an integer" if isinstance(default, int) else "a number"
        if isinstance(default, bool):
            kind = "true or false"
        raise invalid(name, f"expected {kind}, got {raw!r}", location="query") from None


@router.get("/indicators/{name}")
def indicator(
    name: str,
    request: Request,
    user: Viewer,
    ctx: Ctx,
    symbol: str,
    timeframe: str = "1d",
    exchange: str | None = None,
    start: Annotated[ApiDatetime | None, Query(description="no offset: UTC")] = None,
    end: Annotated[ApiDatetime | None, Query(description="no offset: UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 5000,
) -> dict[str, Any]:
    """Indicator `name` (see GET /market/indicators) with its parameters as query
    parameters, e.g. `/market/indicators/rsi?symbol=BTC/USDT&period=14`."""
    # Loaded by the routes that compute (numpy, the indicators): the API's other routes,
    # and its cold start, do without them.
    import numpy as np

    from algotrendy.indicators import INDICATORS

    info = INDICATORS.get(name)
    if info is None:
        raise Problem(
            404, "not-found", f"unknown indicator {name!r}; known: {', '.join(INDICATORS)}"
        )
    declared = {p.name: p.default for p in info.params}
    params: dict[str, Any] = {}
    unknown = []
    for key, raw in request.query_params.items():
        if key in _RANGE_PARAMS:
            continue
        if key not in declared:
            unknown.append(key)
            continue
        params[key] = _coerce(key, raw, declared[key])
    if unknown:
        errors = [
            field_error(
                k, f"not a parameter of {name}; known: {', '.join(declared)}", location="query"
            )
            for k in unknown
        ]
        raise Problem(422, "validation", errors[0]["detail"], errors=errors)
    history = _read(ctx, exchange, symbol, timeframe, None, end)
    if history.empty:
        raise Problem(404, "not-found", f"no {timeframe} candles for {symbol}")
    inputs = ["close" if col == "x" else col for col in info.inputs]
    arrays = [history[col].to_numpy(dtype=np.float64) for col in inputs]
    try:
        values = info.function(*arrays, **params)
    except ParameterError as exc:
        raise Problem(422, "validation", str(exc)) from None
    outputs = values if isinstance(values, tuple) else (values,)
    index = history.index
    keep = np.ones(len(index), dtype=bool) if start is None else index >= start
    positions = np.flatnonzero(keep)[-limit:]
    return {
        "indicator": name,
        "params": {**declared, **params},
        "symbol": symbol,
        "timeframe": timeframe,
        "warmup_bars": int(info.lookback(**{**declared, **params})),
        "time": [index[i].isoformat() for i in positions],
        **{
            out: [_num(arr[i]) for i in positions]
            for out, arr in zip(info.outputs, outputs, strict=True)
        },
    }
