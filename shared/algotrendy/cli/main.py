"""The `algotrendy` command line: backtest, sweep, walk-forward, catalogues and the demo.

Error policy: the library raises `AlgoTrendyError` subclasses whose messages name the
file, row, column or parameter at fault. `_Group.invoke` is the one place that turns
them into a single `error: ...` line on stderr and exit code 2 (the code click uses for
usage errors: the input is wrong, not the program), or 1 for `SourceUnavailableError` (a
market-data source or store is unreachable; the same command may work later). Any other
exception is a bug and is left to propagate with its traceback rather than being hidden.

Heavy modules (pandas, numba, plotly) are imported inside the commands so that
`algotrendy --help` answers at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from typer import _click
from typer.core import TyperGroup

from algotrendy.errors import AlgoTrendyError, SourceUnavailableError

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 1  # a data source or store could not be reached: retry later


class _Group(TyperGroup):
    """The CLI's error boundary (see the module docstring)."""

    def invoke(self, ctx: _click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AlgoTrendyError as exc:
            message = re.sub(r"\s*\n\s*", " ", str(exc)).strip() or type(exc).__name__
            typer.echo(f"error: {message}", err=True)
            code = EXIT_UNAVAILABLE if isinstance(exc, SourceUnavailableError) else EXIT_BAD_INPUT
            raise typer.Exit(code) from None


app = typer.Typer(
    name="algotrendy",
    cls=_Group,
    help="AlgoTrendy: backtest, sweep and walk-forward trading strategies on OHLCV data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _main() -> None:
    """Send rich's default console (used by library progress bars) to stderr, so stdout
    carries only results and `--json` output stays parseable; size the tables."""
    import rich

    from algotrendy.cli import output

    rich.reconfigure(stderr=True)
    output.fit_width()


# --------------------------------------------------------------------------- options

StrategyOpt = Annotated[
    str, typer.Option("--strategy", "-s", help="Strategy name (see `algotrendy strategies`).")
]
DataOpt = Annotated[
    Path,
    typer.Option(
        "--data", "-d", help="OHLCV file (CSV or Parquet) with time, open, high, low, close."
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Strategy parameter NAME=VALUE (repeatable)."),
]
GridOpt = Annotated[
    list[str],
    typer.Option(
        "--grid",
        "-g",
        help="Swept parameter: NAME=START:STOP:STEP (inclusive) or NAME=V1,V2,... (repeatable).",
    ),
]
FixedParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Parameter held fixed, NAME=VALUE (repeatable)."),
]
CashOpt = Annotated[float, typer.Option(help="Starting cash.")]
FeeOpt = Annotated[float, typer.Option(help="Fee per fill, fraction of notional (0.002 = 0.2 %).")]
FixedFeeOpt = Annotated[float, typer.Option(help="Fee per fill in cash.")]
SlippageOpt = Annotated[float, typer.Option(help="Adverse price move per fill, fraction of price.")]
SizingOpt = Annotated[str, typer.Option(help="Position sizing: whole | fraction | units.")]
SizeOpt = Annotated[
    float, typer.Option(help="Fraction of equity (sizing=fraction) or units (sizing=units).")
]
TradeOnCloseOpt = Annotated[
    bool, typer.Option(help="Fill at the signal bar's close instead of the next bar's open.")
]
RiskFreeOpt = Annotated[float, typer.Option(help="Annual risk-free rate for Sharpe/Sortino.")]
PpyOpt = Annotated[
    float | None,
    typer.Option(help="Bars per year for annualising (default: inferred from bar times)."),
]
SymbolOpt = Annotated[
    str | None, typer.Option(help="Symbol label for results (default: the data file's name).")
]
MetricOpt = Annotated[
    str,
    typer.Option(
        help="Metric to rank by, best first: any name in the backtest metrics table "
        "(sharpe, sortino, calmar, total_return, max_drawdown, profit_factor, ...)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout only.")]


def _config(**values: Any) -> Any:
    from algotrendy.cli.inputs import SIZINGS, build_config, choice

    values["sizing"] = choice("--sizing", values["sizing"], SIZINGS)
    return build_config(**values)


def _load(path: Path) -> Any:
    from algotrendy.data import load_ohlcv

    return load_ohlcv(path)


# --------------------------------------------------------------------------- backtest


@app.command()
def backtest(
    strategy: StrategyOpt,
    data: DataOpt,
    param: ParamOpt = None,
    cash: CashOpt = 10_000.0,
    fee: FeeOpt = 0.0,
    fixed_fee: FixedFeeOpt = 0.0,
    slippage: SlippageOpt = 0.0,
    sizing: SizingOpt = "whole",
    size: SizeOpt = 1.0,
    trade_on_close: TradeOnCloseOpt = False,
    risk_free: RiskFreeOpt = 0.0,
    periods_per_year: PpyOpt = None,
    engine: Annotated[
        str, typer.Option(help="auto | vectorized | event (auto picks the fastest exact one).")
    ] = "auto",
    symbol: SymbolOpt = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML report here.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Backtest one strategy on one OHLCV file and print its metrics."""
    from algotrendy.backtest.runner import run_backtest
    from algotrendy.cli import output
    from algotrendy.cli.inputs import ENGINES, choice, resolve_strategy, symbol_for

    strat, params = resolve_strategy(strategy, param or [])
    engine = choice("--engine", engine, ENGINES)
    config = _config(
        cash=cash,
        fee=fee,
        fixed_fee=fixed_fee,
        slippage=slippage,
        sizing=sizing,
        size=size,
        trade_on_close=trade_on_close,
        risk_free=risk_free,
        periods_per_year=periods_per_year,
    )
    frame = _load(data)
    result = run_backtest(
        frame,
        strat,
        params,
        **config.model_dump(),
        engine=engine,
        symbol=symbol_for(data, symbol),
    )
    if report is not None:
        from algotrendy.backtest.report import write_report

        written = write_report(result, report)
    if json_:
        output.print_json(result.to_dict())
        if report is not None:
            output.notice(f"report: {written}")
        return
    shown = output.params_text(result.params)
    output.out.print(f"{result.strategy} on {result.symbol} ({len(frame):,} bars): {shown}")
    output.out.print(output.metrics_table(result.metrics))
    line, table = output.trades_summary(result.trades)
    output.out.print(line)
    if table is not None:
        output.out.print(table)
    if report is not None:
        output.out.print(f"report: {written}")


# --------------------------------------------------------------------------- sweep


def _workers(value: int | None) -> int:
    from algotrendy.errors import ParameterError

    if value is None:
        return max(1, min(os.cpu_count() or 1, 4))
    if value < 1:
        raise ParameterError(f"--workers: must be at least 1 (got {value})")
    return value


@app.command()
def sweep(
    strategy: StrategyOpt,
    data: DataOpt,
    grid: GridOpt,
    param: FixedParamOpt = None,
    metric: MetricOpt = "sharpe",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: CPU count, at most 4).")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows to show (and to print with --json).")] = 10,
    cash: CashOpt = 10_000.0,
    fee: FeeOpt = 0.0,
    fixed_fee: FixedFeeOpt = 0.0,
    slippage: SlippageOpt = 0.0,
    sizing: SizingOpt = "whole",
    size: SizeOpt = 1.0,
    trade_on_close: TradeOnCloseOpt = False,
    risk_free: RiskFreeOpt = 0.0,
    periods_per_year: PpyOpt = None,
    symbol: SymbolOpt = None,
    csv: Annotated[
        Path | None, typer.Option(help="Write every combination, ranked, to this CSV file.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    json_: JsonOpt = False,
) -> None:
    """Backtest every combination of a parameter grid and rank them by one metric."""
    from algotrendy.backtest.sweep import run_sweep
    from algotrendy.cli import output
    from algotrendy.cli.inputs import positive_int, symbol_for
    from algotrendy.strategies import get_strategy

    strat = get_strategy(strategy)
    top = positive_int("--top", top)
    n_workers = _workers(workers)
    config = _config(
        cash=cash,
        fee=fee,
        fixed_fee=fixed_fee,
        slippage=slippage,
        sizing=sizing,
        size=size,
        trade_on_close=trade_on_close,
        risk_free=risk_free,
        periods_per_year=periods_per_year,
    )
    specs = _grid_with_fixed(grid, param or [])
    frame = _load(data)
    label = symbol_for(data, symbol)
    result = run_sweep(
        frame,
        strat,
        specs,
        config=config,
        metric=metric,
        workers=n_workers,
        top=None if csv is not None else top,
        progress=progress,
        symbols=[label],
    )
    ranked = result.ranked
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        ranked.to_csv(csv, index=False)
        ranked = ranked.head(top)
    if json_:
        payload = result.to_dict()
        payload["ranked"] = payload["ranked"][:top]
        output.print_json(payload)
        if csv is not None:
            output.notice(f"csv: {csv}")
        return
    names = result.plan.param_names
    output.out.print(_sweep_header(result, label, len(frame)))
    output.out.print(
        output.ranked_table(ranked, params=names, metric=metric, title=f"Top {len(ranked)}")
    )
    if csv is not None:
        output.out.print(f"csv: {csv}")


def _grid_with_fixed(grid: list[str], given: list[str]) -> dict[str, list[Any]]:
    """The grid's values per parameter, plus a one-value entry for each parameter fixed
    with --param. Values are validated by the grid expansion, field by field and then per
    combination, so `--param fast=30` with a swept `slow` is judged against each `slow`
    rather than against slow's default. A name given both ways is refused."""
    from algotrendy.backtest.grid import parse_grid
    from algotrendy.cli.inputs import parse_params
    from algotrendy.errors import ParameterError

    values = parse_grid(grid)
    for name, value in parse_params(given).items():
        if name in values:
            raise ParameterError(f"{name}: given both as --param and as --grid; pick one")
        values[name] = [value]
    return values


def _sweep_header(result: Any, label: str, bars: int) -> str:
    skipped = f", {result.n_skipped:,} skipped as invalid" if result.n_skipped else ""
    return (
        f"{result.plan.strategy} on {label} ({bars:,} bars): {result.n_combos:,} combinations"
        f"{skipped}, ranked by {result.metric}, {result.elapsed:.1f} s"
    )


# --------------------------------------------------------------------------- walk-forward


@app.command()
def walkforward(
    strategy: StrategyOpt,
    data: DataOpt,
    grid: GridOpt,
    train: Annotated[int, typer.Option(help="In-sample bars per window.")],
    test: Annotated[int, typer.Option(help="Out-of-sample bars per window.")],
    mode: Annotated[
        str, typer.Option(help="rolling (fixed-length in-sample) | anchored (growing).")
    ] = "rolling",
    param: FixedParamOpt = None,
    metric: MetricOpt = "sharpe",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: CPU count, at most 4).")
    ] = None,
    cash: CashOpt = 10_000.0,
    fee: FeeOpt = 0.0,
    fixed_fee: FixedFeeOpt = 0.0,
    slippage: SlippageOpt = 0.0,
    sizing: SizingOpt = "whole",
    size: SizeOpt = 1.0,
    trade_on_close: TradeOnCloseOpt = False,
    risk_free: RiskFreeOpt = 0.0,
    periods_per_year: PpyOpt = None,
    symbol: SymbolOpt = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML report here.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    json_: JsonOpt = False,
) -> None:
    """Walk-forward analysis: optimise on each in-sample window, trade the winner on the
    out-of-sample window after it, and report the stitched out-of-sample result."""
    from algotrendy.backtest.walkforward import Mode, walk_forward
    from algotrendy.cli import output
    from algotrendy.cli.inputs import MODES, choice, positive_int, symbol_for
    from algotrendy.strategies import get_strategy

    strat = get_strategy(strategy)
    wf_mode = choice("--mode", mode, MODES)
    positive_int("--train", train)
    positive_int("--test", test)
    n_workers = _workers(workers)
    config = _config(
        cash=cash,
        fee=fee,
        fixed_fee=fixed_fee,
        slippage=slippage,
        sizing=sizing,
        size=size,
        trade_on_close=trade_on_close,
        risk_free=risk_free,
        periods_per_year=periods_per_year,
    )
    specs = _grid_with_fixed(grid, param or [])
    frame = _load(data)
    label = symbol_for(data, symbol)
    result = walk_forward(
        frame,
        strat,
        specs,
        config=config,
        train=train,
        test=test,
        mode=cast("Mode", wf_mode),  # checked against MODES above
        metric=metric,
        workers=n_workers,
        progress=progress,
    )
    if report is not None:
        from algotrendy.backtest.report import write_walkforward_report

        written = write_walkforward_report(result, report, data=frame, symbol=label)
    if json_:
        output.print_json(result.to_dict())
        if report is not None:
            output.notice(f"report: {written}")
        return
    skipped = f", {result.n_skipped:,} skipped as invalid" if result.n_skipped else ""
    output.out.print(
        f"{result.strategy} on {label} ({len(frame):,} bars), {result.mode} walk-forward: "
        f"{len(result.windows)} windows of {result.train:,} in-sample + {result.test:,} "
        f"out-of-sample bars, {result.n_combos:,} combinations{skipped}, best by {metric}"
        + (f"; last {result.unused_bars:,} bars unused" if result.unused_bars else "")
    )
    output.out.print(output.windows_table(result.windows, params=list(specs), metric=metric))
    output.out.print(output.metrics_table(result.metrics, title="Out-of-sample (stitched)"))
    if report is not None:
        output.out.print(f"report: {written}")


# --------------------------------------------------------------------------- catalogues


@app.command()
def strategies(json_: JsonOpt = False) -> None:
    """List the registered strategies with their parameters, defaults and ranges."""
    from algotrendy.cli import output
    from algotrendy.strategies import get_strategy, strategy_names

    catalogue = []
    for name in strategy_names():
        strat = get_strategy(name)
        catalogue.append(
            {
                "name": name,
                "description": strat.description,
                "parameters": strat.param_ranges(),
            }
        )
    if json_:
        output.print_json(catalogue)
        return
    for entry in catalogue:
        output.out.print(output.strategy_table(entry))


@app.command()
def indicators(json_: JsonOpt = False) -> None:
    """List the technical indicators (TA-Lib conventions) strategies can use."""
    from algotrendy.cli import output
    from algotrendy.indicators import INDICATORS

    catalogue = output.indicator_catalogue(INDICATORS)
    if json_:
        output.print_json(catalogue)
        return
    output.out.print(output.indicators_table(catalogue))


# --------------------------------------------------------------------------- demo

DEMO_DATA = Path("samples/GOOG_1d.csv")
DEMO_PARAMS = {"fast": 10, "slow": 20}
DEMO_GRID = ["fast=5:50:5", "slow=10:200:10"]


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for report.html and sweep.csv.")] = Path("out"),
    data: Annotated[
        Path, typer.Option("--data", "-d", help="OHLCV file (default: bundled GOOG daily).")
    ] = DEMO_DATA,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: CPU count, at most 4).")
    ] = None,
) -> None:
    """The guided tour behind `make run`: backtest sma_cross on sample data, sweep its
    parameters, write an HTML report and a CSV of the sweep.

    Settings follow backtesting.py's documented SmaCross example (GOOG daily, SMA 10/20,
    0.2 % commission) so the numbers can be compared with that library.
    """
    from algotrendy.backtest.report import write_report
    from algotrendy.backtest.runner import run_backtest
    from algotrendy.backtest.sweep import run_sweep
    from algotrendy.cli import output
    from algotrendy.cli.inputs import build_config
    from algotrendy.errors import DataError

    if not data.is_file():
        hint = " (run from the repository root, or pass --data FILE)" if data == DEMO_DATA else ""
        raise DataError(f"{data}: data file not found{hint}")
    n_workers = _workers(workers)
    frame = _load(data)
    symbol = data.stem
    config = build_config(cash=10_000.0, fee=0.002)
    output.out.rule(f"Backtest: sma_cross on {symbol}")
    result = run_backtest(
        frame, "sma_cross", DEMO_PARAMS, **config.model_dump(), engine="auto", symbol=symbol
    )
    shown = output.params_text(result.params)
    output.out.print(
        f"{len(frame):,} bars {frame.index[0]:%Y-%m-%d} .. {frame.index[-1]:%Y-%m-%d}; "
        f"{shown}; cash {config.cash:,.0f}, fee {config.fee:.2%} per fill"
    )
    output.out.print(output.metrics_table(result.metrics))
    line, table = output.trades_summary(result.trades)
    output.out.print(line)
    if table is not None:
        output.out.print(table)

    output.out.rule("Parameter sweep")
    swept = run_sweep(
        frame,
        "sma_cross",
        DEMO_GRID,
        config=config,
        metric="sharpe",
        workers=n_workers,
        top=None,
        progress=True,
        symbols=[symbol],
    )
    output.out.print(_sweep_header(swept, symbol, len(frame)) + f", {n_workers} worker(s)")
    output.out.print(
        output.ranked_table(
            swept.ranked.head(10), params=swept.plan.param_names, metric="sharpe", title="Top 10"
        )
    )

    out.mkdir(parents=True, exist_ok=True)
    report_path = write_report(result, out / "report.html")
    csv_path = out / "sweep.csv"
    swept.ranked.to_csv(csv_path, index=False)
    output.out.rule("Written")
    output.out.print(f"report: {report_path}")
    output.out.print(f"sweep:  {csv_path}")


# --------------------------------------------------------------------------- other areas
# Commands owned by other packages, registered here so there is one `algotrendy` app.


def _register_others() -> None:
    from algotrendy.cli import engine, ingest, serve

    ingest.register(app)
    app.command("engine")(engine.engine_command)
    app.command("kill-switch")(engine.kill_switch_command)
    app.command("serve")(serve.serve_command)


_register_others()
