from __future__ import annotations

import hashlib

from api_helpers import Session, assert_problem
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.strategies import get_strategy


def _create(client: TestClient, who: Session, **body: object) -> dict[str, object]:
    payload = {
        "name": "sma-btc",
        "strategy_type": "sma_cross",
        "params": {"fast": 5},
        "symbols": ["BTC/USDT"],
        **body,
    }
    reply = client.post("/strategies", json=payload, headers=who.headers)
    assert reply.status_code == 201, reply.text
    data: dict[str, object] = reply.json()
    return data


def test_types_list_declared_parameters(client: TestClient, viewer: Session) -> None:
    types = {t["name"]: t for t in client.get("/strategies/types", headers=viewer.headers).json()}
    assert types["sma_cross"]["params"] == get_strategy("sma_cross").param_ranges()


def test_create_stores_normalised_params(client: TestClient, trader: Session) -> None:
    created = _create(client, trader)
    # Defaults filled in by the strategy's own Params model.
    assert created["params"] == {"fast": 5, "slow": 20, "allow_short": True}
    assert created["webhook"] is False
    got = client.get(f"/strategies/{created['id']}", headers=trader.headers).json()
    assert got == created


def test_params_are_validated_against_declared_ranges(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/strategies",
        headers=trader.headers,
        json={"name": "bad", "strategy_type": "sma_cross", "params": {"fast": 1, "speed": 3}},
    )
    body = assert_problem(reply, 422, "validation")
    fields = {e["field"]: e["detail"] for e in body["errors"]}
    assert set(fields) == {"params.fast", "params.speed"}
    assert "greater than or equal to 2" in fields["params.fast"]
    assert fields["params.speed"] == "unknown parameter"
    # A cross-field rule of the strategy (fast must be below slow) is a params error too.
    reply = client.post(
        "/strategies",
        headers=trader.headers,
        json={"name": "bad2", "strategy_type": "sma_cross", "params": {"fast": 30, "slow": 20}},
    )
    assert "fast (30) must be below slow (20)" in assert_problem(reply, 422)["detail"]


def test_unknown_type_and_duplicate_name(client: TestClient, trader: Session) -> None:
    reply = client.post(
        "/strategies", headers=trader.headers, json={"name": "x", "strategy_type": "moon"}
    )
    body = assert_problem(reply, 422)
    assert body["errors"][0]["field"] == "strategy_type"
    assert "unknown strategy 'moon'" in body["detail"]
    _create(client, trader)
    dup = client.post(
        "/strategies", headers=trader.headers, json={"name": "sma-btc", "strategy_type": "momentum"}
    )
    assert_problem(dup, 409, "conflict")


def test_update_and_delete(client: TestClient, trader: Session, viewer: Session) -> None:
    created = _create(client, trader)
    url = f"/strategies/{created['id']}"
    patched = client.patch(
        url, json={"enabled": True, "params": {"fast": 8, "slow": 40}}, headers=trader.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is True
    assert patched.json()["params"]["slow"] == 40
    assert_problem(client.patch(url, json={"symbols": ["A", "A"]}, headers=trader.headers), 422)
    assert_problem(client.delete(url, headers=viewer.headers), 403)
    assert client.delete(url, headers=trader.headers).status_code == 204
    assert_problem(client.get(url, headers=trader.headers), 404, "not-found")


def test_webhook_token_is_returned_once_and_stored_hashed(
    client: TestClient, ctx: ApiContext, trader: Session
) -> None:
    created = _create(client, trader)
    url = f"/strategies/{created['id']}/webhook"
    first = client.post(url, headers=trader.headers).json()
    token = first["webhook_id"]
    assert len(token) >= 43
    assert first["path"] == f"/webhooks/tradingview/{token}"
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = ctx.strategies.get(int(str(created["id"])))
    assert row is not None
    assert row.webhook_token_sha256 == digest
    assert token not in client.get(f"/strategies/{created['id']}", headers=trader.headers).text

    second = client.post(url, headers=trader.headers).json()["webhook_id"]
    assert second != token
    assert ctx.strategies.by_webhook_hash(digest) is None  # the old token is gone
    assert ctx.strategies.by_webhook_hash(hashlib.sha256(second.encode()).hexdigest()) is not None
    assert client.delete(url, headers=trader.headers).status_code == 204
    assert_problem(client.delete(url, headers=trader.headers), 404)
    actions = [r.action for r in ctx.audit.recent(actor="trader")]
    assert {"strategy.webhook_issue", "strategy.webhook_rotate", "strategy.webhook_revoke"} <= set(
        actions
    )
