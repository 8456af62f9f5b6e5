"""The order lifecycle as one explicit state machine; every status change goes through
`transition`, so an illegal change (a FILLED order "cancelled", a REJECTED order filled)
is refused loudly instead of corrupting the book.

    NEW ──► SUBMITTED ──► PARTIALLY_FILLED ──► FILLED
     │          │                │
     │          ├──► CANCELLED ◄─┤
     │          ├──► EXPIRED ◄───┘
     ├──► REJECTED ◄─┘
     └──► UNKNOWN (submit timed out) ──► resolved by asking the broker: any state above

UNKNOWN is never assumed failed: the broker may have the order (the request reached it and
the reply was lost), so the engine asks the broker by client order id before anything else.

A broker's report of an order is folded in by `fold_status`: any answer but REJECTED means
the venue accepted the order, so a NEW order steps to SUBMITTED first (an IOC the venue
answers EXPIRED goes NEW -> SUBMITTED -> EXPIRED); a terminal status is never left, and a
stale report of an earlier state changes nothing.
"""

from __future__ import annotations

from algotrendy.domain.orders import TERMINAL_STATUSES, OrderStatus

S = OrderStatus

ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED, S.UNKNOWN, S.CANCELLED}),
    S.SUBMITTED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED, S.UNKNOWN}
    ),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.UNKNOWN}
    ),
    S.UNKNOWN: frozenset(
        {S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED, S.UNKNOWN}
    ),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


class IllegalTransitionError(ValueError):
    """A status change the lifecycle forbids; the message names both states and the order."""


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new in ALLOWED[current]


def transition(current: OrderStatus, new: OrderStatus, *, order: str = "order") -> OrderStatus:
    """Return `new` if the lifecycle allows current -> new, else raise."""
    if new not in ALLOWED[current]:
        raise IllegalTransitionError(
            f"{order}: illegal status change {current.value} -> {new.value}"
        )
    return new


def is_terminal(status: OrderStatus) -> bool:
    return status in TERMINAL_STATUSES


def fold_status(current: OrderStatus, reported: OrderStatus, *, filled: float) -> OrderStatus:
    """The status an order in `current` takes when its broker reports `reported` with
    `filled` traded so far: the reported status if the lifecycle reaches it, else `current`
    (a stale report of an earlier state, or anything after a terminal state).

    REJECTED after fills is not a lifecycle state (the fills stand): it ends the order as
    CANCELLED, the rest will never trade (ccxt/NinjaTrader/IB adapters map it so; this keeps
    an adapter that does not from leaving the order open forever)."""
    if current in TERMINAL_STATUSES:
        return current
    if reported is S.REJECTED and filled > 0:
        reported = S.CANCELLED
    if current is S.NEW and reported not in (S.NEW, S.REJECTED, S.UNKNOWN):
        current = S.SUBMITTED  # the venue answered with the order: it was accepted
    return reported if reported in ALLOWED[current] else current
