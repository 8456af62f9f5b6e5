"""NinjaTrader 8 through its Automated Trading Interface (ATI) file interface.

Orders go in as Order Instruction Files (OIF) written to `<NinjaTrader folder>/incoming`,
named `oif*.txt`, one semicolon-separated command per line (NinjaTrader Help Guide, ATI >
File Interface > "Order Instruction Files (OIF)" and "Commands and Valid Parameters"):

    PLACE;<ACCOUNT>;<INSTRUMENT>;<ACTION>;<QTY>;<ORDER TYPE>;[LIMIT PRICE];[STOP PRICE];
          <TIF>;[OCO ID];[ORDER ID];[STRATEGY];[STRATEGY ID]      (one line)
    CANCEL;;;;;;;;;;<ORDER ID>;;[STRATEGY ID]

with ACTION BUY|SELL, QTY an integer, ORDER TYPE MARKET|LIMIT|STOPMARKET|STOPLIMIT (NT8;
NT7 spelled it STOP), TIF DAY|GTC. NinjaTrader answers in `<NinjaTrader folder>/outgoing`
("Information Update Files"): `<ORDER ID>.txt` holds `Order State;Filled Amount;Average
FillPrice` after every change, and `<Instrument> <Exchange>_<Account>_Position.txt` holds
`LONG|SHORT|FLAT;Quantity;Average Entry Price`. The outgoing folder is emptied when
NinjaTrader restarts.

Mapping and limits:
* the client order id is the ATI ORDER ID (NinjaTrader requires it unique), and the OIF file
  is `oif_<client order id>.txt`, written under a temporary name and renamed so NinjaTrader
  never reads half a file. A submit whose id already has an OIF or a state file is not
  written again: that is the idempotency;
* refused with InvalidOrderError: trailing stops (no ATI order type; only ATM strategy
  templates trail), IOC/FOK (ATI offers DAY and GTC), fractional quantities, reduce-only;
* fills: the state file is cumulative (filled amount, average price) and carries no
  execution ids, so fills are derived from successive observations as for TradeStation
  (each increase is one fill of the difference, priced to keep the reported average; id
  `<order id>:<cumulative qty>`); the observed levels are kept in `state_path` because
  NinjaTrader deletes its outgoing files on restart. No commission is reported: fee 0.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from algotrendy.domain.orders import OrderIntent, OrderStatus, OrderType, TimeInForce
from algotrendy.execution.brokers.base import BrokerFill, BrokerOrder, BrokerPosition
from algotrendy.execution.errors import InvalidOrderError, OrderNotFoundError

_NT_TYPE = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP: "STOPMARKET",
    OrderType.STOP_LIMIT: "STOPLIMIT",
}
_TIF = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC"}

# NinjaTrader 8 `OrderState` values, as written (upper-case) in the order state files.
_STATE: dict[str, OrderStatus] = {
    "INITIALIZED": OrderStatus.SUBMITTED,
    "SUBMITTED": OrderStatus.SUBMITTED,
    "ACCEPTED": OrderStatus.SUBMITTED,
    "TRIGGERPENDING": OrderStatus.SUBMITTED,
    "WORKING": OrderStatus.SUBMITTED,
    "CHANGEPENDING": OrderStatus.SUBMITTED,
    "CHANGESUBMITTED": OrderStatus.SUBMITTED,
    "CANCELPENDING": OrderStatus.SUBMITTED,
    "CANCELSUBMITTED": OrderStatus.SUBMITTED,
    "PARTFILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "UNKNOWN": OrderStatus.SUBMITTED,
}


class NinjaTraderBroker:
    name = "ninjatrader"

    def __init__(
        self,
        folder: Path,
        account: str,
        *,
        state_path: Path | None = None,
        stop_market_keyword: str = "STOPMARKET",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`folder`: the NinjaTrader user folder holding `incoming/` and `outgoing/`."""
        self.incoming = folder / "incoming"
        self.outgoing = folder / "outgoing"
        for d in (self.incoming, self.outgoing):
            if not d.is_dir():
                raise FileNotFoundError(f"ninjatrader: ATI folder {d} does not exist")
        self.account = account
        self.state_path = state_path
        self._stop_kw = stop_market_keyword
        self._clock = clock
        self._lock = threading.RLock()
        # client order id -> {"symbol", "quantity", "levels": [[cum qty, avg, seen]], "last"}
        self._orders: dict[str, dict[str, Any]] = {}
        if state_path is not None and state_path.exists():
            self._orders = json.loads(state_path.read_text())

    def _save(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        tmp.write_text(json.dumps(self._orders))
        os.replace(tmp, self.state_path)

    # -- OIF -------------------------------------------------------------------------------
    def place_line(self, intent: OrderIntent) -> str:
        if intent.order_type is OrderType.TRAILING_STOP:
            raise InvalidOrderError("ninjatrader: ATI has no trailing stop order type")
        if intent.time_in_force not in _TIF:
            raise InvalidOrderError(
                f"ninjatrader: time in force {intent.time_in_force.value} not offered "
                "(ATI TIF is DAY or GTC)"
            )
        if intent.reduce_only:
            raise InvalidOrderError("ninjatrader: ATI has no reduce-only flag")
        if intent.quantity != int(intent.quantity):
            raise InvalidOrderError(f"ninjatrader: quantity {intent.quantity} is not an integer")
        kind = _NT_TYPE[intent.order_type]
        if kind == "STOPMARKET":
            kind = self._stop_kw
        limit = f"{intent.limit_price:g}" if intent.order_type in (
            OrderType.LIMIT, OrderType.STOP_LIMIT) else ""  # fmt: skip
        stop = f"{intent.stop_price:g}" if intent.order_type in (
            OrderType.STOP, OrderType.STOP_LIMIT) else ""  # fmt: skip
        fields = ["PLACE", self.account, intent.symbol, intent.side.value.upper(),
                  str(int(intent.quantity)), kind, limit, stop, _TIF[intent.time_in_force],
                  "", intent.client_order_id, "", ""]  # fmt: skip
        return ";".join(fields)

    def _write_oif(self, name: str, line: str) -> Path:
        target = self.incoming / f"oif_{name}.txt"
        tmp = self.incoming / f".tmp_{name}"  # does not match oif*.txt: never read early
        tmp.write_text(line + "\n")
        os.replace(tmp, target)
        return target

    # -- the Broker port -------------------------------------------------------------------
    def submit(self, intent: OrderIntent) -> BrokerOrder:
        coid = intent.client_order_id
        with self._lock:
            line = self.place_line(intent)
            already = (
                coid in self._orders
                or (self.outgoing / f"{coid}.txt").exists()
                or (self.incoming / f"oif_{coid}.txt").exists()
            )
            if not already:
                self._orders[coid] = {"symbol": intent.symbol, "quantity": intent.quantity,
                                      "levels": [], "last": None}  # fmt: skip
                self._save()
                self._write_oif(coid, line)
            elif coid not in self._orders:
                self._orders[coid] = {"symbol": intent.symbol, "quantity": intent.quantity,
                                      "levels": [], "last": None}  # fmt: skip
            found = self.get_order(coid)
            assert found is not None
            return found

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        with self._lock:
            known = self._orders.get(client_order_id)
            state_file = self.outgoing / f"{client_order_id}.txt"
            if known is None and not state_file.exists():
                return None
            if known is None:
                known = {"symbol": "", "quantity": 0.0, "levels": [], "last": None}
                self._orders[client_order_id] = known
            if state_file.exists():
                text = state_file.read_text().strip()
                parts = text.split(";")
                if len(parts) < 3:
                    raise ValueError(
                        f"ninjatrader: {state_file} is not 'state;filled;avg': {text!r}"
                    )
                state = parts[0].strip().upper()
                cum, avg = float(parts[1] or 0), float(parts[2] or 0)
                levels = known["levels"]
                if cum > 0 and (not levels or cum > levels[-1][0]):
                    levels.append([cum, avg, self._clock().isoformat()])
                known["last"] = state
                self._save()
            state = known["last"] or "SUBMITTED"
            return self._to_order(client_order_id, known, state)

    def cancel(self, client_order_id: str) -> BrokerOrder:
        order = self.get_order(client_order_id)
        if order is None:
            raise OrderNotFoundError(f"ninjatrader: no order {client_order_id}")
        if order.status in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
            line = ";".join(["CANCEL", "", "", "", "", "", "", "", "", "", client_order_id, "", ""])
            self._write_oif(f"cancel_{client_order_id}", line)
        return order

    def open_orders(self) -> list[BrokerOrder]:
        out = []
        for coid in list(self._orders):
            order = self.get_order(coid)
            if order is not None and order.status in (
                OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED
            ):  # fmt: skip
                out.append(order)
        return out

    def positions(self) -> list[BrokerPosition]:
        suffix = f"_{self.account}_Position.txt"
        out = []
        for path in sorted(self.outgoing.glob(f"*{suffix}")):
            instrument = path.name[: -len(suffix)]
            parts = path.read_text().strip().split(";")
            side, qty = parts[0].strip().upper(), abs(float(parts[1] or 0))
            if side == "FLAT" or not qty:
                continue
            avg = float(parts[2]) if len(parts) > 2 and parts[2] else None
            out.append(BrokerPosition(self._symbol(instrument),
                                      qty if side == "LONG" else -qty, avg))  # fmt: skip
        return out

    def _symbol(self, instrument_with_exchange: str) -> str:
        """`ES 09-24 Globex` -> `ES 09-24` when that is a symbol we placed orders for."""
        for known in self._orders.values():
            sym = known.get("symbol") or ""
            if sym and instrument_with_exchange.startswith(sym + " "):
                return str(sym)
        return instrument_with_exchange

    def _to_order(self, coid: str, known: dict[str, Any], state: str) -> BrokerOrder:
        status = _STATE.get(state, OrderStatus.SUBMITTED)
        levels = known["levels"]
        cum = levels[-1][0] if levels else 0.0
        if status is OrderStatus.SUBMITTED and cum > 0:
            status = OrderStatus.PARTIALLY_FILLED
        if status is OrderStatus.REJECTED and cum > 0:
            status = OrderStatus.CANCELLED
        fills = []
        prev_q = prev_cost = 0.0
        for q, a, seen in levels:
            price = (q * a - prev_cost) / (q - prev_q)
            when = datetime.fromisoformat(seen)  # first observed: the file has no time
            fills.append(BrokerFill(f"{coid}:{q:g}", q - prev_q, price, 0.0, when))
            prev_q, prev_cost = q, q * a
        return BrokerOrder(
            client_order_id=coid,
            broker_order_id=coid,
            symbol=known.get("symbol") or "",
            status=status,
            quantity=float(known.get("quantity") or cum),
            filled_quantity=cum,
            avg_fill_price=levels[-1][1] if levels else None,
            fills=tuple(fills),
            reason="rejected by NinjaTrader" if status is OrderStatus.REJECTED else None,
        )
