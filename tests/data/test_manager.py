"""Channel manager: schedule, backoff, health per channel in the cache, `channels status`."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from ingest_helpers import FakeChannel
from typer.testing import CliRunner

from algotrendy.cli.ingest import register
from algotrendy.data.ingest import IngestRequest, IngestService, candle_poll
from algotrendy.data.manager import (
    ChannelHealth,
    ChannelManager,
    all_health,
    load_health,
    track_health,
)
from algotrendy.data.pipeline import CandlePipeline
from algotrendy.errors import ParameterError, SourceUnavailableError
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore

START = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    """Time moves only when the code under test sleeps or a test advances it."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return START + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds


def test_health_status_follows_consecutive_failures() -> None:
    h = ChannelHealth(channel="binance")
    assert h.status == "unknown"
    h = h.succeeded(START, 12.0)
    assert (h.status, h.runs, h.consecutive_failures) == ("ok", 1, 0)
    for n in range(1, 4):
        h = h.failed(START, 5.0, "binance: timeout")
        assert h.consecutive_failures == n
        assert h.status == ("down" if n >= 3 else "degraded")
    assert (h.runs, h.failures, h.last_success) == (4, 3, START)
    h = h.succeeded(START + timedelta(minutes=1), 8.0)
    assert (h.status, h.consecutive_failures, h.failures) == ("ok", 0, 3)
    assert h.last_error == "binance: timeout"  # the last error stays visible


def test_track_health_times_the_block_with_the_clock() -> None:
    cache, clock = MemoryCache(), FakeClock()
    with track_health(cache, "binance", clock):
        clock.advance(0.25)
    health = load_health(cache, "binance")
    assert health.latency_ms == 250.0
    assert health.last_success == START + timedelta(seconds=0.25)


def test_track_health_records_and_reraises_failures() -> None:
    cache, clock = MemoryCache(), FakeClock()

    def fetch() -> None:
        with track_health(cache, "binance", clock):
            clock.advance(1.5)
            raise SourceUnavailableError("binance: load markets refused (NetworkError: down)\nmore")

    with pytest.raises(SourceUnavailableError, match="refused"):
        fetch()
    health = load_health(cache, "binance")
    assert health.last_error == "binance: load markets refused (NetworkError: down)"
    assert (health.consecutive_failures, health.latency_ms) == (1, 1500.0)
    assert health.last_error_at == START + timedelta(seconds=1.5)


def test_jobs_run_on_their_interval() -> None:
    cache, clock = MemoryCache(), FakeClock()
    manager = ChannelManager(cache, clock=clock)
    runs: list[tuple[str, float]] = []
    manager.add_job("binance", lambda: runs.append(("binance", clock.t)), timedelta(seconds=60))
    manager.add_job("yfinance", lambda: runs.append(("yfinance", clock.t)), timedelta(seconds=90))
    manager.run(cycles=5)
    assert runs == [
        ("binance", 0.0),
        ("yfinance", 0.0),
        ("binance", 60.0),
        ("yfinance", 90.0),
        ("binance", 120.0),
        ("binance", 180.0),
        ("yfinance", 180.0),
    ]
    assert clock.sleeps == [60.0, 30.0, 30.0, 60.0]
    assert load_health(cache, "binance").runs == 4
    assert load_health(cache, "yfinance").runs == 3


def test_failing_job_backs_off_and_recovers() -> None:
    cache, clock = MemoryCache(), FakeClock()
    manager = ChannelManager(cache, clock=clock, max_backoff=timedelta(seconds=300))
    outcomes = iter([False, False, False, False, False, True, True])
    times: list[float] = []

    def poll() -> None:
        times.append(clock.t)
        if not next(outcomes):
            raise SourceUnavailableError("binance: rate limited (429)")

    manager.add_job("binance", poll, timedelta(seconds=60))
    manager.run(cycles=7)
    # Delays after each run: 60*2^0, 60*2^1, 60*2^2, capped at 300, 300, then 60 again.
    assert [b - a for a, b in itertools.pairwise(times)] == [60, 120, 240, 300, 300, 60]
    health = load_health(cache, "binance")
    assert (health.status, health.failures, health.runs) == ("ok", 5, 7)


