"""The `algotrendy` CLI: every command's happy path on the real fixtures, `--json` output
against the library's own result, and one clear line (never a traceback) for bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from algotrendy.backtest.config import BacktestConfig
from algotrendy.backtest.runner import run_backtest
from algotrendy.backtest.sweep import run_sweep
from algotrendy.backtest.walkforward import walk_forward
from algotrendy.cli.main import app
from algotrendy.data import load_ohlcv
from algotrendy.strategies import get_strategy, strategy_names

runner = CliRunner()

GOOG_ARGS = ["--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=20"]


def run(*args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def as_json(obj: Any) -> Any:
    """What a JSON round trip makes of `obj` (tuples -> lists, ints stay ints)."""
    return json.loads(json.dumps(obj))


def assert_ok(result: Any) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stderr}\n{result.stdout}"
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- backtest


def test_backtest_prints_metrics_and_trades(goog_path: Path, goog: pd.DataFrame) -> None:
    res = run("backtest", *GOOG_ARGS, "--data", goog_path, "--cash", 10000, "--fee", 0.002)
    assert_ok(res)
    expected = run_backtest(
        goog, "sma_cross", {"fast": 10, "slow": 20}, cash=10_000, fee=0.002, symbol="GOOG"
    )
    out = res.stdout
    for name in expected.metrics:
        assert name in out
    assert f"{expected.metrics['final_equity']:,.2f}" in out
    assert f"{len(expected.trades):,} trades" in out
    assert res.stderr == ""


def test_backtest_json_is_run_backtests_result(goog_path: Path, goog: pd.DataFrame) -> None:
    res = run(
        "backtest",
        *GOOG_ARGS,
        "--data",
        goog_path,
        "--cash",
        10000,
        "--fee",
        0.002,
        "--fixed-fee",
        1.5,
        "--slippage",
        0.001,
        "--sizing",
        "fraction",
        "--size",
        0.5,
        "--json",
    )
    assert_ok(res)
    payload = json.loads(res.stdout)  # the whole of stdout is one JSON document
    expected = run_backtest(
        goog,
        "sma_cross",
        {"fast": 10, "slow": 20},
        cash=10_000,
        fee=0.002,
        fixed_fee=1.5,
        slippage=0.001,
        sizing="fraction",
        size=0.5,
        symbol=goog_path.stem,
    )
    assert payload == as_json(expected.to_dict())
    assert {"metrics", "params", "trades"} <= set(payload)
    assert payload["params"]["fast"] == 10
    assert payload["params"]["slow"] == 20
    assert payload["metrics"]["num_trades"] == len(payload["trades"]) > 0
    assert payload["metrics"]["final_equity"] == pytest.approx(expected.final_equity)
    assert payload["config"]["sizing"] == "fraction"


@pytest.mark.parametrize("engine", ["vectorized", "event"])
def test_backtest_engines_agree_through_the_cli(goog_path: Path, engine: str) -> None:
    res = run("backtest", *GOOG_ARGS, "--data", goog_path, "--engine", engine, "--json")
    assert_ok(res)
    auto = json.loads(run("backtest", *GOOG_ARGS, "--data", goog_path, "--json").stdout)
    assert json.loads(res.stdout)["metrics"] == pytest.approx(auto["metrics"], nan_ok=True)


def test_backtest_writes_report(goog_path: Path, tmp_path: Path) -> None:
    report = tmp_path / "sub" / "bt.html"
    res = run("backtest", *GOOG_ARGS, "--data", goog_path, "--report", report)
    assert_ok(res)
    html = report.read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html
    assert "final_equity" in html
    assert str(report) in res.stdout


def test_backtest_json_with_report_keeps_stdout_pure(goog_path: Path, tmp_path: Path) -> None:
    report = tmp_path / "bt.html"
    res = run("backtest", *GOOG_ARGS, "--data", goog_path, "--report", report, "--json")
    assert_ok(res)
    json.loads(res.stdout)
    assert report.is_file()
    assert str(report) in res.stderr


# --------------------------------------------------------------------------- sweep

SWEEP_GRID = ["--grid", "fast=5:20:5", "--grid", "slow=20:60:20"]


def test_sweep_json_matches_run_sweep(goog_path: Path, goog: pd.DataFrame) -> None:
    res = run(
        "sweep", "-s", "sma_cross", "-d", goog_path, *SWEEP_GRID, "--metric", "sharpe",
        "--workers", 1, "--top", 3, "--fee", 0.002, "--json",
    )  # fmt: skip
    assert_ok(res)
    payload = json.loads(res.stdout)
    expected = run_sweep(
        goog,
        "sma_cross",
        ["fast=5:20:5", "slow=20:60:20"],
        config=BacktestConfig(fee=0.002),
        metric="sharpe",
        workers=1,
        top=3,
        progress=False,
        symbols=[goog_path.stem],
    ).to_dict()
    payload.pop("elapsed")
    expected.pop("elapsed")
    assert payload == as_json(expected)
    # 4 fast x 3 slow values; fast=20 with slow=20 is refused (fast must be below slow).
    assert payload["n_combos"] == 11
    assert payload["n_skipped"] == 1
    assert [r["rank"] for r in payload["ranked"]] == [1, 2, 3]
    sharpes = [r["sharpe"] for r in payload["ranked"]]
    assert sharpes == sorted(sharpes, reverse=True)


def test_sweep_table_and_csv(goog_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    res = run(
        "sweep", "-s", "sma_cross", "-d", goog_path, *SWEEP_GRID, "--workers", 1,
        "--top", 4, "--csv", out, "--no-progress",
    )  # fmt: skip
    assert_ok(res)
    assert "Top 4" in res.stdout
    assert "11 combinations, 1 skipped as invalid" in res.stdout
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 11  # every valid combination, not only the top
    assert [int(r["rank"]) for r in rows] == list(range(1, 12))
    assert {(int(r["fast"]), int(r["slow"])) for r in rows} == {
        (f, s) for f in (5, 10, 15, 20) for s in (20, 40, 60) if f < s
    }


def test_sweep_with_a_fixed_param_and_two_workers(goog_path: Path) -> None:
    res = run(
        "sweep", "-s", "sma_cross", "-d", goog_path, "--grid", "fast=5,10",
        "--grid", "slow=30", "--param", "allow_short=false", "--workers", 2, "--json",
    )  # fmt: skip
    assert_ok(res)
    ranked = json.loads(res.stdout)["ranked"]
    assert len(ranked) == 2
    assert all(r["allow_short"] is False for r in ranked)


def test_sweep_fixed_param_is_checked_against_each_swept_value(goog_path: Path) -> None:
    """fast=30 is invalid with slow's default (20) but valid with the swept slow=40, 60."""
    res = run(
        "sweep", "-s", "sma_cross", "-d", goog_path, "--grid", "slow=20,40,60",
        "--param", "fast=30", "--workers", 1, "--json",
    )  # fmt: skip
    assert_ok(res)
    payload = json.loads(res.stdout)
    assert payload["n_combos"] == 2
    assert payload["n_skipped"] == 1
    assert sorted(r["slow"] for r in payload["ranked"]) == [40, 60]
    assert all(r["fast"] == 30 for r in payload["ranked"])


