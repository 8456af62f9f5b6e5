"""functions/signal_evaluator under moto: the SQS batch of events/signal_evaluator_batch.json
(four candles.closed records and one poison), real GOOG daily bars in a local candle store,
a standard `signals` queue with a DLQ (maxReceiveCount 3) and the FIFO `orders.fifo`.

Expected orders are derived here from pandas rolling means (not the library's SMA): the
position is the forward-filled SMA(10)/SMA(20) cross target times the config's quantity;
an order is the change of position on the announced bar.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
import sam_template as sam
from moto import mock_aws

from algotrendy.config import get_settings
from algotrendy.data import load_ohlcv
from algotrendy.domain.orders import OrderIntent, Side
from algotrendy.messaging import Envelope
from algotrendy.signals import CandlesClosed
from algotrendy.storage.local import LocalCandleStore

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "functions" / "signal_evaluator" / "app.py"
EVENT = ROOT / "events" / "signal_evaluator_batch.json"
GOOG = ROOT / "tests" / "fixtures" / "ohlcv" / "backtesting_GOOG_1d.csv"
REGION = "us-east-1"
MAX_RECEIVE = 3
QUANTITY = 5.0
NOW = datetime(2013, 3, 2, tzinfo=UTC)  # after every bar of the event
POISON_ID = "0b0e2c1a-5f3d-4c7e-9a61-000000000003"


def load_app() -> ModuleType:
    """app.py as a fresh module: module-level state (processor, cached clients) is new."""
    return sam.load_module_file(APP, "signal_evaluator")


class FakeContext:
    function_name = "algotrendy-signal-evaluator-dev"
    memory_limit_in_mb = 1024
    invoked_function_arn = (
        f"arn:aws:lambda:{REGION}:123456789012:function:algotrendy-signal-evaluator-dev"
    )
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    function_version = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def event() -> dict[str, Any]:
    data = json.loads(EVENT.read_text())
    assert isinstance(data, dict)
    return data


def expected_orders(frame: pd.DataFrame) -> dict[str, float]:
    """Signed order quantity per announced GOOG bar (ISO open time), from pandas."""
    close = frame["close"]
    f, s = close.rolling(10).mean(), close.rolling(20).mean()
    target = pd.Series(np.nan, index=close.index)
    target[(f.shift(1) > s.shift(1)) & (f < s)] = -1.0
    target[(f.shift(1) < s.shift(1)) & (f > s)] = 1.0
    pos = target.ffill().fillna(0.0) * QUANTITY
    out: dict[str, float] = {}
    for record in event()["Records"]:
        try:
            msg = CandlesClosed.from_envelope(Envelope.parse(record["body"]))
        except ValueError:
            continue  # the poison record
        if msg.symbol != "GOOG":
            continue
        i = close.index.get_loc(pd.Timestamp(msg.last_bar))
        assert isinstance(i, int)
        change = float(pos.iloc[i] - pos.iloc[i - 1])
        if change:
            out[msg.last_bar.isoformat()] = change
    return out


@dataclass
class Aws:
    sqs: Any
    signals_url: str
    dlq_url: str
    orders_url: str


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Aws]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    # Local candle store (data_dir) with real queues: the stage that allows a Parquet store.
    monkeypatch.setenv("ALGOTRENDY_STAGE", "local")
    monkeypatch.setenv("ALGOTRENDY_DATA_DIR", str(tmp_path))
    LocalCandleStore(tmp_path, fsync=False).write(load_ohlcv(GOOG), "nasdaq", "GOOG", "1d")
    configs = tmp_path / "strategies.json"
    configs.write_text(
        json.dumps(
            {
                "version": 1,
                "strategies": [
                    {
                        "id": "goog-sma-10-20",
                        "name": "GOOG SMA 10/20, long/short",
                        "strategy": "sma_cross",
                        "params": {"fast": 10, "slow": 20, "allow_short": True},
                        "exchange": "nasdaq",
                        "symbols": ["GOOG"],
                        "timeframe": "1d",
                        "account": "acct-1",
                        "quantity": QUANTITY,
                        "max_signal_age_bars": None,
                    },
                    {
                        "id": "goog-disabled",
                        "name": "disabled: must never trade",
                        "strategy": "sma_cross",
                        "params": {"fast": 2, "slow": 3},
                        "exchange": "nasdaq",
                        "symbols": ["GOOG"],
                        "timeframe": "1d",
                        "quantity": 100,
                        "enabled": False,
                        "max_signal_age_bars": None,
                    },
                ],
            }
        )
    )
    monkeypatch.setenv("ALGOTRENDY_STRATEGY_CONFIG_FILE", str(configs))
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName="algotrendy-signals-dlq-dev")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        signals_url = sqs.create_queue(
            QueueName="algotrendy-signals-dev",
            Attributes={
                "VisibilityTimeout": "60",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE)}
                ),
            },
        )["QueueUrl"]
        orders_url = sqs.create_queue(
            QueueName="algotrendy-orders-dev.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )["QueueUrl"]
        monkeypatch.setenv("ALGOTRENDY_ORDERS_QUEUE_URL", orders_url)
        monkeypatch.setenv("ALGOTRENDY_SIGNALS_QUEUE_URL", signals_url)
        get_settings.cache_clear()
        yield Aws(sqs, signals_url, dlq_url, orders_url)
    get_settings.cache_clear()


@pytest.fixture
def app(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_app()
    monkeypatch.setattr(module, "now", lambda: NOW)
    return module


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return out
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        out += got


def intents_on(sqs: Any, url: str) -> list[tuple[OrderIntent, dict[str, Any]]]:
    return [(Envelope.parse(m["Body"]).intent(), m) for m in drain(sqs, url)]


def signed(intent: OrderIntent) -> float:
    return intent.quantity if intent.side is Side.BUY else -intent.quantity


def test_batch_event_sends_expected_intents_once_and_reports_the_poison(
    app: ModuleType, aws: Aws
) -> None:
    expected = expected_orders(load_ohlcv(GOOG))
    assert len(expected) == 2  # the event announces two crossings and one quiet bar

    reply = app.handler(event(), FakeContext())
    assert reply == {"batchItemFailures": [{"itemIdentifier": POISON_ID}]}
    # Redelivery of the whole batch: same intent ids, dropped by orders.fifo.
    assert app.handler(event(), FakeContext()) == reply

    sent = intents_on(aws.sqs, aws.orders_url)
    got = {i.created_at.isoformat(): i for i, _ in sent}
    assert len(sent) == len(expected)
    for last_bar, change in expected.items():
        close = CandlesClosed.for_bars(
            "nasdaq", "GOOG", "1d", last_bar=datetime.fromisoformat(last_bar)
        )
        intent = got[close.close_time.isoformat()]
        assert signed(intent) == change  # a reversal: 2 x quantity
        assert intent.account == "acct-1"
        assert intent.strategy == "goog-sma-10-20"
        assert intent.source == "signal"
    for intent, message in sent:
        assert message["Attributes"]["MessageGroupId"] == "acct-1:GOOG"
        assert message["Attributes"]["MessageDeduplicationId"] == intent.intent_id
        assert message["MessageAttributes"]["type"]["StringValue"] == "order.intent"


def lambda_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event the SQS event source mapping builds from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def test_poison_reaches_the_dlq_after_max_receives_and_good_messages_run_once(
    app: ModuleType, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event source mapping by hand: receive, invoke, delete what succeeded; failed
    records come back (visibility timeout and retry backoff 0 here) until the redrive
    policy moves them."""
    from algotrendy.messaging import retry

    monkeypatch.setattr(retry, "RETRY_BASE_SECONDS", 0)
    bodies = [r["body"] for r in event()["Records"]]
    for body in bodies:
        aws.sqs.send_message(QueueUrl=aws.signals_url, MessageBody=body)
    arn = aws.sqs.get_queue_attributes(QueueUrl=aws.signals_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    deliveries: dict[str, int] = {}
    for _ in range(20):
        got = aws.sqs.receive_message(
            QueueUrl=aws.signals_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        for m in got:
            deliveries[m["Body"]] = deliveries.get(m["Body"], 0) + 1
        reply = app.handler(lambda_event(got, arn), FakeContext())
        failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
        for m in got:
            if m["MessageId"] not in failed:
                aws.sqs.delete_message(QueueUrl=aws.signals_url, ReceiptHandle=m["ReceiptHandle"])
    poison = bodies[2]
    assert deliveries.pop(poison) == MAX_RECEIVE
    assert sorted(deliveries.values()) == [1] * (len(bodies) - 1)
    assert [m["Body"] for m in drain(aws.sqs, aws.dlq_url)] == [poison]
    assert drain(aws.sqs, aws.signals_url) == []
    sent = intents_on(aws.sqs, aws.orders_url)
    assert sorted(signed(i) for i, _ in sent) == sorted(expected_orders(load_ohlcv(GOOG)).values())


def test_outside_local_a_missing_candle_store_fails_every_record(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALGOTRENDY_STAGE", "dev")
    monkeypatch.setenv("ALGOTRENDY_JWT_SECRET", "handler-tests-secret-0123456789abcdef")
    get_settings.cache_clear()
    module = load_app()
    records = event()["Records"]
    reply = module.handler(event(), FakeContext())
    assert [f["itemIdentifier"] for f in reply["batchItemFailures"]] == [
        r["messageId"] for r in records
    ]
    assert drain(aws.sqs, aws.orders_url) == []


def test_a_failed_record_comes_back_after_a_short_backoff_not_the_visibility_timeout(
    app: ModuleType, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue hides a received message for 60 s here (6 min deployed): a failed record
    must be visible again after its backoff (1 s, then 2 s here), the others not at all
    (deleted as the event source mapping does)."""
    import time

    from algotrendy.messaging import retry

    monkeypatch.setattr(retry, "RETRY_BASE_SECONDS", 1)
    bodies = [r["body"] for r in event()["Records"]]
    for body in bodies:
        aws.sqs.send_message(QueueUrl=aws.signals_url, MessageBody=body)
    arn = aws.sqs.get_queue_attributes(QueueUrl=aws.signals_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]

    def deliver() -> list[str]:
        got = aws.sqs.receive_message(
            QueueUrl=aws.signals_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        reply = app.handler(lambda_event(got, arn), FakeContext())
        failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
        for m in got:
            if m["MessageId"] not in failed:
                aws.sqs.delete_message(QueueUrl=aws.signals_url, ReceiptHandle=m["ReceiptHandle"])
        return [m["Body"] for m in got if m["MessageId"] in failed]

    assert deliver() == [bodies[2]]  # the poison record
    assert aws.sqs.receive_message(QueueUrl=aws.signals_url).get("Messages", []) == []
    time.sleep(1.3)
    again = aws.sqs.receive_message(
        QueueUrl=aws.signals_url, AttributeNames=["ApproximateReceiveCount"], VisibilityTimeout=0
    )["Messages"]
    assert [m["Body"] for m in again] == [bodies[2]]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_retry_backoff_doubles_up_to_its_cap() -> None:
    from algotrendy.messaging.retry import retry_delay_seconds

    assert [retry_delay_seconds(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert retry_delay_seconds(10_000) == 60  # no overflow on a huge receive count
