"""`fold_status`: how a broker's report moves an order through the lifecycle."""

from __future__ import annotations

import itertools

import pytest

from algotrendy.domain.orders import TERMINAL_STATUSES
from algotrendy.domain.orders import OrderStatus as S
from algotrendy.execution.lifecycle import fold_status

OPEN = [S.NEW, S.SUBMITTED, S.PARTIALLY_FILLED, S.UNKNOWN]
ENDS = [S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED]


@pytest.mark.parametrize(("current", "reported"), list(itertools.product(OPEN, ENDS)))
def test_every_terminal_report_ends_every_open_order(current: S, reported: S) -> None:
    """Straight from NEW too: an IOC the venue answers EXPIRED must not stay NEW."""
    filled = 2.0 if current is S.PARTIALLY_FILLED else 0.0
    ended = fold_status(current, reported, filled=filled)
    if current is S.PARTIALLY_FILLED and reported is S.REJECTED:
        assert ended is S.CANCELLED  # see the next test
    else:
        assert ended is reported


@pytest.mark.parametrize("current", OPEN)
def test_rejected_after_fills_ends_the_order_cancelled(current: S) -> None:
    """The fills stand, the rest never trades; REJECTED after fills is no lifecycle state."""
    assert fold_status(current, S.REJECTED, filled=3.0) is S.CANCELLED


@pytest.mark.parametrize(
    ("current", "reported"), list(itertools.product(sorted(TERMINAL_STATUSES), S))
)
def test_a_terminal_status_is_never_left(current: S, reported: S) -> None:
    assert fold_status(current, reported, filled=1.0) is current


def test_a_new_order_the_venue_answered_is_submitted() -> None:
    assert fold_status(S.NEW, S.SUBMITTED, filled=0.0) is S.SUBMITTED
    assert fold_status(S.NEW, S.PARTIALLY_FILLED, filled=2.0) is S.PARTIALLY_FILLED


def test_a_stale_report_of_an_earlier_state_changes_nothing() -> None:
    assert fold_status(S.PARTIALLY_FILLED, S.SUBMITTED, filled=2.0) is S.PARTIALLY_FILLED