def test_sweep_progress_goes_to_stderr(goog_path: Path) -> None:
    res = run("sweep", "-s", "sma_cross", "-d", goog_path, *SWEEP_GRID, "--workers", 1, "--json")
    assert_ok(res)
    json.loads(res.stdout)  # no progress output mixed in


# --------------------------------------------------------------------------- walk-forward


def test_walkforward_json_matches_walk_forward(goog_path: Path, goog: pd.DataFrame) -> None:
    res = run(
        "walkforward", "-s", "sma_cross", "-d", goog_path, "--grid", "fast=5,10",
        "--grid", "slow=20,40", "--train", 500, "--test", 250, "--mode", "anchored",
        "--workers", 1, "--json",
    )  # fmt: skip
    assert_ok(res)
    payload = json.loads(res.stdout)
    expected = walk_forward(
        goog,
        "sma_cross",
        ["fast=5,10", "slow=20,40"],
        config=BacktestConfig(),
        train=500,
        test=250,
        mode="anchored",
        metric="sharpe",
    ).to_dict()
    assert payload == as_json(expected)
    assert len(payload["windows"]) == (len(goog) - 500) // 250


def test_walkforward_table_and_report(goog_path: Path, tmp_path: Path) -> None:
    report = tmp_path / "wf.html"
    res = run(
        "walkforward", "-s", "sma_cross", "-d", goog_path, "--grid", "fast=5,10",
        "--grid", "slow=20,40", "--train", 800, "--test", 400, "--workers", 1,
        "--report", report, "--no-progress",
    )  # fmt: skip
    assert_ok(res)
    n_windows = (2148 - 800) // 400
    assert f"{n_windows} windows of 800 in-sample + 400 out-of-sample bars" in res.stdout
    assert "Out-of-sample (stitched)" in res.stdout
    html = report.read_text(encoding="utf-8")
    assert "Walk-forward: sma_cross on backtesting_GOOG_1d" in html
    assert "Plotly.newPlot" in html


