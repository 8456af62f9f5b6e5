"""Cold start of every Lambda handler: the import of its module (`python -X importtime`),
and the import plus the first invocation with its sample event from events/.

Budget (DESIGN §6): each function's import under 300 ms. Each handler is imported in a
fresh interpreter, from its own folder, with the environment Lambda gives a function
(`LAMBDA_TASK_ROOT` among it: the X-Ray SDK detects Lambda by it and then uses Lambda's
sampling decision instead of building a client for centralised sampling rules). The
import figure is the cumulative import time of the `app` module as `-X importtime`
reports it, best and median of N fresh processes. The numba-free path
(`ALGOTRENDY_DISABLE_NUMBA=1`) is what zip functions run in AWS, and pyarrow, installed
here but in no layer, is hidden as it is absent there.

Each import is then split in one fresh process: the libraries it loads (every module
outside `app` and `algotrendy`, third-party and standard library, in load order) imported
by themselves, then the handler on top of them. The first part is the floor the import
cannot go below while the function needs those libraries (boto3 alone is ~120 ms on one
machine of this kind and ~200 ms on another); the second is what the project's own code
adds. Machines of one kind differ by 2x from one session to the next: compare the split,
not only the total, across runs.

The project's own bytecode is written before anything is timed or counted, as the
deployed build ships it (`compile_project`): with PYTHONDONTWRITEBYTECODE set, as in this
project's shells, every run would otherwise compile the project from source.

The second figure keeps the first honest: a module that is imported lazily but needed by
every invocation only moves cost from the import to the first request. In a fresh
process the handler module is imported (timed), AWS is mocked with moto (set up, not
timed: the resources the function finds deployed) and the handler is called once with
its sample event (timed). The AWS SDK's session (botocore's) is imported and timed
before moto if the handler module did not import it (moto imports boto3), so the first
invocation is charged for what its clients need; except the API's /health and login,
which call no AWS: they run without moto, and a route that called AWS anyway would fail
for want of it. The heavy modules loaded after the import and after the first invocation
are listed; one marked `*` was first loaded by the moto set-up, so its import is not in
the invocation figure (boto3, where the function itself uses botocore's clients).

What each first invocation does (the fixtures of tests/functions):
  webhook             events/webhook_strategy_json.json: SSM config, DynamoDB, SQS
  backtest_plan       events/backtest_plan.json: sample candles in S3, manifest written
  backtest_worker     events/backtest_worker.json: one chunk backtested on S3 candles
  backtest_aggregate  events/backtest_aggregate.json: the four chunks' rows ranked
  signal_evaluator    events/signal_evaluator_batch.json: SQS, the QuestDB store over a
                      fake PostgreSQL-wire connection serving the GOOG daily rows; one
                      record of the batch is poison and fails, as expected
  api (health)        events/api_health.json
  api (login)         events/api_login.json: SQLite database, argon2 verification
  ingest              not invoked: its channels need the exchanges' network

`--built .aws-sam/build` times the `make sam-build` output instead (bytecode of the
project's own code included, none written while timing, as on Lambda's read-only file
system): each zip function imported as Lambda would (its built folder, its layers' pinned
numpy 2.2 / pandas 2.3, only the runtime's own packages, no site-packages of this venv;
scripts/invoke.py's resolution); the worker from its image's file system (`make
image-trees`: numba on, its precompiled kernels copied to an empty /tmp as at a cold
start).

`--instructions [TREE]` counts the instructions each import executes (valgrind's
callgrind, the interpreter's own start subtracted) instead of timing it: exact and
independent of the machine's load and speed, so it is the figure to compare two versions
of the code with (TREE: e.g. a `git worktree` of an earlier commit).

Run: .venv/bin/python bench/bench_cold_imports.py [--runs 5] [--only webhook,api]
     .venv/bin/python bench/bench_cold_imports.py --built .aws-sam/build   (after make sam-build)
     .venv/bin/python bench/bench_cold_imports.py --instructions [TREE]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
FIXTURES = ROOT / "tests" / "fixtures"
BUDGET_MS = 300.0
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
HEAVY = ("pandas", "numpy", "pyarrow", "boto3", "sqlalchemy", "ccxt", "fastapi")

LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "_HANDLER": "app.handler",
    "POWERTOOLS_TRACE_DISABLED": "false",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "ALGOTRENDY_STAGE": "dev",
    "ALGOTRENDY_DISABLE_NUMBA": "1",
}
# In the venv but in no layer (layers/research: Lambda reads CSV candles): hidden from the
# handler as Lambda would, else pandas' import alone loads it (~50-100 ms).
NOT_IN_LAMBDA = ("pyarrow",)
HIDE = f"import sys; sys.modules.update(dict.fromkeys({NOT_IN_LAMBDA!r}))"
# Set per invocation by Lambda; sampled, so the traced calls really record subsegments.
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "ALGOTRENDY_JWT_SECRET": "bench-cold-imports-secret-0123456789",
}


def function_env(function_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ALGOTRENDY_"))}
    return {**env, **LAMBDA_ENV, "LAMBDA_TASK_ROOT": str(function_dir)}


_LIST_LIBRARIES = f"""{HIDE}
import json, sys
before = set(sys.modules)
import app
print(json.dumps([m for m, mod in sys.modules.items() if m not in before and mod is not None
                  and m != "app" and m.split(".")[0] != "algotrendy"]))
