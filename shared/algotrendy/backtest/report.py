"""Self-contained HTML reports for a backtest and a walk-forward analysis.

One file, no network: plotly.js is inlined once (`plotly.offline.get_plotlyjs()`, ~4.8 MB)
and every figure is a `<div>` plus an inline `Plotly.newPlot` call, so a report can be
mailed, archived as a build artefact or opened on an air-gapped machine and still draw.
Plotly was chosen over a static image (matplotlib) because zooming into a trade is how a
reader checks a fill against the bar it happened on.

Long series are decimated before they are embedded so a report stays small (well under
10 MB for 1M bars): each line keeps, per bucket, the points holding the bucket's minimum
and maximum (min/max decimation, the idea behind M4 aggregation, Jugel et al., "M4: A
Visualization-Oriented Time Series Data Aggregation", VLDB 2014). Unlike taking every k-th
point, this keeps every spike and the deepest drawdown visible at any zoom level that fits
the bucket width. Tables are capped too; the numbers in them are never resampled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

import algotrendy
from algotrendy.backtest.metrics import METRICS
from algotrendy.backtest.metrics import drawdown as drawdown_of
from algotrendy.backtest.result import TRADE_COLUMNS, BacktestResult

if TYPE_CHECKING:
    from algotrendy.backtest.walkforward import WalkForwardResult

#: Points kept per line after decimation (min + max per bucket, so 2 per bucket).
MAX_LINE_POINTS = 6_000
#: Price is drawn as candlesticks up to this many bars, as a close line beyond.
MAX_CANDLES = 3_000
#: Trades marked on the price chart; beyond this an evenly spaced subset is marked.
MAX_TRADE_MARKERS = 4_000
#: Trade rows written into the HTML table (first half and last half when capped).
MAX_TRADE_ROWS = 1_000

TimeUnit = Literal["D", "m", "s", "ms", "us"]

_MONEY = ("pnl", "fees")  # trade columns in cash, shown to the cent

_TEMPLATES = Path(__file__).with_name("templates")

# How each metric of `algotrendy.backtest.metrics.METRICS` reads best: fractions (0.12 =
# 12 %) as percentages, counts as integers, the rest as plain numbers. A metric added there
# later and not listed here is still shown, as a plain number.
_PERCENT_METRICS = frozenset(
    {
        "total_return",
        "cagr",
        "volatility_ann",
        "max_drawdown",
        "win_rate",
        "exposure_time",
        "avg_trade",
        "best_trade",
        "worst_trade",
    }
)
_INTEGER_METRICS = frozenset({"num_trades", "max_drawdown_duration_bars"})
_DAYS_METRICS = frozenset({"max_drawdown_duration_days"})


def format_metric(name: str, value: float | None) -> str:
    """Human-readable value of one metric: percentages for fractions, counts as integers."""
    if value is None:
        return "n/a"
    v = float(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if name in _PERCENT_METRICS:
        return f"{v * 100:,.2f} %"
    if name in _INTEGER_METRICS:
        return f"{v:,.0f}"
    if name in _DAYS_METRICS:
        return f"{v:,.1f} days"
    if abs(v) >= 1_000:
        return f"{v:,.2f}"
    return f"{v:,.4f}"


def metric_rows(metrics: Mapping[str, float]) -> list[tuple[str, str, str]]:
    """(name, formatted value, description) in the result's order, for tables."""
    return [(k, format_metric(k, v), METRICS.get(k, "")) for k, v in metrics.items()]


# --------------------------------------------------------------------------- decimation


