"""Entry points: `run_backtest` (one backtest, full result) and `evaluate` (metrics only,
for sweeps and walk-forward, which call it thousands of times).

Both pick the engine the same way: `engine="auto"` runs the vectorised kernel unless the
strategy overrides `on_bar` (then only the event engine can honour it); "vectorized" and
"event" force one. The two engines implement one set of semantics (`fills.py`) and are
proven to agree by a property test, so "auto" is a speed choice, never a results choice.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import ValidationError

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.events import overrides_on_bar, run_events
from algotrendy.backtest.fills import sizing_code
from algotrendy.backtest.metrics import compute_metrics, infer_periods_per_year
from algotrendy.backtest.result import BacktestResult
from algotrendy.data.loaders import DATAFRAME_SOURCE, load_ohlcv, validate_ohlcv
from algotrendy.domain.bars import OHLCV_COLUMNS, Bars
from algotrendy.errors import ParameterError
from algotrendy.strategies import get_strategy
from algotrendy.strategies.base import Strategy, StrategyParams, format_validation_error

FloatArray = npt.NDArray[np.float64]
Engine = Literal["auto", "vectorized", "event"]
ENGINES = ("auto", "vectorized", "event")

_SIDES = np.array(["short", "long"], dtype=object)
# pandas' default `str` dtype. Under pyarrow storage the `side` column is built by an
# arrow `take` from the two names (~0.3 ms for 55k trades) instead of pandas converting
# a Python object array string by string (2-5 ms); the column is equal either way.
_STR_DTYPE = pd.Series(_SIDES).dtype
_ARROW_SIDES = None
if getattr(_STR_DTYPE, "storage", None) == "pyarrow":
    import pyarrow as pa

    _ARROW_SIDES = pa.array(pd.Series(_SIDES).array)  # pandas' own arrow type
# Columns of the engines' trade matrix (see vectorized.KERNEL_TRADE_FIELDS).
_ENTRY_BAR, _EXIT_BAR, _SIZE, _ENTRY_PX, _EXIT_PX, _PNL, _FEES = range(7)


def run_backtest(
    data: pd.DataFrame | str | Path,
    strategy: str | Strategy[Any],
    params: Mapping[str, Any] | StrategyParams | None = None,
    *,
    cash: float = 10_000,
    fee: float = 0.0,
    fixed_fee: float = 0.0,
    slippage: float = 0.0,
    sizing: str = "whole",
    size: float = 1.0,
    trade_on_close: bool = False,
    risk_free: float = 0.0,
    periods_per_year: float | None = None,
    engine: Engine | str = "auto",
    symbol: str | None = None,
) -> BacktestResult:
    """Backtest `strategy` on `data` (a DataFrame or a CSV/Parquet path, loaded and
    validated by `load_ohlcv`). Settings are validated into a `BacktestConfig`.

    Raises DataError for bad data, UnknownStrategyError for an unknown strategy name and
    ParameterError for a bad strategy parameter, backtest setting or engine.
    """
    config = make_config(
        cash=cash,
        fee=fee,
        fixed_fee=fixed_fee,
        slippage=slippage,
        sizing=sizing,
        size=size,
        trade_on_close=trade_on_close,
        risk_free=risk_free,
        periods_per_year=periods_per_year,
    )
    strat = get_strategy(strategy)
    p = strat.params(params)
    frame, source = _load(data)
    bars = Bars.from_frame(frame)
    side = _side_thread()
    # The data are checked on the side thread while this one runs the strategy on them;
    # nothing leaves this function before the check has passed.
    checked = side.submit(_check, frame, bars, source, config.periods_per_year)
    if engine == "event" or overrides_on_bar(strat):
        # Bar-by-bar code (a user's `on_bar`) only ever sees checked data; the overlap
        # would save ~4 ms of a run that takes a quarter of a second per 1M bars.
        checked.result()
    try:
        # One (3, n) block holds the equity frame's columns: the kernel writes equity and
        # position straight into it, so building the frame copies nothing.
        block = np.empty((3, len(bars)))
        equity, position, trades = _simulate(bars, strat, p, config, engine, block[0], block[1])
    except Exception:
        checked.result()  # bad data explain a failure better than what they caused
        raise
    periods_per_year = checked.result()
    pnl, returns = _trade_pnl_returns(trades)
    index = frame.index
    trade_frame = side.submit(_trade_frame, trades, returns, index)
    metrics = compute_metrics(
        equity=equity,
        times=bars.time,
        position=position,
        trade_pnl=pnl,
        trade_returns=returns,
        cash=config.cash,
        risk_free=config.risk_free,
        periods_per_year=periods_per_year,
        drawdown_out=block[2],
    )
    equity_frame = pd.DataFrame(
        block.T, index=index, columns=["equity", "position", "drawdown"], copy=False
    )
    return BacktestResult(
        strategy=strat.name,
        params=p.model_dump(),
        config=config,
        metrics=metrics,
        trades=trade_frame.result(),
        equity=equity_frame,
        data=frame,
        symbol=symbol,
    )


def evaluate(
    bars: Bars,
    strategy: str | Strategy[Any],
    params: Mapping[str, Any] | StrategyParams | None,
    config: BacktestConfig,
    *,
    engine: Engine | str = "auto",
) -> dict[str, float]:
    """Metrics only (no DataFrames): the sweep / walk-forward inner call.

    `bars` are taken as already validated. Pass `config.periods_per_year` when calling
    many times on the same bars to skip inferring it from the times on every call.
    """
    strat = get_strategy(strategy)
    p = strat.params(params)
    n = len(bars)
    equity, position, trades = _simulate(bars, strat, p, config, engine, np.empty(n), np.empty(n))
    pnl, returns = _trade_pnl_returns(trades)
    return compute_metrics(
        equity=equity,
        times=bars.time,
        position=position,
        trade_pnl=pnl,
        trade_returns=returns,
        cash=config.cash,
        risk_free=config.risk_free,
        periods_per_year=config.periods_per_year,
    )


def make_config(**settings: Any) -> BacktestConfig:
    """A `BacktestConfig`, with pydantic's error turned into a one-line ParameterError."""
    try:
        return BacktestConfig(**settings)
    except ValidationError as exc:
        raise ParameterError(format_validation_error("backtest", exc)) from exc


