"""What each Lambda handler module loads at import, with tracing on as in Lambda
(`LAMBDA_TASK_ROOT` set, `POWERTOOLS_TRACE_DISABLED=false`): the cold-start budget of
DESIGN §6 is kept by not importing what a function's work never needs
(bench/bench_cold_imports.py measures the time). The webhook's own footprint test is in
test_webhook_handler.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from algotrendy.api.context import LazyCandleStore

ROOT = Path(__file__).resolve().parents[2]

_PROBE = "import json, sys; import app; print(json.dumps(sorted(sys.modules)))"

# Libraries the X-Ray SDK can patch that none of these functions calls (the default
# Tracer() imports each importable one to patch it).
UNTRACED = {"httpx", "requests", "sqlalchemy", "psycopg", "pymongo", "pynamodb", "mysql"}


def imported_by(function: str) -> set[str]:
    folder = ROOT / "functions" / function
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": f"footprint-{function}",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "LAMBDA_TASK_ROOT": str(folder),
            "POWERTOOLS_TRACE_DISABLED": "false",
            "ALGOTRENDY_STAGE": "dev",
            "ALGOTRENDY_DISABLE_NUMBA": "1",
            "PYTHONPATH": str(ROOT / "shared"),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {m.split(".")[0] for m in json.loads(proc.stdout.splitlines()[-1])}


@pytest.mark.parametrize(
    "function", ["backtest_plan", "backtest_worker", "backtest_aggregate", "signal_evaluator"]
)
def test_tracer_patches_only_what_the_function_calls(function: str) -> None:
    modules = imported_by(function)
    assert "aws_xray_sdk" in modules  # tracing is on
    assert modules & UNTRACED == set()


def test_ingest_traces_http_but_imports_no_database_library() -> None:
    modules = imported_by("ingest")
    assert "requests" in modules  # the channels' HTTP is traced
    assert modules & (UNTRACED - {"requests"}) == set()


def test_api_imports_neither_pandas_nor_numpy() -> None:
    """Auth, orders, positions and configs never touch a DataFrame: the routes that do
    (market data, indicators, strategies, backtests) import them when called."""
    modules = imported_by("api")
    assert {"fastapi", "sqlalchemy"} <= modules
    assert modules & {"pandas", "numpy", "pyarrow", "ccxt", "httpx", "requests"} == set()


class _Store:
    name = "fake"

    def __init__(self) -> None:
        self.reads: list[tuple[str, str, str]] = []

    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
        return len(frame)

    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        self.reads.append((exchange, symbol, timeframe))
        return pd.DataFrame({"close": [1.0]})

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> datetime | None:
        return None


def test_lazy_candle_store_builds_once_on_first_use_and_delegates() -> None:
    built: list[_Store] = []
    lock = threading.Lock()

    def build() -> Any:
        with lock:
            built.append(_Store())
        return built[-1]

    store = LazyCandleStore(build)
    assert built == []  # building the API context builds no store
    threads = [threading.Thread(target=store.read, args=("x", "BTC", "1m")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert len(built[0].reads) == 8
    assert store.name == "fake"
    assert store.write(pd.DataFrame({"close": [1.0, 2.0]}), "x", "BTC", "1m") == 2
    assert store.last_timestamp("x", "BTC", "1m") is None
    assert store.built() is built[0]