def minmax_indices(y: npt.ArrayLike, max_points: int = MAX_LINE_POINTS) -> npt.NDArray[np.intp]:
    """Sorted positions to keep so a line of `y` keeps its shape with <= max_points points.

    The series is cut into max_points // 2 - 1 equal buckets; each contributes the
    position of its minimum and of its maximum (NaN ignored), and the first and last
    points are always kept (the two spare slots). Series already short enough are
    returned whole.
    """
    arr = np.asarray(y, dtype=np.float64)
    n = arr.shape[0]
    if n <= max_points:
        return np.arange(n, dtype=np.intp)
    buckets = max(max_points // 2 - 1, 1)
    width = math.ceil(n / buckets)
    padded = np.full(buckets * width, np.nan)
    padded[:n] = arr
    grid = padded.reshape(buckets, width)
    lo = np.where(np.isnan(grid), np.inf, grid).argmin(axis=1)
    hi = np.where(np.isnan(grid), -np.inf, grid).argmax(axis=1)
    base = np.arange(buckets) * width
    keep = np.concatenate(([0, n - 1], base + lo, base + hi))
    return np.unique(np.clip(keep, 0, n - 1)).astype(np.intp)


def _union_indices(
    n: int, series: Iterable[npt.ArrayLike], max_points: int
) -> npt.NDArray[np.intp]:
    """Positions kept for several aligned series drawn on one shared x axis."""
    parts = [minmax_indices(s, max_points) for s in series]
    return np.unique(np.concatenate(parts)) if parts else np.arange(n, dtype=np.intp)


# --------------------------------------------------------------------------- time labels


def _naive_utc(index: pd.Index) -> npt.NDArray[np.datetime64]:
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return np.asarray(idx, dtype="datetime64[ns]")


def _time_unit(times: npt.NDArray[np.datetime64]) -> TimeUnit:
    """Shortest ISO resolution that loses nothing: dates, minutes, seconds or finer."""
    if times.size == 0:
        return "s"
    ns = times.astype("int64")
    steps: tuple[tuple[TimeUnit, int], ...] = (
        ("D", 86_400 * 10**9),
        ("m", 60 * 10**9),
        ("s", 10**9),
        ("ms", 10**6),
    )
    for unit, step in steps:
        if not (ns % step).any():
            return unit
    return "us"


def _iso(times: npt.NDArray[np.datetime64], unit: TimeUnit) -> npt.NDArray[np.str_]:
    return np.datetime_as_string(times, unit=unit)


# --------------------------------------------------------------------------- figures

_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "hovermode": "x unified",
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
}
_PLOT_CONFIG: dict[str, Any] = {"responsive": True, "displaylogo": False}


def _figure_html(fig: go.Figure, div_id: str) -> Markup:
    snippet: str = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        config=_PLOT_CONFIG,
        div_id=div_id,
    )
    return Markup(snippet)  # plotly output: the data is JSON-encoded by plotly


def _subsample(n: int, limit: int) -> npt.NDArray[np.intp]:
    if n <= limit:
        return np.arange(n, dtype=np.intp)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.intp))


def _trade_markers(trades: pd.DataFrame, unit: TimeUnit) -> tuple[list[go.Scatter], str | None]:
    """Entry/exit markers at fill prices; long entries ▲ green, short entries ▼ red, exits ✕."""
    if trades.empty:
        return [], None
    sel = _subsample(len(trades), MAX_TRADE_MARKERS)
    t = trades.iloc[sel]
    note = None
    if len(sel) < len(trades):
        note = f"{len(sel):,} of {len(trades):,} trades marked (evenly spaced)"
    side = t["side"].astype(str).to_numpy()
    pnl = t["pnl"].to_numpy(dtype=np.float64)
    entry_t = _iso(_naive_utc(pd.DatetimeIndex(t["entry_time"])), unit)
    exit_t = _iso(_naive_utc(pd.DatetimeIndex(t["exit_time"])), unit)
    traces: list[go.Scatter] = []
    for which, symbol, color in (
        ("long", "triangle-up", "#16a34a"),
        ("short", "triangle-down", "#dc2626"),
    ):
        m = side == which
        if not m.any():
            continue
        traces.append(
            go.Scatter(
                x=entry_t[m],
                y=t["entry_price"].to_numpy(dtype=np.float64)[m],
                mode="markers",
                name=f"{which} entry",
                marker={"symbol": symbol, "size": 9, "color": color, "line": {"width": 0.5}},
                hovertemplate=f"{which} entry %{{y:.6g}}<extra></extra>",
            )
        )
    traces.append(
        go.Scatter(
            x=exit_t,
            y=t["exit_price"].to_numpy(dtype=np.float64),
            mode="markers",
            name="exit",
            marker={
                "symbol": "x",
                "size": 8,
                "color": np.where(pnl >= 0, "#16a34a", "#dc2626"),
                "line": {"width": 0.5},
            },
            customdata=pnl,
            hovertemplate="exit %{y:.6g}, pnl %{customdata:,.2f}<extra></extra>",
        )
    )
    return traces, note