# --------------------------------------------------------------------------- catalogues


def test_strategies_lists_every_registered_strategy() -> None:
    res = run("strategies")
    assert_ok(res)
    for name in strategy_names():
        strat = get_strategy(name)
        assert name in res.stdout
        for param in strat.param_ranges():
            assert param in res.stdout
    assert "2 <= x <= 500" in res.stdout  # sma_cross fast: ge=2, le=500


def test_strategies_json_is_the_registry() -> None:
    res = run("strategies", "--json")
    assert_ok(res)
    payload = json.loads(res.stdout)
    assert [e["name"] for e in payload] == strategy_names()
    for entry in payload:
        strat = get_strategy(entry["name"])
        assert entry["description"] == strat.description
        assert entry["parameters"] == as_json(strat.param_ranges())


def test_indicators_lists_the_catalogue() -> None:
    from algotrendy.indicators import INDICATORS

    res = run("indicators")
    assert_ok(res)
    for name in INDICATORS:
        assert name in res.stdout
    payload = json.loads(run("indicators", "--json").stdout)
    assert [e["name"] for e in payload] == list(INDICATORS)


# --------------------------------------------------------------------------- demo


def test_demo_writes_report_and_sweep(goog_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run("demo", "--out", out, "--data", goog_path, "--workers", 2)
    assert_ok(res)
    report, sweep_csv = out / "report.html", out / "sweep.csv"
    assert report.is_file()
    assert sweep_csv.is_file()
    assert str(report) in res.stdout
    assert str(sweep_csv) in res.stdout
    assert "Top 10" in res.stdout
    ranked = pd.read_csv(sweep_csv)
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert len(ranked) > 100
    html = report.read_text(encoding="utf-8")
    assert "Backtest: sma_cross on backtesting_GOOG_1d" in html


def test_demo_without_sample_data_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no samples/ here
    res = run("demo", "--out", tmp_path / "out")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "error: samples/GOOG_1d.csv: data file not found "
        "(run from the repository root, or pass --data FILE)"
    ]


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def bad_files(tmp_path: Path, goog_path: Path) -> dict[str, Path]:
    lines = goog_path.read_text().splitlines()
    files = {
        "binary": tmp_path / "binary.csv",
        "no_close": tmp_path / "no_close.csv",
        "bad_row": tmp_path / "bad_row.csv",
        "empty": tmp_path / "empty.csv",
    }
    files["binary"].write_bytes(b'"\x00\xff\xfe unterminated\n\x00,\x01\n')
    header = lines[0].split(",")
    keep = [i for i, h in enumerate(header) if h != "close"]
    files["no_close"].write_text(
        "\n".join(",".join(line.split(",")[i] for i in keep) for line in lines[:50]) + "\n"
    )
    rows = lines[:50]
    cells = rows[3].split(",")
    cells[header.index("close")] = "n/a?"
    rows[3] = ",".join(cells)
    files["bad_row"].write_text("\n".join(rows) + "\n")
    files["empty"].write_text("")
    return files


