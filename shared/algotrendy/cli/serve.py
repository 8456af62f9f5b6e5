"""`algotrendy serve`: the whole platform in one process on embedded defaults (API,
TradingView webhook, signal evaluator, backtests, execution engine with the paper broker),
seeded with the bundled sample data on first start. Local only: binds 127.0.0.1 unless told
otherwise, needs no network and no AWS."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer


def serve_command(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port")] = 8000,
    data_dir: Annotated[
        Path, typer.Option(help="local state: SQLite, candles, cache, paper broker, demo secrets")
    ] = Path(".algotrendy"),
    seed: Annotated[
        bool,
        typer.Option(
            "--seed/--no-seed",
            help="load the sample candles and create the demo admin, strategy and webhook",
        ),
    ] = True,
    samples: Annotated[
        Path | None,
        typer.Option(help="folder holding the sample CSVs (default: ./samples, the repo's)"),
    ] = None,
) -> None:
    """Run API, webhook, signal evaluator, backtests and paper-trading engine in one process."""
    import logging

    import uvicorn

    from algotrendy.local.app import build_platform, local_settings
    from algotrendy.local.banner import banner

    if samples is not None and not samples.is_dir():
        raise typer.BadParameter(f"{samples} is not a folder", param_hint="--samples")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    try:
        platform = build_platform(local_settings(data_dir), seed_demo=seed, samples_dir=samples)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot use {data_dir}: {exc.strerror or exc}", param_hint="--data-dir"
        ) from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(banner(platform, f"http://{shown}:{port}"), flush=True)
    received: list[int] = []
    # uvicorn turns SIGINT/SIGTERM into a graceful shutdown and then re-raises the signal
    # into the handler that was installed before it; this one only notes it, so a stop
    # requested by Ctrl-C or SIGTERM ends with exit code 0 (and no KeyboardInterrupt).
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        uvicorn.run(platform.app, host=host, port=port, log_level="info")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        print(f"stopped ({signal.Signals(received[0]).name})", flush=True)
