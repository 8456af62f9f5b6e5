"""The execution engine: the only writer of orders, fills and positions.

For each OrderIntent taken from `orders.fifo`:

1. an order with the intent's client order id already exists → this is a redelivery:
   resolve it with the broker if its state is open to doubt (NEW/UNKNOWN); only a NEW order
   the broker does not know is submitted, under the same client order id (`_redelivered`);
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

Group commit: the consumer loop takes up to 10 messages per receive and runs the steps
above for all of them at once — one transaction for the batch's NEW/REJECTED orders
(step 3: every order is durable before the broker sees any of them), the submits one by
one in message order, one transaction for all their fills, positions and PnL (step 5),
then the deletes (step 6). Risk checks still run one intent at a time in message order,
each seeing the exposure reserved by the approved intents before it. A crash inside a
batch leaves exactly the states a crash inside one intent can leave — NEW orders the broker
may or may not have, undeleted messages — and start-up reconciliation plus the duplicate
check resolve them the same way. `process(intent)` is a batch of one.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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
from algotrendy.execution.brokers.base import Broker, BrokerOrder, BrokerPosition
from algotrendy.execution.brokers.retry import DEFAULT_RETRY, RetryPolicy, call_with_retry
from algotrendy.execution.errors import BrokerError, OrderNotFoundError, SubmitTimeoutError
from algotrendy.execution.lifecycle import fold_status
from algotrendy.execution.ports import EventPublisher, PriceSource
from algotrendy.execution.positions import Position, PositionBook, book_fee
from algotrendy.execution.risk import RiskManager, RiskSnapshot
from algotrendy.messaging.base import Queue, QueueMessage
from algotrendy.messaging.cancel import ORDER_CANCEL, CancelRequest
from algotrendy.messaging.envelope import Envelope, EnvelopeError
from algotrendy.storage.relational.api_repositories import ConfigurationRepository
from algotrendy.storage.relational.repositories import (
    AuditEntry,
    DuplicateOrderError,
    PnlDelta,
    SqlExecutionRepository,
)

log = logging.getLogger(__name__)

RECONCILIATION_LEDGER = "_reconciliation"
# The kill switch survives restarts as a row of the `configurations` table: {"on": bool}.
KILL_SWITCH_KEY = "execution.kill_switch"


@dataclass
class EngineStats:
    processed: int = 0
    duplicates: int = 0
    rejected: int = 0
    invalid: int = 0
    errors: int = 0
    submit_latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class KillSwitchResult:
    """What turning the kill switch on did (`ExecutionEngine.apply_kill_switch`), for the
    operator who asked: the orders cancelled, those that could NOT be cancelled (id ->
    status and the broker's error: check them at the venue), submits still unanswered
    after the drain (their orders may be live), and why the switch could not be saved
    (`unsaved`; None when it was): ON in this process only, a restart would turn it off."""

    cancelled: list[str] = field(default_factory=list)
    not_cancelled: dict[str, str] = field(default_factory=dict)
    unanswered_submits: int = 0
    unsaved: str | None = None

    @property
    def persisted(self) -> bool:
        return self.unsaved is None


class KillSwitchNotSavedError(RuntimeError):
    """`set_kill_switch`: the switch is ON in memory and the sweep ran, but saving it
    failed. `result` is what the sweep did, `result.unsaved` why saving failed."""

    def __init__(self, result: KillSwitchResult) -> None:
        super().__init__(f"kill switch ON but not saved: {result.unsaved}")
        self.result = result


# A recorded broker update: the order, its known fill ids, its new fills, position event.
_Done = tuple[Order, set[str], list[Fill], dict[str, Any] | None]
# A position as it was before a commit (put back if it fails): quantity, average price,
# realised PnL, fees, and a copy of the fees in third currencies.
_PositionState = tuple[float, float, float, float, dict[str, float]]


@dataclass(slots=True)
class _Item:
    """One intent on its way through a batch (see `ExecutionEngine._process_batch`)."""

    intent: OrderIntent
    client_order_id: str
    order: Order | None = None  # the order this batch created; None for a redelivery
    approved: bool = False
    remote: BrokerOrder | None = None  # the broker's answer to the submit
    result: Order | None = None
    error: Exception | None = None  # set: the message must be kept for redelivery


@contextmanager
def _kept_on(*items: _Item) -> Iterator[None]:
    """An exception inside is kept on the items — their messages stay for redelivery,
    `_flush` logs it, `process` raises it — instead of failing the intents batched with
    them (without batching it would have failed only their own `process` call)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - kept on the items: logged by _flush, raised by process
        for item in items:
            item.error = exc


class _Exposure:
    """Working orders per account (count) and per account and symbol (unfilled buy and
    sell quantity), built once per batch under the engine lock and grown by each approval
    of the batch, so every risk check sees the reservations made before it. Also caches
    each account's unrealised PnL for the batch (positions only move under the lock)."""

    __slots__ = ("open_orders", "unrealized", "working")

    def __init__(self, orders: Iterable[Order]) -> None:
        self.open_orders: dict[str, int] = {}
        self.working: dict[tuple[str, str], tuple[float, float]] = {}
        self.unrealized: dict[str, float] = {}
        for order in orders:
            self.reserve(order)

    def reserve(self, order: Order) -> None:
        self.open_orders[order.account] = self.open_orders.get(order.account, 0) + 1
        key = (order.account, order.symbol)
        buys, sells = self.working.get(key, (0.0, 0.0))
        if order.side is Side.BUY:
            buys += order.remaining
        else:
            sells += order.remaining
        self.working[key] = (buys, sells)


class ExecutionEngine:
    # How long turning the kill switch on waits for submits already under way to answer.
    kill_switch_drain_seconds: float = 30.0
    # How long an order the broker does not show stays UNKNOWN (reserving its exposure)
    # before a later reconciliation that misses it again ends it (`_missing_at_broker`).
    missing_order_grace: timedelta = timedelta(minutes=5)
    # Seconds between reconciliations of the running engine (`reconcile_if_due`, called by
    # `run` between polls), so an order left UNKNOWN is resolved without a restart; None
    # turns them off (start-up reconciliation still runs).
    reconcile_interval: float | None = 60.0

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
        self._settings = ConfigurationRepository(repo.engine)
        # Guards `kill_switch` against submits: a submit starts only while the switch is
        # off, and is counted in `_submitting` until it has answered (see `_submit`).
        self._gate = threading.Condition()
        self._submitting = 0
        self.book = PositionBook()
        self.stats = EngineStats()
        self._lock = threading.RLock()
        self._open: dict[str, Order] = {}
        self._daily: dict[tuple[str, date], float] = {}
        self._fill_ids: dict[str, set[str]] = {}  # fills already recorded, per live order
        self._stop = threading.Event()
        # One reconciliation pass at a time; `_last_reconcile` (monotonic) paces `run`'s.
        self._reconciling = threading.Lock()
        self._last_reconcile: float | None = None
        self.reconciliation_notes: list[str] = []  # the last completed pass's notes

    # -- start-up ------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Load state, rebuild positions from fills, reconcile with the broker. A kill
        switch saved ON stays on, and orders still working (a sweep that could not cancel
        them, a crash during it) are swept again."""
        self._load_kill_switch()
        self._open = {o.client_order_id: o for o in self.repo.open_orders()}
        self._rebuild_positions()
        notes = self.reconcile()
        if self.kill_switch:
            self._cancel_working()
        return notes

    def _rebuild_positions(self) -> None:
        """Replay every fill, then add the reconciliation adjustments (broker truth that no
        fill of ours explains, kept in their own sub-ledger)."""
        self.book = PositionBook()
        for f in self.repo.all_fills():
            self.book.apply_fill(
                account=f.account, strategy=f.strategy, symbol=f.symbol, side=f.side,
                quantity=f.quantity, price=f.price, fee=f.fee, fee_currency=f.fee_currency,
            )  # fmt: skip
        for adj in self.repo.load_positions(strategy=RECONCILIATION_LEDGER):
            pos = self.book.get(adj.account, adj.strategy, adj.symbol)
            pos.quantity, pos.avg_price = adj.quantity, adj.avg_price

    def reconcile(self) -> list[str]:
        """Broker truth wins: resolve every non-terminal order, report position drift.

        An open order the broker does not know (see `_missing_at_broker`) is reported and
        alerted, never skipped. A lookup that fails leaves its order as it is (noted), and
        while any order is unresolved position drift is reported but not corrected: the
        unresolved order may be what explains it. One pass at a time (a second caller
        waits for the pass under way)."""
        with self._reconciling:
            try:
                return self._reconcile(running=False)
            finally:
                self._last_reconcile = time.monotonic()

    def reconcile_if_due(self) -> list[str] | None:
        """The running engine's reconciliation, every `reconcile_interval` seconds: without
        it an order left UNKNOWN (a first miss at the broker, an unanswered submit) kept
        reserving its exposure until the next restart. Skipped (None) when not due or when
        a pass is already under way. Never raises: a failed pass (the broker down) is
        alerted and tried again an interval later, so it cannot stop the consumer loop."""
        interval = self.reconcile_interval
        last = self._last_reconcile
        if interval is None or (last is not None and time.monotonic() - last < interval):
            return None
        if not self._reconciling.acquire(blocking=False):
            return None
        try:
            return self._reconcile(running=True)
        except Exception as exc:  # alerted; the next pass tries again
            log.error("periodic reconciliation failed", exc_info=True)
            self._alert("reconciliation_failed", f"periodic reconciliation failed "
                        f"({type(exc).__name__}: {exc}); trading goes on, next try in "
                        f"{interval:g}s")  # fmt: skip
            return None
        finally:
            self._last_reconcile = time.monotonic()
            self._reconciling.release()

    def _reconcile(self, *, running: bool) -> list[str]:
        """One pass of `reconcile` (the caller holds `_reconciling`).

        `running`: the consumer and other threads may be working on orders meanwhile, so
        * NEW orders are left alone: their submit may be under way, or their message is
          kept for a redelivery that resolves them — a miss proves nothing yet;
        * a miss is applied under the engine lock and only if the order is still open in
          the state it was looked up in: news that arrived during the lookup (a fill, a
          cancel) is newer than the miss;
        * position drift is corrected only while no order works (see `_reconcile_positions`)."""
        notes: list[str] = []
        unresolved = 0
        for order in list(self._open.values()):
            looked_up = order.status
            if running and looked_up is OrderStatus.NEW:
                continue
            try:
                remote = self.broker.get_order(order.client_order_id)
            except BrokerError as exc:
                unresolved += 1
                notes.append(f"{order.client_order_id}: broker lookup failed ({exc}); "
                             f"left {order.status.value}")  # fmt: skip
                continue
            if remote is None:
                with self._lock:
                    if self._open.get(order.client_order_id) is not order or (
                        order.status is not looked_up
                    ):
                        continue  # moved on during the lookup: the miss is older news
                    notes.append(self._missing_at_broker(order, datetime.now(UTC)))
                    if order.status is OrderStatus.UNKNOWN:
                        unresolved += 1
                continue
            before = order.status
            self._apply_broker_order(order, remote)
            if order.status != before:
                notes.append(
                    f"{order.client_order_id}: {before.value} -> {order.status.value} (broker)"
                )
        try:
            notes += self._reconcile_positions(unresolved=unresolved, hold_while_working=running)
        except BrokerError as exc:
            if not running:
                raise  # start-up: the engine does not start blind to the broker's positions
            notes.append(f"broker positions lookup failed ({exc}); position drift not checked")
        for note in notes:
            self._alert("reconciliation", note)
        self.reconciliation_notes = notes
        return notes

    def _missing_at_broker(self, order: Order, now: datetime) -> str:
        """An open order the broker says it does not have; returns the note.

        * NEW (start-up only, see `_reconcile`): its submit may have gone out just before
          a crash, and the venue's lookup may lag behind it. Nor is a resubmit on
          redelivery to be counted on (an in-memory queue dies with the process, a replace
          has no message, a message can go to the DLQ). So it is treated like a first miss
          of an acknowledged order: UNKNOWN, still reserving; a redelivery then only looks
          it up, never submits it.
        * Acknowledged (SUBMITTED, PARTIALLY_FILLED): a lookup can miss a working order
          (venue read lag, a symbol the adapter does not search), and freeing its exposure
          then could double a position. So the first miss only marks it UNKNOWN: it keeps
          reserving its exposure and an operator is alerted.
        * UNKNOWN, missed again on a reconciliation at least `missing_order_grace` after it
          became UNKNOWN (the status remembers the first miss across restarts): a venue
          that still has no such order is not working it -> CANCELLED if it was ever
          acknowledged (a broker order id or a fill), else REJECTED (its unanswered submit
          never placed it). Either frees its exposure. Fills it may still report are
          recorded all the same, and position drift is reported. An UNKNOWN order left by
          an unanswered submit gets the same grace: a lookup right after the timeout can
          lag behind the venue just as well."""
        coid, before = order.client_order_id, order.status
        acknowledged = order.broker_order_id is not None or order.filled_quantity > 0
        if before is not OrderStatus.UNKNOWN:  # a first miss
            order.status = OrderStatus.UNKNOWN
            order.reason = (
                "new order not found at broker on start-up reconciliation: its submit may "
                "have reached the venue just before a crash"
                if before is OrderStatus.NEW
                else f"{before.value} order not found at broker on reconciliation"
            ) + "; still reserving its exposure until found or missed again"
            order.updated_at = now  # the grace period counts from here
        elif now - order.updated_at < self.missing_order_grace:
            return f"{coid}: still not found at broker; left unknown, reserving its exposure"
        elif acknowledged:
            order.status = OrderStatus.CANCELLED
            order.reason = ("not found at broker on two reconciliations: presumed ended at the "
                            "venue (check it there)")  # fmt: skip
        else:
            order.status = OrderStatus.REJECTED
            order.reason = ("never acknowledged and still not found at broker after the grace "
                            "period: presumed never placed (check the venue)")  # fmt: skip
        self._persist(order)
        return f"{coid}: {before.value} -> {order.status.value}: {order.reason}"

    def _reconcile_positions(self, *, unresolved: int, hold_while_working: bool) -> list[str]:
        """Compare account positions with the broker's; correct drift from the broker's
        truth into the reconciliation sub-ledger (when the engine trades one account and no
        order is `unresolved`: its fills, once known, would be booked twice).

        `hold_while_working` (the running engine): nor while any order works — one filling
        between its lookup and the broker's position snapshot shows as drift that its fill,
        recorded a moment later, would then book a second time."""
        remote = self.broker.positions()  # outside the lock: a network call
        with self._lock:  # positions only move under the lock
            return self._position_drift(remote, unresolved, hold_while_working)

    def _position_drift(
        self, remote: Sequence[BrokerPosition], unresolved: int, hold_while_working: bool
    ) -> list[str]:
        notes: list[str] = []
        working = len(self._open) if hold_while_working else 0
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
            if unresolved:
                note += f"; not corrected ({unresolved} order(s) unresolved at the broker)"
            elif working:
                note += f"; not corrected while {working} order(s) work"
            elif len(accounts) == 1:
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
        """Consume until `stop()` (or `max_batches` polls); each message deleted when durable.
        Reconciles every `reconcile_interval` seconds between polls."""
        batches = 0
        while not self._stop.is_set():
            self.poll(queue, wait_seconds=wait_seconds)
            self.reconcile_if_due()  # in this thread: never alongside a batch of its own
            batches += 1
            if max_batches is not None and batches >= max_batches:
                return

    def poll(self, queue: Queue, *, wait_seconds: float = 0.0) -> int:
        """One receive (up to 10 messages) handled as a batch; a message is deleted only
        after the batch's transactions that record its effect have committed. Returns the
        number of messages received."""
        messages = queue.receive(max_messages=10, wait_seconds=wait_seconds)
        if messages:
            for message, done in zip(messages, self.handle_batch(messages), strict=True):
                if done:
                    queue.delete(message)
            self.repo.maintain()  # housekeeping between batches, off every intent's path
        return len(messages)

    def stop(self) -> None:
        self._stop.set()

    def handle(self, message: QueueMessage) -> bool:
        """Process one queue message; True when it may be deleted."""
        return self.handle_batch([message])[0]

    def handle_batch(self, messages: Sequence[QueueMessage]) -> list[bool]:
        """Process received messages in order; per message, True when it may be deleted.

        Consecutive intents are processed as one batch (group commit); a cancel request
        first completes the intents before it, so a group's messages keep their order."""
        t0 = time.perf_counter()  # intent -> submitted latency counts from here
        done = [False] * len(messages)
        pending: list[tuple[int, OrderIntent]] = []
        for i, message in enumerate(messages):
            try:
                envelope = Envelope.parse(message.body)
                if envelope.type == ORDER_CANCEL:
                    self._flush(pending, done, t0)
                    done[i] = self._handle_cancel(envelope, message)
                    continue
                intent = envelope.intent()
            except EnvelopeError as exc:
                # Never processable: leave it for the DLQ (maxReceiveCount) and say why.
                self.stats.invalid += 1
                self._alert("invalid_message", f"message {message.message_id}: {exc}")
                continue
            pending.append((i, intent))
        self._flush(pending, done, t0)
        return done

    def _flush(self, pending: list[tuple[int, OrderIntent]], done: list[bool], t0: float) -> None:
        if not pending:
            return
        items = self._process_batch([intent for _, intent in pending], t0)
        for (i, _), item in zip(pending, items, strict=True):
            if item.error is None:
                done[i] = True
            else:
                self.stats.errors += 1
                log.error("intent %s failed; message kept for redelivery",
                          item.intent.intent_id, exc_info=item.error)  # fmt: skip
        pending.clear()

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

    # -- intents -------------------------------------------------------------------------
    def process(self, intent: OrderIntent) -> Order:
        """One intent, end to end (API, replace, tests): a batch of one."""
        [item] = self._process_batch([intent], time.perf_counter())
        if item.error is not None:
            raise item.error
        if item.result is None:  # pragma: no cover - every path sets one of the two
            raise RuntimeError(f"intent {intent.intent_id} left unresolved")
        return item.result

    def _process_batch(self, intents: Sequence[OrderIntent], t0: float) -> list[_Item]:
        """The steps of the module docstring for several intents, in message order:
        risk + persist (one transaction), submit each, record every execution (one
        transaction), then resolve redeliveries. Per-intent failures are set on the item
        (its message is kept); they never undo what other intents made durable."""
        items = [_Item(intent, intent.client_order_id) for intent in intents]
        with _kept_on(*items):  # an item that failed here has no order: it is skipped below
            self._create_orders(items)
        for item in items:
            order = item.order
            if order is not None and not item.approved:
                self.stats.rejected += 1
                item.result = order
                with _kept_on(item):
                    self._alert("order_rejected", f"{item.intent.symbol} "
                                f"{item.intent.side.value} {item.intent.quantity:g}: "
                                f"{order.reason}", order)  # fmt: skip
                    self._publish_order(order)
        for item in items:
            if item.approved:
                self._submit(item, t0)
        submitted = [item for item in items if item.remote is not None]
        if submitted:
            try:
                done = self._record_broker_orders(
                    [(item.order, item.remote) for item in submitted]  # type: ignore[misc]
                )
            except Exception:
                # Isolate the failure: each order in its own transaction, as without batching.
                log.warning("group commit of %d executions failed; recording one by one",
                            len(submitted), exc_info=True)  # fmt: skip
                for item in submitted:
                    with _kept_on(item):
                        self._apply_broker_order(item.order, item.remote)  # type: ignore[arg-type]
                        item.result = item.order
            else:
                for item in submitted:
                    item.result = item.order
                with _kept_on(*submitted):  # recorded, not announced: redelivery is harmless
                    self._announce(done)
        for item in items:
            if item.order is None and item.error is None:
                with _kept_on(item):
                    item.result = self._redelivered(item.intent)
        return items

    def _create_orders(self, items: list[_Item]) -> None:
        """Risk-check each new intent in order and persist all their orders (NEW, or
        REJECTED with the reason and an audit row) in one transaction.

        The unique client order id stays the duplicate check, optimistically: the insert
        is tried without a look-up (ids repeated inside the batch are caught in memory);
        only when it hits the unique index are the stored ids read and the batch redone
        without them — its risk checks too, since a redelivery must reserve nothing. A
        second collision means another writer raced us: one intent at a time, and a lone
        intent that still collides is a redelivery."""
        now = datetime.now(UTC)
        with self._lock:
            try:
                self._check_and_insert(items, set(), now)
                return
            except DuplicateOrderError:
                stored = self.repo.existing_order_ids(item.client_order_id for item in items)
            try:
                self._check_and_insert(items, stored, now)
            except DuplicateOrderError:
                if len(items) == 1:
                    return  # `order` stays None: resolved as a redelivery
                for item in items:
                    with _kept_on(item):
                        self._create_orders([item])

    def _check_and_insert(self, items: list[_Item], stored: set[str], now: datetime) -> None:
        """One attempt of `_create_orders` (the caller holds the lock). Reservations reach
        `_open` only after the commit, and a failed attempt clears every item's order, so
        nothing unpersisted can ever be submitted."""
        seen = set(stored)
        exposure = _Exposure(self._open.values())
        reserved: list[Order] = []  # approved in this batch: exposure for later checks
        created: list[Order] = []
        audits: list[AuditEntry] = []
        for item in items:
            item.order, item.approved = None, False
            if item.client_order_id in seen:
                continue
            seen.add(item.client_order_id)
            order = self._new_order(item, now)
            decision = self.risk.check(item.intent, self._snapshot(item.intent, exposure, now))
            if decision.approved:
                item.approved = True
                reserved.append(order)
                exposure.reserve(order)
            else:
                order.status = OrderStatus.REJECTED
                order.reason = f"risk: {decision.reason}"
                detail = {"reason": order.reason, "intent": item.intent.intent_id}
                audits.append(("engine", "order.rejected", order.client_order_id, detail))
            item.order = order
            created.append(order)
        try:
            self.repo.create_orders(created, audits)
        except BaseException:
            for item in items:
                item.order, item.approved = None, False
            raise
        for order in reserved:
            self._fill_ids[order.client_order_id] = set()
            self._open[order.client_order_id] = order
        self.stats.processed += len(created)

    def _new_order(self, item: _Item, now: datetime) -> Order:
        """`Order.from_intent` with the batch's clock and the id already derived
        (validating construction measured faster than `model_construct` here)."""
        intent = item.intent
        return Order(
            client_order_id=item.client_order_id, intent_id=intent.intent_id,
            account=intent.account, strategy=intent.strategy, broker=self.broker.name,
            symbol=intent.symbol, side=intent.side, order_type=intent.order_type,
            time_in_force=intent.time_in_force, quantity=intent.quantity,
            limit_price=intent.limit_price, stop_price=intent.stop_price,
            trail_percent=intent.trail_percent, source=intent.source, created_at=now,
            updated_at=now,
        )  # fmt: skip

    def _submit(self, item: _Item, t0: float) -> None:
        """Step 4 for one persisted order; sets `item.remote` when the broker accepted it."""
        order = item.order
        assert order is not None
        if not self._claim_submit():  # the switch went on after this order's risk check
            self._reject_unplaced(item, "kill switch turned on before submit: not sent to the "
                                  "broker")  # fmt: skip
            return
        try:
            remote = call_with_retry(functools.partial(self.broker.submit, item.intent),
                                     self.retry, sleep=self._sleep)  # fmt: skip
        except SubmitTimeoutError as exc:
            with _kept_on(item):
                self._resolve_timeout(order, exc)
                item.result = order
            return
        except BrokerError as exc:
            kind = "retries exhausted" if exc.retryable else "refused"
            self._reject_unplaced(item, f"broker {kind}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - kept on the item (logged by _flush, raised by process); the order stays NEW for redelivery
            with _kept_on(item):  # a failing alert must not hide the submit's error (below)
                self._alert("submit_failed", f"{order.client_order_id}: submit failed before "
                            f"the broker answered ({exc!r}); the order stays NEW and its "
                            "message is kept for redelivery", order)  # fmt: skip
            item.error = exc
            return
        finally:
            self._release_submit()  # after the outcome is settled, so the sweep sees it
        if self._record_latency:
            self.stats.submit_latencies.append(time.perf_counter() - t0)
        item.remote = remote

    def _reject_unplaced(self, item: _Item, reason: str) -> None:
        """A persisted order its submit did not place: REJECTED with `reason`, alerted."""
        order = item.order
        assert order is not None
        with _kept_on(item):
            order.status = OrderStatus.REJECTED
            order.reason = reason
            self._persist(order)
            self.stats.rejected += 1
            self._alert("order_rejected", f"{order.client_order_id}: {reason}", order)
            item.result = order

    def _redelivered(self, intent: OrderIntent) -> Order:
        """The intent's order exists: never place it twice; resolve it if in doubt.

        A NEW order the broker does not know never reached it (its submit failed before the
        broker answered, and the message was kept for this redelivery), so it is submitted
        now: under the same client order id, which the venue refuses to place twice. If
        that submit fails the same way, the error is raised and the message kept again."""
        self.stats.duplicates += 1
        existing = self._open.get(intent.client_order_id) or self.repo.get_order(
            intent.client_order_id
        )
        if existing is None:
            raise RuntimeError(f"order {intent.client_order_id} vanished after a duplicate insert")
        if existing.status not in (OrderStatus.NEW, OrderStatus.UNKNOWN):
            return existing
        remote = self.broker.get_order(existing.client_order_id)
        if remote is not None:
            self._apply_broker_order(existing, remote)
        elif existing.status is OrderStatus.NEW:
            self._resubmit(intent, existing)
        return existing

    def _resubmit(self, intent: OrderIntent, order: Order) -> None:
        """Submit a NEW order found on redelivery (see `_redelivered`); raises when the
        submit failed before the broker answered, so the message stays for redelivery.
        `_submit` refuses it while the kill switch is on, as any submit."""
        item = _Item(intent, order.client_order_id, order=order, approved=True)
        self._submit(item, time.perf_counter())
        if item.error is not None:
            raise item.error
        if item.remote is not None:
            self._apply_broker_order(order, item.remote)

    def _resolve_timeout(self, order: Order, exc: SubmitTimeoutError) -> None:
        """A submit that never answered: UNKNOWN until the broker says what it has.

        "Not found" right after the timeout is no proof either: a venue's lookup can lag
        behind its matching engine. So the order stays UNKNOWN (reserving its exposure,
        never submitted again: a redelivery only looks it up) and reconciliation ends it
        only when it is still missing after `missing_order_grace` (`_missing_at_broker`)."""
        order.status = OrderStatus.UNKNOWN
        order.reason = f"submit timed out after {self.retry.attempts} attempts: {exc}"
        order.updated_at = datetime.now(UTC)  # the grace period counts from here
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
        order.reason += ("; the broker does not show it (yet): left unknown, reserving its "
                         "exposure, until reconciliation finds it or still misses it after "
                         "the grace period")  # fmt: skip
        self._persist(order)
        self._alert("order_unknown", f"{order.client_order_id}: {order.reason}", order)

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
        """`apply_kill_switch`, returning only the cancelled ids; raises
        `KillSwitchNotSavedError` (after the sweep) when ON could not be saved."""
        result = self.apply_kill_switch(on, actor=actor)
        if result.unsaved is not None:
            raise KillSwitchNotSavedError(result)
        return result.cancelled

    def apply_kill_switch(self, on: bool, *, actor: str = "operator") -> KillSwitchResult:
        """On: block new orders, let submits already under way answer, then cancel every
        working order. Returns what was and was NOT cancelled (the latter also named in a
        `kill_switch_incomplete` alert). Saved, so a restart keeps it.

        Each way, the safe state comes first: ON is set in memory before it is saved,
        OFF only after it is saved, so a failed save never leaves trading enabled. OFF
        raises when it cannot be saved (nothing changed). ON that cannot be saved still
        sweeps and returns its result with `unsaved` set (and alerts): raising would lose
        the list of orders still live, which the operator needs most then."""
        if not on:
            self._save_kill_switch(False, actor)
            with self._gate:
                self.kill_switch = False
            self._alert("kill_switch", f"kill switch OFF by {actor}")
            return KillSwitchResult()
        with self._gate:
            self.kill_switch = True  # no submit starts from here on
        unsaved: str | None = None
        try:
            self._save_kill_switch(True, actor)
        except Exception as exc:  # logged, alerted and returned in the result
            log.error("kill switch ON but not saved", exc_info=True)
            unsaved = f"{type(exc).__name__}: {exc}"
            self._alert("kill_switch_unsaved", f"kill switch ON but not saved: {unsaved}")
        self._alert("kill_switch", f"kill switch ON by {actor}")
        unanswered = self._drain_submits()
        cancelled, not_cancelled = self._cancel_working()
        return KillSwitchResult(cancelled, not_cancelled, unanswered, unsaved)

    def _save_kill_switch(self, on: bool, actor: str) -> None:
        self._settings.set(KILL_SWITCH_KEY, {"on": on}, actor[:64])
        self.repo.audit(actor, "kill_switch", None, {"on": on})

    def _load_kill_switch(self) -> None:
        """The saved switch; a value that is not {"on": bool} counts as ON (trading stays
        stopped until an operator sets it again) and is alerted."""
        row = self._settings.all().get(KILL_SWITCH_KEY)
        value = None if row is None else row.value
        if value is None:
            self.kill_switch = False
        elif isinstance(value, dict) and isinstance(value.get("on"), bool):
            self.kill_switch = value["on"]
        else:
            self.kill_switch = True
            self._alert("kill_switch", f"saved kill switch {value!r} is not {{'on': bool}}: ON")

    def _claim_submit(self) -> bool:
        """Whether a submit may start (the switch is off); if so it counts as under way."""
        with self._gate:
            if self.kill_switch:
                return False
            self._submitting += 1
            return True

    def _release_submit(self) -> None:
        with self._gate:
            self._submitting -= 1
            self._gate.notify_all()

    def _drain_submits(self) -> int:
        """Wait for submits that started before the switch went on, so the sweep finds
        their orders at the broker instead of racing them there. Returns how many are still
        unanswered."""
        timeout = self.kill_switch_drain_seconds
        with self._gate:
            drained = self._gate.wait_for(lambda: self._submitting == 0, timeout)
            still = self._submitting
        if not drained:
            self._alert("kill_switch_incomplete", f"{still} submit(s) still unanswered after "
                        f"{timeout:g}s; their orders may be live at the broker")  # fmt: skip
        return 0 if drained else still

    def _cancel_working(self) -> tuple[list[str], dict[str, str]]:
        """The kill switch's sweep: every working order is tried on its own, so one the
        broker refuses or does not know never leaves the others live. Returns the ids whose
        cancel the broker took, and those it did not (id -> status and error); orders that
        ended meanwhile (filled, or stopped before their submit) are in neither."""
        with self._lock:
            working = list(self._open.values())
        cancelled: list[str] = []
        failed: dict[str, str] = {}
        listed: list[str] = []  # the same, for the alert
        for order in working:
            coid = order.client_order_id
            if order.status in TERMINAL_STATUSES:
                continue
            status = order.status.value
            try:
                after = self.cancel(coid)
            except OrderNotFoundError as exc:
                if order.status is OrderStatus.NEW:
                    continue  # never reached the broker; no submit starts while the switch is on
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - each failure is alerted and returned
                error = f"{type(exc).__name__}: {exc}"
            else:
                if after is None or after.status in TERMINAL_STATUSES - {OrderStatus.CANCELLED}:
                    continue  # it ended before the cancel reached it: nothing left working
                cancelled.append(coid)
                continue
            failed[coid] = f"{status}: {error}"
            listed.append(f"{coid} ({status}): {error}")
        if failed:
            self._alert(
                "kill_switch_incomplete",
                f"kill switch: {len(failed)} working order(s) "
                f"not cancelled, check them at the broker: {'; '.join(listed)}",
            )
        return cancelled, failed

    # -- internals -----------------------------------------------------------------------
    def _snapshot(self, intent: OrderIntent, exposure: _Exposure, now: datetime) -> RiskSnapshot:
        """What the risk manager sees for `intent`: working orders (incl. those approved
        earlier in the same batch), the account position, today's realised + unrealised PnL."""
        account = intent.account
        unrealized = exposure.unrealized.get(account)
        if unrealized is None:  # once per account and batch: positions cannot move meanwhile
            unrealized = 0.0
            for p in self.book.positions(account):
                mark = self.prices.last_price(p.symbol)
                if mark is not None:
                    unrealized += p.unrealized_pnl(mark)
            exposure.unrealized[account] = unrealized
        buys, sells = exposure.working.get((account, intent.symbol), (0.0, 0.0))
        return RiskSnapshot(
            position=self.book.account_quantity(account, intent.symbol),
            open_buy_quantity=buys,
            open_sell_quantity=sells,
            open_orders=exposure.open_orders.get(account, 0),
            price=self.prices.last_price(intent.symbol),
            daily_pnl=self._daily_pnl(account, now.date()) + unrealized,
            kill_switch=self.kill_switch,
        )

    def _apply_broker_order(self, order: Order, remote: BrokerOrder) -> None:
        """Fold the broker's view of an order into ours, in one database transaction."""
        self._announce(self._record_broker_orders([(order, remote)]))

    def _record_broker_orders(self, updates: Sequence[tuple[Order, BrokerOrder]]) -> list[_Done]:
        """Fold the broker's view of several orders into ours, in one database transaction
        (order rows, new fills, positions, daily PnL), then into memory. On failure the
        in-memory orders and positions are put back as they were, so memory never runs
        ahead of the database. Returns what `_announce` publishes."""
        with self._lock:
            saved_orders: list[tuple[Order, tuple[Any, ...]]] = []
            saved_positions: dict[tuple[str, str, str], tuple[Position, _PositionState]] = {}
            fills: list[Fill] = []
            positions: list[Position] = []
            pnl: list[PnlDelta] = []
            done: list[_Done] = []
            try:
                for order, remote in updates:
                    saved_orders.append((order, (order.broker_order_id, order.filled_quantity,
                                                 order.avg_fill_price, order.fees, order.status,
                                                 order.reason)))  # fmt: skip
                    known, new_fills = self._fold_order(order, remote)
                    event = None
                    if new_fills:
                        strategy = order.strategy or ""
                        key = (order.account, strategy, order.symbol)
                        pos = self.book.get(*key)
                        if key not in saved_positions:
                            state = (pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees,
                                     dict(pos.unvalued_fees))  # fmt: skip
                            saved_positions[key] = (pos, state)
                        realized = fees = 0.0
                        for f in new_fills:
                            realized += pos.apply_fill(
                                f.side, f.quantity, f.price, f.fee, f.fee_currency
                            )
                            fees += book_fee(
                                f.symbol, f.side, f.quantity, f.price, f.fee, f.fee_currency
                            ).quote_value
                        day = new_fills[-1].time.date()
                        positions.append(pos)
                        pnl.append((order.account, strategy, day, realized, fees))
                        fills.extend(new_fills)
                        event = {
                            "account": pos.account, "strategy": pos.strategy, "symbol": pos.symbol,
                            "quantity": pos.quantity, "avg_price": pos.avg_price,
                            "realized_pnl": pos.realized_pnl, "fees": pos.fees,
                        }  # fmt: skip
                    done.append((order, known, new_fills, event))
                for account, _, day, _, _ in pnl:
                    self._daily_pnl(account, day)  # cache the day's total *before* this commit
                self.repo.record_executions([o for o, _, _, _ in done], fills, positions, pnl)
            except Exception:  # a bad broker fill, a failed read or the commit itself
                for pos, (q, avg, rpnl, pfees, unvalued) in saved_positions.values():
                    pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees = q, avg, rpnl, pfees
                    pos.unvalued_fees = unvalued
                for order, before in saved_orders:
                    (order.broker_order_id, order.filled_quantity, order.avg_fill_price,
                     order.fees, order.status, order.reason) = before  # fmt: skip
                raise
            for account, _, day, realized, fees in pnl:
                self._daily[(account, day)] += realized - fees
            for order, known, new_fills, _ in done:
                known.update(f.broker_fill_id for f in new_fills)
                if order.status in TERMINAL_STATUSES:
                    self._fill_ids.pop(order.client_order_id, None)
                    self._open.pop(order.client_order_id, None)
                else:
                    self._open[order.client_order_id] = order
            return done

    def _fold_order(self, order: Order, remote: BrokerOrder) -> tuple[set[str], list[Fill]]:
        """Copy the broker's state of one order onto ours (through the lifecycle's allowed
        transitions); returns the fill ids already recorded and the fills that are new."""
        broker = self.broker.name
        coid = order.client_order_id
        known = self._fill_ids.get(coid)
        if known is None:  # first look at this order in this process: ask the database
            known = self.repo.known_fill_ids(coid, [f.fill_id for f in remote.fills])
            self._fill_ids[coid] = known
        new_fills = [
            Fill(
                broker=broker,
                broker_fill_id=bf.fill_id,
                client_order_id=coid,
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
        order.broker_order_id = remote.broker_order_id or order.broker_order_id
        # Updates can arrive out of order: one reporting less filled than we know is older
        # than what we have, so its figures never move the order backwards (its fills are
        # already recorded, and `fold_status` keeps its status from going back).
        stale = remote.filled_quantity < order.filled_quantity
        if not stale:
            order.filled_quantity = remote.filled_quantity
            order.avg_fill_price = remote.avg_fill_price
            order.fees = sum(f.fee for f in remote.fills)
        order.status = fold_status(order.status, remote.status, filled=order.filled_quantity)
        if remote.reason and not stale:
            order.reason = remote.reason
        return known, new_fills

    def _announce(self, done: Sequence[_Done]) -> None:
        """Events for recorded executions, per order: the order, its position, its fills."""
        for order, _, new_fills, event in done:
            self._publish_order(order)
            if event is not None:
                self.publisher.publish("positions", event)
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
