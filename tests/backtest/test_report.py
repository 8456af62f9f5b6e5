"""The HTML report: self-contained, with the numbers of the result it was given.

Results here are built by hand (fills at the next bar's open, fixed unit size, no fees)
so every value the report shows can be recomputed from the OHLCV fixture independently.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.metrics import METRICS, compute_metrics
from algotrendy.backtest.report import (
    MAX_LINE_POINTS,
    MAX_TRADE_MARKERS,
    MAX_TRADE_ROWS,
    minmax_indices,
    render_report,
    render_walkforward_report,
    write_report,
    write_walkforward_report,
)
from algotrendy.backtest.result import TRADE_COLUMNS, BacktestResult
from algotrendy.backtest.walkforward import WalkForwardResult, walk_forward
from algotrendy.domain.bars import Bars

CASH = 10_000.0
SIZE = 10.0


# --------------------------------------------------------------------------- builders


def hand_result(
    data: pd.DataFrame,
    legs: list[tuple[int, int, str]],
    *,
    with_data: bool = True,
    symbol: str | None = "GOOG",
) -> BacktestResult:
    """A result for round trips (entry bar, exit bar, side) of SIZE units, no fees.

    Each fill is at its bar's open; the position is held at the close of bars
    entry..exit-1, so equity_t = cash + cash flows of fills up to t + position_t * close_t.
    """
    o = data["open"].to_numpy(dtype=np.float64)
    c = data["close"].to_numpy(dtype=np.float64)
    n = len(data)
    pos = np.zeros(n)
    flow = np.zeros(n)
    rows = []
    for entry, exit_, side in legs:
        sign = 1.0 if side == "long" else -1.0
        pos[entry:exit_] = sign * SIZE
        flow[entry] -= sign * SIZE * o[entry]
        flow[exit_] += sign * SIZE * o[exit_]
        pnl = sign * SIZE * (o[exit_] - o[entry])
        rows.append(
            {
                "entry_time": data.index[entry],
                "exit_time": data.index[exit_],
                "side": side,
                "size": SIZE,
                "entry_price": o[entry],
                "exit_price": o[exit_],
                "pnl": pnl,
                "return_pct": pnl / (SIZE * o[entry]),
                "fees": 0.0,
                "entry_bar": entry,
                "exit_bar": exit_,
            }
        )
    trades = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
    equity = CASH + np.cumsum(flow) + pos * c
    peak = np.maximum.accumulate(equity)
    frame = pd.DataFrame(
        {"equity": equity, "position": pos, "drawdown": equity / peak - 1.0}, index=data.index
    )
    metrics = compute_metrics(
        equity=equity,
        times=Bars.from_frame(data).time,
        position=pos,
        trade_pnl=trades["pnl"].to_numpy(dtype=np.float64),
        trade_returns=trades["return_pct"].to_numpy(dtype=np.float64),
        cash=CASH,
    )
    return BacktestResult(
        strategy="hand_made",
        params={"fast": 10, "slow": 20},
        config=BacktestConfig(cash=CASH, sizing="units", size=SIZE),
        metrics=metrics,
        trades=trades,
        equity=frame,
        data=data if with_data else None,
        symbol=symbol,
    )


LEGS = [(30, 55, "long"), (70, 90, "short"), (100, 160, "long"), (170, 171, "short")]


@pytest.fixture(scope="module")
def goog_300(goog: pd.DataFrame) -> pd.DataFrame:
    return goog.iloc[:300]


@pytest.fixture(scope="module")
def result(goog_300: pd.DataFrame) -> BacktestResult:
    return hand_result(goog_300, LEGS)


@pytest.fixture(scope="module")
def html(result: BacktestResult) -> str:
    return render_report(result)


# --------------------------------------------------------------------------- HTML parsing


class _Page(HTMLParser):
    """Scripts, links and the cells of every table (keyed by the table's class)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.title = ""
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        elif tag == "link":
            self.links.append(a)
        elif tag == "table":
            self._table = a.get("class") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def plots(html: str) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """(traces, layout) of every `Plotly.newPlot(id, data, layout, config)` call."""
    dec = json.JSONDecoder()
    comma = re.compile(r"\s*,\s*")
    out = []
    for m in re.finditer(r"Plotly\.newPlot\(\s*", html):
        _, end = dec.raw_decode(html, m.end())  # the div id
        start = comma.match(html, end)
        assert start is not None
        data, end = dec.raw_decode(html, start.end())
        start = comma.match(html, end)
        assert start is not None
        layout, _ = dec.raw_decode(html, start.end())
        out.append((data, layout))
    return out


def figures(html: str) -> list[list[dict[str, Any]]]:
    """The trace lists of every figure."""
    return [data for data, _ in plots(html)]


def values(arr: Any) -> np.ndarray:
    """A plotly array: a JSON list, or a typed array {"dtype", "bdata"} (base64)."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
    return np.asarray(arr)


def trace(data: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [t for t in data if t.get("name") == name]
    assert len(found) == 1, f"expected one trace named {name!r}, got {len(found)}"
    return found[0]


def day(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- tests


def test_report_is_one_self_contained_file(html: str) -> None:
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    page = parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert page.scripts, "no script at all: the charts cannot draw"
    assert all(s.get("src") is None for s in page.scripts), "a script is loaded from elsewhere"
    assert all(not (ln.get("href") or "").startswith(("http", "//")) for ln in page.links)
    assert html.count(get_plotlyjs()) == 1  # the library itself, inline, once
    # No protocol-relative or absolute URL in any src/href attribute of the page body.
    body = html.replace(get_plotlyjs(), "")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", body)


def test_metrics_table_shows_every_metric_with_its_value(
    html: str, result: BacktestResult, goog_300: pd.DataFrame
) -> None:
    rows = parse(html).tables["metrics"]
    header, body = rows[0], rows[1:]
    assert header == ["metric", "value", "definition"]
    assert [r[0] for r in body] == list(result.metrics)
    cells = {r[0]: (r[1], r[2]) for r in body}
    assert all(cells[k][1] == METRICS[k] for k in METRICS if k in cells)
    # Values recomputed from the fixture: equity after the last round trip is cash + pnl.
    o = goog_300["open"].to_numpy()
    pnl = sum(
        (1 if side == "long" else -1) * SIZE * (o[exit_] - o[entry]) for entry, exit_, side in LEGS
    )
    final = CASH + pnl
    assert float(cells["final_equity"][0].replace(",", "")) == pytest.approx(final, abs=0.005)
    shown_return = float(cells["total_return"][0].removesuffix(" %").replace(",", ""))
    assert shown_return == pytest.approx((final / CASH - 1) * 100, abs=0.005)
    assert cells["num_trades"][0] == str(len(LEGS))
    wins = sum(
        (1 if side == "long" else -1) * (o[exit_] - o[entry]) > 0 for entry, exit_, side in LEGS
    )
    shown_win = float(cells["win_rate"][0].removesuffix(" %"))
    assert shown_win == pytest.approx(100 * wins / len(LEGS), abs=0.005)


def test_trades_table_has_one_row_per_trade_with_fill_prices(
    html: str, goog_300: pd.DataFrame
) -> None:
    rows = parse(html).tables["trades"]
    header, body = rows[0], rows[1:]
    assert header == ["#", *TRADE_COLUMNS]
    assert len(body) == len(LEGS)
    col = {name: i for i, name in enumerate(header)}
    o = goog_300["open"].to_numpy()
    for row, (entry, exit_, side) in zip(body, LEGS, strict=True):
        assert row[col["side"]] == side
        assert row[col["entry_time"]] == day(goog_300.index[entry])
        assert row[col["exit_time"]] == day(goog_300.index[exit_])
        assert float(row[col["entry_price"]].replace(",", "")) == pytest.approx(o[entry], 1e-5)
        assert float(row[col["exit_price"]].replace(",", "")) == pytest.approx(o[exit_], 1e-5)
        assert int(row[col["entry_bar"]]) == entry


def test_settings_name_strategy_parameters_and_costs(html: str) -> None:
    rows = dict(parse(html).tables["settings"])
    assert rows["strategy"] == "hand_made"
    assert rows["symbol"] == "GOOG"
    assert rows["parameters"] == "fast=10, slow=20"
    assert rows["sizing"] == "units"
    assert rows["bars"] == "300"


def test_chart_embeds_equity_drawdown_and_trade_markers(
    html: str, result: BacktestResult, goog_300: pd.DataFrame
) -> None:
    (data,) = figures(html)
    dates = [day(t) for t in goog_300.index]
    eq = trace(data, "equity")
    assert list(values(eq["x"])) == dates
    np.testing.assert_array_equal(values(eq["y"]), result.equity["equity"].to_numpy())
    equity = result.equity["equity"].to_numpy()
    dd = trace(data, "drawdown")
    expected_dd = (equity / np.maximum.accumulate(equity) - 1.0) * 100.0
    np.testing.assert_allclose(values(dd["y"]), expected_dd, rtol=1e-12, atol=1e-12)
    price = trace(data, "price")
    assert price["type"] == "candlestick"
    np.testing.assert_array_equal(values(price["open"]), goog_300["open"].to_numpy())

    o = goog_300["open"].to_numpy()
    longs = [(e, x) for e, x, s in LEGS if s == "long"]
    shorts = [(e, x) for e, x, s in LEGS if s == "short"]
    long_entry = trace(data, "long entry")
    assert list(values(long_entry["x"])) == [dates[e] for e, _ in longs]
    np.testing.assert_array_equal(values(long_entry["y"]), [o[e] for e, _ in longs])
    short_entry = trace(data, "short entry")
    assert list(values(short_entry["x"])) == [dates[e] for e, _ in shorts]
    exits = trace(data, "exit")
    assert list(values(exits["x"])) == [dates[x] for _, x, _ in LEGS]
    np.testing.assert_array_equal(values(exits["y"]), [o[x] for _, x, _ in LEGS])


def test_buy_and_hold_reference_starts_at_cash(html: str, goog_300: pd.DataFrame) -> None:
    (data,) = figures(html)
    hold = values(trace(data, "buy & hold")["y"])
    c = goog_300["close"].to_numpy()
    np.testing.assert_allclose(hold, CASH * c / c[0], rtol=1e-12)


def test_result_without_data_has_no_price_chart(goog_300: pd.DataFrame) -> None:
    html = render_report(hand_result(goog_300, LEGS, with_data=False))
    (data,) = figures(html)
    names = {t.get("name") for t in data}
    assert {"equity", "drawdown"} <= names
    assert not names & {"price", "close", "long entry", "exit", "buy & hold"}
    assert "Price and trades" not in html


def test_no_trades_says_none(goog_300: pd.DataFrame) -> None:
    html = render_report(hand_result(goog_300, []))
    page = parse(html)
    assert "trades" not in page.tables  # no empty table ...
    assert re.search(r"<h2>Trades</h2>\s*<p class=\"note\">none</p>", html)  # ... but a note
    metrics = {r[0]: r[1] for r in page.tables["metrics"][1:]}
    assert metrics["num_trades"] == "0"
    assert metrics["win_rate"] == "n/a"  # NaN without trades, not a made-up 0 %


def test_user_text_is_escaped(goog_300: pd.DataFrame) -> None:
    res = hand_result(goog_300, LEGS, symbol="<img src=x onerror=alert(1)>")
    html = render_report(res, title="A <b>bold</b> title")
    page = parse(html)
    assert page.title == "A <b>bold</b> title"  # shown as text ...
    assert "<b>bold</b>" not in html  # ... never as markup
    assert "<img src=x" not in html


def test_write_report_creates_parent_folders(tmp_path: Path, result: BacktestResult) -> None:
    out = write_report(result, tmp_path / "a" / "b" / "report.html", title="t")
    assert out == tmp_path / "a" / "b" / "report.html"
    assert parse(out.read_text(encoding="utf-8")).title == "t"


# --------------------------------------------------------------------------- walk-forward


@pytest.fixture(scope="module")
def wf(goog: pd.DataFrame) -> WalkForwardResult:
    return walk_forward(
        goog, "sma_cross", ["fast=5,10", "slow=20,40"], train=600, test=300, mode="rolling"
    )


def test_walkforward_report_shows_each_window_and_the_stitched_curve(
    wf: WalkForwardResult, goog: pd.DataFrame
) -> None:
    html = render_walkforward_report(wf, data=goog, symbol="GOOG")
    page = parse(html)
    assert page.title == "Walk-forward: sma_cross on GOOG"
    assert all(s.get("src") is None for s in page.scripts)
    rows = page.tables["windows"]
    header, body = rows[0], rows[1:]
    assert len(body) == len(wf.windows) == (len(goog) - 600) // 300
    col = {name: i for i, name in enumerate(header)}
    for row, (_, w) in zip(body, wf.windows.iterrows(), strict=True):
        assert int(row[col["window"]]) == w["window"]
        assert int(row[col["fast"]]) == w["fast"]
        assert int(row[col["slow"]]) == w["slow"]
        assert row[col["oos_start_time"]] == day(goog.index[w["oos_start"]])
        assert row[col["oos_end_time"]] == day(goog.index[w["oos_end"] - 1])
    metrics = {r[0]: r[1] for r in page.tables["metrics"][1:]}
    assert list(metrics) == list(wf.metrics)
    assert metrics["num_trades"] == str(len(wf.trades))
    trades = page.tables["out-of-sample-trades"]
    assert len(trades) - 1 == len(wf.trades)

    ((data, layout),) = plots(html)
    eq = trace(data, "equity")
    np.testing.assert_array_equal(values(eq["y"]), wf.equity.to_numpy())
    assert values(eq["x"])[0] == day(goog.index[wf.windows["oos_start"].iloc[0]])
    curve = wf.equity.to_numpy()
    expected_dd = (curve / np.maximum.accumulate(curve) - 1.0) * 100.0
    np.testing.assert_allclose(values(trace(data, "drawdown")["y"]), expected_dd, atol=1e-12)
    # One shaded rectangle per out-of-sample window, spanning its first to last bar.
    rects = [s for s in layout.get("shapes", []) if s.get("type") == "rect"]
    spans = {(r["x0"], r["x1"]) for r in rects}
    expected = {
        (day(goog.index[a]), day(goog.index[b - 1]))
        for a, b in zip(wf.windows["oos_start"], wf.windows["oos_end"], strict=True)
    }
    assert spans == expected
    exits = trace(data, "exit")
    assert len(values(exits["x"])) == len(wf.trades)


def test_walkforward_report_without_data(tmp_path: Path, wf: WalkForwardResult) -> None:
    out = write_walkforward_report(wf, tmp_path / "wf.html")
    html = out.read_text(encoding="utf-8")
    (data,) = figures(html)
    assert {t.get("name") for t in data} == {"equity", "drawdown"}
    assert parse(html).title == "Walk-forward: sma_cross"


# --------------------------------------------------------------------------- decimation


@settings(max_examples=200, deadline=None)
@given(
    y=arrays(
        np.float64,
        st.integers(1, 3_000),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
    max_points=st.integers(4, 500),
)
def test_minmax_indices_keep_extremes_and_ends(y: np.ndarray, max_points: int) -> None:
    keep = minmax_indices(y, max_points)
    assert keep.dtype.kind == "i"
    assert len(keep) <= max(max_points, 2)
    assert np.all(np.diff(keep) > 0)  # sorted, unique
    assert keep[0] == 0
    assert keep[-1] == len(y) - 1
    assert y[keep].max() == y.max()
    assert y[keep].min() == y.min()
    if len(y) <= max_points:
        assert len(keep) == len(y)


def test_minmax_indices_keep_each_buckets_extremes() -> None:
    # A spike in every 1000-bar stretch survives decimation to 100 points of 10,000.
    y = np.zeros(10_000)
    spikes = np.arange(500, 10_000, 1_000)
    y[spikes] = np.arange(1, 11)
    y[spikes + 7] = -np.arange(1, 11)
    keep = set(minmax_indices(y, 100).tolist())
    assert set(spikes.tolist()) <= keep
    assert set((spikes + 7).tolist()) <= keep


def test_minmax_indices_ignore_nan() -> None:
    y = np.array([np.nan, 1.0, np.nan, 5.0, -2.0, np.nan] * 100)
    keep = minmax_indices(y, 10)
    assert np.nanmax(y[keep]) == 5.0
    assert np.nanmin(y[keep]) == -2.0


def test_one_million_bars_stay_small_and_keep_the_extremes(tmp_path: Path) -> None:
    n = 1_000_000
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="time")
    data = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.0005,
            "low": np.minimum(open_, close) * 0.9995,
            "close": close,
            "volume": 1.0,
        },
        index=index,
    )
    legs = [(i, i + 20, "long" if (i // 50) % 2 else "short") for i in range(10, n - 30, 50)]
    res = hand_result(data, legs, symbol="SYN")
    out = write_report(res, tmp_path / "big.html")
    size = out.stat().st_size
    assert size < 10 * 2**20, f"report is {size / 2**20:.1f} MB"
    html = out.read_text(encoding="utf-8")
    (fig,) = figures(html)
    eq = values(trace(fig, "equity")["y"])
    assert len(eq) <= 2 * MAX_LINE_POINTS  # equity and drawdown share one set of points
    equity = res.equity["equity"].to_numpy()
    assert eq.max() == equity.max()
    assert eq.min() == equity.min()
    dd = values(trace(fig, "drawdown")["y"])
    assert dd.min() == pytest.approx(res.metrics["max_drawdown"] * 100, rel=1e-12)
    close_y = values(trace(fig, "close")["y"])
    assert close_y.max() == close.max()
    assert close_y.min() == close.min()
    marked = len(values(trace(fig, "exit")["x"]))
    assert marked == MAX_TRADE_MARKERS < len(legs)
    page = parse(html)
    assert len(page.tables["trades"]) - 1 == MAX_TRADE_ROWS
    assert f"{MAX_TRADE_ROWS:,} of {len(legs):,} trades shown" in html
    last = page.tables["trades"][-1]
    assert last[0] == f"{len(legs):,}"  # the last trade keeps its number


# --------------------------------------------------------------------------- rendering


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


_CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path, result: BacktestResult) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI to check that the report renders")
        pytest.skip("chromium not installed (apt-get install chromium); rendering not checked")
    report = write_report(result, tmp_path / "report.html")
    url = report.resolve().as_uri()
    env = {**os.environ, "HOME": str(tmp_path)}  # chromium writes its profile under HOME
    dom = subprocess.run(
        [browser, *_CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    ).stdout
    # Plotly drew: one SVG per figure, with a non-empty path for each line trace.
    assert 'class="main-svg"' in dom
    lines = re.findall(r'<g class="trace scatter[^"]*".*?<path class="js-line" d="([^"]*)"', dom)
    assert len(lines) >= 3  # equity, buy & hold, drawdown
    assert all(len(d) > 100 for d in lines)
    assert re.search(r'class="trace ohlc|class="trace boxes|candlestick', dom)
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            *_CHROME_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            f"--screenshot={shot}",
            "--window-size=1400,2000",
            url,
        ],
        capture_output=True,
        timeout=120,
        env=env,
        check=True,
    )
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1400, 2000)
        colors = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colors is not None
    assert len(colors) > 50, "the page looks blank"
