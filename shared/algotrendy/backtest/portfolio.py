"""Portfolio backtests: several sleeves (symbol x strategy x params x weight) trading out
of ONE cash account.

Semantics, chosen so that one sleeve at weight 1 is exactly the single-asset engine
(`run_backtest`, see `vectorized.py` and `fills.py`), and everything else follows from
that plus one rule for sharing cash:

* **Time.** The portfolio clock is the sorted union of every sleeve's bar times. A sleeve
  computes its signals on its own bars and trades only on its own bars: a signal on its
  bar i fills at its bar i+1's open (at bar i's close with `trade_on_close`), exactly as
  the single-asset engine. Between its bars (a closed market, a gap) a position is
  marked at its last close, carried forward.
* **Target directions.** As in the single-asset engine, a non-NaN signal that differs
  from the direction of the sleeve's position closes it (one fill) and, if not 0, opens
  the new direction (a second fill); a position is never resized while its direction
  holds. Fill prices, fees, slippage and PnL are `fills.py`'s.
* **Sizing.** An entry is sized on the portfolio's total equity E at that moment: cash
  plus every open position marked at the current price (the bar's open for a symbol that
  has a bar at that time, its close with `trade_on_close`, otherwise its last close).
  `fraction`: ``order_units("fraction", weight * size, E)``, i.e. notional plus fees =
  weight x size x E; `whole`: the most whole units whose cost fits in weight x E.
  (`units` sizing is refused: a fixed unit count has no weight.)
* **No leverage.** An entry never costs more than the free cash: cash minus, for each
  open short, twice its entry notional (a short's sale proceeds stay in cash but are not
  free, and it locks the same amount again as collateral: 100% margin). An entry larger
  than the free cash is reduced to what it covers; if that is nothing it is skipped.
  Free cash at rounding level (what spending "all" of it leaves, at most
  ``fills.CASH_DUST`` x |E|) counts as nothing, so it skips the entry instead of buying
  a dust position. Both are recorded in `adjustments`. A skipped entry is not retried
  on later bars unless the strategy signals again (the single-asset engine's rule: only
  a non-NaN signal can move a position).
* **Order within one instant.** When several sleeves fill at the same time, all exits
  go first (freeing cash), then the entries in the order the sleeves were given.
* **End of data.** A position still open on a sleeve's last bar is reported as a round
  trip exiting at that bar's close without exit costs, the single-asset convention; it
  stays marked at that close until the end of the portfolio clock.

Attribution: a sleeve's *contribution* at time t is the cash its fills have moved so
far plus its open position at the current mark, so the contributions add up to total
equity minus starting cash. Per-sleeve (and per-symbol, per-strategy) metrics are those
of the curve ``allocation + contribution`` with allocation = weight x starting cash,
i.e. the return on the capital the weight nominally assigns (an approximation when the
weights do not sum to 1 or entries were reduced).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from algotrendy.backtest.config import BacktestConfig, Sizing
from algotrendy.backtest.fills import (
    SIZING_FRACTION,
    SIZING_WHOLE,
    cash_after,
    fill_fee,
    fill_price,
    order_units,
    spendable,
    trade_pnl,
)
from algotrendy.backtest.metrics import compute_metrics, drawdown
from algotrendy.backtest.result import TRADE_COLUMNS
from algotrendy.data.loaders import to_bars
from algotrendy.domain.bars import Bars
from algotrendy.errors import DataError, ParameterError
from algotrendy.strategies import Strategy, StrategyParams, get_strategy

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ADJUSTMENT_COLUMNS = (
    "time",
    "sleeve",
    "symbol",
    "bar",  # the sleeve's own bar position of the (attempted) fill
    "side",
    "requested_units",
    "filled_units",
    "equity",  # total equity the entry was sized on
    "free_cash",
    "action",  # "reduced" | "skipped"
)


@dataclass(frozen=True)
class Sleeve:
    """One strategy on one symbol with a share of the account. `name` defaults to
    "symbol/strategy" and must be unique within a portfolio."""

    symbol: str
    data: pd.DataFrame | Bars
    strategy: str | Strategy[Any]
    params: Mapping[str, Any] | StrategyParams | None = None
    weight: float = 1.0
    name: str | None = None


@dataclass(frozen=True)
class PortfolioResult:
    """`equity`: total equity, cash and drawdown on the union clock; `positions` and
    `contributions`: one column per sleeve; `sleeves`, `by_symbol`, `by_strategy`: one
    row each with its allocation, PnL and metrics; `trades`: every sleeve's round trips
    (bars are positions in the sleeve's own data); `adjustments`: reduced or skipped
    entries."""

    config: BacktestConfig
    metrics: dict[str, float]
    equity: pd.DataFrame
    positions: pd.DataFrame
    contributions: pd.DataFrame
    trades: pd.DataFrame
    sleeves: pd.DataFrame
    by_symbol: pd.DataFrame
    by_strategy: pd.DataFrame
    adjustments: pd.DataFrame
    sleeve_metrics: dict[str, dict[str, float]] = field(repr=False)

    @property
    def final_equity(self) -> float:
        return float(self.metrics["final_equity"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (non-finite numbers as None, times as ISO strings)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "metrics": {k: _clean(v) for k, v in self.metrics.items()},
            "sleeves": _records(self.sleeves),
            "by_symbol": _records(self.by_symbol),
            "by_strategy": _records(self.by_strategy),
            "adjustments": _records(self.adjustments),
            "trades": _records(self.trades),
        }


def _clean(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    flat = frame.reset_index() if frame.index.name else frame
    return [{str(k): _clean(v) for k, v in r.items()} for r in flat.to_dict(orient="records")]


@dataclass
class _Book:
    """One sleeve's inputs and running state."""

    name: str
    symbol: str
    strategy: str
    weight: float
    params: dict[str, Any]
    bars: Bars
    signals: FloatArray
    upos: IntArray  # union position of each own bar
    pos: float = 0.0
    entry_price: float = 0.0
    entry_fee: float = 0.0
    entry_bar: int = 0
    trades: list[tuple[float, ...]] = field(default_factory=list)
    pos_bars: list[int] = field(default_factory=list)
    pos_values: list[float] = field(default_factory=list)
    flow_u: list[int] = field(default_factory=list)
    flow_v: list[float] = field(default_factory=list)

    def set_pos(self, bar: int, value: float) -> None:
        self.pos = value
        self.pos_bars.append(bar)
        self.pos_values.append(value)

    def mark(self, u: int, trade_on_close: bool) -> float:
        """Price of the position at union time u (see the module docstring)."""
        b = int(np.searchsorted(self.upos, u, side="right")) - 1
        if self.upos[b] == u:
            return float(self.bars.close[b] if trade_on_close else self.bars.open[b])
        return float(self.bars.close[b])


def _bars_of(sleeve: Sleeve, label: str) -> Bars:
    bars = to_bars(sleeve.data, label)
    if isinstance(sleeve.data, Bars):  # a frame was checked by load_ohlcv already
        t = bars.time.astype("datetime64[ns]").view(np.int64)
        if t.shape[0] > 1 and bool((np.diff(t) <= 0).any()):
            raise DataError(f"{label}: bar times must be strictly increasing")
    return bars


def _prepare(sleeves: Sequence[Sleeve]) -> list[_Book]:
    if not sleeves:
        raise ParameterError("sleeves: need at least one sleeve")
    books: list[_Book] = []
    names: set[str] = set()
    for k, sl in enumerate(sleeves):
        if not isinstance(sl, Sleeve):
            raise ParameterError(f"sleeves[{k}]: expected a Sleeve, got {type(sl).__name__}")
        strat = get_strategy(sl.strategy)
        name = sl.name or f"{sl.symbol}/{strat.name}"
        if name in names:
            raise ParameterError(
                f"sleeves[{k}]: name {name!r} is used twice; give each sleeve a distinct name"
            )
        names.add(name)
        w = sl.weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not (0.0 < w <= 1.0):
            raise ParameterError(f"sleeve {name!r}: weight must be in (0, 1] (got {w!r})")
        params = strat.params(sl.params)
        bars = _bars_of(sl, f"sleeve {name!r}")
        sig = np.ascontiguousarray(strat.signals(bars, params), dtype=np.float64)
        if sig.shape != (len(bars),):
            raise ParameterError(
                f"sleeve {name!r}: {strat.name} returned {sig.shape} signals for {len(bars)} bars"
            )
        bad = ~((np.abs(sig) == 1.0) | (sig == 0.0) | np.isnan(sig))
        if bool(bad.any()):
            i = int(np.argmax(bad))
            raise ParameterError(
                f"sleeve {name!r}: signals must be +1, -1, 0 or NaN "
                f"(got {float(sig[i])} at bar {i})"
            )
        books.append(
            _Book(
                name=name,
                symbol=str(sl.symbol),
                strategy=strat.name,
                weight=float(w),
                params=params.model_dump(),
                bars=bars,
                signals=sig,
                upos=np.empty(0, dtype=np.int64),
            )
        )
    return books


def run_portfolio(
    sleeves: Sequence[Sleeve], *, config: BacktestConfig | None = None
) -> PortfolioResult:
    """Backtest `sleeves` sharing one cash account (semantics in the module docstring)."""
    cfg = config if config is not None else BacktestConfig()
    if cfg.sizing is Sizing.UNITS:
        raise ParameterError(
            "sizing: a portfolio sizes sleeves by weight; use sizing=fraction or whole, not units"
        )
    books = _prepare(sleeves)
    times_ns = [b.bars.time.astype("datetime64[ns]").view(np.int64) for b in books]
    union = np.unique(np.concatenate(times_ns))
    for b, t in zip(books, times_ns, strict=True):
        b.upos = np.searchsorted(union, t).astype(np.int64)

    toc = bool(cfg.trade_on_close)
    fee, fixed, slip = float(cfg.fee), float(cfg.fixed_fee), float(cfg.slippage)
    whole = cfg.sizing is Sizing.WHOLE
    size = float(cfg.size)

    # Candidate fills: a non-NaN signal on bar i can act at bar i+1 (or i with toc).
    ev_u, ev_k, ev_i, ev_j = [], [], [], []
    for k, b in enumerate(books):
        sig_bars = np.flatnonzero(~np.isnan(b.signals))
        fill_bars = sig_bars if toc else sig_bars + 1
        keep = fill_bars < len(b.bars)
        ev_u.append(b.upos[fill_bars[keep]])
        ev_k.append(np.full(int(keep.sum()), k, dtype=np.int64))
        ev_i.append(sig_bars[keep])
        ev_j.append(fill_bars[keep])
    eu, ek, ei, ej = (np.concatenate(a) for a in (ev_u, ev_k, ev_i, ev_j))
    order = np.lexsort((ek, eu))
    eu, ek, ei, ej = eu[order], ek[order], ei[order], ej[order]

    cash = float(cfg.cash)
    cash_u: list[int] = []
    cash_v: list[float] = []
    adjustments: list[dict[str, Any]] = []
    n_ev = eu.shape[0]
    start = 0
    while start < n_ev:
        u = int(eu[start])
        stop = start
        while stop < n_ev and eu[stop] == u:
            stop += 1
        acting: list[tuple[_Book, int, float]] = []
        for e in range(start, stop):
            b = books[int(ek[e])]
            s = float(b.signals[int(ei[e])])
            cur = 1.0 if b.pos > 0.0 else (-1.0 if b.pos < 0.0 else 0.0)
            if s != cur:
                acting.append((b, int(ej[e]), s))
        start = stop
        if not acting:
            continue
        for b, j, _ in acting:  # exits first: they free cash for the entries
            if b.pos == 0.0:
                continue
            base = float(b.bars.close[j] if toc else b.bars.open[j])
            pos = b.pos
            px = fill_price(base, -1.0 if pos > 0.0 else 1.0, slip)
            f = fill_fee(px, abs(pos), fee, fixed)
            cash = cash_after(cash, -pos, px, f)
            fees = b.entry_fee + f
            b.trades.append(
                (
                    b.entry_bar,
                    j,
                    pos,
                    b.entry_price,
                    px,
                    trade_pnl(pos, b.entry_price, px, fees),
                    fees,
                )
            )
            b.flow_u.append(u)
            b.flow_v.append(pos * px - f)
            b.set_pos(j, 0.0)
        for b, j, s in acting:
            if s == 0.0:
                continue
            base = float(b.bars.close[j] if toc else b.bars.open[j])
            px = fill_price(base, s, slip)
            equity = cash
            reserved = 0.0
            for o in books:
                if o.pos != 0.0:
                    equity += o.pos * o.mark(u, toc)
                    if o.pos < 0.0:
                        reserved += 2.0 * abs(o.pos) * o.entry_price
            free = cash - reserved
            spend = spendable(free, equity)  # round-off residue is not cash (fills.py)
            if whole:
                units = order_units(SIZING_WHOLE, size, b.weight * equity, px, fee, fixed)
                cap = order_units(SIZING_WHOLE, 1.0, spend, px, fee, fixed)
            else:
                units = order_units(SIZING_FRACTION, b.weight * size, equity, px, fee, fixed)
                cap = order_units(SIZING_FRACTION, 1.0, spend, px, fee, fixed)
            requested = units
            if units > cap:
                units = cap
            if units <= 0.0 or units != requested:
                adjustments.append(
                    {
                        "time": int(union[u]),
                        "sleeve": b.name,
                        "symbol": b.symbol,
                        "bar": j,
                        "side": "long" if s > 0 else "short",
                        "requested_units": max(requested, 0.0),
                        "filled_units": max(units, 0.0),
                        "equity": equity,
                        "free_cash": free,
                        "action": "skipped" if units <= 0.0 else "reduced",
                    }
                )
                if units <= 0.0:
                    continue
            f = fill_fee(px, units, fee, fixed)
            pos = s * units
            cash = cash_after(cash, pos, px, f)
            b.entry_price, b.entry_fee, b.entry_bar = px, f, j
            b.flow_u.append(u)
            b.flow_v.append(-pos * px - f)
            b.set_pos(j, pos)
        cash_u.append(u)
        cash_v.append(cash)

    for b in books:  # open at the end: valued at the sleeve's last close, no exit costs
        if b.pos != 0.0:
            last = len(b.bars) - 1
            px = float(b.bars.close[last])
            b.trades.append(
                (
                    b.entry_bar,
                    last,
                    b.pos,
                    b.entry_price,
                    px,
                    trade_pnl(b.pos, b.entry_price, px, b.entry_fee),
                    b.entry_fee,
                )
            )
    return _assemble(books, union, cash_u, cash_v, adjustments, cfg)


def _ffill_steps(n: int, at: list[int], values: list[float], before: float) -> FloatArray:
    """Step function on 0..n-1: `values[m]` from position `at[m]` on (the last of equal
    positions wins), `before` until the first step."""
    out = np.full(n, np.nan)
    if at:
        pos = np.asarray(at, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float64)
        # numpy leaves the winner of repeated indices in one assignment unspecified:
        # keep explicitly the last value given for each position.
        last = pos.shape[0] - 1 - np.unique(pos[::-1], return_index=True)[1]
        out[pos[last]] = vals[last]
    if n:
        return pd.Series(out).ffill().fillna(before).to_numpy(dtype=np.float64)
    return out


def _assemble(
    books: list[_Book],
    union: IntArray,
    cash_u: list[int],
    cash_v: list[float],
    adjustments: list[dict[str, Any]],
    cfg: BacktestConfig,
) -> PortfolioResult:
    n = union.shape[0]
    times = union.view("datetime64[ns]")
    index = pd.DatetimeIndex(times, name="time").tz_localize("UTC")
    cash_series = _ffill_steps(n, cash_u, cash_v, float(cfg.cash))
    equity = cash_series.copy()
    positions: dict[str, FloatArray] = {}
    contributions: dict[str, FloatArray] = {}
    gross = np.zeros(n)
    trade_frames: list[pd.DataFrame] = []
    for b in books:
        own_pos = _ffill_steps(len(b.bars), b.pos_bars, b.pos_values, 0.0)
        own_at = np.searchsorted(b.upos, np.arange(n), side="right") - 1
        has = own_at >= 0
        at = np.where(has, own_at, 0)
        pos_u = np.where(has, own_pos[at], 0.0)
        close_u = b.bars.close[at]
        marked = np.where(pos_u != 0.0, pos_u * close_u, 0.0)
        equity = equity + marked
        flows = np.zeros(n)
        if b.flow_u:
            np.add.at(flows, np.asarray(b.flow_u, dtype=np.int64), np.asarray(b.flow_v))
        positions[b.name] = pos_u
        contributions[b.name] = np.cumsum(flows) + marked
        gross = gross + np.abs(pos_u)
        trade_frames.append(_trade_frame(b))
    trades = pd.concat(trade_frames, ignore_index=True)

    def metrics_of(
        eq: FloatArray, pos: FloatArray, tr: pd.DataFrame, cash: float
    ) -> dict[str, float]:
        return compute_metrics(
            equity=eq,
            times=times,
            position=pos,
            trade_pnl=tr["pnl"].to_numpy(dtype=np.float64),
            trade_returns=tr["return_pct"].to_numpy(dtype=np.float64),
            cash=cash,
            risk_free=cfg.risk_free,
            periods_per_year=cfg.periods_per_year,
        )

    total = metrics_of(equity, gross, trades, float(cfg.cash))
    sleeve_metrics: dict[str, dict[str, float]] = {}
    rows = []
    for b in books:
        alloc = b.weight * float(cfg.cash)
        tr = trades[trades["sleeve"] == b.name]
        m = metrics_of(alloc + contributions[b.name], positions[b.name], tr, alloc)
        sleeve_metrics[b.name] = m
        rows.append(
            {
                "sleeve": b.name,
                "symbol": b.symbol,
                "strategy": b.strategy,
                "params": b.params,
                "weight": b.weight,
                "allocation": alloc,
                "pnl": float(contributions[b.name][-1]),
                **m,
            }
        )
    sleeves_frame = pd.DataFrame.from_records(rows).set_index("sleeve")

    def rollup(key: str) -> pd.DataFrame:
        out = []
        for value in dict.fromkeys(getattr(b, key) for b in books):
            group = [b for b in books if getattr(b, key) == value]
            alloc = sum(b.weight for b in group) * float(cfg.cash)
            contrib = np.sum([contributions[b.name] for b in group], axis=0)
            pos = np.sum([np.abs(positions[b.name]) for b in group], axis=0)
            tr = trades[trades[key].isin([value])]
            out.append(
                {
                    key: value,
                    "sleeves": len(group),
                    "weight": sum(b.weight for b in group),
                    "allocation": alloc,
                    "pnl": float(contrib[-1]),
                    **metrics_of(alloc + contrib, pos, tr, alloc),
                }
            )
        return pd.DataFrame.from_records(out).set_index(key)

    adj = pd.DataFrame.from_records(adjustments, columns=list(ADJUSTMENT_COLUMNS))
    adj["time"] = pd.to_datetime(adj["time"].astype(np.int64), unit="ns", utc=True)
    return PortfolioResult(
        config=cfg,
        metrics=total,
        equity=pd.DataFrame(
            {"equity": equity, "cash": cash_series, "drawdown": drawdown(equity)}, index=index
        ),
        positions=pd.DataFrame(positions, index=index),
        contributions=pd.DataFrame(contributions, index=index),
        trades=trades,
        sleeves=sleeves_frame,
        by_symbol=rollup("symbol"),
        by_strategy=rollup("strategy"),
        adjustments=adj,
        sleeve_metrics=sleeve_metrics,
    )


def _trade_frame(b: _Book) -> pd.DataFrame:
    """The single-asset engine's trade table (runner._trade_frame) plus sleeve columns."""
    arr = np.asarray(b.trades, dtype=np.float64).reshape(-1, 7)
    entry = arr[:, 0].astype(np.int64)
    exit_ = arr[:, 1].astype(np.int64)
    signed = arr[:, 2]
    idx = pd.DatetimeIndex(b.bars.time.astype("datetime64[ns]")).tz_localize("UTC")
    frame = pd.DataFrame(
        {
            "entry_time": idx[entry],
            "exit_time": idx[exit_],
            "side": np.where(signed > 0, "long", "short"),
            "size": np.abs(signed),
            "entry_price": arr[:, 3],
            "exit_price": arr[:, 4],
            "pnl": arr[:, 5],
            "return_pct": arr[:, 5] / (np.abs(signed) * arr[:, 3]),
            "fees": arr[:, 6],
            "entry_bar": entry,
            "exit_bar": exit_,
        }
    )
    frame = frame.loc[:, list(TRADE_COLUMNS)]
    frame.insert(0, "strategy", b.strategy)
    frame.insert(0, "symbol", b.symbol)
    frame.insert(0, "sleeve", b.name)
    return frame
