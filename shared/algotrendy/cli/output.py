"""Rich tables for the CLI. Results go to stdout; progress, notices and errors to stderr,
so `algotrendy ... --json > out.json` and pipes stay clean.

Consoles resolve `sys.stdout` / `sys.stderr` when they write (rich's default when no file
is given), so test runners that swap the streams capture everything.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from algotrendy.backtest.report import format_metric

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

# Tables written to a pipe or file (no terminal to measure) are this wide unless COLUMNS
# says otherwise, rather than rich's 80 columns, so catalogue and ranking tables are not
# squeezed into wrapped cells.
PIPE_WIDTH = 120


def fit_width() -> None:
    """Size stdout tables for this invocation: a terminal is measured by rich; a pipe
    takes COLUMNS when set, else PIPE_WIDTH."""
    if out.is_terminal:
        return
    columns = os.environ.get("COLUMNS", "")
    out.width = int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH


# Metrics shown beside the ranking metric in sweep and walk-forward tables.
SUMMARY_METRICS = ("total_return", "sharpe", "max_drawdown", "num_trades", "win_rate")


def print_json(payload: Any) -> None:
    """Exactly `json.dumps(payload)` and a newline on stdout (no rich markup or wrapping)."""
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def notice(message: str) -> None:
    err.print(message, markup=False)


def params_text(params: Mapping[str, Any]) -> str:
    """`fast=10, slow=20, allow_short=true` (booleans as typed on the command line)."""
    return ", ".join(f"{k}={_cell(_py(v))}" for k, v in params.items())


def metrics_table(metrics: Mapping[str, float], *, title: str = "Metrics") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, format_metric(name, value))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, pd.Timestamp):
        return "" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M").removesuffix(" 00:00")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    return str(value)


def trades_summary(trades: pd.DataFrame, *, last: int = 5) -> tuple[str, Table | None]:
    """One line of counts and totals, and a table of the last few trades."""
    n = len(trades)
    if n == 0:
        return "no closed trades", None
    pnl = trades["pnl"].to_numpy(dtype=float)
    sides = trades["side"].astype(str)
    wins = int((pnl > 0).sum())
    line = (
        f"{n:,} trades ({int((sides == 'long').sum()):,} long, "
        f"{int((sides == 'short').sum()):,} short); {wins:,} won ({wins / n:.1%}); "
        f"net pnl {pnl.sum():,.2f}; fees {float(trades['fees'].sum()):,.2f}"
    )
    shown = trades.tail(last)
    table = Table(title=f"Last {len(shown)} of {n:,} trades", title_justify="left")
    cols = ("entry_time", "exit_time", "side", "size", "entry_price", "exit_price", "pnl")
    for c in cols:
        table.add_column(c, justify="left" if c in ("entry_time", "exit_time", "side") else "right")
    table.add_column("return", justify="right")
    for rec in shown.itertuples(index=False):
        row = [
            f"{v:,.2f}" if c == "pnl" and isinstance(v, float) else _cell(v)
            for c, v in ((c, _py(getattr(rec, c))) for c in cols)
        ]
        ret = _num(rec.return_pct)
        row.append("n/a" if ret is None or math.isnan(ret) else f"{ret:.2%}")
        table.add_row(*row)
    return line, table


def ranked_table(
    ranked: pd.DataFrame,
    *,
    params: Sequence[str],
    metric: str,
    title: str,
    extra: Iterable[str] = SUMMARY_METRICS,
) -> Table:
    """Sweep ranking: rank, (symbol when several), parameters, the metric, then a few more."""
    table = Table(title=title, title_justify="left")
    show_symbol = "symbol" in ranked.columns and ranked["symbol"].nunique() > 1
    metric_cols = [metric, *(m for m in extra if m != metric and m in ranked.columns)]
    table.add_column("rank", justify="right")
    if show_symbol:
        table.add_column("symbol")
    for p in params:
        table.add_column(p, justify="right")
    for m in metric_cols:
        table.add_column(m, justify="right", style="bold" if m == metric else None)
    for _, row in ranked.iterrows():
        cells = [_cell(_py(row["rank"]))]
        if show_symbol:
            cells.append(str(row["symbol"]))
        cells += [_cell(_py(row[p])) for p in params]
        cells += [format_metric(m, _num(row[m])) for m in metric_cols]
        table.add_row(*cells)
    return table


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _num(v: Any) -> float | None:
    v = _py(v)
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def windows_table(windows: pd.DataFrame, *, params: Sequence[str], metric: str) -> Table:
    """Walk-forward windows: out-of-sample period, chosen parameters, in/out-of-sample scores."""
    table = Table(title="Windows (best in-sample parameters, traded out of sample)")
    table.title_justify = "left"
    table.add_column("#", justify="right")
    table.add_column("out-of-sample period")
    shown = [p for p in params if p in windows.columns]
    for p in shown:
        table.add_column(p, justify="right")
    is_col = f"is_{metric}"
    oos = [f"oos_{m}" for m in (metric, "total_return", "max_drawdown", "num_trades")]
    oos = list(dict.fromkeys(c for c in oos if c in windows.columns))
    table.add_column(f"in-sample {metric}", justify="right")
    for c in oos:
        table.add_column(c.replace("oos_", "oos "), justify="right")
    for _, row in windows.iterrows():
        period = f"{_cell(row['oos_start_time'])} .. {_cell(row['oos_end_time'])}"
        table.add_row(
            str(_py(row["window"])),
            period,
            *(_cell(_py(row[p])) for p in shown),
            format_metric(metric, _num(row.get(is_col))),
            *(format_metric(c.removeprefix("oos_"), _num(row[c])) for c in oos),
        )
    return table


def _range_text(info: Mapping[str, Any]) -> str:
    lower = f"{info['ge']} <=" if "ge" in info else f"{info['gt']} <" if "gt" in info else ""
    upper = f"<= {info['le']}" if "le" in info else f"< {info['lt']}" if "lt" in info else ""
    if not lower and not upper:
        return ""
    return " ".join(p for p in (lower, "x", upper) if p)


def strategy_table(entry: Mapping[str, Any]) -> Table:
    """One strategy: its description as title, one row per parameter."""
    table = Table(title=f"{entry['name']}: {entry['description']}", title_justify="left")
    longest = max((len(name) for name in entry["parameters"]), default=9)
    table.add_column("parameter", min_width=longest, no_wrap=True)
    for col in ("type", "default", "range", "description"):
        table.add_column(col, justify="right" if col == "default" else "left")
    for name, info in entry["parameters"].items():
        table.add_row(
            name,
            str(info.get("type", "")),
            _cell(info.get("default")),
            _range_text(info),
            str(info.get("description", "")),
        )
    return table


def indicator_catalogue(indicators: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The catalogue as JSON-ready dicts (each entry's own `to_dict`), in display order."""
    return [info.to_dict() for info in indicators.values()]


def indicators_table(catalogue: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Indicators (TA-Lib conventions)", title_justify="left")
    longest = max((len(str(e["name"])) for e in catalogue), default=4)
    table.add_column("name", min_width=longest, no_wrap=True)
    for col in ("group", "inputs", "parameters (default)", "outputs", "TA-Lib"):
        table.add_column(col)
    table.add_column("description")
    for e in catalogue:
        params = ", ".join(f"{p['name']}={p['default']}" for p in e["params"])
        table.add_row(
            str(e["name"]),
            str(e["group"]),
            ", ".join(e["inputs"]),
            params,
            ", ".join(e["outputs"]),
            str(e["talib"]).removeprefix("talib."),
            str(e["description"]),
        )
    return table