def _load(data: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, str]:
    """`load_ohlcv` without its validation (`_check` runs it): (frame, source name).

    A frame already in the output shape (a UTC DatetimeIndex and float64 open..volume,
    e.g. a previous `load_ohlcv` result, as sweeps, walk-forward and the CLI pass) skips
    the normalising copy and parse, about a third of a 1M-bar backtest; the result's
    `data` is then a shallow copy (copy-on-write under pandas 3)."""
    if (
        isinstance(data, pd.DataFrame)
        and isinstance(data.index, pd.DatetimeIndex)
        and str(data.index.tz) == "UTC"
        and list(data.columns) == list(OHLCV_COLUMNS)
        and all(dtype == np.float64 for dtype in data.dtypes)
    ):
        return data.copy(deep=False), DATAFRAME_SOURCE
    source = DATAFRAME_SOURCE if isinstance(data, pd.DataFrame) else str(data)
    return load_ohlcv(data, validate=False), source


def _check(
    frame: pd.DataFrame, bars: Bars, source: str, periods_per_year: float | None
) -> float | None:
    """Validate the data (DataError naming the row) and return the bars per year the
    metrics annualise with: the configured figure, else inferred from the bar times
    (one more pass over them, done here off the main thread), None for a single bar."""
    validate_ohlcv(frame, source=source, bars=bars)
    if periods_per_year is not None or len(bars) < 2:
        return periods_per_year
    return infer_periods_per_year(bars.time)


_side_lock = threading.Lock()
_side: ThreadPoolExecutor | None = None


def _side_thread() -> ThreadPoolExecutor:
    """The one helper thread of `run_backtest`, started on first use.

    Why a thread: the compiled passes (validation, time scan, metrics) release the GIL,
    so on two cores checking the data overlaps running the strategy, and building the
    trade frame overlaps the metrics (~5 ms of a 22 ms 1M-bar backtest). Concurrent
    callers share it; their side jobs simply queue.
    """
    global _side
    with _side_lock:
        if _side is None:
            _side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algotrendy-backtest")
        return _side


def _forget_side_thread() -> None:
    """A forked child (a sweep's process pool) inherits the executor but not its thread:
    submitting to it would wait forever, so the child starts its own."""
    global _side, _side_lock
    _side = None
    _side_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_side_thread)