BAD_BACKTEST = [
    # (extra args, "{file}" placeholders filled from bad_files, a fragment of the one line)
    (["--data", "{missing}"], "file not found"),
    (["--data", "{binary}"], "binary.csv"),
    (["--data", "{no_close}"], "missing column(s) close"),
    (["--data", "{bad_row}"], "row 3, column close: not a number ('n/a?')"),
    (["--data", "{empty}"], "empty.csv"),
    (["--param", "fast10"], "--param 'fast10': expected NAME=VALUE"),
    (["--param", "=5"], "--param '=5': expected NAME=VALUE"),
    (["--param", "fast=1"], "sma_cross: fast: Input should be greater than or equal to 2 (got 1)"),
    (["--param", "fast=abc"], "sma_cross: fast: Input should be a valid integer"),
    (["--param", "fast=30"], "fast (30) must be below slow (20)"),
    (["--param", "speed=3"], "speed: unknown parameter"),
    (["--param", "fast=5", "--param", "fast=6"], "parameter 'fast' is given twice"),
    (["--fee", "0.5"], "--fee: Input should be less than 0.2 (got 0.5)"),
    (["--cash", "-1"], "--cash: Input should be greater than 0 (got -1.0)"),
    (["--sizing", "all"], "--sizing: must be one of whole, fraction, units (got 'all')"),
    (["--sizing", "fraction", "--size", "2"], "size is a fraction of equity"),
    (["--engine", "gpu"], "--engine: must be one of auto, vectorized, event (got 'gpu')"),
]


def _one_error_line(res: Any) -> str:
    assert res.exit_code == 2, f"exit {res.exit_code}: {res.output}"
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert res.stdout == ""
    lines: list[str] = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(("extra", "fragment"), BAD_BACKTEST)
def test_backtest_bad_input_is_one_line(
    extra: list[str], fragment: str, bad_files: dict[str, Path], goog_path: Path, tmp_path: Path
) -> None:
    paths = {k: str(v) for k, v in bad_files.items()} | {"missing": str(tmp_path / "nope.csv")}
    args = [a.format(**paths) for a in extra]
    if "--data" not in args:
        args += ["--data", str(goog_path)]
    line = _one_error_line(run("backtest", "--strategy", "sma_cross", *args))
    assert fragment in line


def test_backtest_out_of_range_param_reads_as_in_the_brief(goog_path: Path) -> None:
    line = _one_error_line(
        run("backtest", "--strategy", "sma_cross", "--data", goog_path, "--param", "fast=1")
    )
    assert line == "error: sma_cross: fast: Input should be greater than or equal to 2 (got 1)"


def test_unknown_strategy_lists_the_known_ones(goog_path: Path) -> None:
    line = _one_error_line(run("backtest", "--strategy", "nope", "--data", goog_path))
    assert "unknown strategy 'nope'" in line
    assert all(name in line for name in strategy_names())


