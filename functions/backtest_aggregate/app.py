"""Backtest fan-out, step 3 of 3 (task `Aggregate` in statemachines/backtest.asl.json).

Input: the plan step's reply (``run_id, bucket, rows_prefix, ranking_key, top_key,
chunk_count, metric, top``). Every worker wrote its rows to ``rows_prefix``; this step reads
them all, ranks them with the library's `rank_rows` (the ranking of a local sweep's
`aggregate`), writes the full ranking to ``ranking_key`` as CSV and the ``top`` best rows
to ``top_key`` as a JSON array of records (what the API stores as the run's results).
Neither pandas nor numpy is loaded: the CSV is the one `DataFrame.to_csv` wrote, produced
with the csv module (`Ranking.to_csv`).

The reply, which is the execution's output, is a summary of bounded size (counts, where
the ranking and the top rows are, the best row): Step Functions fails a run whose task
result or output passes 256 KiB (States.DataLimitExceeded, not catchable), and `top`
records at ~700 bytes each passed it from ~370 rows.

The Map fails the execution if any chunk failed, so reaching this step means every chunk
succeeded; the count of row files is still checked against the plan, so a ranking can
never be silently computed from part of the sweep.
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the container, and
# the collector scanning them as they load is ~10% of the import (30 ms of the webhook's,
# 120 ms of the API's, bench/bench_cold_imports.py). It is paused until this module is
# built, then everything built so far is frozen out of later collections (end of file).
gc.disable()

import json
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from algotrendy.aws_clients import botocore_client
from algotrendy.backtest.ranking import SweepRow, rank_rows
from algotrendy.errors import DataError, input_refused

logger = Logger()
# Traced: botocore (S3).
# Only what the function calls: Tracer's default patches, and so imports, every library
# the X-Ray SDK supports that is importable (SQLAlchemy, httpx, requests...).
tracer = Tracer(patch_modules=["botocore"])
s3 = botocore_client("s3")
_rows_json = TypeAdapter(list[SweepRow])


class AggregateEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: str = Field(min_length=1)
    bucket: str = Field(min_length=3)
    rows_prefix: str = Field(min_length=1)
    ranking_key: str = Field(min_length=1)
    top_key: str = Field(min_length=1)
    chunk_count: int = Field(ge=1)
    metric: str = Field(min_length=1)
    top: int = Field(ge=1)


def _parse(event: dict[str, Any]) -> AggregateEvent:
    try:
        return AggregateEvent.model_validate(event)
    except ValidationError as exc:
        raise input_refused("aggregate input", exc) from None


@tracer.capture_method
def read_rows(bucket: str, prefix: str, expected: int) -> list[SweepRow]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    if len(keys) != expected:
        raise DataError(
            f"s3://{bucket}/{prefix}: {len(keys)} chunk result(s), the plan made {expected}; "
            "refusing to rank part of the sweep"
        )
    rows: list[SweepRow] = []
    for key in sorted(keys):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            rows.extend(_rows_json.validate_json(body))
        except ValidationError as exc:
            raise DataError(f"s3://{bucket}/{key}: not a list of sweep rows ({exc})") from None
    return rows


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = _parse(event)
    logger.append_keys(run_id=parsed.run_id)
    rows = read_rows(parsed.bucket, parsed.rows_prefix, parsed.chunk_count)
    ranking = rank_rows(rows, metric=parsed.metric)

    top = ranking.records(parsed.top)
    # Both keys come from the plan, so a retried aggregate overwrites its own objects.
    s3.put_object(
        Bucket=parsed.bucket,
        Key=parsed.ranking_key,
        Body=ranking.to_csv().encode(),
        ContentType="text/csv",
    )
    s3.put_object(
        Bucket=parsed.bucket,
        Key=parsed.top_key,
        Body=json.dumps(top, separators=(",", ":"), allow_nan=False).encode(),
        ContentType="application/json",
    )
    logger.info("sweep ranked", extra={"row_count": len(ranking)})
    return {
        "run_id": parsed.run_id,
        "metric": parsed.metric,
        "row_count": len(ranking),
        "ranking": {"bucket": parsed.bucket, "key": parsed.ranking_key},
        "top_records": {"bucket": parsed.bucket, "key": parsed.top_key, "count": len(top)},
        "best": top[0] if top else None,
    }


# End of the cold start (see the top): keep what the imports built out of collections.
gc.freeze()
gc.enable()
