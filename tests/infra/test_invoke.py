"""scripts/invoke.py (`make invoke`): a built function's handler run the way Lambda imports
it. Most tests use a small fake build (template + code + one layer) so they need no
`sam build`; the slow one runs the real webhook from `.aws-sam/build`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sam_template as sam

INVOKE = sam.ROOT / "scripts" / "invoke.py"

FAKE_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
Globals:
  Function:
    Timeout: 3
    MemorySize: 256
    Environment:
      Variables:
        ALGOTRENDY_STAGE: !Ref Stage
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub algotrendy-orders-${Stage}.fifo
  ToolLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: ToolLayer
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub fake-${Stage}
      CodeUri: Fn
      Handler: app.handler
      Runtime: python3.11
      Layers:
        - !Ref ToolLayer
      Environment:
        Variables:
          ALGOTRENDY_ORDERS_QUEUE_URL: !GetAtt Queue.QueueUrl
          SECRET: "{{resolve:secretsmanager:algotrendy/dev/jwt:SecretString:secret}}"
"""

FAKE_APP = """
import os, sys, time, importlib

def handler(event, context):
    if event.get("import"):
        importlib.import_module(event["import"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("asked to fail")
    import tool
    return {
        "tool": tool.NAME,
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("ALGOTRENDY_", "AWS_LAMBDA_", "SECRET", "EXTRA"))},
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "path0": sys.path[0],
        "site_packages": [p for p in sys.path if "site-packages" in p],
    }
"""


@pytest.fixture
def build(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(FAKE_TEMPLATE)
    (tmp_path / "Fn").mkdir()
    (tmp_path / "Fn" / "app.py").write_text(textwrap.dedent(FAKE_APP))
    (tmp_path / "ToolLayer" / "python").mkdir(parents=True)
    (tmp_path / "ToolLayer" / "python" / "tool.py").write_text('NAME = "from the layer"\n')
    return tmp_path


def run(build: Path, event: dict[str, Any], *extra: str) -> tuple[int, Any, str]:
    event_file = build / "event.json"
    event_file.write_text(json.dumps(event))
    proc = subprocess.run(
        [
            sys.executable,
            str(INVOKE),
            "Fn",
            "--event",
            str(event_file),
            "--build-dir",
            str(build),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, result, proc.stderr


def test_handler_runs_with_code_and_layer_and_resolved_environment(build: Path) -> None:
    status, result, _ = run(build, {})
    assert status == 0
    assert result["tool"] == "from the layer"
    assert result["path0"] == str((build / "Fn").resolve())
    assert result["site_packages"] == [], "the caller's site-packages leaked into the handler"
    env = result["env"]
    assert env["ALGOTRENDY_STAGE"] == "dev"
    assert env["ALGOTRENDY_ORDERS_QUEUE_URL"] == (
        f"https://sqs.us-east-1.amazonaws.com/{sam.ACCOUNT_ID}/algotrendy-orders-dev.fifo"
    )
    assert env["SECRET"].startswith("{{resolve:secretsmanager:")
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fake-dev" == result["function_name"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256" == result["memory"]
    assert 0 < result["remaining_ms"] <= 3000


def test_a_module_only_in_the_callers_venv_is_not_importable(build: Path) -> None:
    """hypothesis is installed in the test venv but in no layer: Lambda would fail."""
    status, result, stderr = run(build, {"import": "hypothesis"})
    assert status == 1
    assert result["errorType"] == "ModuleNotFoundError"
    assert "hypothesis" in result["errorMessage"]
    assert "Traceback" in stderr


def test_an_exception_gives_lambdas_error_shape_and_status_1(build: Path) -> None:
    status, result, _ = run(build, {"fail": True})
    assert status == 1
    assert result["errorType"] == "ValueError"
    assert result["errorMessage"] == "asked to fail"
    assert result["stackTrace"]


def test_the_timeout_stops_the_handler(build: Path) -> None:
    status, result, _ = run(build, {"sleep": 10})
    assert status == 1
    assert result["errorType"] == "TimeoutError"
    assert "timed out after 3.00 seconds" in result["errorMessage"]


def test_env_vars_file_overrides_adds_and_unsets(build: Path) -> None:
    env_file = build / "env.json"
    env_file.write_text(
        json.dumps(
            {
                "Parameters": {"ALGOTRENDY_STAGE": "local"},
                "Fn": {"EXTRA_VAR": "added", "SECRET": None},
                "OtherFunction": {"ALGOTRENDY_STAGE": "prod"},
            }
        )
    )
    status, result, _ = run(build, {}, "--env-vars", str(env_file))
    assert status == 0
    assert result["env"]["ALGOTRENDY_STAGE"] == "local"
    assert result["env"]["EXTRA_VAR"] == "added"
    assert "SECRET" not in result["env"]


def test_parameter_overrides_reach_the_environment(build: Path) -> None:
    status, result, _ = run(build, {}, "--parameter-overrides", "Stage=prod")
    assert status == 0
    assert result["env"]["ALGOTRENDY_STAGE"] == "prod"
    assert result["env"]["ALGOTRENDY_ORDERS_QUEUE_URL"].endswith("/algotrendy-orders-prod.fifo")


def test_unknown_function_and_missing_build_are_one_line_errors(build: Path) -> None:
    event = build / "event.json"
    event.write_text("{}")
    proc = subprocess.run(
        [sys.executable, str(INVOKE), "Nope", "--event", str(event), "--build-dir", str(build)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "invoke: 'Nope' is not a function of the template: Fn"
    proc = subprocess.run(
        [
            sys.executable,
            str(INVOKE),
            "Fn",
            "--event",
            str(event),
            "--build-dir",
            str(build / "missing"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "run `make sam-build`" in proc.stderr


BUILT = sam.ROOT / ".aws-sam" / "build"


@pytest.mark.slow
@pytest.mark.skipif(
    not (BUILT / "WebhookFunction" / "app.py").is_file(),
    reason="needs `make sam-build` (sam build of the zip functions and layers)",
)
def test_real_webhook_accepts_a_fresh_alert_from_its_built_layers(tmp_path: Path) -> None:
    """The built WebhookFunction with only CoreLayer + BaseLayer on its path (no venv):
    a fresh TradingView alert against the fixture configs is accepted (200, intent id),
    in the local stage (in-process queue and idempotency; no AWS call)."""
    event = json.loads((sam.EVENTS / "webhook_strategy_json.json").read_text())
    body = json.loads(event["body"])
    body["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event["body"] = json.dumps(body)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    configs = sam.ROOT / "tests" / "fixtures" / "tradingview" / "webhook_configs.json"
    env_file = tmp_path / "env.json"
    env_file.write_text(
        json.dumps(
            {
                "WebhookFunction": {
                    "ALGOTRENDY_STAGE": "local",
                    "ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER": None,
                    "ALGOTRENDY_WEBHOOK_CONFIG_FILE": str(configs),
                    "ALGOTRENDY_ORDERS_QUEUE_URL": None,
                    "ALGOTRENDY_IDEMPOTENCY_TABLE": None,
                }
            }
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(INVOKE),
            "WebhookFunction",
            "--event",
            str(event_file),
            "--build-dir",
            str(BUILT),
            "--env-vars",
            str(env_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    reply = json.loads(proc.stdout)
    assert reply["statusCode"] == 200, reply
    assert json.loads(reply["body"])["intent_id"]
