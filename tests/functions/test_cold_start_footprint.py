"""What each Lambda handler module loads at import, with tracing on as in Lambda
(`LAMBDA_TASK_ROOT` set, `POWERTOOLS_TRACE_DISABLED=false`): the cold-start budget of
DESIGN §6 is kept by not importing what a function's work never needs
(bench/bench_cold_imports.py measures the time). The webhook's own footprint test is in
test_webhook_handler.py.

An import figure alone can be gamed by deferring what every request needs; the
invocation probes below run the handler once on its sample event and check what it
loaded by then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from algotrendy.api.context import LazyCandleStore
from algotrendy.storage.relational import create_db_engine, upgrade_database

ROOT = Path(__file__).resolve().parents[2]

_PROBE = "import json, sys; import app; print(json.dumps(sorted(sys.modules)))"

# Libraries the X-Ray SDK can patch that none of these functions calls (the default
# Tracer() imports each importable one to patch it).
UNTRACED = {"httpx", "requests", "sqlalchemy", "psycopg", "pymongo", "pynamodb", "mysql"}


def lambda_env(function: str, extra: dict[str, str] | None = None) -> dict[str, str]:
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
    env.update(extra or {})
    return env


def run_probe(
    function: str, code: str, extra: dict[str, str] | None = None, args: Sequence[str] = ()
) -> Any:
    """Run `code` (with `args` as sys.argv[1:]) in a fresh interpreter in the function's
    folder; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=lambda_env(function, extra),
        cwd=ROOT / "functions" / function,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def imported_by(function: str) -> set[str]:
    return {m.split(".")[0] for m in run_probe(function, _PROBE)}


# The Lambda context every probe below hands its handler (no braces: the probes are
# str.format templates).
_CONTEXT = """
class Context:
    function_name = "footprint"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:footprint"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/footprint"
    log_stream_name = "footprint"

    def get_remaining_time_in_millis(self):
        return 60_000
"""

# Under moto: the set-up runs first (what the function finds deployed), then the module is
# imported and its handler called once with events/<event>.json. The tracer stays on
# (POWERTOOLS_TRACE_DISABLED=false), so the traced calls run as in Lambda.
_INVOKE = (
    """
import json, sys
import boto3
from moto import mock_aws
"""
    + _CONTEXT
    + """
context = Context()
with mock_aws():
{setup}
    loaded_by_setup = sorted(sys.modules)
    import app
    reply = app.handler(json.loads(open({event!r}).read()), context)
print(json.dumps({{"reply": reply, "modules": sorted(sys.modules),
                  "loaded_by_setup": loaded_by_setup}}))
"""
)


def invoked(
    function: str, event: str, setup: str, extra: dict[str, str]
) -> tuple[dict[str, Any], set[str], set[str]]:
    """The handler's reply, the modules loaded once it returned, and those the set-up
    had loaded before the handler module was imported."""
    code = _INVOKE.format(
        setup=textwrap.indent(textwrap.dedent(setup), "    "),
        event=str(ROOT / "events" / f"{event}.json"),
    )
    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    out = run_probe(function, code, {**fake, **extra})
    return out["reply"], set(out["modules"]), set(out["loaded_by_setup"])


