"""Event-driven engine: the strategy sees the bars one at a time and places orders.

Flow: validated bars -> bar events in time order -> on each bar, first the working
orders are matched against the bar (fills), then `strategy.on_bar(ctx, i, signals)` runs
at the bar's close and may place or cancel orders through `ctx` (the `BarContext`
protocol) -> fills update the position (FIFO lots) and cash -> closed lots become round
trips -> after the last bar the equity curve is computed in one vectorised step from the
recorded (bar, position, cash) changes: ``equity = cash + position * close``.

Orders placed on bar i are live from bar i+1 (good till cancelled). Matching a bar with
open O, high H, low L (rules for a buy; a sell is the mirror image):

* market (and `target` / `close`): fills at O, plus slippage. With `trade_on_close`,
  market orders fill at once at the close of the bar they were placed on instead.
* limit at X: fills if L <= X, at min(O, X): at the open if the bar gaps through the
  limit (a better price), else at the limit. No slippage: a limit order never pays more
  than its limit.
* stop at S: fills if H >= S, at max(O, S): at the open if the bar gaps through the stop
  (a worse price), else at the stop; plus slippage, since a triggered stop is a market
  order.
* stop-limit (S, X): triggers if H >= S (at max(O, S)); if that trigger price is <= X it
  fills there (no slippage, it is a limit order), else it becomes a limit order at X. In
  the same bar that limit can still fill if it was triggered at the open (the rest of the
  bar came after the trigger); when triggered inside the bar we cannot know whether the
  low came after the high, so it is left for the next bars (backtesting.py makes the
  same pessimistic call).

Within a bar, everything that fills at the open (market orders, gapped stops and
limits) fills first, then the orders touched inside the bar, each group in the order
the orders were placed. Sizing, fees, slippage and PnL are computed by `fills.py`, the
same code as the vectorised kernel, and orders without a size use the sizing rule on
the equity at the fill (cash + position marked at the fill price) and never spend more
than the free cash (see fills.py). `target(d)` behaves like backtesting.py's
``exclusive_orders=True``: it cancels every working order and, at the fill, closes the
position (one fill) and opens direction d (a second fill) unless the position already
has direction d. An unsized order whose size comes out at zero (the free cash does not
cover it) is cancelled without a trace, as backtesting.py's broker does, and orders
still working after the last bar are dropped. Open lots at the end are valued at the
last close and reported as round trips exiting there without exit costs, exactly as the
vectorised path does (see `vectorized.py`).

`close()` flattens whatever the position is when it fills and leaves other orders
alone; `cancel_all()` cancels every working order. Explicit `buy`/`sell` orders net
against the position: closing fills close lots first-in first-out (each closed lot, or
part of one, is a round trip; its entry fee and the closing fill's fee are shared pro
rata to the units), and any excess opens a new lot.

Speed (~0.4 us per bar when `on_bar` runs on every bar, see bench/backtest.md): prices are
read through memoryviews (Python floats, no up-front list conversion); `on_bar` is
called on every bar only if the strategy overrides it, otherwise only on bars with a
signal, since the default `on_bar` ignores the others; bars in between are visited
only while some order is working; positions and cash are logged per fill and the
equity curve is built from that log with numpy after the loop.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.fills import (
    SIZING_UNITS,
    cash_after,
    fill_fee,
    fill_price,
    order_units,
    sizing_code,
    spendable,
    trade_pnl,
)
from algotrendy.domain.bars import Bars
from algotrendy.errors import ParameterError
from algotrendy.strategies.base import Strategy, StrategyParams

FloatArray = npt.NDArray[np.float64]

MARKET = 0
LIMIT = 1
STOP = 2
STOP_LIMIT = 3
TARGET = 4
CLOSE = 5

# A remainder this small relative to the fill (fractional units summed lot by lot) is
# round-off, not a position: it is dropped rather than left as a phantom lot.
_DUST = 1e-9

ORDER_KIND_NAMES = ("market", "limit", "stop", "stop_limit", "target", "close")


class Order:
    """A working order. `side` is +1 (buy) or -1 (sell); for `TARGET` it is the target
    direction (-1, 0, +1). `size` None means "use the sizing rule"."""

    __slots__ = (
        "kind",
        "level",
        "limit",
        "market",
        "rises",
        "side",
        "size",
        "stop",
        "tag",
        "triggered",
    )

    def __init__(
        self,
        kind: int,
        side: float,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        tag: str | None = None,
    ) -> None:
        self.kind = kind
        self.market = kind in (MARKET, TARGET, CLOSE)  # fills at the next price, any price
        self.side = side
        self.size = size
        self.limit = limit
        self.stop = stop
        self.tag = tag
        self.triggered = False
        # The price that must be reached for anything to happen, and whether the bar's
        # high (rises) or low must reach it: a cheap "nothing to do on this bar" test.
        self.level = 0.0
        self.rises = False
        if kind == LIMIT:
            self.set_limit_level()
        elif kind in (STOP, STOP_LIMIT):
            assert stop is not None
            self.level = stop
            self.rises = side > 0.0

    def set_limit_level(self) -> None:
        """A limit order (or a triggered stop-limit) waits for the price to come to it."""
        assert self.limit is not None
        self.level = self.limit
        self.rises = self.side < 0.0

    def __repr__(self) -> str:
        return (
            f"Order({ORDER_KIND_NAMES[self.kind]}, side={self.side:+.0f}, size={self.size}, "
            f"limit={self.limit}, stop={self.stop}, tag={self.tag!r})"
        )


class EventBroker:
    """Cash, position, FIFO lots, working orders and the fill log of one backtest."""

    def __init__(self, bars: Bars, config: BacktestConfig) -> None:
        # memoryviews index to Python floats (fast scalar arithmetic) without converting
        # a million-element array up front as `tolist()` would.
        self.close_array = np.ascontiguousarray(bars.close, dtype=np.float64)
        self.open = _floats(bars.open)
        self.high = _floats(bars.high)
        self.low = _floats(bars.low)
        self.close_ = _floats(self.close_array)
        self.n = len(bars)
        self.cash0 = float(config.cash)
        self.cash = self.cash0
        self.fee = float(config.fee)
        self.fixed_fee = float(config.fixed_fee)
        self.slippage = float(config.slippage)
        self.sizing = sizing_code(config.sizing)
        self.size = float(config.size)
        self.trade_on_close = bool(config.trade_on_close)
        self.pos = 0.0
        # Open lots, oldest first: [signed size, entry price, entry fee left, entry bar].
        self.lots: list[list[float]] = []
        self.orders: list[Order] = []
        # Round trips: (entry_bar, exit_bar, signed_size, entry, exit, pnl, fees).
        self.trades: list[tuple[float, float, float, float, float, float, float]] = []
        # State after the last fill of each bar that had fills.
        self.change_bar: list[int] = []
        self.change_pos: list[float] = []
        self.change_cash: list[float] = []

    # -- fills -----------------------------------------------------------------------

    def fill(self, i: int, units: float, px: float, fee_paid: float) -> None:
        """Book a fill of signed `units` at `px` on bar i: cash, FIFO lots, round trips."""
        self.cash = cash_after(self.cash, units, px, fee_paid)
        self.pos = self.pos + units
        left = units
        lots = self.lots
        while lots and left != 0.0 and (lots[0][0] > 0.0) != (left > 0.0):
            lot = lots[0]
            lot_size = lot[0]
            if abs(left) >= abs(lot_size):
                closed = lot_size
                entry_fee = lot[2]
                lots.pop(0)
            else:
                closed = -left
                share = abs(left) / abs(lot_size)
                entry_fee = lot[2] * share
                lot[0] = lot_size - closed
                lot[2] = lot[2] - entry_fee
            exit_fee = fee_paid if closed == -units else fee_paid * (abs(closed) / abs(units))
            fees = entry_fee + exit_fee
            self.trades.append(
                (lot[3], float(i), closed, lot[1], px, trade_pnl(closed, lot[1], px, fees), fees)
            )
            left = left + closed
            if abs(left) <= _DUST * abs(units):
                left = 0.0  # round-off between the running position and the lots
        if not lots and left == 0.0:
            self.pos = 0.0
        if left != 0.0:
            open_fee = fee_paid if left == units else fee_paid * (abs(left) / abs(units))
            lots.append([left, px, open_fee, float(i)])
        if self.change_bar and self.change_bar[-1] == i:
            self.change_pos[-1] = self.pos
            self.change_cash[-1] = self.cash
        else:
            self.change_bar.append(i)
            self.change_pos.append(self.pos)
            self.change_cash.append(self.cash)

    def market_fill(self, i: int, order: Order, base: float) -> None:
        """Execute a market-type order (market, target, close, triggered stop) at `base`."""
        kind = order.kind
        pos = self.pos
        if kind >= TARGET:  # TARGET or CLOSE
            d = order.side if kind == TARGET else 0.0
            cur = 1.0 if pos > 0.0 else (-1.0 if pos < 0.0 else 0.0)
            if d == cur:
                return
            if pos != 0.0:
                px = fill_price(base, -cur, self.slippage)
                self.fill(i, -pos, px, fill_fee(px, abs(pos), self.fee, self.fixed_fee))
            if d != 0.0:
                px = fill_price(base, d, self.slippage)
                units = order_units(self.sizing, self.size, self.cash, px, self.fee, self.fixed_fee)
                if units > 0.0:
                    self.fill(i, d * units, px, fill_fee(px, units, self.fee, self.fixed_fee))
            return
        px = fill_price(base, order.side, self.slippage)
        self.sized_fill(i, order, px)

    def sized_fill(self, i: int, order: Order, px: float) -> None:
        units = order.size
        if units is None:
            # Sized on equity, never beyond the free cash (fills.py): a second all-in
            # buy() while long finds ~no free cash and is cancelled, not financed.
            pos = self.pos
            equity = self.cash + pos * px if pos != 0.0 else self.cash
            free = self.cash if pos >= 0.0 else equity + pos * px  # cash - 2|pos|px
            free = spendable(free, equity)
            sizing, fee, fixed = self.sizing, self.fee, self.fixed_fee
            units = order_units(sizing, self.size, equity, px, fee, fixed)
            if sizing != SIZING_UNITS:
                units = min(units, order_units(sizing, 1.0, free, px, fee, fixed))
            if units <= 0.0:
                return
        self.fill(i, order.side * units, px, fill_fee(px, units, self.fee, self.fixed_fee))

    def match(self, i: int) -> None:
        """Match the working orders against bar i (rules in the module docstring)."""
        h = self.high[i]
        lo = self.low[i]
        for order in self.orders:
            if order.market or ((h >= order.level) if order.rises else (lo <= order.level)):
                break
        else:
            return  # no order can fill or trigger on this bar
        o = self.open[i]
        rest: list[Order] = []
        # Pass 1: everything that fills at the open.
        for order in self.orders:
            if order.market:
                self.market_fill(i, order, o)
                continue
            kind = order.kind
            buy = order.side > 0.0
            if kind == STOP or (kind == STOP_LIMIT and not order.triggered):
                stop = order.stop
                assert stop is not None
                if (o >= stop) if buy else (o <= stop):
                    if kind == STOP:
                        self.market_fill(i, order, o)
                        continue
                    order.triggered = True  # triggered at the open: now a limit order
                    order.set_limit_level()
                else:
                    rest.append(order)
                    continue
            limit = order.limit
            assert limit is not None
            if (o <= limit) if buy else (o >= limit):
                self.sized_fill(i, order, o)
            else:
                rest.append(order)
        # Pass 2: touches inside the bar.
        still: list[Order] = []
        for order in rest:
            kind = order.kind
            buy = order.side > 0.0
            if kind == STOP:
                stop = order.stop
                assert stop is not None
                if (h >= stop) if buy else (lo <= stop):
                    self.market_fill(i, order, stop)
                else:
                    still.append(order)
                continue
            limit = order.limit
            assert limit is not None
            if kind == STOP_LIMIT and not order.triggered:
                stop = order.stop
                assert stop is not None
                if (h >= stop) if buy else (lo <= stop):
                    order.triggered = True
                    order.set_limit_level()
                    if (stop <= limit) if buy else (stop >= limit):
                        self.sized_fill(i, order, stop)
                        continue
                still.append(order)
                continue
            if (lo <= limit) if buy else (h >= limit):
                self.sized_fill(i, order, limit)
            else:
                still.append(order)
        self.orders = still

    def fill_at_close(self, i: int) -> None:
        """`trade_on_close`: market-type orders placed on bar i fill at its close."""
        c = self.close_[i]
        keep: list[Order] = []
        for order in self.orders:
            if order.market:
                self.market_fill(i, order, c)
            else:
                keep.append(order)
        self.orders = keep

    def finish(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Value open lots at the last close; (equity, position, trades[k, 7])."""
        n = self.n
        last = self.close_[n - 1]
        for lot in self.lots:
            size, entry, fee_left, bar = lot
            self.trades.append(
                (
                    bar,
                    float(n - 1),
                    size,
                    entry,
                    last,
                    trade_pnl(size, entry, last, fee_left),
                    fee_left,
                )
            )
        self.lots = []
        bars_changed = np.asarray(self.change_bar, dtype=np.int64)
        k = np.searchsorted(bars_changed, np.arange(n), side="right") - 1
        has = k >= 0
        kk = np.where(has, k, 0)
        pos_path = np.asarray([*self.change_pos, 0.0], dtype=np.float64)
        cash_path = np.asarray([*self.change_cash, 0.0], dtype=np.float64)
        position = np.where(has, pos_path[kk], 0.0)
        cash = np.where(has, cash_path[kk], self.cash0)
        equity = cash + position * self.close_array
        trades = (
            np.asarray(self.trades, dtype=np.float64)
            if self.trades
            else np.empty((0, 7), dtype=np.float64)
        )
        return equity, position, trades


