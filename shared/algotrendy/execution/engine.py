"""The execution engine: the only writer of orders, fills and positions.

For each OrderIntent taken from `orders.fifo`:

1. an order with the intent's client order id already exists → this is a redelivery:
   resolve it with the broker if its state is open to doubt (NEW/UNKNOWN), never submit again;
2. risk check, under one lock with the reservation of the order's exposure, so concurrent
   intents cannot together pass a limit; a rejection is persisted with its reason and
   published as an alert;
3. the order is persisted as NEW *before* the broker sees it, so a crash after the submit
   leaves a record that reconciliation resolves by asking the broker;
4. submit with the deterministic client order id (retried with backoff for retryable
   errors only); a submit that times out leaves the order UNKNOWN and the broker is asked;
5. fills are recorded once (unique broker fill id), positions and daily PnL updated,
   events published;
6. only then is the queue message deleted.

Positions are rebuilt from the fills table on start (fills are the source of truth), so a
crash between recording a fill and saving positions loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from algotrendy.domain.orders import (
    TERMINAL_STATUSES,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    Side,
)
from algotrendy.execution.brokers.base import Broker, BrokerOrder
from algotrendy.execution.brokers.retry import DEFAULT_RETRY, RetryPolicy, call_with_retry
from algotrendy.execution.errors import BrokerError, SubmitTimeoutError
from algotrendy.execution.lifecycle import can_transition
from algotrendy.execution.ports import EventPublisher, PriceSource
from algotrendy.execution.positions import PositionBook
from algotrendy.execution.risk import RiskManager, RiskSnapshot
from algotrendy.messaging.base import Queue, QueueMessage
from algotrendy.messaging.cancel import ORDER_CANCEL, CancelRequest
from algotrendy.messaging.envelope import Envelope, EnvelopeError
from algotrendy.storage.relational.repositories import DuplicateOrderError, SqlExecutionRepository

log = logging.getLogger(__name__)

RECONCILIATION_LEDGER = "_reconciliation"


@dataclass
class EngineStats:
    processed: int = 0
    duplicates: int = 0
    rejected: int = 0
    invalid: int = 0
    errors: int = 0
    submit_latencies: list[float] = field(default_factory=list)


class ExecutionEngine:
    def __init__(
        self,
        *,
        repo: SqlExecutionRepository,
        broker: Broker,
        risk: RiskManager,
        prices: PriceSource,
        publisher: EventPublisher,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        record_latency: bool = False,
    ) -> None:
        self.repo = repo
        self.broker = broker
        self.risk = risk
        self.prices = prices
        self.publisher = publisher
        self.retry = retry
        self._sleep = sleep
        self._record_latency = record_latency
        self.kill_switch = False
        self.book = PositionBook()
        self.stats = EngineStats()
        self._lock = threading.RLock()
        self._open: dict[str, Order] = {}
        self._daily: dict[tuple[str, date], float] = {}
        self._fill_ids: dict[str, set[str]] = {}  # fills already recorded, per live order
        self._stop = threading.Event()

    # -- start-up ------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Load state, rebuild positions from fills, reconcile with the broker."""
        self._open = {o.client_order_id: o for o in self.repo.open_orders()}
        self._rebuild_positions()
        return self.reconcile()

    def _rebuild_positions(self) -> None:
        """Replay every fill, then add the reconciliation adjustments (broker truth that no
        fill of ours explains, kept in their own sub-ledger)."""
        self.book = PositionBook()
        for f in self.repo.all_fills():
            self.book.apply_fill(
                account=f.account, strategy=f.strategy, symbol=f.symbol, side=f.side,
                quantity=f.quantity, price=f.price, fee=f.fee,
            )  # fmt: skip
        for adj in self.repo.load_positions(strategy=RECONCILIATION_LEDGER):
            pos = self.book.get(adj.account, adj.strategy, adj.symbol)
            pos.quantity, pos.avg_price = adj.quantity, adj.avg_price

    def reconcile(self) -> list[str]:
        """Broker truth wins: resolve every non-terminal order, report position drift."""
        notes: list[str] = []
        for order in list(self._open.values()):
            remote = self.broker.get_order(order.client_order_id)
            if remote is None:
                if order.status in (OrderStatus.NEW, OrderStatus.UNKNOWN):
                    # The broker never got it: the submit did not happen. Reject, say why.
                    order.status = OrderStatus.REJECTED
                    order.reason = "not found at broker on reconciliation (never submitted)"
                    self._persist(order)
                    notes.append(f"{order.client_order_id}: {order.reason}")
                continue
            before = order.status
            self._apply_broker_order(order, remote)
            if order.status != before:
                notes.append(
                    f"{order.client_order_id}: {before.value} -> {order.status.value} (broker)"
                )
        notes += self._reconcile_positions()
        for note in notes:
            self._alert("reconciliation", note)
        return notes

    def _reconcile_positions(self) -> list[str]:
        """Compare account positions with the broker's; correct drift from the broker's
        truth into the reconciliation sub-ledger (when the engine trades one account)."""
        notes: list[str] = []
        remote = self.broker.positions()
        broker = {bp.symbol: bp.quantity for bp in remote}
        broker_avg = {bp.symbol: bp.avg_price for bp in remote}
        ours: dict[str, float] = {}
        accounts = {p.account for p in self.book.positions()} or {"default"}
        for p in self.book.positions():
            ours[p.symbol] = ours.get(p.symbol, 0.0) + p.quantity
        adjusted = []
        for symbol in sorted(set(broker) | set(ours)):
            mine, theirs = ours.get(symbol, 0.0), broker.get(symbol, 0.0)
            if abs(mine - theirs) <= 1e-9:
                continue
            note = f"position {symbol}: engine {mine:g} vs broker {theirs:g}"
            if len(accounts) == 1:
                account = next(iter(accounts))
                adj = self.book.get(account, RECONCILIATION_LEDGER, symbol)
                adj.quantity += theirs - mine
                # Marked from the broker's average (or the last price) so the adjustment
                # carries no phantom unrealised PnL.
                adj.avg_price = broker_avg.get(symbol) or self.prices.last_price(symbol) or 0.0
                adjusted.append(adj)
                note += f"; corrected by {theirs - mine:+g} in ledger {RECONCILIATION_LEDGER!r}"
            else:
                note += "; not corrected (several accounts share this broker)"
            notes.append(note)
        if adjusted:
            self.repo.save_positions(adjusted)
        return notes

    # -- the loop ------------------------------------------------------------------------
    def run(
        self, queue: Queue, *, wait_seconds: float = 1.0, max_batches: int | None = None
    ) -> None:
        """Consume until `stop()` (or `max_batches` polls); each message deleted when durable."""
        batches = 0
        while not self._stop.is_set():
            for message in queue.receive(max_messages=10, wait_seconds=wait_seconds):
                if self.handle(message):
                    queue.delete(message)
            batches += 1
            if max_batches is not None and batches >= max_batches:
                return

    def stop(self) -> None:
        self._stop.set()

    def handle(self, message: QueueMessage) -> bool:
        """Process one queue message; True when it may be deleted."""
        try:
            envelope = Envelope.parse(message.body)
            if envelope.type == ORDER_CANCEL:
                return self._handle_cancel(envelope, message)
            intent = envelope.intent()
        except EnvelopeError as exc:
            # Never processable: leave it for the DLQ (maxReceiveCount) and say why.
            self.stats.invalid += 1
            self._alert("invalid_message", f"message {message.message_id}: {exc}")
            return False
        try:
            self.process(intent)
        except Exception:
            self.stats.errors += 1
            log.exception("intent %s failed; message kept for redelivery", intent.intent_id)
            return False
        return True

    def _handle_cancel(self, envelope: Envelope, message: QueueMessage) -> bool:
        """An `order.cancel` request; cancelling a finished or unknown order is a no-op
        (said in an alert), so the message is always done once handled."""
        try:
            request = CancelRequest.model_validate(envelope.payload)
        except ValidationError as exc:
            self.stats.invalid += 1
            self._alert("invalid_message", f"message {message.message_id}: invalid cancel: {exc}")
            return False
        try:
            order = self.cancel(request.client_order_id)
        except BrokerError as exc:
            if exc.retryable:
                log.warning("cancel %s failed, will retry: %s", request.client_order_id, exc)
                return False
            self._alert("cancel_failed", f"{request.client_order_id}: {exc}")
            return True
        if order is None:
            self._alert("cancel_unknown", f"{request.client_order_id}: no such order")
        self.repo.audit(request.requested_by, "order.cancel", request.client_order_id,
                        {"status": order.status.value if order else None})  # fmt: skip
        return True

    # -- one intent ----------------------------------------------------------------------
    def process(self, intent: OrderIntent) -> Order:
        t0 = time.perf_counter()
        # The insert of the order is the duplicate check (unique client order id): one
        # round trip for new intents, and a redelivery can never slip past it.
        order = Order.from_intent(intent, broker=self.broker.name)
        with self._lock:
            decision = self.risk.check(intent, self._snapshot(intent))
            if not decision.approved:
                order.status = OrderStatus.REJECTED
                order.reason = f"risk: {decision.reason}"
            try:
                self.repo.create_order(order)
            except DuplicateOrderError:
                return self._redelivered(intent)
            if decision.approved:
                self._fill_ids[order.client_order_id] = set()
                self._open[order.client_order_id] = order
        self.stats.processed += 1
        if not decision.approved:
            self.stats.rejected += 1
            self.repo.audit("engine", "order.rejected", order.client_order_id,
                            {"reason": order.reason, "intent": intent.intent_id})  # fmt: skip
            self._alert("order_rejected", f"{intent.symbol} {intent.side.value} "
                        f"{intent.quantity:g}: {order.reason}", order)  # fmt: skip
            self._publish_order(order)
            return order

        try:
            remote = call_with_retry(lambda: self.broker.submit(intent), self.retry,
                                     sleep=self._sleep)  # fmt: skip
        except SubmitTimeoutError as exc:
            self._resolve_timeout(order, exc)
            return order
        except BrokerError as exc:
            order.status = OrderStatus.REJECTED
            kind = "retries exhausted" if exc.retryable else "refused"
            order.reason = f"broker {kind}: {exc}"
            self._persist(order)
            self.stats.rejected += 1
            self._alert("order_rejected", f"{order.client_order_id}: {order.reason}", order)
            return order
        if self._record_latency:
            self.stats.submit_latencies.append(time.perf_counter() - t0)
        self._apply_broker_order(order, remote)
        return order

    def _redelivered(self, intent: OrderIntent) -> Order:
        """The intent's order exists: never submit again; resolve it if in doubt."""
        self.stats.duplicates += 1
        existing = self._open.get(intent.client_order_id) or self.repo.get_order(
            intent.client_order_id
        )
        if existing is None:
            raise RuntimeError(f"order {intent.client_order_id} vanished after a duplicate insert")
        if existing.status in (OrderStatus.NEW, OrderStatus.UNKNOWN):
            remote = self.broker.get_order(existing.client_order_id)
            if remote is not None:
                self._apply_broker_order(existing, remote)
        return existing

    def _resolve_timeout(self, order: Order, exc: SubmitTimeoutError) -> None:
        """A submit that never answered: UNKNOWN until the broker says what it has."""
        order.status = OrderStatus.UNKNOWN
        order.reason = f"submit timed out after {self.retry.attempts} attempts: {exc}"
        self._persist(order)
        try:
            at_broker = call_with_retry(
                lambda: self.broker.get_order(order.client_order_id), self.retry,
                sleep=self._sleep,
            )  # fmt: skip
        except BrokerError as lookup:
            self._alert("order_unknown", f"{order.client_order_id}: {order.reason}; "
                        f"broker lookup failed too ({lookup}); reconciliation will resolve it",
                        order)  # fmt: skip
            return
        if at_broker is not None:
            self._apply_broker_order(order, at_broker)
            return
        order.status = OrderStatus.REJECTED
        order.reason += "; the broker has no such order, so it was never placed"
        self._persist(order)
        self.stats.rejected += 1
        self._alert("order_rejected", f"{order.client_order_id}: {order.reason}", order)

    def on_broker_update(self, remote: BrokerOrder) -> None:
        """A broker event (fill, cancel) for an order we track."""
        with self._lock:
            order = self._open.get(remote.client_order_id) or self.repo.get_order(
                remote.client_order_id
            )
        if order is not None:
            self._apply_broker_order(order, remote)

    def cancel(self, client_order_id: str) -> Order | None:
        order = self._open.get(client_order_id) or self.repo.get_order(client_order_id)
        if order is None or order.status in TERMINAL_STATUSES:
            return order
        remote = call_with_retry(lambda: self.broker.cancel(client_order_id), self.retry,
                                 sleep=self._sleep)  # fmt: skip
        self._apply_broker_order(order, remote)
        return order

    def replace(
        self,
        client_order_id: str,
        *,
        quantity: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> Order:
        """Cancel-and-replace: cancel the working order, then place its successor (same
        intent, new quantity/prices) under a derived intent id `<intent>.r<n>`, so a retried
        replace is as idempotent as any intent. The unfilled part only is replaced."""
        old = self._open.get(client_order_id) or self.repo.get_order(client_order_id)
        if old is None:
            raise KeyError(f"no order {client_order_id}")
        cancelled = self.cancel(client_order_id)
        if cancelled is None or cancelled.status is not OrderStatus.CANCELLED:
            state = cancelled.status.value if cancelled else "unknown"
            raise ValueError(f"order {client_order_id} is {state}: nothing left to replace")
        base, _, n = old.intent_id.rpartition(".r")
        nxt = int(n) + 1 if base and n.isdigit() else 1
        root = base if base and n.isdigit() else old.intent_id
        successor = OrderIntent(
            intent_id=f"{root}.r{nxt}", account=old.account, strategy=old.strategy,
            symbol=old.symbol, side=old.side, quantity=quantity or old.remaining,
            order_type=old.order_type, time_in_force=old.time_in_force,
            limit_price=limit_price if limit_price is not None else old.limit_price,
            stop_price=stop_price if stop_price is not None else old.stop_price,
            trail_percent=old.trail_percent, source=old.source,
        )  # fmt: skip
        return self.process(successor)

    def set_kill_switch(self, on: bool, *, actor: str = "operator") -> list[str]:
        """On: block new orders and cancel every working order. Returns cancelled ids."""
        self.kill_switch = on
        self.repo.audit(actor, "kill_switch", None, {"on": on})
        self._alert("kill_switch", f"kill switch {'ON' if on else 'OFF'} by {actor}")
        cancelled = []
        if on:
            for coid in list(self._open):
                self.cancel(coid)
                cancelled.append(coid)
        return cancelled

    # -- internals -----------------------------------------------------------------------
    def _snapshot(self, intent: OrderIntent) -> RiskSnapshot:
        buys = sells = 0.0
        for o in self._open.values():
            if o.account == intent.account and o.symbol == intent.symbol:
                if o.side is Side.BUY:
                    buys += o.remaining
                else:
                    sells += o.remaining
        price = self.prices.last_price(intent.symbol)
        unrealized = 0.0
        for p in self.book.positions(intent.account):
            mark = self.prices.last_price(p.symbol)
            if mark is not None:
                unrealized += p.unrealized_pnl(mark)
        today = datetime.now(UTC).date()
        return RiskSnapshot(
            position=self.book.account_quantity(intent.account, intent.symbol),
            open_buy_quantity=buys,
            open_sell_quantity=sells,
            open_orders=sum(1 for o in self._open.values() if o.account == intent.account),
            price=price,
            daily_pnl=self._daily_pnl(intent.account, today) + unrealized,
            kill_switch=self.kill_switch,
        )

    def _apply_broker_order(self, order: Order, remote: BrokerOrder) -> None:
        """Fold the broker's view of an order into ours, in one database transaction."""
        with self._lock:
            order.broker_order_id = remote.broker_order_id or order.broker_order_id
            known = self._fill_ids.get(order.client_order_id)
            if known is None:  # first look at this order in this process: ask the database
                known = self.repo.known_fill_ids(
                    self.broker.name, [f.fill_id for f in remote.fills]
                )
                self._fill_ids[order.client_order_id] = known
            new_fills = [
                Fill(
                    broker=self.broker.name,
                    broker_fill_id=bf.fill_id,
                    client_order_id=order.client_order_id,
                    account=order.account,
                    strategy=order.strategy,
                    symbol=order.symbol,
                    side=order.side,
                    quantity=bf.quantity,
                    price=bf.price,
                    fee=bf.fee,
                    fee_currency=bf.fee_currency,
                    time=bf.time,
                )
                for bf in remote.fills
                if bf.fill_id not in known
            ]
            order.filled_quantity = remote.filled_quantity
            order.avg_fill_price = remote.avg_fill_price
            order.fees = sum(f.fee for f in remote.fills)
            target = remote.status
            if order.status is OrderStatus.NEW and target in (
                OrderStatus.PARTIALLY_FILLED,
                OrderStatus.FILLED,
            ):
                order.status = OrderStatus.SUBMITTED  # NEW -> SUBMITTED -> filled
            if target != order.status and can_transition(order.status, target):
                order.status = target
            if remote.reason:
                order.reason = remote.reason
            strategy = order.strategy or ""
            pos = self.book.get(order.account, strategy, order.symbol) if new_fills else None
            before = (pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees) if pos else None
            realized = fees = 0.0
            for f in new_fills:
                realized += self.book.apply_fill(
                    account=f.account, strategy=f.strategy, symbol=f.symbol, side=f.side,
                    quantity=f.quantity, price=f.price, fee=f.fee,
                )  # fmt: skip
                fees += f.fee
            day = new_fills[-1].time.date() if new_fills else None
            try:
                self.repo.record_execution(
                    order, new_fills, pos,
                    (order.account, strategy, day, realized, fees) if day else None,
                )  # fmt: skip
            except Exception:
                if pos is not None and before is not None:  # keep the book equal to the db
                    pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees = before
                raise
            known.update(f.broker_fill_id for f in new_fills)
            if order.status in TERMINAL_STATUSES:
                self._fill_ids.pop(order.client_order_id, None)
            if day is not None:
                key = (order.account, day)
                self._daily[key] = self._daily_pnl(order.account, day) + realized - fees
            self._after_persist(order)
            if pos is not None:
                self.publisher.publish("positions", {
                    "account": pos.account, "strategy": pos.strategy, "symbol": pos.symbol,
                    "quantity": pos.quantity, "avg_price": pos.avg_price,
                    "realized_pnl": pos.realized_pnl, "fees": pos.fees,
                })  # fmt: skip
                for f in new_fills:
                    self.publisher.publish("fills", f.model_dump(mode="json"))

    def _daily_pnl(self, account: str, day: date) -> float:
        """Net realised PnL of the day, read once from the database then kept in memory."""
        key = (account, day)
        if key not in self._daily:
            self._daily[key] = self.repo.daily_pnl(account, day)
        return self._daily[key]

    def _persist(self, order: Order) -> None:
        self.repo.save_order(order)
        self._after_persist(order)

    def _after_persist(self, order: Order) -> None:
        if order.status in TERMINAL_STATUSES:
            self._open.pop(order.client_order_id, None)
        else:
            self._open[order.client_order_id] = order
        self._publish_order(order)

    def _publish_order(self, order: Order) -> None:
        self.publisher.publish("orders", order.model_dump(mode="json"))

    def _alert(self, kind: str, message: str, order: Order | None = None) -> None:
        event: dict[str, Any] = {"kind": kind, "message": message,
                                 "time": datetime.now(UTC).isoformat()}  # fmt: skip
        if order is not None:
            event["client_order_id"] = order.client_order_id
            event["symbol"] = order.symbol
        log.warning("alert %s: %s", kind, message)
        self.publisher.publish("alerts", event)
