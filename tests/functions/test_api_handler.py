"""functions/api/app.py:handler invoked with each events/api_*.json (API Gateway REST proxy
events), as Lambda would: environment as in aws (stage dev, SQS orders queue under moto,
the bootstrap admin from settings), the database migrated beforehand (a deployment step
outside the local stage)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from algotrendy.config import get_settings
from algotrendy.messaging.envelope import Envelope
from algotrendy.storage.relational import create_db_engine, upgrade_database

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
ADMIN_PASSWORD = "admin-bootstrap-password"


class Context:
    function_name = "algotrendy-api-dev"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:algotrendy-api-dev"
    memory_limit_in_mb = 1024
    aws_request_id = "lambda-request-1"
    log_group_name = "/aws/lambda/algotrendy-api-dev"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return data


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db = create_db_engine(url)
    upgrade_database(db)
    db.dispose()
    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(
            QueueName="algotrendy-orders-dev.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )["QueueUrl"]
        values = {
            "ALGOTRENDY_STAGE": "dev",
            "ALGOTRENDY_JWT_SECRET": "api-handler-tests-secret-0123456789ab",
            "ALGOTRENDY_DATABASE_URL": url,
            "ALGOTRENDY_ORDERS_QUEUE_URL": queue_url,
            "ALGOTRENDY_ADMIN_USERNAME": "admin",
            "ALGOTRENDY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ALGOTRENDY_DATA_DIR": str(tmp_path / "data"),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_SERVICE_NAME": "api",
        }
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        yield sqs, queue_url
        get_settings.cache_clear()


@pytest.fixture
def handler(env: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function module loaded fresh (its app is built at import, as in a cold start)."""
    spec = importlib.util.spec_from_file_location("api_function_app", ROOT / "functions/api/app.py")
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def call(evt: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = module.handler(evt, Context())
        return reply

    return call


def _json(reply: dict[str, Any]) -> Any:
    return json.loads(reply["body"])


def _headers(reply: dict[str, Any]) -> dict[str, str]:
    merged = {k.lower(): v for k, v in (reply.get("headers") or {}).items()}
    for k, vs in (reply.get("multiValueHeaders") or {}).items():
        merged[k.lower()] = vs[-1]
    return merged


def _login(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    reply = handler(event("api_login"))
    assert reply["statusCode"] == 200, reply["body"]
    token: str = _json(reply)["access_token"]
    return token


def _with_token(evt: dict[str, Any], token: str) -> dict[str, Any]:
    evt["headers"]["Authorization"] = f"Bearer {token}"
    evt["multiValueHeaders"]["Authorization"] = [f"Bearer {token}"]
    return evt


def test_every_api_event_parses() -> None:
    names = sorted(p.stem for p in EVENTS.glob("api_*.json"))
    assert names == [
        "api_health",
        "api_list_orders",
        "api_login",
        "api_place_order",
        "api_unauthorized",
    ]
    for name in names:
        evt = event(name)
        assert evt["requestContext"]["requestId"]
        assert evt["resource"] == "/{proxy+}"


def test_health(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    reply = handler(event("api_health"))
    assert reply["statusCode"] == 200
    body = _json(reply)
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["orders_queue"] == "algotrendy-orders-dev.fifo"
    # No Step Functions ARN outside local: backtests are off, not run in a frozen Lambda.
    assert body["checks"]["backtests"] == "absent"
    # API Gateway's request id is the request id.
    assert _headers(reply)["x-request-id"] == "11111111-1111-4111-8111-111111111111"


def test_login_with_the_bootstrap_admin(
    handler: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    token = _login(handler)
    assert token.count(".") == 2


def test_unauthorized_is_a_problem(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    reply = handler(event("api_unauthorized"))
    assert reply["statusCode"] == 401
    assert _headers(reply)["content-type"] == "application/problem+json"
    assert reply["isBase64Encoded"] is False
    body = _json(reply)
    assert body["request_id"] == "55555555-5555-4555-8555-555555555555"
    assert body["instance"] == "/positions"


def test_placed_order_lands_on_sqs(
    handler: Callable[[dict[str, Any]], dict[str, Any]], env: Any
) -> None:
    sqs, queue_url = env
    token = _login(handler)
    reply = handler(_with_token(event("api_place_order"), token))
    assert reply["statusCode"] == 202, reply["body"]
    accepted = _json(reply)
    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"]
    )["Messages"]
    assert len(messages) == 1
    intent = Envelope.parse(messages[0]["Body"]).intent()
    assert intent.intent_id == "evt-order-000001" == accepted["intent_id"]
    assert intent.client_order_id == accepted["client_order_id"]
    assert messages[0]["Attributes"]["MessageGroupId"] == "default:BTC/USDT"
    listed = handler(_with_token(event("api_list_orders"), token))
    assert listed["statusCode"] == 200
    assert _json(listed) == []  # queued, not yet taken by the engine
