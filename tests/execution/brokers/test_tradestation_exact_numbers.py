"""TradeStation numbers are written with every digit: derived fill ids (`<OrderID>:<cum>`)
and the order body. `:g` kept 6 significant digits, so two fills shared an id (the engine
dropped the second) and large quantities / precise prices went out rounded."""

from __future__ import annotations

from typing import Any

import pytest

from algotrendy.execution.brokers.tradestation import _Tracked

from .test_tradestation import intent, make


def _raw(cum: float, ordered: float, avg: float) -> dict[str, Any]:
    leg = {"ExecQuantity": cum, "QuantityOrdered": ordered}
    status = "FLL" if cum >= ordered else "FPR"
    return {"Status": status, "FilledPrice": avg, "CommissionFee": 0, "Legs": [leg]}


def test_fill_ids_of_close_cumulative_quantities_differ() -> None:
    broker = make()
    tracked = _Tracked("OID1", "PENNY", 20_000_000.0)
    broker._to_order("c1", tracked, _raw(1_000_001, 20_000_000, 0.5))
    order = broker._to_order("c1", tracked, _raw(1_000_003, 20_000_000, 0.5))
    assert [(f.fill_id, f.quantity) for f in order.fills] == [
        ("OID1:1000001.0", 1_000_001.0), ("OID1:1000003.0", 2.0)]  # fmt: skip


@pytest.mark.parametrize(("cum", "fill_id"), [(40.0, "OID2:40"), (1e6, "OID2:1e+06"),
                                              (12.5, "OID2:12.5")])  # fmt: skip
def test_fill_ids_that_were_exact_are_unchanged(cum: float, fill_id: str) -> None:
    """Ids already recorded for a live order must come out the same, or it would be
    booked twice after the upgrade."""
    order = make()._to_order("c2", _Tracked("OID2", "MSFT", 2e6), _raw(cum, 2e6, 1.0))
    assert [f.fill_id for f in order.fills] == [fill_id]


def test_order_body_keeps_every_digit() -> None:
    body = make().order_body(intent(quantity=1_000_001, order_type="stop_limit",
                                    limit_price=10000.25, stop_price=0.0000123))  # fmt: skip
    assert (body["Quantity"], body["LimitPrice"], body["StopPrice"]) == (
        "1000001", "10000.25", "0.0000123")  # fmt: skip


def test_order_body_trailing_percent() -> None:
    body = make().order_body(intent(order_type="trailing_stop", limit_price=None,
                                    trail_percent=1.25))  # fmt: skip
    assert body["AdvancedOptions"] == {"TrailingStop": {"Percent": "1.25"}}
