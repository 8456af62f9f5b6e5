"""Positions and PnL by the average-cost method, per account / strategy / symbol.

Conventions (the ones brokers' statements use for average cost):
* quantity is signed (negative = short); a fill on the same side raises the size and
  re-averages the entry price: avg' = (|q|·avg + f·p) / (|q| + f);
* a fill on the opposite side realises (p − avg)·closed·sign(q) on the closed part and
  keeps avg; a fill larger than the position closes it and opens the remainder at p;
* fees are accumulated apart from realised PnL, so gross and net can both be reported:
  net = realised − fees;
* unrealised = (mark − avg)·q.

Fees are booked in the quote currency of the symbol (`BASE/QUOTE[:SETTLE]`), by their
`fee_currency` (`book_fee`):
* the quote currency, the settle currency of a linear contract, or none given (brokers that
  do not say charge the account currency): booked as is; likewise any fee on a symbol
  without a `/` (stocks, futures), whose quote currency the symbol does not tell;
* the base asset of a spot pair (Binance's default on buys): the venue keeps those units,
  so the base quantity moves by q − fee on a buy and q + fee on a sell (the fee's units are
  sold at the fill price to pay it), and the fee is valued at the fill price;
* the base asset on a contract (`BTC/USD:BTC`, inverse): valued at the fill price,
  quantity (contracts) unchanged;
* any other currency (e.g. BNB): it cannot be valued without that currency's price, so it
  is kept apart in `Position.unvalued_fees` by currency and logged as a warning — never
  added to `fees` as if it were quote. Net PnL then leaves it out, which the warning says.

Identity checked by the tests: realised + unrealised − fees equals the cash flow of all
fills marked to market, Σ(−side·f·p) + q·mark − Σfees.

Many strategies share one broker account: each (strategy, symbol) has its own sub-ledger,
and the account position in a symbol is the sum over strategies — the number the risk
manager limits and reconciliation compares with the broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import NamedTuple

from algotrendy.domain.orders import Side

log = logging.getLogger(__name__)

EPS = 1e-12


class BookedFee(NamedTuple):
    """How one fill's fee is booked (see the module docstring)."""

    quantity: float  # the base quantity the position moves by (before the side's sign)
    quote_value: float  # added to `Position.fees`
    unvalued: float  # in a third currency, not in `quote_value`


def book_fee(
    symbol: str, side: Side, quantity: float, price: float, fee: float, fee_currency: str | None
) -> BookedFee:
    """Book `fee` (in `fee_currency`) of a fill of `quantity` `symbol` at `price`."""
    pair, _, settle = symbol.upper().partition(":")
    base, _, quote = pair.partition("/")
    ccy = fee_currency.upper() if fee_currency else None
    if fee == 0 or ccy is None or not quote:
        # No currency, or a symbol with no quote to compare it with (stocks, futures at
        # IB/TradeStation, which charge commissions in the account currency): as is.
        return BookedFee(quantity, fee, 0.0)
    if ccy != base and ccy in (quote, settle):
        return BookedFee(quantity, fee, 0.0)
    if ccy == base and settle:  # a contract: its quantity is contracts, not units held
        return BookedFee(quantity, fee * price, 0.0)
    if ccy == base:
        moved = quantity - fee if side is Side.BUY else quantity + fee
        if moved <= 0:
            raise ValueError(
                f"{symbol}: fee of {fee} {fee_currency} is not less than the {quantity} bought"
            )
        return BookedFee(moved, fee * price, 0.0)
    return BookedFee(quantity, 0.0, fee)


@dataclass
class Position:
    account: str
    strategy: str
    symbol: str
    quantity: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    # fees in a currency that is neither the base nor the quote (see `book_fee`)
    unvalued_fees: dict[str, float] = field(default_factory=dict)

    def apply_fill(
        self,
        side: Side,
        quantity: float,
        price: float,
        fee: float = 0.0,
        fee_currency: str | None = None,
    ) -> float:
        """Book one fill; returns the PnL it realised (gross of fees). The fee is booked by
        its currency (`book_fee`)."""
        if quantity <= 0 or price <= 0:
            raise ValueError(f"fill needs positive quantity and price (got {quantity} @ {price})")
        booked = book_fee(self.symbol, side, quantity, price, fee, fee_currency)
        if booked.unvalued:
            ccy = str(fee_currency).upper()
            self.unvalued_fees[ccy] = self.unvalued_fees.get(ccy, 0.0) + booked.unvalued
            log.warning(
                "%s/%s/%s: fee of %s %s cannot be valued in the quote currency without a "
                "%s price; kept in unvalued_fees, not in fees or net PnL",
                self.account, self.strategy, self.symbol, fee, fee_currency, fee_currency,
            )  # fmt: skip
        quantity = booked.quantity
        signed = quantity if side is Side.BUY else -quantity
        self.fees += booked.quote_value
        q = self.quantity
        realized = 0.0
        if abs(q) < EPS or (q > 0) == (signed > 0):
            new_q = q + signed
            self.avg_price = (abs(q) * self.avg_price + quantity * price) / abs(new_q)
            self.quantity = new_q
        else:
            closed = min(abs(q), quantity)
            realized = (price - self.avg_price) * closed * (1.0 if q > 0 else -1.0)
            new_q = q + signed
            if abs(new_q) < EPS:
                self.quantity, self.avg_price = 0.0, 0.0
            elif (new_q > 0) == (q > 0):
                self.quantity = new_q  # reduced, same direction: avg unchanged
            else:
                self.quantity, self.avg_price = new_q, price  # flipped: remainder opens at p
        self.realized_pnl += realized
        return realized

    def unrealized_pnl(self, mark: float) -> float:
        return (mark - self.avg_price) * self.quantity

    @property
    def net_realized_pnl(self) -> float:
        return self.realized_pnl - self.fees


class PositionBook:
    """Every sub-ledger of one process; the account view sums over strategies.

    The sub-ledgers are also indexed by (account, symbol), in creation order, because the
    engine asks for the account position of the intent's symbol on every risk check: a
    scan of the whole book there grew with the number of symbols traded."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str, str], Position] = {}
        self._by_symbol: dict[tuple[str, str], list[Position]] = {}

    def get(self, account: str, strategy: str, symbol: str) -> Position:
        key = (account, strategy, symbol)
        pos = self._positions.get(key)
        if pos is None:
            pos = self._positions[key] = Position(account, strategy, symbol)
            self._by_symbol.setdefault((account, symbol), []).append(pos)
        return pos

    def apply_fill(
        self,
        *,
        account: str,
        strategy: str | None,
        symbol: str,
        side: Side,
        quantity: float,
        price: float,
        fee: float = 0.0,
        fee_currency: str | None = None,
    ) -> float:
        pos = self.get(account, strategy or "", symbol)
        return pos.apply_fill(side, quantity, price, fee, fee_currency)

    def account_quantity(self, account: str, symbol: str) -> float:
        return sum(p.quantity for p in self._by_symbol.get((account, symbol), ()))

    def positions(self, account: str | None = None) -> list[Position]:
        return [p for p in self._positions.values() if account is None or p.account == account]

    def load(self, positions: list[Position]) -> None:
        """Replace the book with persisted (or reconciled) positions."""
        self._positions = {(p.account, p.strategy, p.symbol): p for p in positions}
        self._by_symbol = {}
        for p in self._positions.values():
            self._by_symbol.setdefault((p.account, p.symbol), []).append(p)
