"""Signal evaluator: SQS batches of `candles.closed` messages (the signals queue) ->
order intents on orders.fifo.

Thin on purpose: each record is parsed (`Envelope`, `CandlesClosed`), evaluated by
`algotrendy.signals.evaluate` (every enabled config of the series, on the same Strategy
code as the backtests) and its intents sent with `send_intent` (group account:symbol,
de-duplication id = intent id).

Partial batch failures (Powertools `BatchProcessor`, the event source mapping needs
`FunctionResponseTypes: [ReportBatchItemFailures]`): a record that raises is reported in
`batchItemFailures` and comes back after a short backoff (5, 10, 20, 40, 60 s: its
visibility is shortened, `algotrendy.messaging.retry`, so the retry lands inside the
signal's freshness and orders.fifo's de-duplication window); the others are deleted once.
A poison record (not JSON, not a `candles.closed` envelope, a bar that has not closed)
never succeeds: it is logged as such, reported every time, and the queue's
redrive policy moves it to the DLQ after `maxReceiveCount` receives. A record whose
configs partly failed is reported after the successful intents were sent: the retry
recomputes the same intent ids, so FIFO de-duplication (and the engine's client order
id after that) keeps them to one order.

Clients (SQS, SSM, the candle store) are built once per container, on the first record.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the container, and
# the collector scanning them as they load is ~10% of the import (30 ms of the webhook's,
# 120 ms of the API's, bench/bench_cold_imports.py). It is paused until this module is
# built, then everything built so far is frozen out of later collections (end of file).
gc.disable()

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from algotrendy.aws_clients import botocore_client
from algotrendy.config import ConfigurationError, get_settings
from algotrendy.messaging import Envelope, EnvelopeError, Queue, QueueMessage, send_intent
from algotrendy.messaging.retry import hasten_retries
from algotrendy.signals import (
    CandlesClosed,
    MessageRefusedError,
    SignalError,
    StrategyConfigStore,
    evaluate,
)
from algotrendy.signals.wiring import (
    build_candle_store,
    build_config_store,
    build_orders_queue,
    build_signals_queue,
)

if TYPE_CHECKING:
    from algotrendy.storage.base import CandleStore

logger = Logger()
# Traced: botocore (SQS, SSM).
# Only what the function calls: Tracer's default patches, and so imports, every library
# the X-Ray SDK supports that is importable (SQLAlchemy, httpx, requests...).
tracer = Tracer(patch_modules=["botocore"])
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class PoisonMessageError(Exception):
    """A record that can never be evaluated; it goes to the DLQ after maxReceiveCount."""


@dataclass(frozen=True)
class Wiring:
    candles: CandleStore
    configs: StrategyConfigStore
    orders: Queue


@cache
def wiring() -> Wiring:
    settings = get_settings()
    return Wiring(
        candles=build_candle_store(settings),
        configs=build_config_store(settings, botocore_client),
        orders=build_orders_queue(settings, botocore_client),
    )


@cache
def signals_queue() -> Queue | None:
    """The queue the records come from, to hasten their retries; None (logged) when the
    function is not told its URL: failed records then come back after the visibility
    timeout."""
    try:
        return build_signals_queue(get_settings(), botocore_client)
    except ConfigurationError as exc:
        logger.error("failed records cannot be retried early", extra={"error": str(exc)})
        return None


def _queue_message(record: dict[str, Any]) -> QueueMessage:
    attributes = record.get("attributes") or {}
    return QueueMessage(
        body=record.get("body", ""),
        receipt=record["receiptHandle"],
        message_id=record["messageId"],
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
    )


def now() -> datetime:
    """The evaluation time (a function so tests can fix the clock)."""
    return datetime.now(UTC)


def _parse(record: SQSRecord) -> CandlesClosed:
    try:
        return CandlesClosed.from_envelope(Envelope.parse(record.body))
    except EnvelopeError as exc:
        logger.error(
            "poison message: not a candles.closed envelope",
            extra={"message_id": record.message_id, "error": str(exc)},
        )
        raise PoisonMessageError(str(exc)) from None


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> None:
    message = _parse(record)
    w = wiring()
    try:
        result = evaluate(message, candles=w.candles, configs=w.configs, now=now())
    except MessageRefusedError as exc:
        logger.error(
            "poison message: refused", extra={"message_id": record.message_id, "error": str(exc)}
        )
        raise PoisonMessageError(str(exc)) from None
    for intent in result.intents:
        send_intent(w.orders, intent)
    for outcome in result.outcomes:
        logger.info(
            "signal evaluated",
            extra={
                "series": message.series,
                "last_bar": message.last_bar.isoformat(),
                "config": outcome.config_id,
                "status": outcome.status,
                "detail": outcome.detail,
                "intent_id": outcome.intent_id,
            },
        )
    if result.failures:
        detail = "; ".join(f"{o.config_id}: {o.detail}" for o in result.failures)
        raise SignalError(f"{message.series}: {detail}")


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failures = response.get("batchItemFailures", [])
    if failures:
        failed = {str(f["itemIdentifier"]) for f in failures}
        logger.warning("records left for retry", extra={"failed": sorted(failed)})
        queue = signals_queue()
        if queue is not None:
            hasten_retries(
                queue, [_queue_message(r) for r in event["Records"] if r["messageId"] in failed]
            )
    return dict(response)


# End of the cold start (see the top): keep what the imports built out of collections.
gc.freeze()
gc.enable()
