"""LazyClient: the API's AWS clients exist only once a route calls AWS."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from algotrendy.aws_clients import LazyClient


class _Client:
    def __init__(self, service: str) -> None:
        self.service = service
        self.calls: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(kwargs)
        return {"MessageId": str(len(self.calls))}


def test_builds_nothing_until_used_then_delegates_to_one_client() -> None:
    built: list[_Client] = []

    def factory(service: str) -> _Client:
        built.append(_Client(service))
        return built[-1]

    client = LazyClient("sqs", factory)
    assert built == []
    assert not client.built
    assert "not built yet" in repr(client)
    assert client.send_message(QueueUrl="q", MessageBody="a") == {"MessageId": "1"}
    assert client.send_message(QueueUrl="q", MessageBody="b") == {"MessageId": "2"}
    assert len(built) == 1
    assert built[0].service == "sqs"
    assert client.client() is built[0]
    assert client.built
    assert repr(client) == "LazyClient('sqs', built)"


def test_concurrent_first_calls_build_one_client() -> None:
    built: list[_Client] = []
    gate = threading.Barrier(8)

    def factory(service: str) -> _Client:
        built.append(_Client(service))
        return built[-1]

    client = LazyClient("stepfunctions", factory)

    def call() -> None:
        gate.wait()
        client.send_message(n=1)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert len(built[0].calls) == 8


def test_unknown_attributes_and_dunders_are_errors_not_builds() -> None:
    built: list[str] = []

    def factory(service: str) -> _Client:
        built.append(service)
        return _Client(service)

    client = LazyClient("ssm", factory)
    with pytest.raises(AttributeError):
        client.__deepcopy__  # noqa: B018  (copy/pickle probes must not build the client)
    assert built == []
    with pytest.raises(AttributeError):
        client.no_such_operation  # noqa: B018
    assert built == ["ssm"]  # the real client was asked, and it said no


def test_botocore_client_makes_the_calls_boto3_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain botocore client, from one session per process, region from the
    environment as boto3's; under moto it creates and reads a queue like boto3's."""
    import boto3
    from moto import mock_aws

    from algotrendy import aws_clients

    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(aws_clients, "_session", None)
    with mock_aws():
        sqs = aws_clients.botocore_client("sqs")
        assert sqs.meta.region_name == "eu-west-1"
        url = sqs.create_queue(QueueName="lazy")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        got = boto3.client("sqs", region_name="eu-west-1").receive_message(QueueUrl=url)
        assert [m["Body"] for m in got["Messages"]] == ["hello"]
        session = aws_clients._session
        aws_clients.botocore_client("s3")
        assert aws_clients._session is session  # one session per process
