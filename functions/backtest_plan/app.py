"""Backtest fan-out, step 1 of 3 (Step Functions task `Plan` in statemachines/backtest.asl.json).

Input: ``{"run_id": <execution name>, "request": {strategy, grid, symbols, config, data,
chunk_size?, metric?, top?}}`` where ``data`` maps each symbol to the S3 URI of its
candles (CSV, optionally .csv.gz, or Parquet) in the artefacts bucket.

Output (the input of the Distributed Map and of `Aggregate`): where the manifest is and how
many chunks it holds. The manifest is a JSON array of self-contained worker inputs, one per
chunk, read by the Distributed Map's ItemReader; this function is the only place that
decides the run's S3 layout (``backtests/<run id>/...``), so the worker and the aggregate
step only follow keys they are given.

Bad requests raise `ParameterError` / `UnknownStrategyError` / `DataError` (the error
type is the exception class name), which the state machine routes to `InvalidRequest`
before any worker starts.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the container, and
# the collector scanning them as they load is ~10% of the import (30 ms of the webhook's,
# 120 ms of the API's, bench/bench_cold_imports.py). It is paused until this module is
# built, then everything built so far is frozen out of later collections (end of file).
gc.disable()

import json
import re
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from algotrendy.aws_clients import botocore_client
from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.metric_names import METRICS
from algotrendy.backtest.sweep import plan_sweep
from algotrendy.config import get_settings
from algotrendy.errors import DataError, ParameterError, input_refused

logger = Logger()
# Traced: botocore (S3).
# Only what the function calls: Tracer's default patches, and so imports, every library
# the X-Ray SDK supports that is importable (SQLAlchemy, httpx, requests...).
tracer = Tracer(patch_modules=["botocore"])
s3 = botocore_client("s3")

# Step Functions execution names: 1-80 characters of letters, digits, '-' and '_'
# (StartExecution API, `name`); the run id becomes an S3 key segment, so nothing else.
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")
# Step Functions refuses a state input over 256 KiB (States.DataLimitExceeded, which no
# Retry or Catch handles): each manifest item is a child execution's input. A margin is
# kept for what the Map and the Lambda integration add around it.
MAX_ITEM_BYTES = 240 * 1024


class BacktestRequest(BaseModel):
    """What a caller (API, CLI, console) starts the state machine with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = Field(min_length=1)
    grid: dict[str, list[Any] | str] | list[str] = Field(min_length=1)
    symbols: list[str] = Field(min_length=1)
    config: BacktestConfig = Field(default_factory=BacktestConfig)
    data: dict[str, str] = Field(min_length=1)
    chunk_size: int | None = Field(None, ge=1, le=10_000)
    metric: str = "sharpe"
    top: int | None = Field(None, ge=1, le=10_000)


class PlanEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    request: BacktestRequest


def _parse(event: dict[str, Any]) -> PlanEvent:
    try:
        parsed = PlanEvent.model_validate(event)
    except ValidationError as exc:
        raise input_refused("backtest request", exc) from None
    if parsed.request.metric not in METRICS:
        raise ParameterError(
            f"metric {parsed.request.metric!r}: not a metric; known: {', '.join(METRICS)}"
        )
    if not _RUN_ID.match(parsed.run_id):
        raise ParameterError(
            f"run_id {parsed.run_id!r}: use 1-80 letters, digits, '-' or '_' "
            "(a Step Functions execution name)"
        )
    return parsed


def _data_locations(request: BacktestRequest, bucket: str) -> dict[str, str]:
    """Each symbol's candle key, checked to exist now so a typo fails the run at once
    instead of in every worker after the fan-out has started."""
    missing = [s for s in request.symbols if s not in request.data]
    if missing:
        raise ParameterError(f"data: no candle location for symbol(s) {', '.join(missing)}")
    keys: dict[str, str] = {}
    for symbol in request.symbols:
        uri = request.data[symbol]
        m = _S3_URI.match(uri)
        if m is None:
            raise ParameterError(f"data.{symbol}: {uri!r} is not an s3://bucket/key URI")
        if m["bucket"] != bucket:
            raise ParameterError(
                f"data.{symbol}: candles must be in the artefacts bucket {bucket!r} "
                f"(the functions may read only there), got {m['bucket']!r}"
            )
        try:
            s3.head_object(Bucket=bucket, Key=m["key"])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise DataError(f"data.{symbol}: {uri} does not exist") from None
            raise
        keys[symbol] = m["key"]
    return keys


def _manifest_json(manifest: list[dict[str, Any]], chunk_size: int) -> str:
    """The manifest as a JSON array, each item serialised once: measured, then joined.

    Refuses, before any worker starts, a plan whose chunks Step Functions would refuse
    mid-run; the message says which chunk_size fits (items grow with the parameters of
    each combination, so no fixed bound on chunk_size can promise this)."""
    # Spaced JSON (", ", ": "), the larger of the two usual serialisations; ASCII only
    # (ensure_ascii), so characters are bytes.
    items = [json.dumps(item, allow_nan=False) for item in manifest]
    largest = max(map(len, items), default=0)
    if largest > MAX_ITEM_BYTES:
        # Items grow linearly with their combinations; 5% slack for the fixed part.
        fits = max(1, int(chunk_size * 0.95 * MAX_ITEM_BYTES / largest))
        raise ParameterError(
            f"chunk_size {chunk_size}: a chunk's input is {largest / 1024:.0f} KiB, over the "
            f"{MAX_ITEM_BYTES // 1024} KiB a Step Functions state may carry; use chunk_size "
            f"<= {fits}"
        )
    return f"[{', '.join(items)}]"


def _put_json(bucket: str, key: str, text: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="application/json")


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    bucket = settings.require_artefacts_bucket()
    parsed = _parse(event)
    request, run_id = parsed.request, parsed.run_id
    logger.append_keys(run_id=run_id)
    plan = plan_sweep(
        request.strategy,
        request.grid,
        request.symbols,
        config=request.config,
        chunk_size=request.chunk_size or settings.backtest_chunk_size,
    )
    keys = _data_locations(request, bucket)

    prefix = f"backtests/{run_id}"
    rows_prefix = f"{prefix}/rows/"
    manifest = [
        {
            "run_id": run_id,
            "chunk": chunk.model_dump(mode="json"),
            "data": {s: {"bucket": bucket, "key": keys[s]} for s in chunk.symbols},
            "output": {"bucket": bucket, "key": f"{rows_prefix}{chunk.id}.json"},
        }
        for chunk in plan.chunks
    ]
    manifest_json = _manifest_json(manifest, plan.chunk_size)
    request_json = json.dumps(
        request.model_dump(mode="json"), separators=(",", ":"), allow_nan=False
    )
    _put_json(bucket, f"{prefix}/request.json", request_json)
    _put_json(bucket, f"{prefix}/manifest.json", manifest_json)

    reply = {
        "run_id": run_id,
        "bucket": bucket,
        "manifest_key": f"{prefix}/manifest.json",
        "rows_prefix": rows_prefix,
        "ranking_key": f"{prefix}/ranking.csv",
        "top_key": f"{prefix}/top.json",
        "chunk_count": len(manifest),
        "task_count": plan.n_tasks,
        "skipped_combinations": plan.n_skipped,
        "metric": request.metric,
        "top": request.top or settings.backtest_top_n,
    }
    logger.info("backtest planned", extra={"chunk_count": len(manifest)})
    return reply


# End of the cold start (see the top): keep what the imports built out of collections.
gc.freeze()
gc.enable()