"""


def library_modules(function_dir: Path) -> list[str]:
    """What importing the handler loads besides its own code (`app`, `algotrendy`), in
    load order: the third-party and standard-library modules it stands on."""
    proc = subprocess.run(
        [sys.executable, "-c", _LIST_LIBRARIES],
        cwd=function_dir, env=function_env(function_dir), capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    names: list[str] = json.loads(proc.stdout.splitlines()[-1])
    return names


def split_ms(function_dir: Path, names: list[str], workdir: Path) -> tuple[float, float, list[str]]:
    """In one fresh interpreter, as `-X importtime` reports it: the import of `names`
    alone, in their order (the collector paused, as the handlers do), then the handler's
    import on top of them. The first is the floor the function's import cannot go below
    while it needs these libraries; the second is what its own code adds (measured, not
    a difference of two noisy runs). Also returns the names that cannot be imported by
    name (aliases some packages register), which stay in the second figure."""
    probe = workdir / "libraries_probe.py"
    probe.write_text(
        "import gc, importlib, json\n"
        "gc.disable()\n"
        f"NAMES = {names!r}\n"
        "MISSING = []\n"
        "for name in NAMES:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        MISSING.append(name)  # reported by the caller\n"
        "gc.enable()\n"
        "print(json.dumps(MISSING))\n"
    )
    env = {**function_env(function_dir), "PYTHONPATH": str(workdir)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"{HIDE}; import libraries_probe; import app"],
        cwd=function_dir, env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    missing: list[str] = json.loads(proc.stdout.splitlines()[-1])
    libraries = _cumulative_ms(proc.stderr, "libraries_probe")
    return libraries, _cumulative_ms(proc.stderr, "app"), missing


def import_ms(function_dir: Path) -> float:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"{HIDE}; import app"],
        cwd=function_dir, env=function_env(function_dir), capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    return _cumulative_ms(proc.stderr, "app")


# --- scenarios: what the parent prepares (files, environment) and the child sets up ---


@dataclass
class Scenario:
    label: str
    function: str
    event: str
    setup: str  # name of the child's moto set-up below
    env: dict[str, str] = field(default_factory=dict)
    clock: str | None = None  # ISO time the handler's `now()` returns (the event's day)
    files: dict[str, str] = field(default_factory=dict)  # S3 key -> local file to upload
    # False: the invocation calls no AWS (API /health, login): no moto, and boto3 is not
    # charged to it; a route that called AWS anyway would fail (no network, no moto).
    calls_aws: bool = True
    questdb_csv: str | None = None  # candles served by a fake QuestDB connection


def _bucket() -> str:
    return str(json.loads((EVENTS / "backtest_aggregate.json").read_text())["bucket"])


def _candle_files() -> dict[str, str]:
    fixtures = {"GOOG": "backtesting_GOOG_1d.csv", "EURUSD": "backtesting_EURUSD_1h.csv"}
    data = json.loads((EVENTS / "backtest_state_machine.json").read_text())["data"]
    return {uri.split("/", 3)[3]: str(FIXTURES / "ohlcv" / fixtures[s]) for s, uri in data.items()}


def _queue_url(name: str) -> str:
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"


def _load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _aggregate_rows(workdir: Path) -> dict[str, str]:
    """The rows the four workers of the sample plan write, produced here by the real plan
    and worker handlers under moto, saved as files for the aggregate's child to upload."""
    import boto3
    from moto import mock_aws

    from algotrendy.config import get_settings

    saved = dict(os.environ)
    os.environ.update({**LAMBDA_ENV, **FAKE_AWS, "POWERTOOLS_TRACE_DISABLED": "true"})
    os.environ["ALGOTRENDY_ARTEFACTS_BUCKET"] = _bucket()
    get_settings.cache_clear()
    try:
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket=_bucket())
            for key, path in _candle_files().items():
                s3.upload_file(path, _bucket(), key)
            plan = _load_module(ROOT / "functions/backtest_plan/app.py", "_bench_plan")
            worker = _load_module(ROOT / "functions/backtest_worker/app.py", "_bench_worker")
            ctx = _Context()
            reply = plan.handler(json.loads((EVENTS / "backtest_plan.json").read_text()), ctx)
            body = s3.get_object(Bucket=reply["bucket"], Key=reply["manifest_key"])["Body"]
            for item in json.loads(body.read()):
                worker.handler(item, ctx)
            files: dict[str, str] = {}
            listed = s3.list_objects_v2(Bucket=reply["bucket"], Prefix=reply["rows_prefix"])
            for obj in listed["Contents"]:
                local = workdir / obj["Key"].replace("/", "_")
                s3.download_file(reply["bucket"], obj["Key"], str(local))
                files[obj["Key"]] = str(local)
            return files
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def _signal_store(workdir: Path) -> dict[str, str]:
    """The strategy configs as tests/functions/test_signal_evaluator_handler.py deploys
    them; the candles are served by `_serve_questdb` (the child's set-up)."""
    configs = workdir / "strategies.json"
    strategy = {
        "id": "goog-sma-10-20",
        "name": "GOOG SMA 10/20",
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 20, "allow_short": True},
        "exchange": "nasdaq",
        "symbols": ["GOOG"],
        "timeframe": "1d",
        "account": "acct-1",
        "quantity": 5.0,
        "max_signal_age_bars": None,
    }
    configs.write_text(json.dumps({"version": 1, "strategies": [strategy]}))
    return {
        "ALGOTRENDY_QUESTDB_URL": "http://127.0.0.1:9000",
        "ALGOTRENDY_STRATEGY_CONFIG_FILE": str(configs),
        "ALGOTRENDY_ORDERS_QUEUE_URL": _queue_url("algotrendy-orders-dev.fifo"),
        "ALGOTRENDY_SIGNALS_QUEUE_URL": _queue_url("algotrendy-signals-dev"),
    }


