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
