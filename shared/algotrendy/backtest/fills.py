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
* **Sizing** (units for an order that does not state its size, computed at fill time;
  p is the fill price, E the equity at that moment, ``cash + position * p``, and F the
  *free cash*, what is not committed to the open position: ``E - |position| * p``,
  i.e. the cash itself when flat or long, and when short the cash minus the sale
  proceeds and as much again as collateral (backtesting.py's ``margin_available`` at
  leverage 1). Flat, F = E, and the signal-driven paths (the vectorised kernel, an
  event `target()`) only ever enter from flat.)

  - ``whole``: the most whole units whose cost fits in F,
    ``floor((F - fixed_fee) / (p + p * fee))``: backtesting.py's default all-in
    ``buy()``. (backtesting.py reserves the fixed fee once per unit in this division,
    ``F // (p + p*fee + fixed)``; we reserve it once per fill, which is what is charged.
    `size` is not used.)
  - ``fraction``: ``(size * E - fixed_fee) / (p + p * fee)`` fractional units, so that
    notional plus fees is exactly ``size * E``, reduced to what F covers if less.
  - ``units``: exactly ``size`` units, without any cash check (a contract count: the
    account may go below zero, there is no margin call).

  An unsized order that F does not cover (the sizing comes out at zero or below) is
  cancelled, as backtesting.py's broker cancels an order it cannot afford; so a second
  all-in ``buy()`` while long adds nothing instead of borrowing. Free cash at rounding
  level (at most ``CASH_DUST * |E|``, see `spendable`) counts as none. As in
  backtesting.py the rule sizes the whole order, even one against the position (an
  unsized sell while all-in long is cancelled): exit with `close()`, `target()` or a size.
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


# Spending "all" the cash leaves round-off behind: a fill's cash change is exact to a few
# ulps, ~1e-16 of the amounts, per fill. Free cash at or below this fraction of equity
# is that residue, not money: sized on it, an entry would buy a dust position (~1e-14
# units) that then blocks the real entry. 1e-9 is far above the rounding of even
# millions of fills and far below any real order (a billionth of the account).
CASH_DUST = 1e-9


def spendable(free_cash: float, equity: float) -> float:
    """Free cash an entry may spend: `free_cash`, or 0 when it is round-off residue
    (at most CASH_DUST x |equity|, see above)."""
    return free_cash if free_cash > CASH_DUST * abs(equity) else 0.0


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
