"""Ingest service and `algotrendy ingest`: windows, resume, failure mid-way, one-line errors.

The channel is a fake implementing the CandleChannel protocol (ingest_helpers.FakeChannel):
deterministic candles on the timeframe grid, pages reported through `progress`, and a failure
that can be set to strike in the middle of a given call, after some pages were already
reported.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import typer
from ingest_helpers import NOW, T0, FakeChannel
from typer.testing import CliRunner, Result

from algotrendy.cli import ingest as cli_ingest
from algotrendy.data.channels.base import CandleChannel, ChannelInfo
from algotrendy.data.ingest import IngestRequest, IngestService
from algotrendy.data.manager import all_health
from algotrendy.data.pipeline import CandlePipeline
from algotrendy.domain.market import DataKind
from algotrendy.errors import ParameterError, SourceUnavailableError
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore


def service(
    channel: FakeChannel, store: LocalCandleStore, *, window_bars: int = 50_000, now: datetime = NOW
) -> IngestService:
    return IngestService(
        channel, CandlePipeline([store], now=lambda: now), now=lambda: now, window_bars=window_bars
    )


def request(until: datetime | None = T0 + timedelta(days=2), **kw: object) -> IngestRequest:
    fields: dict[str, object] = {
        "source": "fakex",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "since": T0,
        "until": until,
    }
    fields.update(kw)
    return IngestRequest(**fields)  # type: ignore[arg-type]


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet")) + sorted(root.rglob(".tmp-*"))


def test_fake_channel_implements_the_protocol() -> None:
    assert isinstance(FakeChannel(), CandleChannel)


def test_first_run_stores_the_range(tmp_path: Path) -> None:
    channel, store = FakeChannel(), LocalCandleStore(tmp_path)
    reported: list[int] = []
    result = service(channel, store).run(request(), progress=reported.append)
    assert (result.fetched, result.written, result.windows) == (48, 48, 1)
    assert result.plan.expected_bars == 48
    assert result.plan.resumed_from is None
    assert sum(reported) == 48
    assert reported[0] == 4
    pd.testing.assert_frame_equal(
        store.read("fakex", "BTC/USDT", "1h"), channel.frame("1h", T0, T0 + timedelta(days=2))
    )
    assert result.report is not None
    assert result.report.clean


def test_rerun_fetches_nothing(tmp_path: Path) -> None:
    channel, store = FakeChannel(), LocalCandleStore(tmp_path)
    service(channel, store).run(request())
    channel.calls.clear()
    result = service(channel, store).run(request())
    assert result.plan.up_to_date
    assert result.fetched == 0
    assert channel.calls == []


def test_rerun_with_a_later_end_fetches_only_what_is_missing(tmp_path: Path) -> None:
    channel, store = FakeChannel(), LocalCandleStore(tmp_path)
    service(channel, store).run(request())
    channel.calls.clear()
    result = service(channel, store).run(request(until=T0 + timedelta(days=3)))
    assert channel.calls == [("BTC/USDT", "1h", T0 + timedelta(days=2), T0 + timedelta(days=3))]
    assert result.plan.resumed_from == T0 + timedelta(days=2, hours=-1)
    assert result.written == 24
    assert len(store.read("fakex", "BTC/USDT", "1h")) == 72


def test_long_ranges_go_in_windows(tmp_path: Path) -> None:
    channel, store = FakeChannel(), LocalCandleStore(tmp_path)
    result = service(channel, store, window_bars=10).run(request())
    assert [c[2] for c in channel.calls] == [T0 + timedelta(hours=h) for h in (0, 10, 20, 30, 40)]
    assert [c[3] for c in channel.calls] == [T0 + timedelta(hours=h) for h in (10, 20, 30, 40, 48)]
    assert (result.windows, result.written) == (5, 48)
    assert len(store.read("fakex", "BTC/USDT", "1h")) == 48


def test_failure_mid_way_keeps_whole_windows_only_and_resumes(tmp_path: Path) -> None:
    channel = FakeChannel(fail_on_call=3, fail_after_pages=1)  # dies inside window 3
    store = LocalCandleStore(tmp_path)
    reported: list[int] = []
    with pytest.raises(SourceUnavailableError, match=r"^fakex: fetch BTC/USDT 1h refused"):
        service(channel, store, window_bars=10).run(request(), progress=reported.append)
    assert sum(reported) == 24  # windows 1-2 (20) + the first page of window 3 (4)
    stored = store.read("fakex", "BTC/USDT", "1h")
    assert stored.index.tolist() == [T0 + timedelta(hours=h) for h in range(20)]
    assert not list(tmp_path.rglob(".tmp-*"))

    healed = FakeChannel()
    result = service(healed, store, window_bars=10).run(request())
    assert healed.calls[0][2] == T0 + timedelta(hours=20)
    assert result.written == 28
    pd.testing.assert_frame_equal(
        store.read("fakex", "BTC/USDT", "1h"), healed.frame("1h", T0, T0 + timedelta(days=2))
    )


def test_failure_in_the_first_window_writes_nothing(tmp_path: Path) -> None:
    channel, store = FakeChannel(fail_on_call=1, fail_after_pages=2), LocalCandleStore(tmp_path)
    with pytest.raises(SourceUnavailableError):
        service(channel, store).run(request())
    assert parquet_files(tmp_path) == []
    assert store.last_timestamp("fakex", "BTC/USDT", "1h") is None


def test_the_bar_still_forming_is_not_fetched(tmp_path: Path) -> None:
    now = datetime(2024, 1, 2, 10, 30, tzinfo=UTC)
    channel, store = FakeChannel(), LocalCandleStore(tmp_path)
    result = service(channel, store, now=now).run(request(until=None))
    assert channel.calls[0][3] == datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert result.written == 34  # 2024-01-01 00:00 .. 2024-01-02 09:00


def test_rows_outside_the_window_are_not_stored(tmp_path: Path) -> None:
    channel, store = FakeChannel(extra_bar=True), LocalCandleStore(tmp_path)
    result = service(channel, store).run(request())
    assert (result.fetched, result.written) == (49, 48)
    assert store.last_timestamp("fakex", "BTC/USDT", "1h") == T0 + timedelta(hours=47)


def test_gaps_at_window_seams_and_after_the_resume_point_are_reported(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path)
    service(FakeChannel(), store).run(request(until=T0 + timedelta(hours=6)))  # 00:00..05:00
    missing = frozenset({T0 + timedelta(hours=h) for h in (6, 7, 16)})  # 16: a window start
    result = service(FakeChannel(skip=missing), store, window_bars=10).run(request())
    assert result.report is not None
    gaps = result.report.gaps.sort_values("start").to_dict("records")
    assert gaps == [
        {
            "start": pd.Timestamp(T0 + timedelta(hours=6)),
            "end": pd.Timestamp(T0 + timedelta(hours=7)),
            "missing": 2,
        },
        {
            "start": pd.Timestamp(T0 + timedelta(hours=16)),
            "end": pd.Timestamp(T0 + timedelta(hours=16)),
            "missing": 1,
        },
    ]


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (request(timeframe="15m"), "source fakex has no 15m candles; it serves 1h, 1d"),
        (request(until=T0), "--until 2024-01-01 00:00 must be after --since 2024-01-01 00:00"),
        (request(timeframe="1x"), "timeframe '1x'"),
    ],
)
def test_impossible_requests_are_refused(tmp_path: Path, req: IngestRequest, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        service(FakeChannel(), LocalCandleStore(tmp_path)).run(req)


def test_a_channel_without_candles_is_refused(tmp_path: Path) -> None:
    class News:
        info = ChannelInfo(name="news", asset_classes=(), kinds=(DataKind.NEWS,))

    with pytest.raises(ParameterError, match="source news does not serve candles"):
        IngestService(News(), CandlePipeline([LocalCandleStore(tmp_path)]))  # type: ignore[arg-type]


# -- the command --------------------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()
    cli_ingest.register(app)
    return app


def run_cli(tmp_path: Path, *args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(cli(), ["ingest", *args, "--data-dir", str(tmp_path)])


BASE = ["--source", "fakex", "--symbol", "BTC/USDT", "--timeframe", "1h"]
RANGE = ["--since", "2024-01-01", "--until", "2024-01-03"]


def test_cli_ingests_then_is_up_to_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_ingest, "resolve_channel", lambda name: FakeChannel(name))
    first = run_cli(tmp_path, *BASE, *RANGE)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "fakex BTC/USDT 1h: fetched 48 candle(s) for 2024-01-01 00:00 .. 2024-01-03 00:00 UTC, "
        f"stored 48 in LocalCandleStore({str(tmp_path)!r})"
    ]
    assert len(LocalCandleStore(tmp_path).read("fakex", "BTC/USDT", "1h")) == 48
    again = run_cli(tmp_path, *BASE, *RANGE)
    assert again.exit_code == 0
    assert again.stdout.strip() == (
        "fakex BTC/USDT 1h: up to date (last bar 2024-01-02 23:00 UTC); nothing to fetch"
    )
    health = all_health(MemoryCache(tmp_path / "cache.json"))
    assert health["fakex"].status == "ok"
    assert health["fakex"].runs == 1


def test_cli_source_failure_is_one_line_exit_1_and_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        cli_ingest, "resolve_channel", lambda name: FakeChannel(name, fail_on_call=1)
    )
    result = run_cli(tmp_path, *BASE, *RANGE)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: fakex: fetch BTC/USDT 1h refused (NetworkError: connection reset by peer)"
    ]
    assert "Traceback" not in result.output
    assert parquet_files(tmp_path) == []
    health = all_health(MemoryCache(tmp_path / "cache.json"))
    assert health["fakex"].status == "degraded"
    assert health["fakex"].last_error is not None
    assert "connection reset" in health["fakex"].last_error


def test_cli_equities_daily_reports_weekends_as_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = FakeChannel("yfinance", timeframes=("1d",), weekdays_only=True)
    monkeypatch.setattr(cli_ingest, "resolve_channel", lambda name: channel)
    args = ["--source", "yfinance", "--symbol", "AAPL", "--timeframe", "1d"]
    result = run_cli(tmp_path, *args, "--since", "2024-01-01", "--until", "2024-01-15")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("yfinance AAPL 1d: fetched 10 candle(s)")
    assert lines[1] == "validation: yfinance AAPL 1d: 10 in, 10 kept; 1 gap(s), 2 missing bar(s)"
    assert len(LocalCandleStore(tmp_path).read("yfinance", "AAPL", "1d")) == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--source", "nosuch", "--symbol", "X", *RANGE],
            "error: unknown market-data channel 'nosuch'",
        ),
        ([*BASE, "--since", "someday"], "error: --since: not a date/time ('someday')"),
        ([*BASE[:4], "--timeframe", "1x", *RANGE], "error: timeframe '1x' is not valid"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli(tmp_path, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(message)


def test_cli_unreachable_questdb_fails_fast_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setattr(cli_ingest, "resolve_channel", lambda name: FakeChannel(name))
    result = run_cli(
        tmp_path, *BASE, *RANGE, "--store", "questdb", "--questdb-url", f"http://127.0.0.1:{port}"
    )
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: questdb at 127.0.0.1:{port}: PGWire connection failed")
