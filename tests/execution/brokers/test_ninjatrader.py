"""NinjaTraderBroker against temp ATI folders: OIF lines out, documented state files in."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.brokers.base import Broker
from algotrendy.execution.brokers.ninjatrader import NinjaTraderBroker
from algotrendy.execution.errors import InvalidOrderError, OrderNotFoundError

from .conftest import FIXTURES

RECORDED = FIXTURES / "ninjatrader" / "outgoing"
T0 = datetime(2024, 5, 14, 14, 30, tzinfo=UTC)


@pytest.fixture
def nt_dir(tmp_path: Path) -> Path:
    (tmp_path / "incoming").mkdir()
    (tmp_path / "outgoing").mkdir()
    return tmp_path


def make(folder: Path, state: Path | None = None) -> NinjaTraderBroker:
    return NinjaTraderBroker(folder, "Sim101", state_path=state, clock=lambda: T0)


def intent(**kw: Any) -> OrderIntent:
    base: dict[str, Any] = {"intent_id": "intent-nt-01", "symbol": "ES 06-24", "side": "buy",
                            "quantity": 3, "order_type": "limit", "limit_price": 5231.0,
                            "time_in_force": "day"}  # fmt: skip
    base.update(kw)
    return OrderIntent(**base)


def answer(folder: Path, coid: str, recorded: str) -> None:
    """NinjaTrader writes the order state file named after the ORDER ID."""
    shutil.copy(RECORDED / recorded, folder / "outgoing" / f"{coid}.txt")


def test_is_a_broker(nt_dir: Path) -> None:
    assert isinstance(make(nt_dir), Broker)


def test_missing_folders_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="incoming"):
        NinjaTraderBroker(tmp_path, "Sim101")


def test_place_writes_documented_oif_line(nt_dir: Path) -> None:
    it = intent()
    order = make(nt_dir).submit(it)
    files = list((nt_dir / "incoming").iterdir())
    assert [f.name for f in files] == [f"oif_{it.client_order_id}.txt"]
    fields = files[0].read_text().strip().split(";")
    assert len(fields) == 13  # PLACE + the 12 documented parameters
    assert fields == ["PLACE", "Sim101", "ES 06-24", "BUY", "3", "LIMIT", "5231", "", "DAY", "",
                      it.client_order_id, "", ""]  # fmt: skip
    assert order.status is OrderStatus.SUBMITTED


@pytest.mark.parametrize(
    ("kw", "type_", "limit", "stop", "tif"),
    [
        ({"order_type": "market", "limit_price": None, "time_in_force": "gtc"},
         "MARKET", "", "", "GTC"),
        ({"order_type": "stop", "limit_price": None, "stop_price": 5200.25, "side": "sell"},
         "STOPMARKET", "", "5200.25", "DAY"),
        ({"order_type": "stop_limit", "stop_price": 5232.0}, "STOPLIMIT", "5231", "5232", "DAY"),
    ],
)  # fmt: skip
def test_order_types(
    nt_dir: Path, kw: dict[str, Any], type_: str, limit: str, stop: str, tif: str
) -> None:
    fields = make(nt_dir).place_line(intent(**kw)).split(";")
    assert (fields[5], fields[6], fields[7], fields[8]) == (type_, limit, stop, tif)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"order_type": "trailing_stop", "limit_price": None, "trail_percent": 1.0}, "trailing"),
        ({"time_in_force": "ioc"}, "DAY or GTC"),
        ({"quantity": 1.5}, "integer"),
        ({"reduce_only": True}, "reduce-only"),
    ],
)
def test_refusals_write_nothing(nt_dir: Path, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOrderError, match=message):
        make(nt_dir).submit(intent(**kw))
    assert list((nt_dir / "incoming").iterdir()) == []


def test_state_files_to_status_and_fills(nt_dir: Path) -> None:
    broker = make(nt_dir)
    it = intent()
    broker.submit(it)
    answer(nt_dir, it.client_order_id, "state_partfilled.txt")
    part = broker.get_order(it.client_order_id)
    assert part is not None
    assert (part.status, part.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 1.0)
    answer(nt_dir, it.client_order_id, "state_filled.txt")
    done = broker.get_order(it.client_order_id)
    assert done is not None
    assert done.status is OrderStatus.FILLED
    # 1 @ 5230.25 first; the file then says 3 @ average 5230.75, so the other 2 filled at
    # (3 * 5230.75 - 1 * 5230.25) / 2 = 5231.0.
    assert [(f.quantity, f.price) for f in done.fills] == [(1.0, 5230.25), (2.0, 5231.0)]
    assert done.avg_fill_price == 5230.75
    assert [f.fill_id for f in done.fills] == [f"{it.client_order_id}:1",
                                                f"{it.client_order_id}:3"]  # fmt: skip


def test_rejected(nt_dir: Path) -> None:
    broker = make(nt_dir)
    it = intent()
    broker.submit(it)
    answer(nt_dir, it.client_order_id, "state_rejected.txt")
    order = broker.get_order(it.client_order_id)
    assert order is not None
    assert order.status is OrderStatus.REJECTED


def test_submit_is_idempotent_and_survives_restart(nt_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "nt-state.json"
    it = intent()
    make(nt_dir, state).submit(it)
    oif = nt_dir / "incoming" / f"oif_{it.client_order_id}.txt"
    oif.unlink()  # NinjaTrader consumed it
    answer(nt_dir, it.client_order_id, "state_partfilled.txt")
    make(nt_dir, state).get_order(it.client_order_id)  # observed 1 filled
    # NinjaTrader restarts (outgoing emptied) and the intent is redelivered.
    (nt_dir / "outgoing" / f"{it.client_order_id}.txt").unlink()
    again = make(nt_dir, state).submit(it)
    assert list((nt_dir / "incoming").iterdir()) == []  # not placed a second time
    assert again.filled_quantity == 1.0
    assert [f.quantity for f in again.fills] == [1.0]


def test_cancel_writes_cancel_command(nt_dir: Path) -> None:
    broker = make(nt_dir)
    it = intent()
    broker.submit(it)
    broker.cancel(it.client_order_id)
    line = (nt_dir / "incoming" / f"oif_cancel_{it.client_order_id}.txt").read_text().strip()
    assert line == f"CANCEL;;;;;;;;;;{it.client_order_id};;"
    with pytest.raises(OrderNotFoundError):
        broker.cancel("at-unknown")
    assert broker.get_order("at-unknown") is None


def test_open_orders(nt_dir: Path) -> None:
    broker = make(nt_dir)
    a, b = intent(), intent(intent_id="intent-nt-02")
    broker.submit(a)
    broker.submit(b)
    answer(nt_dir, b.client_order_id, "state_filled.txt")
    assert [o.client_order_id for o in broker.open_orders()] == [a.client_order_id]


def test_positions_from_position_files(nt_dir: Path) -> None:
    for f in RECORDED.glob("*_Position.txt"):
        shutil.copy(f, nt_dir / "outgoing" / f.name)
    broker = make(nt_dir)
    broker.submit(intent())  # makes "ES 06-24" a known symbol
    got = {p.symbol: (p.quantity, p.avg_price) for p in broker.positions()}
    assert got == {"ES 06-24": (3.0, 5230.75), "NQ 06-24 Globex": (-2.0, 18250.5)}