def _api_database(workdir: Path) -> dict[str, str]:
    """A migrated SQLite database (migrations are a deployment step in aws)."""
    from algotrendy.storage.relational import create_db_engine, upgrade_database

    url = f"sqlite:///{workdir / 'api.db'}"
    engine = create_db_engine(url)
    upgrade_database(engine)
    engine.dispose()
    return {
        "ALGOTRENDY_DATABASE_URL": url,
        "ALGOTRENDY_ORDERS_QUEUE_URL": _queue_url("algotrendy-orders-dev.fifo"),
        "ALGOTRENDY_ADMIN_USERNAME": "admin",
        "ALGOTRENDY_ADMIN_PASSWORD": "admin-bootstrap-password",
        "ALGOTRENDY_DATA_DIR": str(workdir / "data"),
    }


def scenarios(workdir: Path, only: set[str] | None) -> list[Scenario]:
    def wanted(function: str) -> bool:
        return only is None or function in only

    out: list[Scenario] = []
    bucket = {"ALGOTRENDY_ARTEFACTS_BUCKET": _bucket()}
    if wanted("api"):
        api_env = _api_database(workdir)
        out.append(
            Scenario("api (health)", "api", "api_health", "sqs_orders", api_env, calls_aws=False)
        )
        out.append(
            Scenario("api (login)", "api", "api_login", "sqs_orders", api_env, calls_aws=False)
        )
    if wanted("backtest_aggregate"):
        rows = _aggregate_rows(workdir)
        out.append(
            Scenario("backtest_aggregate", "backtest_aggregate", "backtest_aggregate", "s3",
                     bucket, files=rows)
        )  # fmt: skip
    if wanted("backtest_plan"):
        out.append(
            Scenario("backtest_plan", "backtest_plan", "backtest_plan", "s3", bucket,
                     files=_candle_files())
        )  # fmt: skip
    if wanted("backtest_worker"):
        out.append(
            Scenario("backtest_worker", "backtest_worker", "backtest_worker", "s3", bucket,
                     files=_candle_files())
        )  # fmt: skip
    if wanted("signal_evaluator"):
        out.append(
            Scenario("signal_evaluator", "signal_evaluator", "signal_evaluator_batch",
                     "sqs_signals", _signal_store(workdir), clock="2013-03-02T00:00:00+00:00",
                     questdb_csv=str(FIXTURES / "ohlcv" / "backtesting_GOOG_1d.csv"))
        )  # fmt: skip
    if wanted("webhook"):
        webhook_env = {
            "ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER": "/algotrendy/dev/webhooks",
            "ALGOTRENDY_IDEMPOTENCY_TABLE": "algotrendy-idempotency-dev",
            "ALGOTRENDY_ORDERS_QUEUE_URL": _queue_url("algotrendy-orders-dev.fifo"),
        }
        out.append(
            Scenario("webhook", "webhook", "webhook_strategy_json", "webhook", webhook_env,
                     clock="2020-09-06T01:44:20+00:00")
        )  # fmt: skip
    return out


