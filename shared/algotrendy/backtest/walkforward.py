"""Walk-forward analysis: optimise in-sample, trade the winner out-of-sample, repeat.

Windows are counted in bars (positions, half-open [start, end)):

* rolling: in-sample [k*test, k*test + train), out-of-sample the `test` bars after it;
* anchored: in-sample [0, train + k*test), the same out-of-sample windows.

Only whole out-of-sample windows are used: the last (n - train) mod test bars are left
out (`WalkForwardResult.unused_bars`), so every window is tested on the same length.
The out-of-sample windows are back to back, so their stitched curve is continuous.

Per window (the walk-forward analysis of Pardo, "The Evaluation and Optimization of
Trading Strategies", 2nd ed., Wiley 2008):

1. every grid combination is backtested on the in-sample bars alone (the sweep of
   `algotrendy.backtest.sweep`, one plan for all windows) and ranked by `metric`; the
   top-ranked combination wins (ties and all-NaN metrics resolve to grid order);
2. the winner's signals are computed on bars [0, oos_end), so indicators are warmed up
   by all the history before the window and nothing after it is seen; only the signals
   inside the window are kept, so the window starts flat and its first fill is the one a
   signal on its first bar triggers (at the next open, or at that close with
   trade_on_close). A position still open on the window's last bar is closed at that
   bar's close with the usual fee and slippage, so each window's result is a complete,
   independent set of trades;
3. the window is backtested with the previous window's ending equity as its cash (the
   first with `config.cash`), so the stitched curve compounds exactly as one account
   would, whole-unit sizing and fixed fees included. The stitched curve's metrics come
   from `compute_metrics` over all out-of-sample bars and trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from algotrendy.backtest import fills
from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.grid import GridInput
from algotrendy.backtest.metrics import METRICS, compute_metrics, infer_periods_per_year
from algotrendy.backtest.result import BacktestResult
from algotrendy.backtest.runner import run_backtest
from algotrendy.backtest.sweep import SweepRow, aggregate, plan_sweep, run_plan
from algotrendy.data.loaders import load_ohlcv
from algotrendy.domain.bars import Bars
from algotrendy.errors import DataError, ParameterError
from algotrendy.strategies import Strategy, StrategyParams, get_strategy
from algotrendy.strategies.base import FloatArray

Mode = Literal["rolling", "anchored"]


@dataclass(frozen=True)
class Window:
    """Bar positions of one walk-forward step, half-open: [is_start, is_end) in-sample,
    [oos_start, oos_end) out-of-sample, oos_start == is_end."""

    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def _positive_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ParameterError(f"{name}: must be an integer number of bars (got {value!r})")
    if int(value) < minimum:
        raise ParameterError(f"{name}: must be at least {minimum} bars (got {value})")
    return int(value)


def split_windows(n_bars: int, *, train: int, test: int, mode: Mode = "rolling") -> list[Window]:
    """The walk-forward windows over `n_bars` bars (see the module docstring).

    Raises ParameterError when train/test are not integers >= 2, the mode is unknown or
    train + test exceeds the data.
    """
    tr = _positive_int(train, "train", 2)
    te = _positive_int(test, "test", 2)
    if mode not in ("rolling", "anchored"):
        raise ParameterError(f"mode: must be 'rolling' or 'anchored' (got {mode!r})")
    if tr + te > n_bars:
        raise ParameterError(
            f"train ({tr}) + test ({te}) = {tr + te} bars exceed the data's {n_bars} bars; "
            "use shorter windows or more data"
        )
    count = (n_bars - tr) // te
    out = []
    for k in range(count):
        oos_start = tr + k * te
        is_start = 0 if mode == "anchored" else k * te
        out.append(Window(k, is_start, oos_start, oos_start, oos_start + te))
    return out


class _NoParams(StrategyParams):
    pass


class _FixedSignals(Strategy[_NoParams]):
    """Replays signals computed beforehand, so the engine can trade an out-of-sample
    window with indicators warmed up on the bars before it."""

    name = "walk_forward_oos"
    description = "precomputed signals of a walk-forward window"
    Params = _NoParams

    def __init__(self, signals: FloatArray) -> None:
        self._signals = signals

    def signals(self, bars: Bars, params: _NoParams) -> FloatArray:
        if len(bars) != self._signals.shape[0]:  # pragma: no cover - internal misuse
            raise ParameterError(
                f"walk-forward: {self._signals.shape[0]} signals for {len(bars)} bars"
            )
        return self._signals


class _WindowSlices:
    """Loader for the sweep: symbol "wK" -> the in-sample bars of window K. A class (not
    a closure) so a process pool can pickle it."""

    def __init__(self, bars: Bars, windows: list[Window]) -> None:
        self.bars = bars
        self.windows = {f"w{w.index}": w for w in windows}

    def __call__(self, symbol: str) -> Bars:
        w = self.windows[symbol]
        return _slice(self.bars, w.is_start, w.is_end)


def _slice(bars: Bars, start: int, end: int) -> Bars:
    s = slice(start, end)
    return Bars(
        bars.time[s], bars.open[s], bars.high[s], bars.low[s], bars.close[s], bars.volume[s]
    )


@dataclass(frozen=True)
class WalkForwardResult:
    """`windows`: one row per window (positions, times, best params, in-sample metric,
    out-of-sample metrics prefixed `oos_`); `equity`: the stitched out-of-sample curve;
    `metrics`: of that curve; `trades`: every out-of-sample trade with its window and
    bar positions in the full data."""

    strategy: str
    mode: Mode
    train: int
    test: int
    metric: str
    windows: pd.DataFrame
    equity: pd.Series
    position: pd.Series
    metrics: dict[str, float]
    trades: pd.DataFrame
    n_combos: int
    n_skipped: int
    unused_bars: int
    config: BacktestConfig = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (non-finite numbers as None)."""

        def clean(v: Any) -> Any:
            v = v.item() if hasattr(v, "item") else v
            if isinstance(v, pd.Timestamp):
                return v.isoformat()
            if isinstance(v, float) and not np.isfinite(v):
                return None
            return v

        return {
            "strategy": self.strategy,
            "mode": self.mode,
            "train": self.train,
            "test": self.test,
            "metric": self.metric,
            "n_combos": self.n_combos,
            "n_skipped": self.n_skipped,
            "unused_bars": self.unused_bars,
            "metrics": {k: clean(v) for k, v in self.metrics.items()},
            "windows": [
                {str(k): clean(v) for k, v in r.items()}
                for r in self.windows.to_dict(orient="records")
            ],
        }