def _chart(
    *,
    data: pd.DataFrame | None,
    trades: pd.DataFrame,
    equity: pd.Series,
    drawdown: pd.Series,
    cash: float,
    windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]] = (),
) -> tuple[go.Figure, list[str]]:
    """Price with trade markers (when the data is given), equity with a buy-and-hold
    reference, and drawdown, on one shared time axis; `windows` are shaded on every panel
    (the out-of-sample periods of a walk-forward)."""
    notes: list[str] = []
    eq_times = _naive_utc(equity.index)
    has_price = data is not None and len(data) > 0
    p_times = _naive_utc(data.index) if data is not None and has_price else eq_times[:0]
    unit = _time_unit(np.concatenate([eq_times, p_times]))

    rows = 3 if has_price else 2
    heights = [0.5, 0.3, 0.2] if has_price else [0.65, 0.35]
    titles = (["Price and trades"] if has_price else []) + ["Equity", "Drawdown"]
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        row_heights=heights,
        subplot_titles=titles,
    )
    row = 1
    if data is not None and has_price:
        n = len(data)
        if n <= MAX_CANDLES:
            fig.add_trace(
                go.Candlestick(
                    x=_iso(p_times, unit),
                    open=data["open"].to_numpy(dtype=np.float64),
                    high=data["high"].to_numpy(dtype=np.float64),
                    low=data["low"].to_numpy(dtype=np.float64),
                    close=data["close"].to_numpy(dtype=np.float64),
                    name="price",
                    increasing={"line": {"color": "#64748b"}},
                    decreasing={"line": {"color": "#334155"}},
                ),
                row=row,
                col=1,
            )
        else:
            close = data["close"].to_numpy(dtype=np.float64)
            keep = minmax_indices(close)
            if len(keep) < n:
                notes.append(f"price: {len(keep):,} of {n:,} closes drawn (min/max per bucket)")
            fig.add_trace(
                go.Scatter(
                    x=_iso(p_times[keep], unit),
                    y=close[keep],
                    mode="lines",
                    name="close",
                    line={"color": "#475569", "width": 1},
                ),
                row=row,
                col=1,
            )
        markers, note = _trade_markers(trades, unit)
        if note:
            notes.append(note)
        for tr in markers:
            fig.add_trace(tr, row=row, col=1)
        fig.update_yaxes(title_text="price", row=row, col=1)
        row += 1

    eq = equity.to_numpy(dtype=np.float64)
    dd = drawdown.to_numpy(dtype=np.float64)
    keep = _union_indices(len(eq), (eq, dd), MAX_LINE_POINTS)
    if len(keep) < len(eq):
        notes.append(
            f"equity/drawdown: {len(keep):,} of {len(eq):,} points drawn (min/max per bucket)"
        )
    x = _iso(eq_times[keep], unit)
    fig.add_trace(
        go.Scatter(x=x, y=eq[keep], mode="lines", name="equity", line={"color": "#2563eb"}),
        row=row,
        col=1,
    )
    if data is not None and has_price and len(eq):
        # Buy and hold from the first equity bar's close: what the cash would be worth
        # fully invested (fractional units, no costs), for scale.
        close_at = data["close"].reindex(equity.index).to_numpy(dtype=np.float64)
        if not np.isnan(close_at).any():
            hold = cash * close_at / close_at[0]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=hold[keep],
                    mode="lines",
                    name="buy & hold",
                    line={"color": "#94a3b8", "dash": "dot", "width": 1},
                ),
                row=row,
                col=1,
            )
    fig.update_yaxes(title_text="equity", row=row, col=1)
    row += 1
    fig.add_trace(
        go.Scatter(
            x=x,
            y=dd[keep] * 100.0,
            mode="lines",
            name="drawdown",
            fill="tozeroy",
            line={"color": "#dc2626", "width": 1},
            hovertemplate="%{y:.2f} %<extra>drawdown</extra>",
        ),
        row=row,
        col=1,
    )
    fig.update_yaxes(title_text="drawdown %", row=row, col=1)
    if len(windows):
        starts = _iso(_naive_utc(pd.DatetimeIndex([w[0] for w in windows])), unit)
        ends = _iso(_naive_utc(pd.DatetimeIndex([w[1] for w in windows])), unit)
        for k, (x0, x1) in enumerate(zip(starts, ends, strict=True)):
            fig.add_vrect(
                x0=str(x0),
                x1=str(x1),
                fillcolor="#f59e0b" if k % 2 else "#0ea5e9",
                opacity=0.07,
                line_width=0,
                layer="below",
                row="all",
                col=1,
            )
    fig.update_xaxes(rangeslider_visible=False)
    fig.update_layout(height=900 if has_price else 600, **_LAYOUT)
    return fig, notes


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Table:
    """Preformatted cells for the template; `numeric[i]` right-aligns column i."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    note: str | None = None


def _fmt_number(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isnan(f):
            return "n/a"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        if f != 0 and abs(f) < 1e-3:
            return f"{f:.6g}"
        return f"{f:,.6g}" if abs(f) < 1e6 else f"{f:,.2f}"
    return str(v)


def _format_column(
    col: pd.Series, *, percent: bool, unit: TimeUnit, money: bool = False
) -> list[str]:
    """Display strings for one column: times in UTC at `unit`, fractions as percentages,
    cash amounts to the cent."""
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(col):
        idx = pd.DatetimeIndex(col)
        text = np.char.replace(_iso(_naive_utc(idx), unit), "T", " ")
        return [("" if missing else str(t)) for t, missing in zip(text, idx.isna(), strict=True)]
    if percent:
        return [
            f"{float(v) * 100:,.2f} %" if v is not None and math.isfinite(float(v)) else "n/a"
            for v in col.to_numpy(dtype=np.float64)
        ]
    if money:
        return [
            f"{float(v):,.2f}" if v is not None and math.isfinite(float(v)) else "n/a"
            for v in col.to_numpy(dtype=np.float64)
        ]
    return [_fmt_number(v) for v in col.tolist()]


def frame_table(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    unit: TimeUnit,
    percent: Iterable[str] = (),
    money: Iterable[str] = (),
    metrics: Mapping[str, str] | None = None,
    max_rows: int = MAX_TRADE_ROWS,
    what: str = "rows",
    numbered: bool = True,
) -> Table:
    """A numbered display table of `columns`; over `max_rows` rows, the first and last half.

    Times are formatted at `unit` (the data's resolution) so a trade's entry time can be
    looked up in the price chart; columns named in `percent` hold fractions, in `money`
    cash, and `metrics` maps columns to the metric whose format they take.
    """
    n = len(frame)
    if n > max_rows:
        half = max_rows // 2
        shown = pd.concat([frame.iloc[:half], frame.iloc[n - half :]])
        numbers = [*range(1, half + 1), *range(n - half + 1, n + 1)]
        note = f"{max_rows:,} of {n:,} {what} shown (the first and last {half:,})"
    else:
        shown, numbers, note = frame, list(range(1, n + 1)), None
    pct, cash, named = set(percent), set(money), dict(metrics or {})
    cells = [
        [format_metric(named[c], v) for v in shown[c].to_numpy(dtype=np.float64)]
        if c in named
        else _format_column(shown[c], percent=c in pct, money=c in cash, unit=unit)
        for c in columns
    ]
    rows = [[f"{k:,}", *r] for k, r in zip(numbers, zip(*cells, strict=True), strict=True)]
    if not columns:
        rows = [[f"{k:,}"] for k in numbers]
    numeric = [True] + [
        pd.api.types.is_numeric_dtype(frame[c].dtype) and not pd.api.types.is_bool_dtype(frame[c])
        for c in columns
    ]
    if not numbered:
        return Table(list(columns), [r[1:] for r in rows], numeric[1:], note)
    return Table(["#", *columns], rows, numeric, note)


def _trades_table(trades: pd.DataFrame, unit: TimeUnit) -> Table:
    cols = [c for c in TRADE_COLUMNS if c in trades.columns]
    return frame_table(
        trades, cols, unit=unit, percent=("return_pct",), money=_MONEY, what="trades"
    )


def _settings_rows(result: BacktestResult) -> list[tuple[str, str]]:
    cfg = result.config.model_dump(mode="json")
    out: list[tuple[str, str]] = [("strategy", result.strategy)]
    if result.symbol:
        out.append(("symbol", result.symbol))
    params = ", ".join(f"{k}={_fmt_number(v)}" for k, v in result.params.items())
    out.append(("parameters", params or "(defaults)"))
    idx = result.equity.index
    if len(idx):
        unit = _time_unit(_naive_utc(idx))
        first, last = _iso(_naive_utc(idx[[0, -1]]), unit)
        out.append(("period (UTC)", f"{first} .. {last}".replace("T", " ")))
        out.append(("bars", f"{len(idx):,}"))
    out += _config_rows(cfg)
    return out


def _config_rows(cfg: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in cfg.items():
        if v is None and k == "periods_per_year":
            shown = "inferred from the bar times"
        elif k in ("fee", "slippage", "risk_free") and isinstance(v, int | float):
            shown = f"{float(v) * 100:g} %"
        else:
            shown = _fmt_number(v)
        out.append((k.replace("_", " "), shown))
    return out


# --------------------------------------------------------------------------- rendering


@cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(context: dict[str, Any]) -> str:
    template = _env().get_template("report.html.j2")
    return template.render(
        plotly_js=Markup(get_plotlyjs()),  # the bundled library, not user data
        version=algotrendy.__version__,
        **context,
    )


def render_report(result: BacktestResult, *, title: str | None = None) -> str:
    """The report of one backtest as a self-contained HTML string."""
    fig, notes = _chart(
        data=result.data,
        trades=result.trades,
        equity=result.equity["equity"],
        drawdown=result.equity["drawdown"],
        cash=result.config.cash,
    )
    unit = _time_unit(_naive_utc(result.equity.index))
    default = f"{result.strategy} on {result.symbol}" if result.symbol else result.strategy
    return _render(
        {
            "title": title or f"Backtest: {default}",
            "settings": _settings_rows(result),
            "metrics": metric_rows(result.metrics),
            "charts": [_figure_html(fig, "backtest-chart")],
            "chart_notes": notes,
            "tables": [("Trades", _trades_table(result.trades, unit))],
        }
    )


def write_report(result: BacktestResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write the HTML report of `result` to `path` (parent folders created); return the path."""
    return _write(Path(path), render_report(result, title=title))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- walk-forward


def render_walkforward_report(
    result: WalkForwardResult,
    *,
    data: pd.DataFrame | None = None,
    symbol: str | None = None,
    title: str | None = None,
) -> str:
    """The report of a walk-forward analysis as a self-contained HTML string.

    The result does not carry its candles; pass the `data` it ran on to draw the price
    with the out-of-sample trades (out-of-sample periods are shaded either way).
    """
    w = result.windows
    periods = list(zip(w["oos_start_time"], w["oos_end_time"], strict=True)) if len(w) else []
    equity = result.equity
    fig, notes = _chart(
        data=data,
        trades=result.trades,
        equity=equity,
        drawdown=pd.Series(drawdown_of(equity.to_numpy(dtype=np.float64)), index=equity.index),
        cash=result.config.cash,
        windows=periods,
    )
    notes.insert(0, "shaded: the out-of-sample window each set of parameters was traded in")
    unit = _time_unit(_naive_utc(equity.index))
    names = _window_param_names(w, result.metric)
    is_col = f"is_{result.metric}"
    oos_cols = [
        f"oos_{m}"
        for m in dict.fromkeys(
            (result.metric, "total_return", "max_drawdown", "num_trades", "final_equity")
        )
    ]
    cols = [
        "window",
        "is_start_time",
        "is_end_time",
        "oos_start_time",
        "oos_end_time",
        *names,
        is_col,
        *(c for c in oos_cols if c in w.columns),
    ]
    shown = [c for c in cols if c in w.columns]
    as_metric = {c: c[3:] if c.startswith("is_") else c[4:] for c in (is_col, *oos_cols)}
    windows_table = frame_table(
        w,
        shown,
        unit=unit,
        metrics={c: m for c, m in as_metric.items() if c in shown},
        numbered=False,
    )
    trade_cols = [c for c in ("window", *TRADE_COLUMNS) if c in result.trades.columns]
    trades_table = frame_table(
        result.trades, trade_cols, unit=unit, percent=("return_pct",), money=_MONEY, what="trades"
    )
    label = f"{result.strategy} on {symbol}" if symbol else result.strategy
    settings: list[tuple[str, str]] = [("strategy", result.strategy)]
    if symbol:
        settings.append(("symbol", symbol))
    settings += [
        ("mode", result.mode),
        ("in-sample bars", f"{result.train:,}"),
        ("out-of-sample bars", f"{result.test:,}"),
        ("windows", f"{len(w):,}"),
        ("ranked by", result.metric),
        ("combinations", f"{result.n_combos:,} ({result.n_skipped:,} skipped as invalid)"),
        ("unused bars at the end", f"{result.unused_bars:,}"),
    ]
    settings += _config_rows(result.config.model_dump(mode="json"))
    return _render(
        {
            "title": title or f"Walk-forward: {label}",
            "settings": settings,
            "metrics": metric_rows(result.metrics),
            "charts": [_figure_html(fig, "walkforward-chart")],
            "chart_notes": notes,
            "tables": [
                ("Windows", windows_table),
                ("Out-of-sample trades", trades_table),
            ],
        }
    )


def write_walkforward_report(
    result: WalkForwardResult,
    path: str | Path,
    *,
    data: pd.DataFrame | None = None,
    symbol: str | None = None,
    title: str | None = None,
) -> Path:
    """Write the HTML report of a walk-forward analysis; return the path."""
    html = render_walkforward_report(result, data=data, symbol=symbol, title=title)
    return _write(Path(path), html)


def _window_param_names(windows: pd.DataFrame, metric: str) -> list[str]:
    """The chosen-parameter columns: between the window times and the in-sample score."""
    cols = [str(c) for c in windows.columns]
    if "oos_end_time" not in cols or f"is_{metric}" not in cols:
        return []
    return cols[cols.index("oos_end_time") + 1 : cols.index(f"is_{metric}")]