def _simulate(
    bars: Bars,
    strategy: Strategy[Any],
    params: StrategyParams,
    config: BacktestConfig,
    engine: str,
    equity: FloatArray,
    position: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(equity, position, trades[k, 7]); equity and position are written into the given
    buffers."""
    if engine not in ENGINES:
        raise ParameterError(f"engine: must be one of {', '.join(ENGINES)} (got {engine!r})")
    custom = overrides_on_bar(strategy)
    if engine == "vectorized" and custom:
        raise ParameterError(
            f"engine: {strategy.name} overrides on_bar, which only the event engine runs; "
            "use engine='event' or 'auto'"
        )
    signals = _signal_array(strategy, strategy.signals(bars, params), len(bars))
    if engine == "event" or custom:
        _raise_bad_signal(strategy, signals, _first_bad_signal(signals))
        ev_equity, ev_position, trades = run_events(bars, strategy, params, signals, config)
        equity[:] = ev_equity
        position[:] = ev_position
        return equity, position, trades
    from algotrendy.backtest.vectorized import signal_kernel  # numba: import only when used

    trades, bad = signal_kernel(  # it checks the signals' values in its first pass
        bars.open,
        bars.close,
        signals,
        float(config.cash),
        float(config.fee),
        float(config.fixed_fee),
        float(config.slippage),
        sizing_code(config.sizing),
        float(config.size),
        bool(config.trade_on_close),
        equity,
        position,
    )
    _raise_bad_signal(strategy, signals, bad)
    return equity, position, trades


def _signal_array(strategy: Strategy[Any], signals: Any, n: int) -> FloatArray:
    """The strategy's signals as contiguous float64, one per bar (values checked apart)."""
    sig = np.ascontiguousarray(signals, dtype=np.float64)
    if sig.shape != (n,):
        raise ParameterError(
            f"{strategy.name}: signals must be one value per bar, shape ({n},) "
            f"(got shape {sig.shape})"
        )
    return sig


def _first_bad_signal(sig: FloatArray) -> int:
    """Position of the first signal that is not +1/-1/0/NaN, or -1."""
    bad = ~((np.abs(sig) == 1.0) | (sig == 0.0) | np.isnan(sig))
    return int(np.argmax(bad)) if bool(bad.any()) else -1


def _raise_bad_signal(strategy: Strategy[Any], sig: FloatArray, i: int) -> None:
    if i >= 0:
        raise ParameterError(
            f"{strategy.name}: signals must be +1, -1, 0 or NaN (got {float(sig[i])!r} at bar {i})"
        )


def _trade_pnl_returns(trades: FloatArray) -> tuple[FloatArray, FloatArray]:
    pnl = np.ascontiguousarray(trades[:, _PNL])
    returns = pnl / (np.abs(trades[:, _SIZE]) * trades[:, _ENTRY_PX])
    return pnl, returns


def _trade_frame(trades: FloatArray, returns: FloatArray, index: pd.Index) -> pd.DataFrame:
    entry = trades[:, _ENTRY_BAR].astype(np.int64)
    exit_ = trades[:, _EXIT_BAR].astype(np.int64)
    signed = trades[:, _SIZE]
    return pd.DataFrame(  # columns in TRADE_COLUMNS order
        {
            "entry_time": index[entry],
            "exit_time": index[exit_],
            "side": _sides(signed > 0),
            "size": np.abs(signed),
            "entry_price": trades[:, _ENTRY_PX],
            "exit_price": trades[:, _EXIT_PX],
            "pnl": trades[:, _PNL],
            "return_pct": returns,
            "fees": trades[:, _FEES],
            "entry_bar": entry,
            "exit_bar": exit_,
        },
        copy=False,  # every column is an array made for it (or a view of `trades`)
    )


def _sides(long: npt.NDArray[np.bool_]) -> Any:
    """The trades' "long"/"short" names as a column of pandas' default string dtype."""
    which = long.astype(np.intp)
    if _ARROW_SIDES is None or which.shape[0] == 0:  # no trades: pandas makes it object
        return _SIDES[which]
    return pd.array(_ARROW_SIDES.take(which), dtype=_STR_DTYPE)
