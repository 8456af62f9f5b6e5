"""Fill arithmetic shared by the vectorised and the event-driven engines.

Every price, fee, size and cash change of a backtest goes through the few scalar
functions below. The event engine calls them as plain Python; the vectorised kernel
compiles the very same functions with numba (`vectorized.py`), so the two engines do the
same floating-point operations in the same order and their results agree to the bit, not
just within a tolerance (numba compiles without fast-math, i.e. IEEE-754 semantics).

The semantics (see also `BacktestConfig`):

* **Fill price.** A market order fills at the base price (the next bar's open, or the
  signal bar's close with `trade_on_close`) moved by `slippage` against the trader:
  ``price = base * (1 + slippage)`` for a buy, ``base * (1 - slippage)`` for a sell.
  Slippage models crossing the spread with a market order, so it applies to market and
  stop orders on every fill (entry *and* exit). A limit (or triggered stop-limit) order
  fills at its limit or better and gets none. (backtesting.py's `spread` is charged on
  entries only; ours is charged on both sides, which is what "per fill" means.)
* **Fees.** Every fill pays ``units * price * fee + fixed_fee``: a fraction of the traded
  notional (at the slipped price) plus a fixed cash amount; exactly backtesting.py's
  ``commission=(fixed, relative)`` formula. A reversal is two fills (close, then open,
  like backtesting.py's ``exclusive_orders=True``), so it pays the fixed fee twice.
* **Sizing** (units for an order that does not state its size, computed at fill time
  from the equity E at that moment, which is cash when flat; p is the fill price):

  - ``whole``: the most whole units whose cost fits in E,
    ``floor((E - fixed_fee) / (p + p * fee))``: backtesting.py's default all-in
    ``buy()``. (backtesting.py reserves the fixed fee once per unit in this division,
    ``E // (p + p*fee + fixed)``; we reserve it once per fill, which is what is charged.
    `size` is not used.)
  - ``fraction``: ``(size * E - fixed_fee) / (p + p * fee)`` fractional units, so that
    notional plus fees is exactly ``size * E``.
  - ``units``: exactly ``size`` units, without any cash check (a contract count: the
    account may go below zero, there is no margin call).

  A sizing that comes out at zero or below (not enough equity) skips the fill, as
  backtesting.py's broker cancels an order it cannot afford.
* **Cash and PnL.** A fill of signed quantity q (positive = buy) at price p with fee f
  changes cash by ``-(q * p) - f``; equity at a bar's close is ``cash + position *
  close``. A closed round trip of signed size s has
  ``pnl = s * (exit - entry) - (entry fee + exit fee)`` and
  ``return_pct = pnl / (|s| * entry)``, backtesting.py's `Trade.pl` and `pl_pct`.
"""

from __future__ import annotations

import math

from algotrendy.backtest.config import Sizing

SIZING_WHOLE = 0
SIZING_FRACTION = 1
SIZING_UNITS = 2

_SIZING_CODES = {
    Sizing.WHOLE: SIZING_WHOLE,
    Sizing.FRACTION: SIZING_FRACTION,
    Sizing.UNITS: SIZING_UNITS,
}


def sizing_code(sizing: Sizing) -> int:
    """The integer the numba kernel takes for a sizing mode."""
    return _SIZING_CODES[Sizing(sizing)]


def fill_price(base: float, side: float, slippage: float) -> float:
    """Price paid (side +1, a buy) or received (side -1, a sell) after slippage."""
    return base * (1.0 + side * slippage)


def fill_fee(price: float, units: float, fee: float, fixed_fee: float) -> float:
    """Fee of one fill of `units` (> 0) at `price`: notional * fee + fixed_fee."""
    return units * price * fee + fixed_fee


def cash_after(cash: float, signed_units: float, price: float, fee_paid: float) -> float:
    """Cash after a fill of `signed_units` (positive = bought) at `price` paying `fee_paid`."""
    return cash - signed_units * price - fee_paid


def order_units(
    sizing: int, size: float, equity: float, price: float, fee: float, fixed_fee: float
) -> float:
    """Units (>= 0) an unsized order trades under the sizing rule; 0 means "skip the fill"."""
    if sizing == SIZING_UNITS:
        return size
    per_unit = price + price * fee
    if sizing == SIZING_WHOLE:
        budget = equity - fixed_fee
        if budget <= 0.0:
            return 0.0
        units = float(math.floor(budget / per_unit))
        # The division may round up across an integer; never spend more than E. (The fee
        # is spelt out as in `fill_fee`: a compiled function can only call compiled ones.)
        if units > 0.0 and units * price + (units * price * fee + fixed_fee) > equity:
            units -= 1.0
        return units
    budget = size * equity - fixed_fee
    if budget <= 0.0:
        return 0.0
    return budget / per_unit


def trade_pnl(signed_units: float, entry_price: float, exit_price: float, fees: float) -> float:
    """Net PnL of a round trip of `signed_units` (negative = short), fees included."""
    return signed_units * (exit_price - entry_price) - fees