# --- the child: import, set up moto, invoke once ---


class _Context:
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _setup_s3(spec: dict[str, Any]) -> None:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=spec["env"]["ALGOTRENDY_ARTEFACTS_BUCKET"])
    for key, path in spec["files"].items():
        s3.upload_file(path, spec["env"]["ALGOTRENDY_ARTEFACTS_BUCKET"], key)


def _fifo(sqs: Any, name: str) -> None:
    url = sqs.create_queue(
        QueueName=name, Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    )["QueueUrl"]
    assert url == _queue_url(name), url


def _setup_sqs_orders(spec: dict[str, Any]) -> None:
    import boto3

    _fifo(boto3.client("sqs", region_name=REGION), "algotrendy-orders-dev.fifo")


def _setup_sqs_signals(spec: dict[str, Any]) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    _fifo(sqs, "algotrendy-orders-dev.fifo")
    assert sqs.create_queue(QueueName="algotrendy-signals-dev")["QueueUrl"] == _queue_url(
        "algotrendy-signals-dev"
    )


def _setup_webhook(spec: dict[str, Any]) -> None:
    import boto3

    env = spec["env"]
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=env["ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER"],
        Value=(FIXTURES / "tradingview" / "webhook_configs.json").read_text(),
        Type="SecureString",
    )
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=env["ALGOTRENDY_IDEMPOTENCY_TABLE"],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    _fifo(boto3.client("sqs", region_name=REGION), "algotrendy-orders-dev.fifo")


SETUPS: dict[str, Callable[[dict[str, Any]], None]] = {
    "s3": _setup_s3,
    "sqs_orders": _setup_sqs_orders,
    "sqs_signals": _setup_sqs_signals,
    "webhook": _setup_webhook,
}


def _serve_questdb(app: Any, csv_path: str) -> None:
    """The evaluator's store as in AWS, `QuestDBCandleStore`, its PostgreSQL-wire
    connection a fake that answers the read query with the GOOG daily rows
    (tests/infra/fake_questdb.py, read with csv, so the set-up loads no pandas): the
    function's real read path, rows to numpy `Bars`, runs without a server."""
    sys.path.insert(0, str(ROOT / "tests" / "infra"))
    from fake_questdb import csv_rows, questdb_store

    rows = csv_rows(csv_path)
    app.build_candle_store = lambda settings: questdb_store(rows, ("nasdaq", "GOOG", "1d"))


def _heavy() -> list[str]:
    return [m for m in HEAVY if sys.modules.get(m) is not None]


