"""One contract for both queue adapters: the in-process queue and SQS (under moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from algotrendy.messaging import InMemoryQueue, Queue, QueueError
from algotrendy.messaging.sqs import SqsQueue


@pytest.fixture(params=["memory", "sqs"])
def make_queue(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.param == "memory":

        def build(name: str, max_receive: int = 3) -> Queue:
            dlq = InMemoryQueue(
                name.replace(".fifo", "-dlq") + (".fifo" if ".fifo" in name else "")
            )
            return InMemoryQueue(name, max_receive_count=max_receive, dead_letter=dlq)

        yield build
        return
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")

        def build_sqs(name: str, max_receive: int = 3) -> Queue:
            fifo = name.endswith(".fifo")
            attrs = {"FifoQueue": "true"} if fifo else {}
            dlq_name = name.replace(".fifo", "") + "-dlq" + (".fifo" if fifo else "")
            dlq_url = client.create_queue(QueueName=dlq_name, Attributes=attrs)["QueueUrl"]
            dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
            url = client.create_queue(
                QueueName=name, Attributes={**attrs, "RedrivePolicy": redrive}
            )["QueueUrl"]
            return SqsQueue(client, url)

        yield build_sqs


def test_send_receive_delete(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue("signals")
    q.send("hello", attributes={"type": "t"})
    [m] = q.receive(max_messages=10, wait_seconds=0)
    assert m.body == "hello"
    assert m.receive_count == 1
    assert m.attributes["type"] == "t"
    q.delete(m)
    assert q.receive(max_messages=10, visibility_timeout=0) == []


def test_undeleted_message_comes_back(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue("signals")
    q.send("work")
    [first] = q.receive(visibility_timeout=0)
    [again] = q.receive(visibility_timeout=0)
    assert again.body == "work"
    assert again.receive_count == 2
    assert first.message_id == again.message_id


def test_invisible_while_in_flight(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue("signals")
    q.send("work")
    assert len(q.receive(visibility_timeout=60)) == 1
    assert q.receive(visibility_timeout=60) == []


def test_release_makes_visible_again(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue("signals")
    q.send("work")
    [m] = q.receive(visibility_timeout=60)
    q.release(m)
    [again] = q.receive(visibility_timeout=60)
    assert again.body == "work"


def test_fifo_dedup_and_group_order(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue("orders.fifo")
    assert q.fifo
    q.send("a1", group_id="acct:BTC", dedup_id="i-1")
    q.send("a1", group_id="acct:BTC", dedup_id="i-1")  # duplicate: accepted, then dropped
    q.send("a2", group_id="acct:BTC", dedup_id="i-2")
    q.send("b1", group_id="acct:ETH", dedup_id="i-3")
    [head] = q.receive(max_messages=1, visibility_timeout=60)
    assert head.body == "a1"
    # While a1 is in flight its group is blocked; the other group still flows.
    [other] = q.receive(max_messages=10, visibility_timeout=60)
    assert other.body == "b1"
    q.delete(head)
    q.delete(other)
    [nxt] = q.receive(max_messages=10, visibility_timeout=60)
    assert nxt.body == "a2"
    assert nxt.group_id == "acct:BTC"
    q.delete(nxt)
    assert q.receive(max_messages=10, visibility_timeout=0) == []


def test_fifo_batch_keeps_group_order(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue("orders.fifo")
    for i in range(4):
        q.send(f"m{i}", group_id="g", dedup_id=f"d{i}")
    bodies: list[str] = []
    while got := q.receive(max_messages=10, visibility_timeout=60):
        bodies += [m.body for m in got]
        for m in got:
            q.delete(m)
    assert bodies == ["m0", "m1", "m2", "m3"]


def test_fifo_requires_group(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue("orders.fifo")
    with pytest.raises(QueueError, match="message group id"):
        q.send("x", dedup_id="d")


def test_poison_message_reaches_dead_letter_queue() -> None:
    dlq = InMemoryQueue("signals-dlq")
    q = InMemoryQueue("signals", max_receive_count=2, dead_letter=dlq)
    q.send("poison")
    assert len(q.receive(visibility_timeout=0)) == 1
    assert len(q.receive(visibility_timeout=0)) == 1
    assert q.receive(visibility_timeout=0) == []
    assert dlq.bodies() == ["poison"]
    assert len(q) == 0


def test_sqs_poison_message_reaches_dead_letter_queue() -> None:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        dlq_url = client.create_queue(QueueName="signals-dlq")["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        url = client.create_queue(
            QueueName="signals",
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
            },
        )["QueueUrl"]
        q, dead = SqsQueue(client, url), SqsQueue(client, dlq_url)
        q.send("poison")
        for _ in range(2):
            assert len(q.receive(visibility_timeout=0)) == 1
        assert q.receive(visibility_timeout=0) == []
        assert [m.body for m in dead.receive()] == ["poison"]


def test_long_poll_wakes_on_send() -> None:
    import threading

    q = InMemoryQueue("signals")
    threading.Timer(0.05, lambda: q.send("late")).start()
    got = q.receive(wait_seconds=2.0)
    assert [m.body for m in got] == ["late"]
