"""Exactly-once under moto: Powertools Idempotency on DynamoDB (the table template.yaml
declares: partition key `id`, TTL attribute `expiration`) plus the SQS FIFO de-duplication
id. The same alert delivered 20 times at once is one message and 20 successful replies."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from webhook_helpers import (
    FIXTURE_01_NOW,
    TOKEN,
    TRADINGVIEW_IP,
    fixture_json,
    fixture_text,
    make_config,
    passphrase_hash,
)

from algotrendy.messaging import Envelope
from algotrendy.messaging.sqs import SqsQueue
from algotrendy.webhooks import InMemoryWebhookConfigStore, WebhookService
from algotrendy.webhooks.dynamodb import KEY_PREFIX, DynamoDbIdempotency
from algotrendy.webhooks.idempotency import DuplicateInFlightError

REGION = "us-east-1"
TABLE = "algotrendy-idempotency-dev"
DOGE = "01_passphrase_bar_strategy.filled.json"


class LambdaContextStub:
    """What Powertools reads from the Lambda context: the time left in the invocation."""

    def __init__(self, remaining_ms: int = 5000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def create_idempotency_table(dynamodb: Any, name: str = TABLE) -> None:
    """As template.yaml declares it (Powertools' documented layout)."""
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )


def create_orders_queue(sqs: Any, name: str = "algotrendy-orders-dev.fifo") -> str:
    url: str = sqs.create_queue(
        QueueName=name, Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"}
    )["QueueUrl"]
    return url


@dataclass
class Aws:
    dynamodb: Any
    sqs: Any
    queue: SqsQueue
    idempotency: DynamoDbIdempotency
    service: WebhookService

    def all_messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while batch := self.queue.receive(max_messages=10, visibility_timeout=300):
            out.extend(json.loads(m.body) for m in batch)
        return out

    def records(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.dynamodb.scan(TableName=TABLE)["Items"]
        return items


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        create_idempotency_table(dynamodb)
        queue = SqsQueue(sqs, create_orders_queue(sqs))
        idempotency = DynamoDbIdempotency(TABLE, client=dynamodb, expires_after_seconds=3600)
        idempotency.register_lambda_context(LambdaContextStub())
        config = make_config(
            passphrase_hash=passphrase_hash(fixture_json(DOGE)["passphrase"]),
            timenow_field="time",
        )
        service = WebhookService(InMemoryWebhookConfigStore([config]), queue, idempotency)
        yield Aws(dynamodb, sqs, queue, idempotency, service)


def deliver(aws: Aws, body: str) -> Any:
    return aws.service.handle_alert(TOKEN, body, TRADINGVIEW_IP, FIXTURE_01_NOW)


def test_twenty_concurrent_deliveries_are_one_message(aws: Aws) -> None:
    body = fixture_text(DOGE)
    start = threading.Barrier(20)
    sends: list[str] = []
    real_send = aws.queue.send

    def counting_send(*args: Any, **kwargs: Any) -> str:
        sends.append(kwargs.get("dedup_id") or "")
        return real_send(*args, **kwargs)

    aws.queue.send = counting_send  # type: ignore[method-assign]

    def one(_: int) -> Any:
        start.wait()
        return deliver(aws, body)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))

    assert [r.status for r in results] == [200] * 20, [r.body for r in results]
    # Every duplicate got the first delivery's reply. Under moto two racing "first"
    # deliveries can both send (its conditional put is not atomic; DynamoDB's is) and SQS
    # FIFO de-duplication then hands each its own message id: compare without it.
    replies = {
        json.dumps({k: v for k, v in r.body.items() if k != "message_id"}, sort_keys=True)
        for r in results
    }
    assert len(replies) == 1
    [message] = aws.all_messages()
    intent = Envelope.model_validate(message).intent()
    assert intent.intent_id == results[0].body["intent_id"]
    # Every send that happened carried the intent id as FIFO de-duplication id. How many
    # sends happened is not asserted: moto checks a DynamoDB condition and writes without a
    # lock, so two threads may both pass it (real DynamoDB conditional writes are atomic).
    # That the record alone stops a duplicate send is asserted in the sequential tests.
    assert sends
    assert set(sends) == {intent.intent_id}
    [record] = aws.records()
    digest = hashlib.sha256(json.dumps(intent.intent_id).encode()).hexdigest()
    assert record["id"]["S"] == f"{KEY_PREFIX}#{digest}"
    assert record["status"]["S"] == "COMPLETED"
    stored = json.loads(record["data"]["S"])
    assert stored in [r.body for r in results]  # the reply stored is one that was given
    assert int(record["expiration"]["N"]) == pytest.approx(time.time() + 3600, abs=120)


def test_a_different_alert_is_a_second_message(aws: Aws) -> None:
    raw = fixture_json(DOGE)
    sends: list[str] = []
    real_send = aws.queue.send

    def counting_send(*args: Any, **kwargs: Any) -> str:
        sends.append(kwargs["dedup_id"])
        return real_send(*args, **kwargs)

    aws.queue.send = counting_send  # type: ignore[method-assign]
    first = deliver(aws, json.dumps(raw))
    second = deliver(aws, json.dumps({**raw, "time": "2020-09-06T01:44:19Z"}))
    again = deliver(aws, json.dumps(raw))
    assert (first.status, second.status, again.status) == (200, 200, 200)
    assert first.body["intent_id"] != second.body["intent_id"]
    assert again.body == first.body
    # The repeat was answered from its idempotency record: no third send.
    assert sends == [first.body["intent_id"], second.body["intent_id"]]
    intents = [Envelope.model_validate(m).intent().intent_id for m in aws.all_messages()]
    assert sorted(intents) == sorted([first.body["intent_id"], second.body["intent_id"]])
    assert len(aws.records()) == 2