def _as_frame(data: pd.DataFrame | Bars) -> pd.DataFrame:
    if isinstance(data, Bars):
        idx = pd.DatetimeIndex(data.time, name="time").tz_localize("UTC")
        return pd.DataFrame(
            {
                "open": data.open,
                "high": data.high,
                "low": data.low,
                "close": data.close,
                "volume": data.volume,
            },
            index=idx,
        )
    if isinstance(data, pd.DataFrame):
        return load_ohlcv(data)
    raise DataError(f"data: expected a DataFrame or Bars, got {type(data).__name__}")


def walk_forward(
    data: pd.DataFrame | Bars,
    strategy: str | Strategy[Any],
    grid: GridInput,
    *,
    config: BacktestConfig | None = None,
    train: int,
    test: int,
    mode: Mode = "rolling",
    metric: str = "sharpe",
    workers: int = 1,
    progress: bool = False,
) -> WalkForwardResult:
    """Walk-forward optimisation of `strategy` over `grid` (see the module docstring).

    When `config.periods_per_year` is None it is inferred once from the whole data and
    used for every window, in- and out-of-sample, so short windows cannot annualise
    differently from the stitched curve.
    """
    strat = get_strategy(strategy)
    cfg = config if config is not None else BacktestConfig()
    if metric not in METRICS:
        raise ParameterError(f"metric: unknown {metric!r}; known: {', '.join(METRICS)}")
    frame = _as_frame(data)
    bars = Bars.from_frame(frame)
    n = len(bars)
    windows = split_windows(n, train=train, test=test, mode=mode)
    if cfg.periods_per_year is None:
        cfg = cfg.model_copy(update={"periods_per_year": infer_periods_per_year(bars.time)})
    names = [f"w{w.index}" for w in windows]
    plan = plan_sweep(strat, grid, names, config=cfg, chunk_size=_CHUNK)
    rows = run_plan(
        plan,
        _WindowSlices(bars, windows),
        strategy=strat,
        workers=workers,
        progress=progress,
        description=f"walk-forward {strat.name}",
    )
    by_window: dict[str, list[SweepRow]] = {name: [] for name in names}
    for r in rows:
        by_window[r.symbol].append(r)

    times = pd.DatetimeIndex(frame.index)
    equity_parts: list[FloatArray] = []
    position_parts: list[FloatArray] = []
    trade_parts: list[pd.DataFrame] = []
    records: list[dict[str, Any]] = []
    cash = cfg.cash
    for w, name in zip(windows, names, strict=True):
        ranked = aggregate(by_window[name], metric=metric)
        best = {p: _py(ranked.iloc[0][p]) for p in plan.param_names}
        is_value = float(ranked.iloc[0][metric])
        if cash <= 0:
            raise ParameterError(
                f"walk-forward: equity fell to {cash} before window {w.index}; "
                "the account cannot fund later windows"
            )
        seg_cfg = cfg.model_copy(update={"cash": cash})
        params = strat.params(best)
        history = _slice(bars, 0, w.oos_end)
        sig = np.asarray(strat.signals(history, params), dtype=np.float64)[w.oos_start :]
        result = run_backtest(
            frame.iloc[w.oos_start : w.oos_end],
            _FixedSignals(np.ascontiguousarray(sig)),
            None,
            **seg_cfg.model_dump(),
        )
        equity, position, trades = _close_at_end(result, bars.close[w.oos_end - 1], seg_cfg)
        seg_metrics = compute_metrics(
            equity=equity,
            times=bars.time[w.oos_start : w.oos_end],
            position=position,
            trade_pnl=trades["pnl"].to_numpy(dtype=np.float64),
            trade_returns=trades["return_pct"].to_numpy(dtype=np.float64),
            cash=cash,
            risk_free=cfg.risk_free,
            periods_per_year=cfg.periods_per_year,
        )
        cash = float(equity[-1])
        equity_parts.append(equity)
        position_parts.append(position)
        trades = trades.copy()
        trades["entry_bar"] = trades["entry_bar"] + w.oos_start
        trades["exit_bar"] = trades["exit_bar"] + w.oos_start
        trades.insert(0, "window", w.index)
        trade_parts.append(trades)
        records.append(
            {
                "window": w.index,
                "is_start": w.is_start,
                "is_end": w.is_end,
                "oos_start": w.oos_start,
                "oos_end": w.oos_end,
                "is_start_time": times[w.is_start],
                "is_end_time": times[w.is_end - 1],
                "oos_start_time": times[w.oos_start],
                "oos_end_time": times[w.oos_end - 1],
                **best,
                f"is_{metric}": is_value,
                **{f"oos_{k}": v for k, v in seg_metrics.items()},
            }
        )

    oos = slice(windows[0].oos_start, windows[-1].oos_end)
    equity_all = np.concatenate(equity_parts)
    position_all = np.concatenate(position_parts)
    trades_all = pd.concat(trade_parts, ignore_index=True)
    metrics = compute_metrics(
        equity=equity_all,
        times=bars.time[oos],
        position=position_all,
        trade_pnl=trades_all["pnl"].to_numpy(dtype=np.float64),
        trade_returns=trades_all["return_pct"].to_numpy(dtype=np.float64),
        cash=cfg.cash,
        risk_free=cfg.risk_free,
        periods_per_year=cfg.periods_per_year,
    )
    return WalkForwardResult(
        strategy=strat.name,
        mode=mode,
        train=int(train),
        test=int(test),
        metric=metric,
        windows=pd.DataFrame.from_records(records),
        equity=pd.Series(equity_all, index=times[oos], name="equity"),
        position=pd.Series(position_all, index=times[oos], name="position"),
        metrics=metrics,
        trades=trades_all,
        n_combos=plan.n_combos,
        n_skipped=plan.n_skipped,
        unused_bars=n - windows[-1].oos_end,
        config=cfg,
    )