def child(spec_path: Path, out_path: Path) -> None:
    """Runs in the function's folder with its environment (see `invoke_once`)."""
    spec = json.loads(spec_path.read_text())
    sys.modules.update(dict.fromkeys(NOT_IN_LAMBDA))
    sys.path.insert(0, os.getcwd())
    t0 = time.perf_counter()
    app = importlib.import_module("app")
    import_s = time.perf_counter() - t0
    after_import = _heavy()

    owed_s = 0.0
    mock: Any = None
    by_setup: set[str] = set()
    if spec["calls_aws"]:
        if "botocore.session" not in sys.modules:
            # The SDK the first invocation needs for its clients (botocore's session;
            # boto3 only where the module imported it), imported before moto does it for
            # its own.
            t0 = time.perf_counter()
            importlib.import_module("botocore.session")
            owed_s = time.perf_counter() - t0

        before_setup = set(sys.modules)
        from botocore.client import BaseClient
        from moto import mock_aws
        from moto.core.models import patch_client

        mock = mock_aws()
        mock.start()
        SETUPS[spec["setup"]](spec)
        if spec["questdb_csv"]:
            _serve_questdb(app, spec["questdb_csv"])
        for value in vars(app).values():  # clients the module built at import, before moto
            if isinstance(value, BaseClient):
                patch_client(value)
        by_setup = {m for m in HEAVY if m in sys.modules and m not in before_setup}
    if spec["clock"]:
        from datetime import datetime

        fixed = datetime.fromisoformat(spec["clock"])
        setattr(app, "now", lambda: fixed)  # noqa: B010  (the tests' fixed clock)
    event = json.loads((EVENTS / f"{spec['event']}.json").read_text())

    os.environ["_X_AMZN_TRACE_ID"] = TRACE_HEADER
    t0 = time.perf_counter()
    reply = app.handler(event, _Context())
    invoke_s = time.perf_counter() - t0
    if mock is not None:
        mock.stop()

    status = reply.get("statusCode") if isinstance(reply, dict) else None
    failures = reply.get("batchItemFailures") if isinstance(reply, dict) else None
    result = {
        "import_ms": import_s * 1000,
        "invoke_ms": (owed_s + invoke_s) * 1000,
        "after_import": after_import,
        "after_invoke": [m + ("*" if m in by_setup else "") for m in _heavy()],
        "status": status,
        "failures": len(failures) if failures is not None else None,
    }
    out_path.write_text(json.dumps(result))


def invoke_once(sc: Scenario, workdir: Path) -> dict[str, Any]:
    function_dir = ROOT / "functions" / sc.function
    spec_path = workdir / f"{sc.label.replace(' ', '_')}.spec.json"
    out_path = workdir / f"{sc.label.replace(' ', '_')}.out.json"
    spec = {"setup": sc.setup, "env": sc.env, "files": sc.files, "event": sc.event,
            "clock": sc.clock, "calls_aws": sc.calls_aws,
            "questdb_csv": sc.questdb_csv}  # fmt: skip
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    env = {**function_env(function_dir), **FAKE_AWS, **sc.env}
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path), str(out_path)],
        cwd=function_dir, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"{sc.label}: first invocation failed\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out_path.read_text())
    return result