def _top(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


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


def test_library_modules_of_the_light_paths_load_no_pandas() -> None:
    """`Bars`, the sweep plan and the channels' health import without pandas; the
    package exports that need it still resolve (lazily) to the loader functions."""
    code = (
        "import json, sys; sys.modules['pyarrow'] = None\n"
        "import algotrendy.data.manager, algotrendy.domain.bars, algotrendy.backtest.sweep\n"
        "heavy = 'pandas' in sys.modules\n"
        "from algotrendy.data import load_ohlcv, validate_ohlcv\n"
        "from algotrendy.data import loaders\n"
        "same = load_ohlcv is loaders.load_ohlcv and validate_ohlcv is loaders.validate_ohlcv\n"
        "print(json.dumps([heavy, same, 'pandas' in sys.modules]))"
    )
    assert run_probe("backtest_plan", code) == [False, True, True]


def _plan_setup(bucket: str) -> str:
    candles = json.loads((ROOT / "events" / "backtest_state_machine.json").read_text())["data"]
    fixtures = ROOT / "tests" / "fixtures" / "ohlcv"
    files = {"GOOG": "backtesting_GOOG_1d.csv", "EURUSD": "backtesting_EURUSD_1h.csv"}
    uploads = {uri.split("/", 3)[3]: str(fixtures / files[s]) for s, uri in candles.items()}
    return f"""
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket={bucket!r})
        for key, path in {uploads!r}.items():
            s3.upload_file(path, {bucket!r}, key)
    """


def test_backtest_plan_and_aggregate_import_neither_numpy_nor_pandas() -> None:
    for function in ("backtest_plan", "backtest_aggregate"):
        assert imported_by(function) & {"numpy", "pandas", "pyarrow", "numba"} == set(), function


def test_backtest_plan_plans_the_sample_request_without_numpy() -> None:
    """The plan step expands the grid and writes a manifest: the strategies validate the
    grid's parameters through their parameter models, whose numeric code
    (strategies.kernels) and the metric code it never runs stay unloaded."""
    # The plan's reply to the sample request is the aggregate step's sample input.
    expected = json.loads((ROOT / "events" / "backtest_aggregate.json").read_text())
    bucket = expected["bucket"]
    reply, modules, by_setup = invoked(
        "backtest_plan",
        "backtest_plan",
        _plan_setup(bucket),
        {"ALGOTRENDY_ARTEFACTS_BUCKET": bucket},
    )
    assert reply == expected
    assert _top(by_setup) & {"pandas", "numpy"} == set()  # else the check below proves nothing
    assert {"algotrendy.backtest.sweep", "algotrendy.strategies.builtin"} <= modules
    assert _top(modules) & {"pandas", "pyarrow", "numpy", "numba"} == set()


def _aggregate_setup(bucket: str, prefix: str, sizes: list[int]) -> str:
    """Each chunk's rows as the workers write them (plain JSON: the set-up loads no
    pandas or numpy), some metrics non-finite as SweepRow serialises them."""
    chunks: list[list[dict[str, object]]] = []
    task = 0
    for c, size in enumerate(sizes):
        rows = []
        for _ in range(size):
            sharpe: object = "NaN" if task % 5 == 0 else round(1.0 - task / 7, 6)
            rows.append(
                {
                    "chunk_id": f"chunk-{c:05d}",
                    "task": task,
                    "symbol": "GOOG" if c < 2 else "EURUSD",
                    "params": {"fast": 5 + task, "slow": 30},
                    "metrics": {"sharpe": sharpe, "profit_factor": "Infinity", "num_trades": 3.0},
                }
            )
            task += 1
        chunks.append(rows)
    return f"""
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket={bucket!r})
        for i, rows in enumerate({chunks!r}):
            s3.put_object(Bucket={bucket!r}, Key=f"{prefix}chunk-{{i:05d}}.json",
                          Body=json.dumps(rows).encode())
    """


def test_backtest_aggregate_ranks_the_sample_run_without_pandas_or_numpy() -> None:
    plan = json.loads((ROOT / "events" / "backtest_aggregate.json").read_text())
    setup = _aggregate_setup(plan["bucket"], plan["rows_prefix"], [4, 2, 4, 2])
    reply, modules, by_setup = invoked("backtest_aggregate", "backtest_aggregate", setup, {})
    assert reply["row_count"] == plan["task_count"] == 12
    assert reply["top_records"]["count"] == plan["top"]
    assert reply["best"]["rank"] == 1
    assert _top(by_setup) & {"pandas", "numpy"} == set()  # else the check below proves nothing
    assert "algotrendy.backtest.ranking" in modules
    assert _top(modules) & {"pandas", "pyarrow", "numpy", "numba"} == set()


def test_api_health_reports_channels_without_pandas(tmp_path: Path) -> None:
    """/health reads the channels' health from the cache (`algotrendy.data.manager`),
    which needs no DataFrame: the market-data exports of `algotrendy.data` stay unloaded."""
    url = f"sqlite:///{tmp_path / 'api.db'}"
    engine = create_db_engine(url)
    upgrade_database(engine)
    engine.dispose()
    setup = """
        boto3.client("sqs", region_name="us-east-1").create_queue(
            QueueName="algotrendy-orders-dev.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )
    """
    extra = {
        "ALGOTRENDY_JWT_SECRET": "footprint-tests-secret-0123456789abcdef",
        "ALGOTRENDY_DATABASE_URL": url,
        "ALGOTRENDY_ORDERS_QUEUE_URL": (
            "https://sqs.us-east-1.amazonaws.com/123456789012/algotrendy-orders-dev.fifo"
        ),
        "ALGOTRENDY_DATA_DIR": str(tmp_path / "data"),
    }
    reply, modules, by_setup = invoked("api", "api_health", setup, extra)
    assert reply["statusCode"] == 200, reply["body"]
    body = json.loads(reply["body"])
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"  # the channels' branch ran
    assert "algotrendy.data.manager" in modules
    assert "pandas" not in _top(by_setup)
    assert _top(modules) & {"pandas", "numpy", "pyarrow"} == set()


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


FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_collector_runs_again_after_the_import(function: str) -> None:
    """Each handler module pauses the garbage collector while it imports (cold start);
    it must switch it back on and freeze what the import built, or a warm container
    would never collect again."""
    code = "import gc, json; import app; print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))"
    enabled, frozen = run_probe(function, code)
    assert enabled is True
    assert frozen > 10_000  # the imported modules' objects, out of every later collection


_API_WITHOUT_AWS = (
    """
import json, sys
import app
"""
    + _CONTEXT
    + """
context = Context()
replies = [app.handler(json.loads(open(path).read()), context)["statusCode"]
           for path in sys.argv[1:]]
print(json.dumps({"replies": replies, "modules": sorted(sys.modules)}))
"""
)

_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/algotrendy-orders-dev.fifo"
_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:algotrendy-backtest-dev"


def _api_env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    engine = create_db_engine(url)
    upgrade_database(engine)
    engine.dispose()
    return {
        "ALGOTRENDY_JWT_SECRET": "footprint-tests-secret-0123456789abcdef",
        "ALGOTRENDY_DATABASE_URL": url,
        "ALGOTRENDY_ORDERS_QUEUE_URL": _QUEUE_URL,
        "ALGOTRENDY_BACKTEST_STATE_MACHINE_ARN": _MACHINE_ARN,
        "ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER": "/algotrendy/dev/webhooks",
        "ALGOTRENDY_ADMIN_USERNAME": "admin",
        "ALGOTRENDY_ADMIN_PASSWORD": "admin-bootstrap-password",
        "ALGOTRENDY_DATA_DIR": str(tmp_path / "data"),
    }


def test_api_routes_that_call_no_aws_load_no_aws_sdk(tmp_path: Path) -> None:
    """/health and login never call AWS: with the orders queue, the state machine and the
    webhook parameter all configured (so an eager composition root would build their
    clients) and tracing on, neither the import nor these requests load the AWS SDK. No
    moto here: it would import boto3 itself."""
    events = [str(ROOT / "events" / f"{name}.json") for name in ("api_health", "api_login")]
    out = run_probe("api", _API_WITHOUT_AWS, _api_env(tmp_path), events)
    assert out["replies"] == [200, 200]
    modules = set(out["modules"])
    assert "aws_xray_sdk" in _top(modules)  # tracing is on
    # Powertools imports the bare `botocore` package (a few ms) to register its
    # user-agent hook; the SDK itself is its session, client and boto3.
    assert _top(modules) & {"boto3", "s3transfer"} == set()
    assert modules & {"botocore.session", "botocore.client"} == set()


_API_ORDER = (
    """
import json, sys
import boto3
from moto import mock_aws
"""
    + _CONTEXT
    + """
context = Context()
login_event, order_event, queue_name = sys.argv[1:]
with mock_aws():
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(
        QueueName=queue_name,
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
    )["QueueUrl"]
    import app
    login = app.handler(json.loads(open(login_event).read()), context)
    token = json.loads(login["body"])["access_token"]
    order = json.loads(open(order_event).read())
    for headers in ("headers", "multiValueHeaders"):
        auth = "Bearer " + token
        order[headers]["Authorization"] = auth if headers == "headers" else [auth]
    placed = app.handler(order, context)
    import botocore.client
    wrapped = hasattr(botocore.client.BaseClient._make_api_call, "__wrapped__")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
print(json.dumps({"status": placed["statusCode"], "wrapped": wrapped,
                  "messages": len(got.get("Messages", []))}))
"""
)


def test_api_order_route_builds_its_client_traced(tmp_path: Path) -> None:
    """The first route that calls AWS builds the client, botocore patched for X-Ray
    first (the X-Ray SDK wraps `BaseClient._make_api_call`), and the order reaches the
    queue."""
    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    args = [
        str(ROOT / "events" / "api_login.json"),
        str(ROOT / "events" / "api_place_order.json"),
        _QUEUE_URL.rsplit("/", 1)[1],
    ]
    out = run_probe("api", _API_ORDER, {**fake, **_api_env(tmp_path)}, args)
    assert out == {"status": 202, "wrapped": True, "messages": 1}


def test_signal_evaluator_imports_no_pandas() -> None:
    modules = imported_by("signal_evaluator")
    assert "numpy" in modules  # Bars and the strategies' arrays
    assert modules & {"pandas", "pyarrow", "numba", "questdb"} == set()


# The store the function builds in AWS (QuestDB), its PGWire connection a fake serving
# the GOOG fixture (read with csv: the set-up itself must load no pandas).
_SIGNAL_SETUP = """
    sys.path.insert(0, {infra!r})
    from fake_questdb import csv_rows, questdb_store
    import algotrendy.signals.wiring as signal_wiring

    rows = csv_rows({csv_path!r})
    signal_wiring.build_candle_store = lambda settings: questdb_store(
        rows, ("nasdaq", "GOOG", "1d")
    )
    boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName="algotrendy-orders-dev.fifo",
        Attributes={{"FifoQueue": "true", "ContentBasedDeduplication": "false"}},
    )
"""


def test_signal_evaluator_evaluates_the_sample_batch_without_pandas(tmp_path: Path) -> None:
    """The sample batch against a QuestDB store: bars come as numpy arrays from the PGWire
    rows (`read_bars`), so no DataFrame is built anywhere on the way to the intents."""
    configs = tmp_path / "strategies.json"
    configs.write_text(json.dumps({"version": 1, "strategies": [{
        "id": "goog-sma-10-20", "name": "GOOG SMA 10/20", "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 20, "allow_short": True}, "exchange": "nasdaq",
        "symbols": ["GOOG"], "timeframe": "1d", "account": "acct-1", "quantity": 5,
        "max_signal_age_bars": None,
    }]}))  # fmt: skip
    setup = _SIGNAL_SETUP.format(
        infra=str(ROOT / "tests" / "infra"),
        csv_path=str(ROOT / "tests" / "fixtures" / "ohlcv" / "backtesting_GOOG_1d.csv"),
    )
    extra = {
        "ALGOTRENDY_ORDERS_QUEUE_URL": (
            "https://sqs.us-east-1.amazonaws.com/123456789012/algotrendy-orders-dev.fifo"
        ),
        "ALGOTRENDY_STRATEGY_CONFIG_FILE": str(configs),
    }
    reply, modules, by_setup = invoked("signal_evaluator", "signal_evaluator_batch", setup, extra)
    assert [f["itemIdentifier"] for f in reply["batchItemFailures"]] == [
        "0b0e2c1a-5f3d-4c7e-9a61-000000000003"  # the poison record only
    ]
    assert "pandas" not in _top(by_setup)  # else the check below would prove nothing
    assert "algotrendy.signals.evaluator" in modules
    assert "algotrendy.strategies.builtin" in modules  # a strategy ran
    assert "psycopg" in _top(modules)  # the store's PGWire error types
    assert _top(modules) & {"pandas", "pyarrow", "numba", "questdb"} == set()


@pytest.mark.parametrize(
    "function", ["backtest_plan", "backtest_aggregate", "signal_evaluator", "ingest"]
)
def test_plain_aws_callers_build_botocore_clients_without_boto3(function: str) -> None:
    """These functions make only plain API calls, so their clients come from botocore
    (`aws_clients.botocore_client`): boto3's resources and s3transfer stay unloaded."""
    modules = imported_by(function)
    assert "botocore" in modules
    assert modules & {"boto3", "s3transfer"} == set()