_CHUNK = 50  # combinations per chunk of the in-sample sweep (one window per symbol)


def _close_at_end(
    result: BacktestResult, last_close: float, cfg: BacktestConfig
) -> tuple[FloatArray, FloatArray, pd.DataFrame]:
    """The segment's equity, position and trades with a position still open on the last
    bar closed at that bar's close, paying slippage and the exit fee (`fills.py`).

    The engine reports such a position as a round trip "exiting" at the last close
    without exit costs (an open position marked to market); a walk-forward window must
    end flat, so the exit is charged here: cash changes by the closing fill, the last
    equity point becomes that cash and the last position zero.
    """
    equity = result.equity["equity"].to_numpy(dtype=np.float64).copy()
    position = result.equity["position"].to_numpy(dtype=np.float64).copy()
    trades = result.trades.reset_index(drop=True).copy()
    pos = float(position[-1])
    if pos == 0.0:
        return equity, position, trades
    side = -1.0 if pos > 0 else 1.0
    px = fills.fill_price(last_close, side, cfg.slippage)
    fee = fills.fill_fee(px, abs(pos), cfg.fee, cfg.fixed_fee)
    cash_before = equity[-1] - pos * last_close
    equity[-1] = fills.cash_after(cash_before, -pos, px, fee)
    position[-1] = 0.0
    last = len(trades) - 1
    entry_px = float(trades["entry_price"].to_numpy(dtype=np.float64)[last])
    total_fees = float(trades["fees"].to_numpy(dtype=np.float64)[last]) + fee
    pnl = fills.trade_pnl(pos, entry_px, px, total_fees)
    trades.loc[last, ["exit_price", "fees", "pnl", "return_pct"]] = [
        px,
        total_fees,
        pnl,
        pnl / (abs(pos) * entry_px),
    ]
    return equity, position, trades


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