BAD_SWEEP = [
    (["--grid", "fast=5:50"], "a range is start:stop:step"),
    (["--grid", "fast"], "grid spec 'fast': expected name=start:stop:step"),
    (["--grid", "fast=50:5:5"], "stop (5) is below start (50)"),
    (["--grid", "fast=5:50:0"], "step must be > 0"),
    (["--grid", "speed=1,2"], "sma_cross has no parameter 'speed'"),
    (["--grid", "fast=1,5"], "value 1 refused"),
    (["--grid", "fast=50:60:5", "--grid", "slow=20"], "none of the 3 combinations is valid"),
    (["--grid", "fast=5,10", "--metric", "luck"], "metric: unknown 'luck'"),
    (["--grid", "fast=5,10", "--top", "0"], "--top: must be a positive number"),
    (["--grid", "fast=5,10", "--workers", "0"], "--workers: must be at least 1 (got 0)"),
    (["--grid", "fast=5,10", "--param", "fast=5"], "fast: given both as --param and as --grid"),
    (["--grid", "fast=5,10", "--param", "slow=1"], "parameter 'slow': value 1 refused"),
    (["--grid", "fast=5,10", "--param", "slow"], "--param 'slow': expected NAME=VALUE"),
    (["--grid", "fast=5,10", "-s", "nope"], "unknown strategy 'nope'"),
]


@pytest.mark.parametrize(("extra", "fragment"), BAD_SWEEP)
def test_sweep_bad_input_is_one_line(extra: list[str], fragment: str, goog_path: Path) -> None:
    res = run("sweep", "-s", "sma_cross", "-d", goog_path, "--no-progress", *extra)
    assert fragment in _one_error_line(res)


BAD_WALKFORWARD = [
    (["--train", "2000", "--test", "500"], "exceed the data's 2148 bars"),
    (["--train", "0", "--test", "500"], "--train: must be a positive number of bars (got 0)"),
    (["--train", "500", "--test", "250", "--mode", "sideways"], "--mode: must be one of"),
]


@pytest.mark.parametrize(("extra", "fragment"), BAD_WALKFORWARD)
def test_walkforward_bad_input_is_one_line(
    extra: list[str], fragment: str, goog_path: Path
) -> None:
    res = run(
        "walkforward", "-s", "sma_cross", "-d", goog_path, "--grid", "fast=5,10",
        "--no-progress", *extra,
    )  # fmt: skip
    assert fragment in _one_error_line(res)


def test_other_exceptions_are_not_swallowed(
    goog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the library's deliberate errors become one line; a bug keeps its traceback."""

    def broken(path: Any) -> Any:
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr("algotrendy.data.load_ohlcv", broken)
    res = run("backtest", *GOOG_ARGS, "--data", goog_path)
    assert res.exit_code == 1
    assert isinstance(res.exception, RuntimeError)


def test_unreachable_source_exits_1_with_one_line(
    goog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 1, not 2, when a source is down: the input was fine, retrying may work."""
    from algotrendy.errors import SourceUnavailableError

    def down(path: Any) -> Any:
        raise SourceUnavailableError("questdb: connection refused\n(127.0.0.1:9000)")

    monkeypatch.setattr("algotrendy.data.load_ohlcv", down)
    res = run("backtest", *GOOG_ARGS, "--data", goog_path)
    assert res.exit_code == 1
    assert res.stderr.splitlines() == ["error: questdb: connection refused (127.0.0.1:9000)"]
    assert "Traceback" not in res.output


def test_console_script_prints_one_line_in_a_real_process(tmp_path: Path) -> None:
    """Outside the test runner too: real stderr, real exit code, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "algotrendy.cli", "backtest", "-s", "sma_cross",
         "-d", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"error: {tmp_path / 'missing.csv'}: file not found"]


def test_help_lists_the_commands() -> None:
    res = run("--help")
    assert_ok(res)
    for command in ("backtest", "sweep", "walkforward", "strategies", "indicators", "demo"):
        assert command in res.stdout


def test_data_frame_loaded_by_the_cli_is_the_loaders(goog_path: Path) -> None:
    """The CLI reads files with `load_ohlcv` and nothing else (same bars, same index)."""
    res = run("backtest", *GOOG_ARGS, "--data", goog_path, "--json")
    assert_ok(res)
    trades = json.loads(res.stdout)["trades"]
    frame = load_ohlcv(goog_path)
    first = trades[0]
    assert pd.Timestamp(first["entry_time"]) == frame.index[first["entry_bar"]]
