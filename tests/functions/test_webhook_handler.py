"""functions/webhook: every events/webhook_*.json (API Gateway REST proxy events) through
the real handler under moto (SSM config document, DynamoDB idempotency table with TTL,
SQS FIFO orders queue), and the handler's import footprint."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import sam_template as sam
from moto import mock_aws

from algotrendy.config import get_settings
from algotrendy.messaging import Envelope

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "functions" / "webhook" / "app.py"
EVENTS = ROOT / "events"
TRADINGVIEW = ROOT / "tests" / "fixtures" / "tradingview"
REGION = "us-east-1"
TABLE = "algotrendy-idempotency-dev"
PARAMETER = "/algotrendy/dev/webhooks"
# Fixture 01 fired at 2020-09-06T01:44:17Z ({{timenow}}); the handler's clock is set 3 s
# later so the replay window accepts it, as it would have on the day.
RECEIVED_AT = datetime(2020, 9, 6, 1, 44, 20, tzinfo=UTC)

EXPECTED_STATUS = {
    "webhook_strategy_json": 200,
    "webhook_keyvalue_text": 200,
    "webhook_revoked_token": 404,
    "webhook_bad_passphrase": 401,
    "webhook_forbidden_source": 403,
    "webhook_template_body": 422,
    "webhook_stale_replay": 422,
}


def load_event(name: str) -> dict[str, Any]:
    data = json.loads((EVENTS / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


class FakeContext:
    function_name = "algotrendy-webhook-dev"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:algotrendy-webhook-dev"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    function_version = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 5000


def load_app() -> ModuleType:
    """app.py as a fresh module (module-level state, e.g. the cached service, is new)."""
    return sam.load_module_file(APP, "webhook")


@dataclass
class Deployed:
    app: ModuleType
    sqs: Any
    dynamodb: Any
    queue_url: str

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self.app.handler(event, FakeContext())
        return reply

    def messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300
            ).get("Messages", [])
            if not got:
                return out
            out.extend(json.loads(m["Body"]) for m in got)


def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for var in (
        "ALGOTRENDY_WEBHOOK_CONFIG_FILE",
        "ALGOTRENDY_TRADINGVIEW_ALLOWED_IPS",
        "POWERTOOLS_IDEMPOTENCY_DISABLED",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "webhook")
    monkeypatch.setenv("ALGOTRENDY_STAGE", "dev")
    monkeypatch.setenv("ALGOTRENDY_JWT_SECRET", "handler-tests-secret-0123456789abcdef")


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """The resources the SAM template gives the function, mocked, and its environment."""
    aws_environment(monkeypatch)
    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.put_parameter(
            Name=PARAMETER,
            Value=(TRADINGVIEW / "webhook_configs.json").read_text(),
            Type="SecureString",
        )
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=TABLE,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
        )
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(
            QueueName="algotrendy-orders-dev.fifo", Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        monkeypatch.setenv("ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER", PARAMETER)
        monkeypatch.setenv("ALGOTRENDY_IDEMPOTENCY_TABLE", TABLE)
        monkeypatch.setenv("ALGOTRENDY_ORDERS_QUEUE_URL", url)
        get_settings.cache_clear()
        app = load_app()
        monkeypatch.setattr(app, "now", lambda: RECEIVED_AT)
        yield Deployed(app, sqs, dynamodb, url)
    get_settings.cache_clear()


def test_every_webhook_event_has_an_expected_status() -> None:
    names = {p.stem for p in EVENTS.glob("webhook_*.json")}
    assert names == set(EXPECTED_STATUS)


def test_events_are_api_gateway_rest_proxy_events_with_fixture_bodies() -> None:
    for name in EXPECTED_STATUS:
        event = load_event(name)
        assert event["httpMethod"] == "POST"
        assert event["resource"] == "/webhooks/tradingview/{webhook_id}"
        assert event["path"] == f"/webhooks/tradingview/{event['pathParameters']['webhook_id']}"
        assert event["requestContext"]["identity"]["sourceIp"]
        assert event["isBase64Encoded"] is False
    # The accepted samples carry the real alert bodies verbatim.
    assert (
        load_event("webhook_strategy_json")["body"]
        == (TRADINGVIEW / "01_passphrase_bar_strategy.filled.json").read_text()
    )
    assert (
        load_event("webhook_keyvalue_text")["body"]
        == (TRADINGVIEW / "07_keyvalue_text_open.txt").read_text()
    )
    assert (
        load_event("webhook_template_body")["body"]
        == (TRADINGVIEW / "01_passphrase_bar_strategy.template.txt").read_text()
    )


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_event(deployed: Deployed, name: str) -> None:
    status = EXPECTED_STATUS[name]
    reply = deployed.invoke(load_event(name))
    assert reply["statusCode"] == status, reply["body"]
    body = json.loads(reply["body"])
    assert reply["headers"]["Cache-Control"] == "no-store"
    messages = deployed.messages()
    if status == 200:
        assert reply["headers"]["Content-Type"] == "application/json"
        [message] = messages
        intent = Envelope.model_validate(message).intent()
        assert body["intent_id"] == intent.intent_id
        assert intent.source == "webhook"
    else:
        assert reply["headers"]["Content-Type"] == "application/problem+json"
        assert body["status"] == status
        assert body["detail"]
        assert messages == []


def test_strategy_alert_intent(deployed: Deployed) -> None:
    alert = json.loads((TRADINGVIEW / "01_passphrase_bar_strategy.filled.json").read_text())
    deployed.invoke(load_event("webhook_strategy_json"))
    [message] = deployed.messages()
    intent = Envelope.model_validate(message).intent()
    # The config (tests/fixtures/tradingview/webhook_configs.json, doge-breakout) maps
    # BINANCE:DOGEUSDT -> DOGE/USDT and sizes by the strategy's contracts.
    assert (intent.account, intent.strategy, intent.symbol) == (
        "binance-main",
        "doge_breakout",
        "DOGE/USDT",
    )
    assert intent.side.value == alert["strategy"]["order_action"]
    assert intent.quantity == alert["strategy"]["order_contracts"]
    assert intent.created_at == RECEIVED_AT


def test_keyvalue_alert_intent(deployed: Deployed) -> None:
    deployed.invoke(load_event("webhook_keyvalue_text"))
    [message] = deployed.messages()
    intent = Envelope.model_validate(message).intent()
    assert (intent.account, intent.symbol, intent.side.value, intent.quantity) == (
        "okx-swap",
        "SOL/USDT:USDT",
        "buy",
        250.0,
    )


def test_same_event_twenty_times_concurrently(deployed: Deployed) -> None:
    event = load_event("webhook_strategy_json")
    deployed.app.service()  # build the adapters once, as the first request would
    start = threading.Barrier(20)

    def one(_: int) -> dict[str, Any]:
        start.wait()
        return deployed.invoke(json.loads(json.dumps(event)))

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(one, range(20)))
    assert [r["statusCode"] for r in replies] == [200] * 20
    # moto's DynamoDB conditional put is not atomic under threads (real DynamoDB's is), so
    # two racing "first" deliveries can both reach SQS, whose FIFO de-duplication then keeps
    # one message but hands each sender its own message id: compare replies without it.
    bodies = {json.dumps({k: v for k, v in json.loads(r["body"]).items() if k != "message_id"})
              for r in replies}  # fmt: skip
    assert len(bodies) == 1
    assert len(deployed.messages()) == 1
    other = load_event("webhook_keyvalue_text")
    assert deployed.invoke(other)["statusCode"] == 200
    assert len(deployed.messages()) == 1  # the second alert's message (the first was read)


def test_base64_body(deployed: Deployed) -> None:
    event = load_event("webhook_strategy_json")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert deployed.invoke(event)["statusCode"] == 200
    event["body"] = "%%% not base64 %%%"
    reply = deployed.invoke(event)
    assert reply["statusCode"] == 400
    assert "base64" in json.loads(reply["body"])["detail"]


def test_missing_path_parameter_is_404(deployed: Deployed) -> None:
    event = load_event("webhook_strategy_json")
    event["pathParameters"] = None
    assert deployed.invoke(event)["statusCode"] == 404


def test_missing_configuration_is_500_without_internals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws_environment(monkeypatch)
    monkeypatch.delenv("ALGOTRENDY_ORDERS_QUEUE_URL", raising=False)
    monkeypatch.delenv("ALGOTRENDY_IDEMPOTENCY_TABLE", raising=False)
    monkeypatch.setenv("ALGOTRENDY_WEBHOOK_CONFIG_FILE", str(TRADINGVIEW / "webhook_configs.json"))
    get_settings.cache_clear()
    try:
        with mock_aws():
            reply = load_app().handler(load_event("webhook_strategy_json"), FakeContext())
    finally:
        get_settings.cache_clear()
    assert reply["statusCode"] == 500
    body = json.loads(reply["body"])
    assert body["type"].endswith("/misconfigured")
    assert "ALGOTRENDY_" not in body["detail"]


def test_local_stage_runs_on_in_process_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    """`sam local` / laptop: no queue URL or table needed when the stage is local."""
    aws_environment(monkeypatch)
    monkeypatch.setenv("ALGOTRENDY_STAGE", "local")
    monkeypatch.delenv("ALGOTRENDY_ORDERS_QUEUE_URL", raising=False)
    monkeypatch.delenv("ALGOTRENDY_IDEMPOTENCY_TABLE", raising=False)
    monkeypatch.delenv("ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER", raising=False)
    monkeypatch.setenv("ALGOTRENDY_WEBHOOK_CONFIG_FILE", str(TRADINGVIEW / "webhook_configs.json"))
    get_settings.cache_clear()
    try:
        app = load_app()
        monkeypatch.setattr(app, "now", lambda: RECEIVED_AT)
        event = load_event("webhook_strategy_json")
        first = app.handler(event, FakeContext())
        second = app.handler(event, FakeContext())
        assert first["statusCode"] == second["statusCode"] == 200
        assert first["body"] == second["body"]
        assert len(app.service().queue) == 1
    finally:
        get_settings.cache_clear()


# ------------------------------------------------------------------------------ imports

_PROBE = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
print(json.dumps(sorted({m.partition(".")[0] for m in sys.modules})))
"""


def test_handler_imports_no_research_or_exchange_stack() -> None:
    """Cold start: the webhook must not drag numpy/pandas (research) or ccxt (exchanges)
    in through the core package."""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": str(ROOT / "shared"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(APP)],
        capture_output=True,
        text=True,
        env=env,
        cwd=APP.parent,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = set(json.loads(proc.stdout.splitlines()[-1]))
    assert "algotrendy" in modules
    assert "aws_lambda_powertools" in modules
    heavy = {"numpy", "pandas", "ccxt", "numba", "pyarrow", "sqlalchemy", "fastapi", "talib"}
    assert modules & heavy == set()
