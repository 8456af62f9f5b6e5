"""Positions and PnL by the average-cost method, per account / strategy / symbol.

Conventions (the ones brokers' statements use for average cost):
* quantity is signed (negative = short); a fill on the same side raises the size and
  re-averages the entry price: avg' = (|q|·avg + f·p) / (|q| + f);
* a fill on the opposite side realises (p − avg)·closed·sign(q) on the closed part and
  keeps avg; a fill larger than the position closes it and opens the remainder at p;
* fees are accumulated apart from realised PnL, so gross and net can both be reported:
  net = realised − fees;
* unrealised = (mark − avg)·q.

Identity checked by the tests: realised + unrealised − fees equals the cash flow of all
fills marked to market, Σ(−side·f·p) + q·mark − Σfees.

Many strategies share one broker account: each (strategy, symbol) has its own sub-ledger,
and the account position in a symbol is the sum over strategies — the number the risk
manager limits and reconciliation compares with the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from algotrendy.domain.orders import Side

EPS = 1e-12


@dataclass
class Position:
    account: str
    strategy: str
    symbol: str
    quantity: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0

    def apply_fill(self, side: Side, quantity: float, price: float, fee: float = 0.0) -> float:
        """Book one fill; returns the PnL it realised (gross of fees)."""
        if quantity <= 0 or price <= 0:
            raise ValueError(f"fill needs positive quantity and price (got {quantity} @ {price})")
        signed = quantity if side is Side.BUY else -quantity
        self.fees += fee
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
    ) -> float:
        return self.get(account, strategy or "", symbol).apply_fill(side, quantity, price, fee)

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
