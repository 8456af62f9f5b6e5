"""Scheduled ingest: one EventBridge rule per channel group runs this function; each run
fetches the group's closed candles, stores them, publishes latest prices and announces
new bars on the signals queue (`algotrendy.signals.run_ingest_group`, which runs the same
`IngestService`/`CandlePipeline` as `algotrendy ingest`).

The group comes either as the rule target's constant `Input` (the whole event is the
group: ``{"group", "channels": [{"source", "symbols", "timeframes"}], "backfill_bars"}``)
or in the `detail` of an EventBridge event (a custom event, or a scheduled rule with an
input transformer). A group that does not validate is a deployment error: the function
fails with one line naming the field, so the rule's failures show in the Errors metric.

Failures of one channel or series are logged and never stop the others; once every
series ran, any failure fails the invocation with one line naming the failed series
(`IngestGroupFailedError`), so the Errors metric and its alarm see a dead source or an
unsent announcement. The stored bars stay stored and the next run announces what was not.

A news group (sources `news`, `news-<feed>`, no timeframes) writes items to the news
store (QuestDB's `news` table, or files under the data dir locally) and announces
nothing.

Clients (candle store, news store, cache, SQS) are built once per container, each on
first use: a news-only group never builds the candle store or the signals queue, so the
news function needs neither the queue's URL nor its permission.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the container, and
# the collector scanning them as they load is ~10% of the import (30 ms of the webhook's,
# 120 ms of the API's, bench/bench_cold_imports.py). It is paused until this module is
# built, then everything built so far is frozen out of later collections (end of file).
gc.disable()

from datetime import UTC, datetime
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from algotrendy.aws_clients import botocore_client
from algotrendy.config import Settings, get_settings
from algotrendy.errors import ParameterError
from algotrendy.signals.ingest_group import (
    ChannelFactory,
    IngestGroup,
    IngestGroupFailedError,
    default_channel_factory,
    run_ingest_group,
)
from algotrendy.signals.wiring import (
    build_cache,
    build_candle_store,
    build_news_store,
    build_signals_queue,
)

if TYPE_CHECKING:
    from algotrendy.messaging.base import Queue
    from algotrendy.storage.base import Cache, CandleStore, NewsStore

logger = Logger()
# Traced: botocore (SQS) and requests (the channels' HTTP).
# Only what the function calls: Tracer's default patches, and so imports, every library
# the X-Ray SDK supports that is importable (SQLAlchemy, httpx, requests...).
tracer = Tracer(patch_modules=["botocore", "requests"])


class Wiring:
    """The container's clients, each built on first use and kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def candles(self) -> CandleStore:
        return build_candle_store(self.settings)

    @cached_property
    def news(self) -> NewsStore:
        return build_news_store(self.settings)

    @cached_property
    def cache(self) -> Cache:
        return build_cache(self.settings)

    @cached_property
    def signals(self) -> Queue:
        return build_signals_queue(self.settings, botocore_client)


@cache
def wiring() -> Wiring:
    return Wiring(get_settings())


def now() -> datetime:
    """The run's clock (a function so tests can fix it)."""
    return datetime.now(UTC)


# The channel registry by default; tests put a fake channel here (no network).
channel_factory: ChannelFactory = default_channel_factory


def parse_group(event: dict[str, Any]) -> IngestGroup:
    detail = event.get("detail")
    raw = detail if isinstance(detail, dict) and detail else event
    if "group" not in raw:
        raise ParameterError(
            "ingest event carries no channel group: expected the rule's Input "
            '{"group", "channels", ...} or an EventBridge event whose detail holds it'
        )
    try:
        return IngestGroup.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "group"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ParameterError(f"ingest group {raw.get('group')!r}: {where}: {msg}") from None


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    group = parse_group(event)
    logger.append_keys(group=group.group)
    w = wiring()
    candles = any(not entry.is_news for entry in group.channels)
    news = any(entry.is_news for entry in group.channels)
    result = run_ingest_group(
        group,
        stores=[w.candles] if candles else [],
        cache=w.cache,
        signals=w.signals if candles else None,
        channel_factory=channel_factory,
        now=now,
        news_store=w.news if news else None,
    )
    for outcome in result.outcomes:
        extra = outcome.as_dict()
        if outcome.status == "failed":
            logger.error("series failed", extra=extra)
        else:
            logger.info("series ingested", extra=extra)
    if result.failed:
        raise IngestGroupFailedError(result)
    return result.as_dict()


# End of the cold start (see the top): keep what the imports built out of collections.
gc.freeze()
gc.enable()
