"""functions/backtest_worker: one manifest item -> rows in S3, a receipt in the reply."""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from algotrendy.backtest.sweep import SweepChunk, SweepRow, run_chunk
from algotrendy.data import load_ohlcv
from algotrendy.errors import DataError, ParameterError

Handlers = dict[str, Callable[..., Any]]
WORKER = "BacktestWorkerFunction"


def _same_metrics(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def _local_rows(chunk: dict[str, Any], candles: dict[str, Path]) -> list[SweepRow]:
    """The same chunk run on the local fixture files, without S3 or the handler."""
    ch = SweepChunk.model_validate(chunk)
    return run_chunk(ch, {s: load_ohlcv(candles[s]) for s in ch.symbols})


def test_sample_chunk_rows_match_a_local_run(
    handlers: Handlers,
    event: Any,
    context: Any,
    s3: Any,
    read_json: Any,
    sample_candles: dict[str, Path],
) -> None:
    ev = event("backtest_worker")
    reply = handlers[WORKER](ev, context)

    chunk = ev["chunk"]
    assert reply["chunk_id"] == chunk["id"]
    assert reply["row_count"] == len(chunk["params"]) * len(chunk["symbols"])
    assert reply["output"] == ev["output"]
    stored = [SweepRow.model_validate(r) for r in read_json(**ev["output"])]
    local = _local_rows(chunk, sample_candles)
    assert len(stored) == len(local) == reply["row_count"]
    for got, want in zip(stored, local, strict=True):
        assert (got.symbol, got.params, got.task) == (want.symbol, want.params, want.task)
        assert _same_metrics(got.metrics, want.metrics)
    # The reply goes through Lambda's JSON encoder and Step Functions: plain JSON only.
    json.dumps(reply, allow_nan=False)


def test_rerun_overwrites_its_own_result(
    handlers: Handlers, event: Any, context: Any, s3: Any
) -> None:
    ev = event("backtest_worker")
    handlers[WORKER](ev, context)
    handlers[WORKER](ev, context)
    prefix = ev["output"]["key"].rsplit("/", 1)[0] + "/"
    listed = s3.list_objects_v2(Bucket=ev["output"]["bucket"], Prefix=prefix)["Contents"]
    assert [o["Key"] for o in listed] == [ev["output"]["key"]]


def _upload_as(s3: Any, bucket: str, key: str, source: Path, fmt: str) -> None:
    frame = pd.read_csv(source)
    buf = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buf, index=False)
    elif fmt == "csv.gz":
        buf.write(gzip.compress(frame.to_csv(index=False).encode()))
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


@pytest.mark.parametrize("fmt", ["csv.gz", "parquet"])
def test_compressed_csv_and_parquet_give_the_csv_rows(
    handlers: Handlers,
    event: Any,
    context: Any,
    s3: Any,
    read_json: Any,
    sample_candles: dict[str, Path],
    fmt: str,
) -> None:
    ev = event("backtest_worker")
    where = ev["data"]["GOOG"]
    where["key"] = f"candles/GOOG_1d.{fmt}"
    _upload_as(s3, where["bucket"], where["key"], sample_candles["GOOG"], fmt)
    handlers[WORKER](ev, context)
    rows = [SweepRow.model_validate(r) for r in read_json(**ev["output"])]
    local = _local_rows(ev["chunk"], sample_candles)
    assert all(_same_metrics(a.metrics, b.metrics) for a, b in zip(rows, local, strict=True))


def test_parquet_without_pyarrow_says_what_to_upload(
    handlers: Handlers,
    event: Any,
    context: Any,
    s3: Any,
    sample_candles: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In Lambda pyarrow is absent (size limit): the error names the object and the fix."""
    worker_module = __import__("sys").modules[handlers[WORKER].__module__]
    monkeypatch.setattr(worker_module, "parquet_available", lambda: False)
    ev = event("backtest_worker")
    ev["data"]["GOOG"]["key"] = "candles/GOOG_1d.parquet"
    with pytest.raises(DataError, match=r"GOOG: s3://.*/candles/GOOG_1d\.parquet is Parquet.*csv"):
        handlers[WORKER](ev, context)


def test_missing_candles_name_symbol_and_object(
    handlers: Handlers, event: Any, context: Any, s3: Any
) -> None:
    ev = event("backtest_worker")
    ev["data"]["GOOG"]["key"] = "candles/nope.csv"
    with pytest.raises(DataError, match=r"GOOG: s3://.*/candles/nope\.csv does not exist"):
        handlers[WORKER](ev, context)


def test_bad_candle_row_is_reported_against_the_s3_object(
    handlers: Handlers,
    event: Any,
    context: Any,
    s3: Any,
    sample_candles: dict[str, Path],
) -> None:
    lines = sample_candles["GOOG"].read_text().splitlines()
    lines[3] = lines[3].split(",", 1)[0] + ",abc,1,1,1,1"
    ev = event("backtest_worker")
    where = ev["data"]["GOOG"]
    where["key"] = "candles/GOOG_bad.csv"
    s3.put_object(Bucket=where["bucket"], Key=where["key"], Body="\n".join(lines).encode())
    with pytest.raises(DataError) as info:
        handlers[WORKER](ev, context)
    message = str(info.value)
    assert f"s3://{where['bucket']}/candles/GOOG_bad.csv" in message
    assert "row 3, column open" in message
    assert "/tmp" not in message


def test_chunk_symbol_without_data_location_is_refused(
    handlers: Handlers, event: Any, context: Any
) -> None:
    ev = event("backtest_worker")
    ev["data"] = {"MSFT": ev["data"]["GOOG"]}
    with pytest.raises(ParameterError, match=r"symbol\(s\) GOOG"):
        handlers[WORKER](ev, context)


def test_malformed_item_names_the_field(handlers: Handlers, event: Any, context: Any) -> None:
    ev = event("backtest_worker")
    del ev["output"]["key"]
    with pytest.raises(ParameterError, match=r"output\.key: Field required"):
        handlers[WORKER](ev, context)
