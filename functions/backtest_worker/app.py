"""Backtest fan-out, step 2 of 3 (task `RunChunk` inside the Distributed Map `RunChunks`).

Input: one manifest item written by the plan step, ``{"run_id", "chunk" (a `SweepChunk`),
"data": {symbol: {"bucket", "key"}}, "output": {"bucket", "key"}}``.

Each symbol's candles are downloaded and parsed once per invocation, then `run_chunk`
runs every parameter combination of the chunk on them. All rows go to ``output.key``
(the aggregate step reads them from there); the reply is a receipt of fixed size (run id,
chunk id, row count, where the rows are), never the rows: Step Functions checks its 256 KiB
limit on a task's raw result, before ResultSelector trims it, and rows take ~700 bytes
each, so a reply carrying them failed the whole run from ~350 rows per chunk
(States.DataLimitExceeded, which no Retry or Catch matches). Writing to a key fixed by the
plan makes a retried chunk overwrite its own result, never add a second one.

Candles: CSV (``.csv``, ``.csv.gz``) always; Parquet only where pyarrow is installed
(locally). The Lambda worker does not carry pyarrow: at ~170 MB unzipped it does not fit
beside numpy and pandas under Lambda's 250 MB limit (see layers/research).
"""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the container, and
# the collector scanning them as they load is ~10% of the import (30 ms of the webhook's,
# 120 ms of the API's, bench/bench_cold_imports.py). It is paused until this module is
# built, then everything built so far is frozen out of later collections (end of file).
gc.disable()

import importlib.util
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
import pandas as pd
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from algotrendy.backtest.sweep import SweepChunk, run_chunk
from algotrendy.data import load_ohlcv
from algotrendy.errors import DataError, ParameterError, SourceUnavailableError, input_refused

logger = Logger()
# Traced: botocore (S3).
# Only what the function calls: Tracer's default patches, and so imports, every library
# the X-Ray SDK supports that is importable (SQLAlchemy, httpx, requests...).
tracer = Tracer(patch_modules=["botocore"])
s3 = boto3.client("s3")

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")


class S3Location(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(min_length=3)
    key: str = Field(min_length=1)


class WorkerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(min_length=1)
    chunk: SweepChunk
    data: dict[str, S3Location] = Field(min_length=1)
    output: S3Location


def _parse(event: dict[str, Any]) -> WorkerEvent:
    try:
        return WorkerEvent.model_validate(event)
    except ValidationError as exc:
        raise input_refused("worker input", exc) from None


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _suffix(key: str) -> str:
    name = PurePosixPath(key).name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else PurePosixPath(name).suffix


@tracer.capture_method
def load_candles(symbol: str, where: S3Location) -> pd.DataFrame:
    """Download one object to /tmp and parse it with the same loader as local runs, so a
    file that loads on a laptop loads here, with the same errors."""
    uri = f"s3://{where.bucket}/{where.key}"
    suffix = _suffix(where.key)
    if suffix in _PARQUET_SUFFIXES and not parquet_available():
        raise DataError(
            f"{symbol}: {uri} is Parquet, which this worker cannot read (pyarrow does not "
            "fit in the Lambda package); upload the candles as .csv or .csv.gz"
        )
    if suffix not in (*_PARQUET_SUFFIXES, *_CSV_SUFFIXES):
        raise DataError(f"{symbol}: {uri}: expected a .csv, .csv.gz or .parquet object")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"candles{suffix}"
        try:
            s3.download_file(where.bucket, where.key, str(path))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise DataError(f"{symbol}: {uri} does not exist") from None
            # Throttling, 5xx: transient; the state machine retries this error by name.
            raise SourceUnavailableError(f"{symbol}: cannot read {uri}: {code or exc}") from exc
        try:
            return load_ohlcv(path)
        except DataError as exc:
            # The loader names the temporary file; the user needs the S3 object instead.
            raise DataError(str(exc).replace(str(path), uri)) from None


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = _parse(event)
    chunk = parsed.chunk
    logger.append_keys(run_id=parsed.run_id, chunk_id=chunk.id)
    missing = [s for s in chunk.symbols if s not in parsed.data]
    if missing:
        raise ParameterError(f"data: no candle location for symbol(s) {', '.join(missing)}")

    rows = run_chunk(chunk, lambda symbol: load_candles(symbol, parsed.data[symbol]))

    # SweepRow's own JSON keeps non-finite metrics as "NaN"/"Infinity" strings, which
    # validate back to floats in the aggregate step (plain JSON has no NaN).
    body = "[" + ",".join(row.model_dump_json() for row in rows) + "]"
    s3.put_object(
        Bucket=parsed.output.bucket,
        Key=parsed.output.key,
        Body=body.encode(),
        ContentType="application/json",
    )
    logger.info("chunk done", extra={"row_count": len(rows)})
    return {
        "run_id": parsed.run_id,
        "chunk_id": chunk.id,
        "row_count": len(rows),
        "output": parsed.output.model_dump(),
    }


# End of the cold start (see the top): keep what the imports built out of collections.
gc.freeze()
gc.enable()
