"""A failed commit puts the in-memory position back exactly as it was — its fees in a third
currency (`Position.unvalued_fees`) too — so the fill, recorded once the database is back,
is not counted twice. On SQLite and PostgreSQL (`db_engine`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from execution_helpers import engine_on, stored_order
from sqlalchemy import Engine

from algotrendy.domain.orders import OrderIntent, OrderStatus, Side
from algotrendy.execution.brokers.base import BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.ports import StaticPrices

PRICES = StaticPrices({"BTC/USDT": 100.0})


class BnbFeeVenue(PaperBroker):
    """Paper fills whose fee (0.05 per fill) is charged in BNB, as Binance does on request."""

    def __init__(self) -> None:
        super().__init__(PRICES, fee=0.0)

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        order = super().submit(intent)
        fills = tuple(replace(f, fee=0.05, fee_currency="BNB") for f in order.fills)
        return replace(order, fills=fills)


def test_failed_commit_restores_unvalued_fees(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue = BnbFeeVenue()
    eng = engine_on(db_engine, venue, PRICES)
    eng.start()
    first = OrderIntent(intent_id="bnb-0001", symbol="BTC/USDT", side=Side.BUY, quantity=1,
                        strategy="s")  # fmt: skip
    assert eng.process(first).status is OrderStatus.FILLED
    pos = eng.book.get("default", "s", "BTC/USDT")
    assert pos.unvalued_fees == {"BNB": pytest.approx(0.05)}
    before = (pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees, dict(pos.unvalued_fees))

    def down(*_args: object) -> None:
        raise OSError("database unavailable")

    second = first.model_copy(update={"intent_id": "bnb-0002"})
    with monkeypatch.context() as m:
        m.setattr(eng.repo, "record_executions", down)
        with pytest.raises(OSError, match="database unavailable"):
            eng.process(second)
    after = (pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees, dict(pos.unvalued_fees))
    assert after == before

    # The database is back: the broker's report of the second order is recorded once.
    remote = venue.submit(second)  # the venue returns the order it holds (same client id)
    eng.on_broker_update(remote)
    assert stored_order(eng, second.client_order_id).status is OrderStatus.FILLED
    assert pos.quantity == pytest.approx(2)
    assert pos.unvalued_fees == {"BNB": pytest.approx(0.10)}