def test_one_failing_channel_does_not_stop_the_others() -> None:
    cache, clock = MemoryCache(), FakeClock()
    manager = ChannelManager(cache, clock=clock)

    def broken() -> None:
        raise RuntimeError("parser bug")

    calls: list[str] = []
    manager.add_job("kraken", broken, timedelta(minutes=1))
    manager.add_job("binance", lambda: calls.append("binance"), timedelta(minutes=1))
    runs = manager.run_pending()
    assert [(r.channel, r.ok, r.error) for r in runs] == [
        ("kraken", False, "parser bug"),
        ("binance", True, None),
    ]
    assert calls == ["binance"]
    statuses = {name: h.status for name, h in manager.health().items()}
    assert statuses == {"binance": "ok", "kraken": "degraded"}


def test_stop_condition_ends_the_loop() -> None:
    cache, clock = MemoryCache(), FakeClock()
    manager = ChannelManager(cache, clock=clock)
    manager.add_job("binance", lambda: None, timedelta(seconds=10))
    manager.run(stop=lambda: clock.t >= 30)
    # Runs at t = 0, 10, 20; at t = 30 stop() is true before the round starts.
    assert load_health(cache, "binance").runs == 3
    assert clock.t == 30


def test_interval_must_be_positive() -> None:
    with pytest.raises(ParameterError, match="interval must be positive"):
        ChannelManager(MemoryCache()).add_job("x", lambda: None, timedelta(0))


def test_health_is_shared_through_the_cache(tmp_path: Path) -> None:
    writer = ChannelManager(MemoryCache(tmp_path / "cache.json"), clock=FakeClock())
    writer.add_job("binance", lambda: None, timedelta(minutes=1))
    writer.run_pending()
    reader = MemoryCache(tmp_path / "cache.json")  # another process, in effect
    assert list(all_health(reader)) == ["binance"]
    assert all_health(reader)["binance"].status == "ok"


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_channels_status_prints_each_channel(tmp_path: Path) -> None:
    cache = MemoryCache(tmp_path / "cache.json")
    clock = FakeClock()
    with track_health(cache, "binance", clock):
        clock.advance(0.04)
    with pytest.raises(SourceUnavailableError), track_health(cache, "yfinance", clock):
        raise SourceUnavailableError("yfinance: history failed (ConnectionError: offline)")
    runner = CliRunner()
    result = runner.invoke(_cli(), ["channels", "status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    binance = next(line for line in lines if "binance" in line)
    yfinance = next(line for line in lines if "yfinance" in line)
    assert "ok" in binance
    assert "40 ms" in binance
    assert "degraded" in yfinance
    assert "never" in yfinance
    assert "offline" in result.output

    as_json = runner.invoke(_cli(), ["channels", "status", "--json", "--data-dir", str(tmp_path)])
    payload = json.loads(as_json.stdout)
    assert [(p["channel"], p["status"], p["consecutive_failures"]) for p in payload] == [
        ("binance", "ok", 0),
        ("yfinance", "degraded", 1),
    ]


def test_channels_status_with_nothing_recorded(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["channels", "status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "no channel has run yet" in result.output


def test_manager_polls_candles_incrementally(tmp_path: Path) -> None:
    """A candle job run every hour stores each newly closed bar exactly once."""
    clock = FakeClock()
    clock.advance(3 * 3600 + 60)  # 03:01: bars 00:00, 01:00, 02:00 have closed
    cache, store, channel = (
        MemoryCache(),
        LocalCandleStore(tmp_path),
        FakeChannel(timeframes=("1h",)),
    )
    service = IngestService(
        channel, CandlePipeline([store], cache=cache, now=clock.now), now=clock.now
    )
    request = IngestRequest(source="fakex", symbol="BTC/USDT", timeframe="1h", since=START)
    manager = ChannelManager(cache, clock=clock)
    manager.add_job("fakex", candle_poll(service, request), timedelta(hours=1))
    manager.run(cycles=3)  # at 03:01, 04:01, 05:01
    assert [(a.hour, b.hour if b else None) for _, _, a, b in channel.calls] == [
        (0, 3),
        (3, 4),
        (4, 5),
    ]
    stored = store.read("fakex", "BTC/USDT", "1h")
    assert stored.index.tolist() == [START + timedelta(hours=h) for h in range(5)]
    assert load_health(cache, "fakex").runs == 3