def built_import_ms(build_dir: Path, runs: int) -> None:
    """The import of each BUILT zip function (`sam build` output), as Lambda imports it:
    `scripts/invoke.py`'s resolution (the function dir, its layers' `python/` dirs in
    Lambda's order, then only the runtime's own packages), a bare interpreter (`-S`: no
    site-packages of this venv), so the layers' pinned numpy/pandas are what is timed."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import invoke  # scripts/invoke.py

    template = invoke.load_template(build_dir / "template.yaml")
    resources = template["Resources"]
    names = sorted(k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function")
    print(f"built functions ({build_dir}), best / median of {runs} (ms):")
    with tempfile.TemporaryDirectory(prefix="bench-cold-built-") as tmp:
        runtime = invoke.runtime_dir(Path(tmp) / "runtime")
        for name in names:
            try:
                spec = invoke.function_spec(template, name, build_dir)
            except invoke.InvokeError as exc:
                print(f"{name:<28} not measured: {exc}")
                continue
            module = str(spec["props"]["Handler"]).rsplit(".", 1)[0]
            path = [str(spec["code"]), *(str(p) for p in reversed(spec["layers"])), str(runtime)]
            env = {
                **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
                **LAMBDA_ENV,
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "LAMBDA_TASK_ROOT": str(spec["code"]),
                "NUMBA_CACHE_DIR": str(Path(tmp) / "numba"),
                # Lambda's code and layers are read-only: no bytecode is cached between
                # cold starts, so none may be written here either (the build's own pycs,
                # `check_sam_build.py compile`, are what Lambda gets).
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPATH": os.pathsep.join(path),
            }
            if "image_env" in spec:  # an image function: its tree (make image-trees)
                env.pop("ALGOTRENDY_DISABLE_NUMBA")  # the image ships numba
            times = []
            for run in range(runs):
                # Lambda's /tmp, empty at each cold start (the image's numba cache seed is
                # copied into it at import).
                lambda_tmp = Path(tmp) / f"lambda-tmp-{name}-{run}"
                lambda_tmp.mkdir()
                env.update(invoke.image_environment(spec, lambda_tmp))
                proc = subprocess.run(
                    [sys.executable, "-S", "-X", "importtime", "-c", f"import {module}"],
                    cwd=spec["code"], env=env, capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                if proc.returncode:
                    raise RuntimeError(f"{name}: import failed:\n{proc.stderr[-2000:]}")
                times.append(_cumulative_ms(proc.stderr, module))
            best, median = min(times), statistics.median(times)
            verdict = "MET" if best < BUDGET_MS else "MISSED"
            print(f"{name:<28}{best:>8.0f}{median:>8.0f}  {verdict}")
    if "BacktestWorkerFunction" in names:
        worker_cold_chunk(build_dir, runs)


def worker_cold_chunk(build_dir: Path, runs: int) -> None:
    """The worker image's cold start to its reply on the sample chunk (scripts/invoke.py
    from the image's file system, S3 on moto's server, a fresh interpreter and an empty
    /tmp each run), with the image's precompiled numba cache and without it (the seed
    unset: every kernel compiled at the cold start, as before the image carried one)."""
    sys.path.insert(0, str(ROOT / "tests" / "infra"))
    from invoke_s3 import invoke_built, s3_serving_candles

    event_path = EVENTS / "backtest_worker.json"
    candles = FIXTURES / "ohlcv" / "backtesting_GOOG_1d.csv"
    print(f"worker, cold start to reply on events/backtest_worker.json, best / median of "
          f"{runs} (ms):")  # fmt: skip
    with (
        s3_serving_candles(json.loads(event_path.read_text()), candles) as (url, _),
        tempfile.TemporaryDirectory(prefix="bench-cold-worker-") as tmp,
    ):
        for label, seed in (("precompiled kernels (the image)", True),
                            ("kernels compiled at start", False)):  # fmt: skip
            extra: dict[str, str | None] = {"AWS_ENDPOINT_URL": url}
            if not seed:
                extra["ALGOTRENDY_NUMBA_CACHE_SEED"] = None
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                proc = invoke_built(
                    "BacktestWorkerFunction", event_path, build_dir, extra, Path(tmp)
                )
                times.append((time.perf_counter() - started) * 1000.0)
                if proc.returncode:
                    raise RuntimeError(f"worker failed:\n{proc.stderr[-2000:]}")
            print(f"  {label:<34}{min(times):>8.0f}{statistics.median(times):>8.0f}")


def compile_project(tree: Path) -> None:
    """Write the bytecode of `tree`'s own code (shared/, functions/) before anything is
    timed or counted. The deployed build ships it (`check_sam_build.py compile`, the
    worker's Dockerfile), so a cold start in AWS never compiles the project from source;
    nor may it here. A first import would not do: with PYTHONDONTWRITEBYTECODE set (as in
    this project's shells and CI), Python compiles and discards, at every run (measured:
    ~45 ms of the API's import, 58 modules)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(tree / "shared"), str(tree / "functions")],
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        capture_output=True, timeout=300, check=True,
    )  # fmt: skip


def _cumulative_ms(importtime: str, module: str) -> float:
    for line in importtime.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000.0
    raise RuntimeError(f"no import time for {module}")


def _instructions(cmd: list[str], cwd: Path, env: dict[str, str]) -> int:
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    for line in proc.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"callgrind gave no count for {cmd}:\n{proc.stderr[-2000:]}")


