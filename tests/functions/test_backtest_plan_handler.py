"""functions/backtest_plan: request -> manifest in S3 (the Distributed Map's items)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from algotrendy.backtest.sweep import SweepChunk
from algotrendy.config import ConfigurationError, get_settings
from algotrendy.errors import DataError, ParameterError, UnknownStrategyError

Handlers = dict[str, Callable[..., Any]]
PLAN = "BacktestPlanFunction"


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in found)


def test_sample_event_plans_every_symbol_and_combination(
    handlers: Handlers, event: Any, context: Any, s3: Any, bucket: str, read_json: Any
) -> None:
    ev = event("backtest_plan")
    reply = handlers[PLAN](ev, context)

    request = ev["request"]
    manifest = read_json(bucket, reply["manifest_key"])
    assert reply["chunk_count"] == len(manifest)
    # Every (symbol, combination) of the grid exactly once across the chunks: sma_cross
    # accepts all of these (fast < slow), so the product is the expected set.
    grid = request["grid"]
    expected = {
        (sym, (("fast", f), ("slow", s)))
        for sym, f, s in itertools.product(request["symbols"], grid["fast"], grid["slow"])
    }
    planned = []
    for item in manifest:
        chunk = SweepChunk.model_validate(item["chunk"])
        assert len(chunk.params) <= request["chunk_size"]
        assert set(item["data"]) == set(chunk.symbols)
        for sym in chunk.symbols:
            assert item["data"][sym] == {
                "bucket": bucket,
                "key": request["data"][sym].split("/", 3)[3],
            }
            planned.extend((sym, tuple(sorted(p.items()))) for p in chunk.params)
    assert len(planned) == len(expected) == reply["task_count"]
    assert set(planned) == expected
    # Outputs go under the run's prefix, one distinct key per chunk.
    outputs = [item["output"]["key"] for item in manifest]
    assert len(set(outputs)) == len(outputs)
    assert all(k.startswith(reply["rows_prefix"]) for k in outputs)
    assert read_json(bucket, f"backtests/{ev['run_id']}/request.json")["strategy"] == "sma_cross"


def test_sample_events_are_the_exact_task_inputs_the_plan_produces(
    handlers: Handlers, event: Any, context: Any, read_json: Any, bucket: str
) -> None:
    """events/backtest_worker.json is the first manifest item and
    events/backtest_aggregate.json the plan's reply: the samples cannot drift from the
    code that produces those inputs in the state machine."""
    reply = handlers[PLAN](event("backtest_plan"), context)
    assert reply == event("backtest_aggregate")
    manifest = read_json(bucket, reply["manifest_key"])
    assert manifest[0] == event("backtest_worker")


def test_state_machine_sample_is_the_plan_request(event: Any) -> None:
    assert event("backtest_plan")["request"] == event("backtest_state_machine")


def test_unknown_strategy_is_refused_before_anything_is_written(
    handlers: Handlers, event: Any, context: Any, s3: Any, bucket: str
) -> None:
    ev = event("backtest_plan")
    ev["request"]["strategy"] = "no_such_strategy"
    with pytest.raises(UnknownStrategyError, match="no_such_strategy"):
        handlers[PLAN](ev, context)
    assert _keys(s3, bucket, "backtests/") == []


def test_missing_candles_name_the_symbol_and_object(
    handlers: Handlers, event: Any, context: Any, s3: Any, bucket: str
) -> None:
    ev = event("backtest_plan")
    s3.delete_object(Bucket=bucket, Key="candles/EURUSD_1h.csv")
    with pytest.raises(DataError, match=r"data\.EURUSD: s3://.*/candles/EURUSD_1h\.csv"):
        handlers[PLAN](ev, context)
    assert _keys(s3, bucket, "backtests/") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["data"].pop("GOOG"), r"no candle location for symbol\(s\) GOOG"),
        (
            lambda r: r["data"].update(GOOG="s3://someone-elses-bucket/GOOG.csv"),
            r"data\.GOOG: candles must be in the artefacts bucket",
        ),
        (lambda r: r["data"].update(GOOG="/local/GOOG.csv"), r"not an s3://bucket/key URI"),
        (lambda r: r.update(metric="sharp"), r"metric 'sharp': not a metric"),
        (lambda r: r.update(chunk_size=0), r"request\.chunk_size: Input should be greater"),
        (lambda r: r.update(colour="red"), r"request\.colour: Extra inputs are not permitted"),
        (lambda r: r["config"].update(fee=-1), r"request\.config\.fee"),
        (lambda r: r["grid"].update(fast=[1]), r"fast"),
        (lambda r: r.update(symbols=["GOOG", "GOOG"]), r"'GOOG' is listed twice"),
    ],
)
def test_bad_requests_name_the_field(
    handlers: Handlers,
    event: Any,
    context: Any,
    change: Callable[[dict[str, Any]], Any],
    message: str,
) -> None:
    ev = event("backtest_plan")
    change(ev["request"])
    with pytest.raises(ParameterError, match=message):
        handlers[PLAN](ev, context)


def test_run_id_must_be_a_safe_key_segment(handlers: Handlers, event: Any, context: Any) -> None:
    ev = event("backtest_plan")
    ev["run_id"] = "../../etc"
    with pytest.raises(ParameterError, match="run_id"):
        handlers[PLAN](ev, context)


def test_default_chunk_size_and_top_come_from_settings(
    handlers: Handlers,
    event: Any,
    context: Any,
    read_json: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALGOTRENDY_BACKTEST_CHUNK_SIZE", "6")
    monkeypatch.setenv("ALGOTRENDY_BACKTEST_TOP_N", "3")
    get_settings.cache_clear()
    ev = event("backtest_plan")
    del ev["request"]["chunk_size"], ev["request"]["top"]
    reply = handlers[PLAN](ev, context)
    manifest = read_json(bucket, reply["manifest_key"])
    # 6 combinations per symbol and a chunk size of 6: one chunk per symbol.
    assert [item["chunk"]["symbols"] for item in manifest] == [["GOOG"], ["EURUSD"]]
    assert reply["top"] == 3


def test_without_a_bucket_setting_the_error_names_the_variable(
    handlers: Handlers, event: Any, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALGOTRENDY_ARTEFACTS_BUCKET")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="ALGOTRENDY_ARTEFACTS_BUCKET"):
        handlers[PLAN](event("backtest_plan"), context)


def test_grid_may_be_given_as_cli_specs(
    handlers: Handlers, event: Any, context: Any, read_json: Any, bucket: str
) -> None:
    """The API passes the CLI's spec syntax through unchanged ("fast=5:20:5")."""
    ev = event("backtest_plan")
    ev["request"]["grid"] = ["fast=5:20:5", "slow=30,50"]
    reply = handlers[PLAN](ev, context)
    manifest = read_json(bucket, reply["manifest_key"])
    fasts = {p["fast"] for item in manifest for p in item["chunk"]["params"]}
    assert fasts == {5, 10, 15, 20}
    assert reply["task_count"] == 4 * 2 * len(ev["request"]["symbols"])
