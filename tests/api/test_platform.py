"""Cross-cutting behaviour: problem+json for every error, request ids, CORS, rate limits,
runtime configuration, health, the audit log."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import PASSWORDS, Session, assert_problem
from fastapi.testclient import TestClient

from algotrendy.api.app import create_app
from algotrendy.api.context import ApiContext
from algotrendy.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from algotrendy.config import Settings
from algotrendy.data.manager import ChannelHealth
from algotrendy.storage.base import HEALTH_NAMESPACE

REDIS_URL = os.environ.get("ALGOTRENDY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    body = assert_problem(client.get("/nowhere"), 404, "not-found")
    assert body["detail"] == "no route GET /nowhere"
    assert body["instance"] == "/nowhere"
    assert_problem(client.delete("/health"), 405, "method-not-allowed")


def test_malformed_json_is_a_validation_problem(client: TestClient) -> None:
    reply = client.post(
        "/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    body = assert_problem(reply, 422, "validation")
    assert body["errors"][0]["location"] == "body"


def test_unhandled_error_is_a_500_problem_without_internals(ctx: ApiContext) -> None:
    app = create_app(ctx)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as c:
        reply = c.get("/boom", headers={"X-Request-Id": "req-12345"})
    body = assert_problem(reply, 500, "internal")
    assert "secret" not in reply.text
    assert body["request_id"] == "req-12345"
    assert "req-12345" in body["detail"]


def test_request_id_comes_from_the_header_or_is_made(client: TestClient) -> None:
    assert (
        client.get("/health", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    made = client.get("/health", headers={"X-Request-Id": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 32


def test_cors_allows_only_configured_origins(ctx: ApiContext) -> None:
    ctx.settings = ctx.settings.model_copy(update={"api_cors_origins": ("https://app.example",)})
    with TestClient(create_app(ctx)) as c:
        preflight = c.options(
            "/orders",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = c.options(
            "/orders",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers


def test_per_user_rate_limit_answers_429_with_retry_after(
    client: TestClient, ctx: ApiContext, viewer: Session, trader: Session
) -> None:
    ctx.configs.set("api_rate_limit_per_minute", 3, "test")
    ctx.forget_overrides()
    ctx.limiter = MemoryRateLimiter(clock=lambda: 1000.0)  # 40 s into a 60 s window
    replies = [client.get("/auth/me", headers=viewer.headers) for _ in range(4)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert replies[0].headers["ratelimit-remaining"] == "2"
    body = assert_problem(replies[3], 429, "rate-limited")
    assert replies[3].headers["retry-after"] == "20"
    assert "more than 3 requests per minute" in body["detail"]
    # Another user has their own budget.
    assert client.get("/auth/me", headers=trader.headers).status_code == 200


def test_login_attempts_are_limited_per_address(client: TestClient, ctx: ApiContext) -> None:
    ctx.configs.set("api_login_rate_limit_per_minute", 2, "test")
    ctx.forget_overrides()
    bad = {"username": "viewer", "password": "guess-guess-1"}
    codes = [client.post("/auth/login", json=bad).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    good = client.post("/auth/login", json={"username": "viewer", "password": PASSWORDS["viewer"]})
    assert_problem(good, 429)


def _redis_reason() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available", reported
        return f"Redis not reachable at {REDIS_URL}: {exc}"


@pytest.fixture
def redis_limiter() -> Iterator[RedisRateLimiter]:
    reason = _redis_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    limiter = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix, clock=lambda: 1_000_050.0)
    yield limiter
    keys = limiter.client.keys(f"{prefix}:*")
    if keys:
        limiter.client.delete(*keys)


def test_redis_rate_limit_is_shared_between_instances(
    redis_limiter: RedisRateLimiter, client: TestClient, ctx: ApiContext, viewer: Session
) -> None:
    other = RedisRateLimiter(
        redis_limiter.client, prefix=redis_limiter.prefix, clock=redis_limiter.clock
    )
    assert [redis_limiter.hit("user", "u1", 3).allowed for _ in range(2)] == [True, True]
    third, fourth = other.hit("user", "u1", 3), other.hit("user", "u1", 3)
    assert (third.allowed, fourth.allowed) == (True, False)
    assert fourth.reset_after == 30  # 1_000_050 = 16667 min + 30 s
    ttl = redis_limiter.client.ttl(f"{redis_limiter.prefix}:rl:user:u1:{1_000_050 // 60}")
    assert 0 < ttl <= 61
    # Through the API.
    ctx.limiter = redis_limiter
    ctx.configs.set("api_rate_limit_per_minute", 1, "test")
    ctx.forget_overrides()
    assert client.get("/auth/me", headers=viewer.headers).status_code == 200
    limited = client.get("/auth/me", headers=viewer.headers)
    assert_problem(limited, 429)
    assert limited.headers["retry-after"] == "30"


def test_redis_outage_falls_back_to_counting_in_process() -> None:
    limiter = RedisRateLimiter.from_url("redis://127.0.0.1:1/0", clock=lambda: 60.0)
    decisions = [limiter.hit("user", "u", 2).allowed for _ in range(3)]
    assert decisions == [True, True, False]


def test_config_read_hides_secrets_and_admin_updates(
    client: TestClient, admin: Session, trader: Session
) -> None:
    body = client.get("/config", headers=trader.headers).json()
    assert "jwt_secret" not in body["settings"]
    assert "admin_password" not in body["settings"]
    assert body["settings"]["backtest_top_n"] == 20
    assert_problem(
        client.patch("/config", json={"values": {"backtest_top_n": 5}}, headers=trader.headers), 403
    )
    changed = client.patch(
        "/config",
        json={"values": {"backtest_top_n": 5, "risk_limits": {"max_position": 3}}},
        headers=admin.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["settings"]["backtest_top_n"] == 5
    assert changed.json()["overrides"]["risk_limits"] == '{"max_position": 3}'
    bad = client.patch(
        "/config", json={"values": {"backtest_top_n": 0, "stage": "prod"}}, headers=admin.headers
    )
    assert [e["field"] for e in assert_problem(bad, 422)["errors"]] == ["values.stage"]
    out_of_range = client.patch(
        "/config", json={"values": {"backtest_top_n": 0}}, headers=admin.headers
    )
    assert assert_problem(out_of_range, 422)["errors"][0]["field"] == "values.backtest_top_n"
    bad_risk = client.patch(
        "/config", json={"values": {"risk_limits": {"nonsense": 1}}}, headers=admin.headers
    )
    assert_problem(bad_risk, 422)


def test_health_needs_no_token_and_reports_channels(client: TestClient, ctx: ApiContext) -> None:
    assert ctx.cache is not None
    health = ChannelHealth(channel="binance", runs=3, consecutive_failures=0)
    ctx.cache.put(HEALTH_NAMESPACE, "binance", health.model_dump(mode="json"))
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["channels"]["binance"]["status"] == "ok"


def test_audit_log_is_admin_only(client: TestClient, admin: Session, trader: Session) -> None:
    client.post(
        "/orders", json={"symbol": "AAPL", "side": "buy", "quantity": 1}, headers=trader.headers
    )
    rows = client.get("/audit", params={"actor": "trader"}, headers=admin.headers).json()
    assert [r["action"] for r in rows] == ["order.place", "auth.login"]
    assert_problem(client.get("/audit", headers=trader.headers), 403)


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/orders", "/backtests", "/strategies", "/auth/login"} <= set(spec["paths"])


def test_app_builds_its_context_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        stage="local",
        data_dir=str(tmp_path / "d"),
        database_url=f"sqlite:///{tmp_path / 'x' / 'a.db'}",
        admin_username="boss",
        admin_password="boss-password-1",
    )
    with TestClient(create_app(settings=settings)) as c:
        assert c.get("/health").json()["checks"]["orders_queue"] == "orders.fifo"
        token = c.post("/auth/login", json={"username": "boss", "password": "boss-password-1"})
        assert token.status_code == 200, token.text