def instructions(tree: Path, only: set[str] | None) -> None:
    """Instructions executed by each handler's import (valgrind's callgrind): the same
    count for the same code and interpreter on any machine, however loaded, so two
    versions of the code compare exactly where milliseconds on a shared 2-vCPU machine
    swing by 2x. The interpreter's own start (`python -c pass` with the same
    environment) is subtracted. `tree` is the checkout to measure (its functions/ and
    shared/), so an earlier commit's worktree compares with this one."""
    print(f"instructions of each handler's import (callgrind), {tree}:")
    compile_project(tree)
    for function_dir in sorted(p for p in (tree / "functions").iterdir() if p.is_dir()):
        if not (function_dir / "app.py").exists() or (only and function_dir.name not in only):
            continue
        env = {**function_env(function_dir), "PYTHONPATH": str(tree / "shared")}
        start = _instructions([sys.executable, "-c", HIDE], function_dir, env)
        total = _instructions([sys.executable, "-c", f"{HIDE}; import app"], function_dir, env)
        print(f"{function_dir.name:<20}{(total - start) / 1e9:>8.3f} G", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", help="comma-separated function names")
    parser.add_argument(
        "--built",
        type=Path,
        metavar="BUILD_DIR",
        help="time the sam build output instead (e.g. .aws-sam/build after make sam-build)",
    )
    parser.add_argument(
        "--instructions",
        type=Path,
        nargs="?",
        const=ROOT,
        metavar="TREE",
        help="count each import's instructions with callgrind instead (TREE: a checkout)",
    )
    parser.add_argument("--child", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    if args.instructions:
        instructions(args.instructions.resolve(), set(args.only.split(",")) if args.only else None)
        return
    if args.built:
        built_import_ms(args.built, args.runs)
        return
    only = set(args.only.split(",")) if args.only else None
    compile_project(ROOT)

    print(
        f"{'function':<20}{'import best':>12}{'median':>8}  budget {BUDGET_MS:.0f} ms"
        f"{'libraries alone':>18}{'+ ours':>8}"
    )
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-libs-") as libs_tmp:
        for function_dir in sorted(p for p in (ROOT / "functions").iterdir() if p.is_dir()):
            if not (function_dir / "app.py").exists() or (only and function_dir.name not in only):
                continue
            times = [import_ms(function_dir) for _ in range(args.runs)]
            best, median = min(times), statistics.median(times)
            verdict = "MET   " if best < BUDGET_MS else "MISSED"
            names = library_modules(function_dir)
            splits = [split_ms(function_dir, names, Path(libs_tmp)) for _ in range(args.runs)]
            floor = min(libraries for libraries, _, _ in splits)
            ours = min(own for _, own, _ in splits)
            missing = splits[0][2]
            if missing:
                notes.append(
                    f"{function_dir.name}: {len(missing)} of {len(names)} library modules not "
                    "importable by name (aliases): left in 'ours'"
                )
            print(
                f"{function_dir.name:<20}{best:>12.0f}{median:>8.0f}  {verdict}"
                f"{floor:>23.0f}{ours:>8.0f}"
            )  # fmt: skip
    print(
        "libraries alone: the third-party and standard-library modules the handler's import "
        "loads, imported\nby themselves in a fresh process; + ours: the handler's import "
        "right after them, in the same\nprocess (its own code); best of the runs each."
    )
    for note in notes:
        print("  " + note)

    print()
    print(
        f"{'first invocation':<20}{'import':>8}{'+invoke':>9}{'= total':>9}"
        f"{'(median)':>10}  heavy modules: after import | after invocation"
    )
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        for sc in scenarios(Path(tmp), only):
            results = [invoke_once(sc, Path(tmp)) for _ in range(args.runs)]
            totals = [r["import_ms"] + r["invoke_ms"] for r in results]
            fastest = min(results, key=lambda r: r["import_ms"] + r["invoke_ms"])
            outcome = ""
            if fastest["status"] is not None:
                outcome = f" [HTTP {fastest['status']}]"
            if fastest["failures"]:
                outcome = f" [{fastest['failures']} record(s) failed]"
            print(
                f"{sc.label:<20}{fastest['import_ms']:>8.0f}{fastest['invoke_ms']:>9.0f}"
                f"{min(totals):>9.0f}{statistics.median(totals):>10.0f}  "
                f"{','.join(fastest['after_import']) or '-'} | "
                f"{','.join(fastest['after_invoke']) or '-'}{outcome}"
            )
    print("ingest: not invoked (its channels need the exchanges' network); import above.")
    print("* loaded by the moto set-up first: its import is not in '+invoke'.")


if __name__ == "__main__":
    main()
