"""Parameter sweeps as three pure steps, plan -> run chunk -> aggregate, so the same code
runs locally on a process pool and in AWS behind a Step Functions Distributed Map.

* `plan_sweep` expands the grid (see `algotrendy.backtest.grid`) and splits symbols x
  combinations into chunks. Everything in a plan is a pydantic model that round-trips
  through JSON (`model_dump_json` / `model_validate_json`): the plan is the manifest
  written to S3 and each chunk is one Map item, self-contained (strategy name, config,
  symbols, params) so a worker needs nothing but the chunk and the candles.
* `run_chunk` loads each of its symbols' candles once and evaluates every combination
  with `algotrendy.backtest.runner.evaluate` (metrics only, no trade table), returning
  one `SweepRow` per (symbol, params).
* `aggregate` ranks rows by one metric into a DataFrame (the ranking itself is
  `algotrendy.backtest.ranking.rank_rows`, plain Python, which the aggregate Lambda uses
  without pandas).

Rows carry `task`, their position in the plan (symbol-major, then combination), and the
ranking sorts by it before ranking by the metric, so the result does not depend on the
order in which workers finish: workers=2 gives exactly the frame of workers=1.

Indicator results are not shared between combinations. Each evaluation calls the
strategy's `signals`, which computes its own indicators; sharing them would need the
Strategy interface to expose its indicators (not the sweep's to change), and the gain is
small: for sma_cross on 100k bars the two SMAs take ~1.4 ms of the ~8 ms an evaluation
costs (kernel ~3 ms, metrics ~2 ms). `periods_per_year`, which every evaluation would
otherwise infer from the bar times, is inferred once per symbol per chunk instead.

Metrics may be NaN (no trades -> no Sharpe) or inf (profit factor without losses). JSON
has neither, so rows serialise them as the strings "NaN" / "Infinity" (pydantic's
`ser_json_inf_nan="strings"`), which validate back to floats. Use `model_dump_json` (not
`json.dumps(model_dump())`) to produce the JSON.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.grid import GridInput, expand_grid
from algotrendy.backtest.metric_names import METRICS

# Re-exported: the rows and their ranking live in `ranking`, which the aggregate step
# imports without this module's planning and running.
from algotrendy.backtest.ranking import LOWER_IS_BETTER as LOWER_IS_BETTER
from algotrendy.backtest.ranking import SweepRow as SweepRow
from algotrendy.backtest.ranking import check_top, rank_rows
from algotrendy.backtest.ranking import default_ascending as default_ascending
from algotrendy.errors import DataError, ParameterError
from algotrendy.strategies import Strategy, get_strategy

if TYPE_CHECKING:
    # numpy, pandas and `Bars` are imported where arrays or frames are built or checked
    # (`run_chunk`, `load_bars`, `as_source`, `aggregate`, `_warm_up`): the plan step (a
    # Lambda of its own) only expands the grid and splits it into chunks, and does
    # without them.
    import pandas as pd

    from algotrendy.domain.bars import Bars

    SymbolData: TypeAlias = pd.DataFrame | Bars
    # Candles per symbol: a mapping, or a loader called once per symbol per chunk (in
    # AWS: read the symbol's candles from S3/QuestDB). Must be picklable for workers > 1
    # when the platform starts worker processes by spawning (macOS, Windows).
    DataSource: TypeAlias = Mapping[str, SymbolData] | Callable[[str], SymbolData]

DEFAULT_SYMBOL = "data"


class SweepChunk(BaseModel):
    """One unit of work: every combination in `params` on every symbol in `symbols`.

    Tasks inside a chunk are numbered symbol-major from `first_task`, the same order as
    in the whole plan, so rows can be put back in plan order after a parallel run.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    index: int = Field(ge=0)
    strategy: str
    symbols: list[str]
    params: list[dict[str, Any]]
    first_task: int = Field(ge=0)
    config: BacktestConfig

    @property
    def n_tasks(self) -> int:
        return len(self.symbols) * len(self.params)


