from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from algotrendy.auth import Role, issue_token
from algotrendy.stream.app import create_stream_app
from algotrendy.stream.hub import HubPublisher, StreamHub

SECRET = "k" * 40


@pytest.fixture
def hub() -> StreamHub:
    return StreamHub()


@pytest.fixture
def client(hub: StreamHub) -> TestClient:
    return TestClient(create_stream_app(hub, secret=SECRET))


def token() -> str:
    return issue_token("alice", Role.VIEWER, secret=SECRET)


def test_websocket_receives_filtered_events(client: TestClient, hub: StreamHub) -> None:
    with (
        client,
        client.websocket_connect(f"/stream?topics=orders&symbols=BTC/USDT&token={token()}") as ws,
    ):
        publisher = HubPublisher(hub)  # what the engine thread uses locally
        publisher.publish("orders", {"symbol": "ETH/USDT", "n": 1})
        publisher.publish("orders", {"symbol": "BTC/USDT", "n": 2})
        msg = json.loads(ws.receive_text())
        assert msg == {"topic": "orders", "data": {"symbol": "BTC/USDT", "n": 2}}


def test_websocket_without_valid_token_closed_4401(client: TestClient) -> None:
    with (
        client,
        pytest.raises(WebSocketDisconnect) as err,
        client.websocket_connect("/stream?token=garbage") as ws,
    ):
        ws.receive_text()
    assert err.value.code == 4401


def test_websocket_bad_topic_closed_4400(client: TestClient) -> None:
    with (
        client,
        pytest.raises(WebSocketDisconnect) as err,
        client.websocket_connect(f"/stream?topics=nope&token={token()}") as ws,
    ):
        ws.receive_text()
    assert err.value.code == 4400
    assert "unknown topic" in err.value.reason


def test_sse_stream(client: TestClient, hub: StreamHub) -> None:
    with client:
        hub.publish("alerts", {"message": "early"})  # before connecting: not replayed
        with client.stream(
            "GET", "/sse?topics=alerts&limit=1",
            headers={"Authorization": f"Bearer {token()}"},
        ) as resp:  # fmt: skip
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = (line for line in resp.iter_lines() if line)
            assert next(lines) == ": connected"
            HubPublisher(hub).publish("alerts", {"message": "kill switch on"})
            body = [next(lines), next(lines)]
    assert body == ["event: alerts", 'data: {"message": "kill switch on"}']


def test_sse_unauthorised_is_problem_json(client: TestClient) -> None:
    resp = client.get("/sse")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"] == "missing token"


def test_health_and_metrics(client: TestClient) -> None:
    with client:
        assert client.get("/health").json() == {"status": "ok", "stream_clients": 0}
        text = client.get("/metrics").text
        assert "algotrendy_stream_clients" in text
