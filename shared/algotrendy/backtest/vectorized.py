"""Vectorised fast path: one fused single-pass numba kernel over the bars of a signal
strategy, producing the equity curve, the position path and the round trips at once.

Why one kernel: a position that depends on cash (whole-unit and fraction sizing) is a
recurrence, so it cannot be written as array expressions without a loop; fusing the
signal follow-up, the fills, the trade bookkeeping and the equity marking into one pass
touches each bar once (~3 ns per bar) and allocates only the outputs. (Before that pass
a count of the non-NaN signals sizes the trade buffer and checks that each is +1, -1 or
0; it reads one array and keeps reallocation out of the loop.)

Semantics are those of `fills.py` (the kernel calls the same functions, compiled): a
signal s on bar i's close is a *target direction*. If it differs from the sign of the
position, the engine closes the position (one fill) and, when s != 0, opens a new one of
direction s sized by the sizing rule (a second fill), both at bar i+1's open, or at bar
i's close with `trade_on_close`. NaN, or s equal to the current direction, changes
nothing: a position is never resized while the direction holds. A signal on the last bar
has no next bar and is not acted on (unless `trade_on_close`).

At the end of the data an open position is valued at the last close and reported as a
round trip exiting there, without exit fee or slippage: the equity curve marks positions
at each close without exit costs, so the last equity point, `final_equity` and the sum of
trade PnL all agree. This is also what backtesting.py's `Equity Final [$]` (cash plus the
open trade's PnL at the last close) and vectorbt's final portfolio value report.

Compilation is cached on disk (`cache=True`) in ``__pycache__`` next to this file, so a
new process loads the machine code instead of compiling (~0.1 s instead of ~2 s). On AWS
Lambda the package folder is read-only and there is no writable home: set
``NUMBA_CACHE_DIR=/tmp`` in the function's environment, or numba refuses `cache=True` at
import ("no locator available"). Each new execution environment then compiles once on its
first backtest and reuses /tmp afterwards. This module imports numba; the runner imports
it lazily, only when a vectorised backtest runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from algotrendy.backtest import fills

FloatArray = npt.NDArray[np.float64]

#: Columns of the trade matrix the kernel returns, one row per round trip.
KERNEL_TRADE_FIELDS = (
    "entry_bar",
    "exit_bar",
    "signed_size",
    "entry_price",
    "exit_price",
    "pnl",
    "fees",
)


def _cache_keyed_on_fills(fn: Any) -> Any:
    """Name `fn` after a hash of fills.py before compiling it with `cache=True`.

    numba's disk cache is keyed on the source file of the cached function only
    (vectorized.py); the compiled kernel embeds the `fills.py` functions it calls, so an
    edit of fills.py alone would leave a stale kernel on disk that no longer agrees with
    the event engine. The cache file name comes from the function's `__qualname__`, so
    putting the fills.py hash there makes such an edit load a fresh compilation.
    """
    digest = hashlib.sha1(Path(fills.__file__).read_bytes()).hexdigest()[:12]
    fn.__qualname__ = f"{fn.__name__}_fills_{digest}"
    return fn


_fill_price = njit(cache=True)(fills.fill_price)
_fill_fee = njit(cache=True)(fills.fill_fee)
_cash_after = njit(cache=True)(fills.cash_after)
_order_units = njit(cache=True)(fills.order_units)
_trade_pnl = njit(cache=True)(fills.trade_pnl)


def _signal_kernel(
    open_: FloatArray,
    close: FloatArray,
    signals: FloatArray,
    cash0: float,
    fee: float,
    fixed_fee: float,
    slippage: float,
    sizing: int,
    size: float,
    trade_on_close: bool,
    equity: FloatArray,
    position: FloatArray,
) -> tuple[FloatArray, int]:  # pragma: no cover - compiled
    """Fill `equity` and `position` (length n, written by the caller's choice of buffer,
    e.g. rows of the result frame's block) and return (the round trips, trades[k, 7],
    -1) for target-direction `signals` (see the module docstring).

    A signal that is not +1, -1, 0 or NaN stops it before any bar is simulated: it then
    returns (no trades, that signal's position) for the caller to report."""
    n = close.shape[0]
    # Every round trip but the last ends on the fill of a signal, so there are at most
    # (#signals + 1). Sizing the buffer up front (a quick count over the signals) keeps
    # it from being reallocated inside the loop, which costs ~10x: numba then cannot
    # keep the array's data pointer out of the per-bar path. The same pass checks the
    # values, which a separate numpy check would pay another read and temporaries for.
    # (n + 1 rows without the count is slower: a buffer that large is mapped afresh on
    # every call and its pages fault in as the rows are written.)
    # Both counts are branch-free so that the pass compiles to SIMD (an early exit would
    # keep it scalar and cost ~1 ms per 1M bars); the bad signal is located only if any.
    cap = 1
    bad = 0
    for i in range(n):
        s = signals[i]
        cap += s == s
        bad += (s == s) & (s != 1.0) & (s != -1.0) & (s != 0.0)
    if bad:
        for i in range(n):
            s = signals[i]
            if s == s and s != 1.0 and s != -1.0 and s != 0.0:
                return np.empty((0, 7)), i
    trades = np.empty((cap, 7))
    k = 0
    cash = cash0
    pos = 0.0
    entry_price = 0.0
    entry_fee = 0.0
    entry_bar = 0
    pending = np.nan
    for i in range(n):
        s = signals[i]
        target = np.nan
        base = 0.0
        # The direction held (`cur`) is worked out only on the few bars with a signal:
        # done on every bar it costs ~20% of the loop.
        if trade_on_close:
            if s == s:
                cur = 1.0 if pos > 0.0 else (-1.0 if pos < 0.0 else 0.0)
                if s != cur:
                    target = s
                    base = close[i]
        elif pending == pending:
            target = pending
            base = open_[i]
            pending = np.nan
        if target == target:
            if pos != 0.0:
                side = -1.0 if pos > 0.0 else 1.0
                px = _fill_price(base, side, slippage)
                f = _fill_fee(px, abs(pos), fee, fixed_fee)
                cash = _cash_after(cash, -pos, px, f)
                fees = entry_fee + f
                trades[k, 0] = entry_bar
                trades[k, 1] = i
                trades[k, 2] = pos
                trades[k, 3] = entry_price
                trades[k, 4] = px
                trades[k, 5] = _trade_pnl(pos, entry_price, px, fees)
                trades[k, 6] = fees
                k += 1
                pos = 0.0
            if target != 0.0:
                px = _fill_price(base, target, slippage)
                units = _order_units(sizing, size, cash, px, fee, fixed_fee)
                if units > 0.0:
                    f = _fill_fee(px, units, fee, fixed_fee)
                    pos = target * units
                    cash = _cash_after(cash, pos, px, f)
                    entry_price = px
                    entry_fee = f
                    entry_bar = i
        if not trade_on_close and s == s:
            cur = 1.0 if pos > 0.0 else (-1.0 if pos < 0.0 else 0.0)
            if s != cur:
                pending = s
        position[i] = pos
        equity[i] = cash + pos * close[i]
    if pos != 0.0 and n > 0:
        px = close[n - 1]
        trades[k, 0] = entry_bar
        trades[k, 1] = n - 1
        trades[k, 2] = pos
        trades[k, 3] = entry_price
        trades[k, 4] = px
        trades[k, 5] = _trade_pnl(pos, entry_price, px, entry_fee)
        trades[k, 6] = entry_fee
        k += 1
    return trades[:k].copy(), -1


signal_kernel = njit(cache=True, nogil=True)(_cache_keyed_on_fills(_signal_kernel))