class SweepPlan(BaseModel):
    """The manifest of a sweep: what was asked, what is valid, and the chunks to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str
    symbols: list[str]
    grid: dict[str, list[Any]]
    param_names: list[str]
    n_total: int = Field(description="grid product per symbol, before validation")
    n_combos: int = Field(description="valid combinations per symbol")
    n_skipped: int = Field(description="combinations the strategy refused, per symbol")
    skipped_examples: list[str]
    chunk_size: int
    config: BacktestConfig
    chunks: list[SweepChunk]

    @property
    def n_tasks(self) -> int:
        return len(self.symbols) * self.n_combos


@dataclass(frozen=True)
class SweepResult:
    """A finished local sweep. `ranked` holds the `top` best rows (all when top=None),
    `rows` every row in plan order."""

    plan: SweepPlan
    metric: str
    ranked: pd.DataFrame
    rows: list[SweepRow] = field(repr=False)
    elapsed: float

    @property
    def n_combos(self) -> int:
        return self.plan.n_combos

    @property
    def n_skipped(self) -> int:
        return self.plan.n_skipped

    @property
    def best_params(self) -> dict[str, Any]:
        """Parameters of the top-ranked row."""
        if self.ranked.empty:
            raise ParameterError("sweep: no rows to pick the best parameters from")
        row = self.ranked.iloc[0]
        return {name: _py(row[name]) for name in self.plan.param_names}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (non-finite metrics as None), the shape the CLI/API print."""
        records = self.ranked.to_dict(orient="records")
        return {
            "strategy": self.plan.strategy,
            "metric": self.metric,
            "n_combos": self.n_combos,
            "n_skipped": self.n_skipped,
            "n_tasks": self.plan.n_tasks,
            "elapsed": self.elapsed,
            "ranked": [{str(k): _json_value(v) for k, v in r.items()} for r in records],
        }


def _py(v: Any) -> Any:
    """numpy scalars from a frame back to plain Python (ints stay ints, bools bools)."""
    return v.item() if hasattr(v, "item") else v