class EventContext:
    """The `BarContext` a strategy's `on_bar` receives (plus read-only extras: `bars`,
    `i`, `cash`). Order methods validate their arguments and raise ParameterError."""

    __slots__ = ("_broker", "bars", "i")

    def __init__(self, broker: EventBroker, bars: Bars) -> None:
        self._broker = broker
        self.bars = bars
        self.i = 0

    @property
    def position(self) -> float:
        return self._broker.pos

    @property
    def cash(self) -> float:
        return self._broker.cash

    def target(self, direction: float) -> None:
        if direction not in (-1.0, 0.0, 1.0):
            raise ParameterError(
                f"target: direction must be -1, 0 or +1 (got {direction!r} on bar {self.i})"
            )
        self._broker.orders = [Order(TARGET, float(direction))]

    def buy(
        self,
        *,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        tag: str | None = None,
    ) -> None:
        self._broker.orders.append(self._order(1.0, size, limit, stop, tag))

    def sell(
        self,
        *,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        tag: str | None = None,
    ) -> None:
        self._broker.orders.append(self._order(-1.0, size, limit, stop, tag))

    def close(self) -> None:
        self._broker.orders.append(Order(CLOSE, 0.0))

    def cancel_all(self) -> None:
        self._broker.orders = []

    def _order(
        self,
        side: float,
        size: float | None,
        limit: float | None,
        stop: float | None,
        tag: str | None,
    ) -> Order:
        what = "buy" if side > 0 else "sell"
        for name, value in (("size", size), ("limit", limit), ("stop", stop)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ParameterError(
                    f"{what}: {name} must be a positive number (got {value!r} on bar {self.i})"
                )
        if limit is None and stop is None:
            kind = MARKET
        elif stop is None:
            kind = LIMIT
        elif limit is None:
            kind = STOP
        else:
            kind = STOP_LIMIT
        return Order(kind, side, size, limit, stop, tag)


def _floats(values: FloatArray) -> memoryview:
    return np.ascontiguousarray(values, dtype=np.float64).data


def overrides_on_bar(strategy: Strategy[Any]) -> bool:
    """True when the strategy brings its own `on_bar` (it then needs the event engine)."""
    return type(strategy).on_bar is not Strategy.on_bar


def run_events(
    bars: Bars,
    strategy: Strategy[Any],
    params: StrategyParams,
    signals: FloatArray,
    config: BacktestConfig,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Run `strategy` bar by bar; (equity, position, trades[k, 7]) like the kernel.

    `params` is accepted for symmetry with the vectorised path (a strategy reads its
    parameters through `signals`, computed once before the loop).
    """
    del params
    broker = EventBroker(bars, config)
    ctx = EventContext(broker, bars)
    on_bar = strategy.on_bar
    trade_on_close = broker.trade_on_close
    n = broker.n
    if overrides_on_bar(strategy):
        for i in range(n):
            if broker.orders:
                broker.match(i)
            ctx.i = i
            on_bar(ctx, i, signals)
            if trade_on_close and broker.orders:
                broker.fill_at_close(i)
        return broker.finish()
    # The default on_bar acts only on a signal, so visit the signal bars, and in between
    # only the bars where some order is still working (the same bar-by-bar sequence,
    # minus bars where nothing can happen).
    nxt = 0  # first bar not matched yet
    for j in np.flatnonzero(~np.isnan(signals)).tolist():
        if broker.orders:
            for i in range(nxt, j + 1):
                broker.match(i)
                if not broker.orders:
                    break
        nxt = j + 1
        ctx.i = j
        on_bar(ctx, j, signals)
        if trade_on_close and broker.orders:
            broker.fill_at_close(j)
    for i in range(nxt, n):
        if not broker.orders:
            break
        broker.match(i)
    return broker.finish()
