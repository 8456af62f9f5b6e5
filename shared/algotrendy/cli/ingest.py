"""`algotrendy ingest` and `algotrendy channels status`.

    algotrendy ingest --source binance --symbol BTC/USDT --timeframe 1h --since 2024-01-01
    algotrendy ingest --source yfinance --symbol AAPL --timeframe 1d --since 2020-01-01 \\
        --until 2024-01-01 --store questdb
    algotrendy channels status [--json]

Register both on the main app with `register(app)`.

Errors end the command with one line on stderr, `error: <message>`, the message naming
the source (or store) and the cause: exit code 1 when a source or store is unreachable
(try again later), 2 when the input is wrong (unknown source, symbol, timeframe, dates).
Whole windows already stored stay stored; the failing window leaves nothing behind, and
the next run resumes after the last stored bar.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from algotrendy.errors import AlgoTrendyError, SourceUnavailableError

if TYPE_CHECKING:
    from algotrendy.data.channels.base import Channel
    from algotrendy.storage.base import Cache, CandleStore

EXIT_UNAVAILABLE = 1
EXIT_BAD_INPUT = 2


class StoreKind(StrEnum):
    local = "local"
    questdb = "questdb"


def resolve_channel(source: str) -> Channel:
    """The channel registered as `source` (tests replace this function)."""
    from algotrendy.data.channels import get_channel

    return get_channel(source)


def _fail(exc: AlgoTrendyError) -> typer.Exit:
    from algotrendy.storage.base import StoreUnavailableError

    message = re.sub(r"\s*\n\s*", " ", str(exc)).strip() or type(exc).__name__
    typer.echo(f"error: {message}", err=True)
    unavailable = isinstance(exc, SourceUnavailableError | StoreUnavailableError)
    return typer.Exit(EXIT_UNAVAILABLE if unavailable else EXIT_BAD_INPUT)


def _data_dir(value: Path | None) -> Path:
    if value is not None:
        return value
    from algotrendy.config import get_settings

    return Path(get_settings().data_dir)


def _redis_url(value: str | None) -> str | None:
    if value:
        return value
    from algotrendy.config import get_settings

    return get_settings().redis_url


def build_cache(data_dir: Path, redis_url: str | None) -> Cache:
    """Redis when a URL is configured (aws, vps), else the file-backed in-process cache
    under the data directory (local), so `channels status` sees what `ingest` recorded."""
    if redis_url:
        from algotrendy.storage.cache import RedisCache

        return RedisCache(redis_url)
    from algotrendy.storage.cache import MemoryCache

    return MemoryCache(data_dir / "cache.json")


def build_store(kind: StoreKind, data_dir: Path, questdb_url: str) -> CandleStore:
    if kind is StoreKind.questdb:
        from algotrendy.storage.questdb_store import QuestDBCandleStore

        return QuestDBCandleStore.from_url(questdb_url)
    from algotrendy.storage.local import LocalCandleStore

    return LocalCandleStore(data_dir)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from algotrendy.data.normalise import as_utc

    return as_utc(value, name=option)


DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="ALGOTRENDY_DATA_DIR",
        help="Local state folder (candles, cache); default from settings: .algotrendy",
        show_default=False,
    ),
]
RedisOpt = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        envvar="ALGOTRENDY_REDIS_URL",
        help="Keep latest prices and channel health in Redis (default: in the data dir).",
        show_default=False,
    ),
]


def ingest(
    source: Annotated[
        str, typer.Option("--source", help="Channel name: binance, bybit, yfinance, ...")
    ],
    symbol: Annotated[str, typer.Option("--symbol", help="BTC/USDT, AAPL, ...")],
    since: Annotated[str, typer.Option("--since", help="First bar open time, UTC (2024-01-01).")],
    timeframe: Annotated[str, typer.Option("--timeframe", help="1m, 5m, 1h, 1d, ...")] = "1h",
    until: Annotated[
        str | None,
        typer.Option("--until", help="End (exclusive), UTC; default: the last closed bar."),
    ] = None,
    store: Annotated[
        StoreKind, typer.Option("--store", help="Where candles go.", case_sensitive=False)
    ] = StoreKind.local,
    data_dir: DataDirOpt = None,
    questdb_url: Annotated[
        str,
        typer.Option(
            "--questdb-url",
            envvar="ALGOTRENDY_QUESTDB_URL",
            help="QuestDB HTTP address for --store questdb (PGWire on port 8812).",
        ),
    ] = "http://127.0.0.1:9000",
    redis_url: RedisOpt = None,
) -> None:
    """Fetch candles from a source into the store, resuming after the last stored bar."""
    try:
        _ingest(source, symbol, timeframe, since, until, store, data_dir, questdb_url, redis_url)
    except AlgoTrendyError as exc:
        raise _fail(exc) from None


def _ingest(
    source: str,
    symbol: str,
    timeframe: str,
    since_text: str,
    until_text: str | None,
    kind: StoreKind,
    data_dir_opt: Path | None,
    questdb_url: str,
    redis_url_opt: str | None,
) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from algotrendy.data.ingest import IngestRequest, IngestService
    from algotrendy.data.manager import track_health
    from algotrendy.data.normalise import parse_timeframe
    from algotrendy.data.pipeline import CandlePipeline

    # Cheap checks first: a typo is reported before any connection is opened.
    since = _when(since_text, "--since")
    assert since is not None
    until = _when(until_text, "--until")
    parse_timeframe(timeframe)
    data_dir = _data_dir(data_dir_opt)
    candle_store = build_store(kind, data_dir, questdb_url)
    cache = build_cache(data_dir, _redis_url(redis_url_opt))
    channel = resolve_channel(source)
    service = IngestService(channel, CandlePipeline([candle_store], cache=cache))
    request = IngestRequest(
        source=source.strip().lower(), symbol=symbol, timeframe=timeframe, since=since, until=until
    )
    try:
        # The series is keyed by the channel's canonical symbol (BTCUSDT -> BTC/USDT).
        # Resolving may be the first call to the source (ccxt loads the markets): a
        # failure counts in the channel's health like a failed fetch; a success is
        # counted once, by the fetch below.
        request = service.resolve(request)
    except Exception:
        with track_health(cache, request.source):
            raise
    label = f"{request.source} {request.symbol} {timeframe}"
    plan = service.plan(request)
    stdout = Console(highlight=False, soft_wrap=True)
    if plan.up_to_date:
        last = f" (last bar {plan.resumed_from:%Y-%m-%d %H:%M} UTC)" if plan.resumed_from else ""
        stdout.print(f"{label}: up to date{last}; nothing to fetch", markup=False)
        return
    if plan.resumed_from is not None:
        stdout.print(
            f"{label}: resuming after {plan.resumed_from:%Y-%m-%d %H:%M} UTC", markup=False
        )
    stderr = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("candles"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,  # an error then leaves its one line, not a half-drawn bar
        disable=not stderr.is_terminal,  # logs and pipes get the summary lines only
    )
    with progress, track_health(cache, request.source):
        task = progress.add_task(label, total=plan.expected_bars or None)
        result = service.run(request, plan=plan, progress=lambda n: progress.advance(task, n))
    span = f"{plan.start:%Y-%m-%d %H:%M} .. {plan.end:%Y-%m-%d %H:%M} UTC"
    stdout.print(
        f"{label}: fetched {result.fetched} candle(s) for {span}, "
        f"stored {result.written} in {candle_store!r}",
        markup=False,
    )
    if result.report is not None and not result.report.clean:
        stdout.print(f"validation: {result.report.summary()}", markup=False)


channels_app = typer.Typer(help="Market-data channels.", no_args_is_help=True, add_completion=False)


@channels_app.command("status")
def channels_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    data_dir: DataDirOpt = None,
    redis_url: RedisOpt = None,
) -> None:
    """Health of every channel that has run: last success, last error, failures in a row,
    latency."""
    try:
        _channels_status(as_json, data_dir, redis_url)
    except AlgoTrendyError as exc:
        raise _fail(exc) from None


def _channels_status(as_json: bool, data_dir_opt: Path | None, redis_url_opt: str | None) -> None:
    import json
    import sys

    from rich.console import Console
    from rich.table import Table

    from algotrendy.data.manager import all_health

    cache = build_cache(_data_dir(data_dir_opt), _redis_url(redis_url_opt))
    health = all_health(cache)
    if as_json:
        payload = [{**h.model_dump(mode="json"), "status": h.status} for h in health.values()]
        sys.stdout.write(json.dumps(payload) + "\n")
        return
    console = Console(highlight=False)
    if not health:
        console.print("no channel has run yet (run `algotrendy ingest` first)", markup=False)
        return
    table = Table(title=f"Channel health ({cache!r})", title_justify="left")
    for column in ("channel", "status", "last success", "last error", "in a row", "latency"):
        table.add_column(column, justify="right" if column in ("in a row", "latency") else "left")
    for h in health.values():
        error = ""
        if h.last_error:
            error = f"{h.last_error_at:%Y-%m-%d %H:%M} {h.last_error}"
        table.add_row(
            h.channel,
            h.status,
            f"{h.last_success:%Y-%m-%d %H:%M:%S}" if h.last_success else "never",
            error,
            str(h.consecutive_failures),
            f"{h.latency_ms:.0f} ms" if h.latency_ms is not None else "",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add `ingest` and the `channels` group to the main CLI."""
    app.command("ingest")(ingest)
    app.add_typer(channels_app, name="channels")