def _json_value(v: Any) -> Any:
    v = _py(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _check_symbols(symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str):
        raise ParameterError(f"symbols: expected a list of symbols, got the string {symbols!r}")
    out = [str(s) for s in symbols]
    if not out:
        raise ParameterError("symbols: need at least one symbol")
    seen: set[str] = set()
    for s in out:
        if not s:
            raise ParameterError("symbols: empty symbol name")
        if s in seen:
            raise ParameterError(f"symbols: {s!r} is listed twice")
        seen.add(s)
    return out


def plan_sweep(
    strategy: str | Strategy[Any],
    grid: GridInput,
    symbols: Sequence[str],
    *,
    config: BacktestConfig | None = None,
    chunk_size: int = 50,
) -> SweepPlan:
    """Expand the grid and split symbols x combinations into chunks of at most
    `chunk_size` backtests.

    With at least `chunk_size` combinations each chunk holds one symbol and a slice of
    the combinations; with fewer, a chunk holds all combinations for as many symbols as
    fit, so small grids over many symbols do not become many tiny Map items. Either way
    a symbol's candles are loaded at most once per chunk.
    """
    strat = get_strategy(strategy)
    syms = _check_symbols(symbols)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ParameterError(f"chunk_size: must be a positive integer (got {chunk_size!r})")
    cfg = config if config is not None else BacktestConfig()
    pg = expand_grid(strat, grid)
    combos = pg.combos
    n = len(combos)
    chunks: list[SweepChunk] = []

    def add(chunk_syms: list[str], params: list[dict[str, Any]], first: int) -> None:
        idx = len(chunks)
        chunks.append(
            SweepChunk(
                id=f"chunk-{idx:05d}",
                index=idx,
                strategy=strat.name,
                symbols=chunk_syms,
                params=params,
                first_task=first,
                config=cfg,
            )
        )

    if n >= chunk_size:
        for si, sym in enumerate(syms):
            for start in range(0, n, chunk_size):
                add([sym], combos[start : start + chunk_size], si * n + start)
    else:
        per = chunk_size // n
        for start in range(0, len(syms), per):
            add(syms[start : start + per], combos, start * n)
    return SweepPlan(
        strategy=strat.name,
        symbols=syms,
        grid=pg.values,
        param_names=pg.names,
        n_total=pg.n_total,
        n_combos=n,
        n_skipped=pg.n_skipped,
        skipped_examples=pg.skipped_examples,
        chunk_size=chunk_size,
        config=cfg,
        chunks=chunks,
    )


def load_bars(data: DataSource, symbol: str) -> Bars:
    """One symbol's candles as `Bars`; DataFrames go through `load_ohlcv` so bad data is
    refused with the symbol named, as when it comes from a file."""
    if isinstance(data, Mapping):
        if symbol not in data:
            known = ", ".join(map(str, list(data)[:10]))
            raise DataError(f"no data for symbol {symbol!r}; have: {known}")
        raw = data[symbol]
    else:
        raw = data(symbol)
    from algotrendy.data.loaders import to_bars  # pandas: not for the plan step

    return to_bars(raw, symbol)


def run_chunk(
    chunk: SweepChunk | Mapping[str, Any],
    data: DataSource,
    *,
    strategy: Strategy[Any] | None = None,
) -> list[SweepRow]:
    """Run one chunk: load each symbol once, evaluate every combination on it.

    `chunk` may be the model or its JSON-decoded dict (a Lambda event). `strategy`
    overrides the registry lookup (for a strategy instance that is not registered).
    """
    # Imported here so the plan and aggregate steps (their own Lambda functions) do not
    # load the engine, numpy and numba at cold start.
    from algotrendy.backtest.metrics import infer_periods_per_year
    from algotrendy.backtest.runner import evaluate

    ch = chunk if isinstance(chunk, SweepChunk) else SweepChunk.model_validate(chunk)
    strat = strategy if strategy is not None else get_strategy(ch.strategy)
    if strat.name != ch.strategy:
        raise ParameterError(f"chunk {ch.id}: is for {ch.strategy!r}, not {strat.name!r}")
    validated = [strat.params(p) for p in ch.params]
    rows: list[SweepRow] = []
    task = ch.first_task
    for sym in ch.symbols:
        bars = load_bars(data, sym)
        cfg = ch.config
        if cfg.periods_per_year is None and len(bars) >= 2:
            # Inferred once per symbol instead of once per combination: the value, and
            # so every metric, is the same as `evaluate` would infer itself.
            try:
                ppy = infer_periods_per_year(bars.time)
            except DataError as exc:
                raise DataError(f"{sym}: {exc}") from exc
            cfg = cfg.model_copy(update={"periods_per_year": ppy})
        for raw, params in zip(ch.params, validated, strict=True):
            metrics = evaluate(bars, strat, params, cfg)
            rows.append(
                SweepRow(
                    chunk_id=ch.id,
                    task=task,
                    symbol=sym,
                    params=dict(raw),
                    metrics={k: float(v) for k, v in metrics.items()},
                )
            )
            task += 1
    return rows


def aggregate(
    rows: Iterable[SweepRow | Mapping[str, Any]],
    *,
    metric: str,
    top: int | None = None,
    ascending: bool | None = None,
) -> pd.DataFrame:
    """Rank rows by `metric` into a frame: rank, symbol, one column per parameter, then
    every metric.

    The order is `rank_rows`'s: best first in the metric's natural direction unless
    `ascending` is given; NaN last whatever the direction; ties in plan order. `top`
    keeps the first `top` rows (of a frame of every row, so each column's type is the
    same whatever `top` is).
    """
    import pandas as pd

    check_top(top)
    ranking = rank_rows(rows, metric=metric, ascending=ascending)
    frame = pd.DataFrame.from_records(
        [row[1:] for row in ranking.rows], columns=list(ranking.columns[1:])
    )
    if frame.empty:
        # No value to infer the metric column's type from: a metric is a float.
        frame[metric] = frame[metric].astype("float64")
    frame.insert(0, "rank", range(1, len(frame) + 1))
    if top is not None:
        frame = frame.head(top)
    return frame


# ---------------------------------------------------------------------------------------
# Local execution: the same chunks on a process pool.

_worker_data: DataSource | None = None
_worker_strategy: Strategy[Any] | None = None


def _init_worker(data: DataSource, strategy: Strategy[Any]) -> None:
    """Runs once per worker process: the candles travel once per worker, not per chunk."""
    global _worker_data, _worker_strategy
    _worker_data = data
    _worker_strategy = strategy


def _worker_run(chunk: SweepChunk) -> list[SweepRow]:
    if _worker_data is None or _worker_strategy is None:  # pragma: no cover - pool misuse
        raise RuntimeError("sweep worker used before _init_worker")
    return run_chunk(chunk, _worker_data, strategy=_worker_strategy)


def run_plan(
    plan: SweepPlan,
    data: DataSource,
    *,
    strategy: Strategy[Any] | None = None,
    workers: int = 2,
    progress: bool = True,
    description: str | None = None,
) -> list[SweepRow]:
    """Run every chunk of `plan` (in-process for workers=1, else on a process pool) and
    return the rows in plan order."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers: must be a positive integer (got {workers!r})")
    strat = strategy if strategy is not None else get_strategy(plan.strategy)
    label = description or f"sweep {plan.strategy}"
    rows: list[SweepRow] = []
    with _Progress(progress, label, plan.n_tasks) as bar:
        if workers == 1 or len(plan.chunks) <= 1:
            for chunk in plan.chunks:
                done = run_chunk(chunk, data, strategy=strat)
                rows.extend(done)
                bar.advance(len(done))
        else:
            _warm_up(strat, plan)
            with ProcessPoolExecutor(
                max_workers=min(workers, len(plan.chunks)),
                initializer=_init_worker,
                initargs=(data, strat),
            ) as pool:
                pending: set[Future[list[SweepRow]]] = {
                    pool.submit(_worker_run, c) for c in plan.chunks
                }
                try:
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            done = fut.result()
                            rows.extend(done)
                            bar.advance(len(done))
                except BaseException:
                    for fut in pending:
                        fut.cancel()
                    raise
    rows.sort(key=lambda r: r.task)
    return rows


def _warm_up(strategy: Strategy[Any], plan: SweepPlan) -> None:
    """Run one tiny backtest in the parent before the pool forks.

    numba loads (or compiles) its kernels on first call, per process: ~1 s. Forked
    workers inherit the parent's loaded kernels, so paying it once here instead of once
    in every worker of every pool cut a 2-worker sweep of 75 combinations on 2,148 daily
    bars from 2.7 s to 0.2 s. (With the spawn start method it is merely wasted.)
    """
    import numpy as np

    from algotrendy.backtest.runner import evaluate
    from algotrendy.domain.bars import Bars

    params = strategy.params(plan.chunks[0].params[0] if plan.chunks else None)
    n = max(64, strategy.warmup(params) + 8)
    walk = 100.0 + np.cumsum(np.sin(np.arange(n, dtype=np.float64) / 5.0))
    stamps = np.datetime64("2020-01-01", "ns") + np.arange(n) * np.timedelta64(1, "D")
    bars = Bars(stamps, walk, walk + 1.0, walk - 1.0, walk, np.ones(n))
    evaluate(bars, strategy, params, plan.config.model_copy(update={"periods_per_year": 252.0}))


class _Progress:
    """A rich progress bar, or nothing when disabled."""

    def __init__(self, enabled: bool, label: str, total: int) -> None:
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> _Progress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


def as_source(
    data: SymbolData | Mapping[str, SymbolData] | Callable[[str], SymbolData],
    symbols: Sequence[str] | None,
) -> tuple[DataSource, list[str]]:
    """Normalise run_sweep's `data` argument into a source and its symbol list; frames
    in hand are validated and converted to `Bars` once, loaders stay lazy."""
    import pandas as pd

    from algotrendy.domain.bars import Bars

    if isinstance(data, pd.DataFrame | Bars):
        syms = list(symbols) if symbols is not None else [DEFAULT_SYMBOL]
        if len(syms) != 1:
            raise ParameterError(
                f"symbols: one data set was given, so name one symbol (got {len(syms)})"
            )
        return {syms[0]: load_bars({syms[0]: data}, syms[0])}, syms
    if isinstance(data, Mapping):
        syms = list(symbols) if symbols is not None else [str(k) for k in data]
        # Validate and convert once here rather than once per chunk.
        return {s: load_bars(data, s) for s in _check_symbols(syms)}, syms
    if callable(data):
        if symbols is None:
            raise ParameterError("symbols: required when data is a loader function")
        return data, list(symbols)
    raise ParameterError(
        f"data: expected a DataFrame, Bars, a mapping symbol -> data or a loader, "
        f"got {type(data).__name__}"
    )


def run_sweep(
    data: SymbolData | Mapping[str, SymbolData] | Callable[[str], SymbolData],
    strategy: str | Strategy[Any],
    grid: GridInput,
    *,
    config: BacktestConfig | None = None,
    metric: str = "sharpe",
    workers: int = 2,
    top: int | None = 10,
    progress: bool = True,
    symbols: Sequence[str] | None = None,
    chunk_size: int | None = None,
    ascending: bool | None = None,
) -> SweepResult:
    """Sweep `grid` for `strategy` over one data set or several symbols, locally.

    The chunks are those of `plan_sweep`; by default about four per worker, so a slow
    chunk does not leave the other workers idle at the end.
    """
    t0 = time.perf_counter()
    strat = get_strategy(strategy)
    source, syms = as_source(data, symbols)
    if metric not in METRICS:
        raise ParameterError(f"metric: unknown {metric!r}; known: {', '.join(METRICS)}")
    if chunk_size is None:
        n_combos = expand_grid(strat, grid).n_combos
        n_tasks = n_combos * len(syms)
        # ~4 chunks per worker balance the pool; in-process, 20 chunks move the bar.
        pieces = 4 * workers if workers > 1 else 20
        chunk_size = max(1, math.ceil(n_tasks / pieces))
    plan = plan_sweep(strat, grid, syms, config=config, chunk_size=chunk_size)
    rows = run_plan(plan, source, strategy=strat, workers=workers, progress=progress)
    ranked = aggregate(rows, metric=metric, top=top, ascending=ascending)
    return SweepResult(
        plan=plan, metric=metric, ranked=ranked, rows=rows, elapsed=time.perf_counter() - t0
    )