def test_fifo_deduplication_is_the_second_guard(aws: Aws) -> None:
    """If the idempotency record is lost (e.g. deleted after the send), SQS still drops the
    resend for 5 minutes because the de-duplication id is the intent id."""
    body = fixture_text(DOGE)
    assert deliver(aws, body).status == 200
    for item in aws.records():
        aws.dynamodb.delete_item(TableName=TABLE, Key={"id": item["id"]})
    assert deliver(aws, body).status == 200
    assert len(aws.all_messages()) == 1


def test_failed_send_releases_the_record_and_the_resend_goes_through(aws: Aws) -> None:
    real_send = aws.queue.send
    calls = {"n": 0}

    def failing_once(*args: Any, **kwargs: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise aws.sqs.exceptions.QueueDoesNotExist(
                {"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue"}}, "SendMessage"
            )
        return real_send(*args, **kwargs)

    aws.queue.send = failing_once  # type: ignore[method-assign]
    body = fixture_text(DOGE)
    failed = deliver(aws, body)
    assert failed.status == 503
    assert aws.records() == []  # Powertools deleted the INPROGRESS record
    assert deliver(aws, body).status == 200
    assert len(aws.all_messages()) == 1


def test_in_progress_duplicate_waits_then_gets_the_reply(aws: Aws) -> None:
    """A duplicate arriving while the first delivery is between its record and its send
    polls (Powertools raises IdempotencyAlreadyInProgressError meanwhile)."""
    entered, release = threading.Event(), threading.Event()
    real_send = aws.queue.send

    def slow_send(*args: Any, **kwargs: Any) -> str:
        entered.set()
        release.wait(5)
        return real_send(*args, **kwargs)

    aws.queue.send = slow_send  # type: ignore[method-assign]
    body = fixture_text(DOGE)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(deliver, aws, body)
        assert entered.wait(5)
        second = pool.submit(deliver, aws, body)
        time.sleep(0.2)  # the duplicate is polling now
        assert not second.done()
        release.set()
        a, b = first.result(timeout=10), second.result(timeout=10)
    assert a.status == b.status == 200
    assert a.body == b.body
    assert len(aws.all_messages()) == 1


def test_in_progress_past_the_wait_raises_duplicate_in_flight(aws: Aws) -> None:
    aws.idempotency.wait_seconds = 0.1
    entered, release = threading.Event(), threading.Event()

    def blocked() -> dict[str, Any]:
        entered.set()
        release.wait(5)
        return {"status": "accepted"}

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(aws.idempotency.run_once, "tv-" + "a" * 40, blocked)
        assert entered.wait(5)
        with pytest.raises(DuplicateInFlightError):
            aws.idempotency.run_once("tv-" + "a" * 40, blocked)
        release.set()
        assert first.result(timeout=5) == {"status": "accepted"}


@pytest.mark.parametrize(("deadline_offset", "status"), [(-1.0, 200), (60.0, 503)])
def test_in_progress_record_blocks_only_until_its_invocations_deadline(
    aws: Aws, deadline_offset: float, status: int
) -> None:
    """An invocation that died between its record and its reply leaves INPROGRESS behind.
    With the Lambda context registered the record carries that invocation's deadline:
    past it, a resend processes the alert; before it, the resend waits, then gets 503
    (TradingView resends again) instead of a second order."""
    body = fixture_text(DOGE)
    assert deliver(aws, body).status == 200
    [record] = aws.records()
    assert "in_progress_expiration" in record  # written because the context is registered
    aws.idempotency.wait_seconds = 0.2
    aws.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "id": record["id"],
            "expiration": record["expiration"],
            "status": {"S": "INPROGRESS"},
            "in_progress_expiration": {"N": str(int((time.time() + deadline_offset) * 1000))},
        },
    )
    result = deliver(aws, body)
    assert result.status == status, result.body
    [after] = aws.records()
    assert after["status"]["S"] == ("COMPLETED" if status == 200 else "INPROGRESS")
    assert len(aws.all_messages()) == 1  # and the FIFO id held the resend's send


def test_missing_table_is_a_transient_503(aws: Aws) -> None:
    aws.dynamodb.delete_table(TableName=TABLE)
    result = deliver(aws, fixture_text(DOGE))
    assert result.status == 503
    assert result.body["type"].endswith("/unavailable")
    assert aws.all_messages() == []


def test_record_layout_matches_make_config_defaults() -> None:
    """The adapter's attribute names are the table's (key `id`, TTL `expiration`)."""
    with mock_aws():
        layer = DynamoDbIdempotency(
            TABLE, client=boto3.client("dynamodb", region_name=REGION)
        ).persistence
    assert (layer.key_attr, layer.expiry_attr, layer.table_name) == ("id", "expiration", TABLE)
