from __future__ import annotations

import pytest

from algotrendy.domain.orders import OrderStatus as S
from algotrendy.execution.lifecycle import (
    ALLOWED,
    IllegalTransitionError,
    is_terminal,
    transition,
)

HAPPY = [S.NEW, S.SUBMITTED, S.PARTIALLY_FILLED, S.PARTIALLY_FILLED, S.FILLED]


def test_happy_path() -> None:
    status = HAPPY[0]
    for nxt in HAPPY[1:]:
        status = transition(status, nxt)
    assert status is S.FILLED
    assert is_terminal(status)


@pytest.mark.parametrize("terminal", [S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED])
def test_terminal_states_are_final(terminal: S) -> None:
    for nxt in S:
        with pytest.raises(IllegalTransitionError, match=f"{terminal.value} -> {nxt.value}"):
            transition(terminal, nxt, order="at-1")


@pytest.mark.parametrize(
    ("current", "new"),
    [(S.NEW, S.FILLED), (S.NEW, S.PARTIALLY_FILLED), (S.PARTIALLY_FILLED, S.REJECTED)],
)
def test_illegal_shortcuts(current: S, new: S) -> None:
    with pytest.raises(IllegalTransitionError, match="at-9: illegal status change"):
        transition(current, new, order="at-9")


def test_unknown_resolves_to_anything_the_broker_says() -> None:
    for resolved in (S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED):
        assert transition(S.UNKNOWN, resolved) is resolved


def test_every_status_has_a_rule() -> None:
    assert set(ALLOWED) == set(S)
    assert {s for s in S if not ALLOWED[s]} == {S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}
