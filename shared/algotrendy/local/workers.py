"""The local shape's stand-ins for two cloud pieces: the signal evaluator's SQS event
source (a consumer thread on the in-process signals queue) and the engine's price feed
(latest prices from the cache the seeding and ingestion fill).

`SignalConsumer.handle` keeps the Lambda's semantics (functions/signal_evaluator/app.py):
a message is deleted only once its intents are on orders.fifo; a failed one stays in the
queue and comes back after the visibility timeout (the evaluator recomputes the same
intent ids, so FIFO de-duplication keeps a retried intent to one order); a poison message
is never deleted and leaves through the queue's `max_receive_count`. The one local
refinement: a message whose bar is not in the store yet is released after a short delay
instead of waiting out the whole visibility timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from algotrendy.messaging.base import Queue, QueueMessage
from algotrendy.messaging.envelope import Envelope, EnvelopeError, send_intent
from algotrendy.signals.config import StrategyConfigStore
from algotrendy.signals.evaluator import CandlesNotReadyError, MessageRefusedError, evaluate
from algotrendy.signals.messages import CandlesClosed
from algotrendy.storage.base import Cache, CandleStore, StoreError, get_latest_price

log = logging.getLogger(__name__)

NOT_READY_RETRY_SECONDS = 5.0


class CachePrices:
    """`PriceSource` for the paper broker: the cached latest price of a symbol on the first
    of `exchanges` that has one (the engine asks by symbol; the cache keys by exchange)."""

    def __init__(self, cache: Cache, exchanges: Sequence[str]) -> None:
        self.cache = cache
        self.exchanges = tuple(exchanges)

    def last_price(self, symbol: str) -> float | None:
        for exchange in self.exchanges:
            try:
                found = get_latest_price(self.cache, exchange, symbol)
            except StoreError:
                log.exception("price cache unreadable for %s:%s", exchange, symbol)
                return None
            if found is not None:
                return found.price
        return None


@dataclass
class SignalStats:
    received: int = 0
    evaluated: int = 0
    intents: int = 0
    failed: int = 0
    poison: int = 0


class SignalConsumer:
    """`candles.closed` messages from `signals` -> order intents on `orders`."""

    def __init__(
        self,
        signals: Queue,
        orders: Queue,
        candles: CandleStore,
        configs: StrategyConfigStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wait_seconds: float = 0.5,
    ) -> None:
        self.signals = signals
        self.orders = orders
        self.candles = candles
        self.configs = configs
        self.clock = clock
        self.wait_seconds = wait_seconds
        self.stats = SignalStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one message ---------------------------------------------------------------------
    def handle(self, message: QueueMessage) -> bool:
        """Process one message; True when it may be deleted."""
        self.stats.received += 1
        try:
            closed = CandlesClosed.from_envelope(Envelope.parse(message.body))
            result = evaluate(closed, candles=self.candles, configs=self.configs, now=self.clock())
        except (EnvelopeError, MessageRefusedError) as exc:
            self.stats.poison += 1
            log.error("signals: poison message %s: %s", message.message_id, exc)
            return False
        except CandlesNotReadyError as exc:
            log.info("signals: %s; retrying in %.0f s", exc, NOT_READY_RETRY_SECONDS)
            self.signals.release(message, delay_seconds=NOT_READY_RETRY_SECONDS)
            return False
        except Exception:
            self.stats.failed += 1
            log.exception("signals: message %s failed; it will be retried", message.message_id)
            return False
        for intent in result.intents:
            send_intent(self.orders, intent)
        self.stats.evaluated += 1
        self.stats.intents += len(result.intents)
        for outcome in result.outcomes:
            log.info(
                "signal %s on %s: %s %s",
                outcome.config_id, closed.series, outcome.status, outcome.detail,
            )  # fmt: skip
        if result.failures:
            self.stats.failed += 1
            return False
        return True

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Consume until `stop()`; a message in hand is finished first."""
        while not self._stop.is_set():
            for message in self.signals.receive(max_messages=10, wait_seconds=self.wait_seconds):
                if self.handle(message):
                    self.signals.delete(message)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="signal-evaluator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
