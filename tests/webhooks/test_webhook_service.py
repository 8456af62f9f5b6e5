"""WebhookService.handle_alert on in-process adapters: every refusal (and that nothing is
enqueued for it), the replay window, duplicates, and transient failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from webhook_helpers import (
    FIXTURE_01_NOW,
    OTHER_TOKEN,
    TOKEN,
    Harness,
    fixture_json,
    fixture_text,
    make_config,
    passphrase_hash,
)

from algotrendy.config import ConfigurationError
from algotrendy.messaging import Envelope, InMemoryQueue
from algotrendy.webhooks import (
    PROBLEM_CONTENT_TYPE,
    InMemoryIdempotency,
    WebhookConfig,
    WebhookPolicy,
    WebhookService,
    WebhookStoreUnavailableError,
)

DOGE = "01_passphrase_bar_strategy.filled.json"


def doge_config(**overrides: Any) -> WebhookConfig:
    """Fixture 01's webhook: its passphrase, its {{timenow}} in the top-level "time"."""
    fields: dict[str, Any] = {
        "passphrase_hash": passphrase_hash(fixture_json(DOGE)["passphrase"]),
        "timenow_field": "time",
    }
    fields.update(overrides)
    return make_config(**fields)


def assert_problem(result: Any, status: int, kind: str) -> None:
    assert result.status == status, result.body
    assert result.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert result.body["status"] == status
    assert result.body["type"].endswith("/" + kind)
    assert result.body["title"]
    assert result.body["detail"]


def test_accepted_alert_is_one_intent_on_the_fifo_queue() -> None:
    h = Harness(doge_config())
    result = h.post(fixture_text(DOGE))
    assert result.status == 200, result.body
    assert result.headers["Content-Type"] == "application/json"
    [message] = h.messages()
    intent = Envelope.model_validate(message).intent()
    assert result.body == {
        "status": "accepted",
        "intent_id": intent.intent_id,
        "client_order_id": intent.client_order_id,
        "message_id": result.body["message_id"],
        "account": "binance-main",
        "symbol": "DOGE/USDT",
        "side": "buy",
        "quantity": fixture_json(DOGE)["strategy"]["order_contracts"],
        "order_type": "market",
    }
    assert result.webhook == "doge-breakout"
    assert result.intent_id == intent.intent_id
    [queued] = h.queue.receive()
    assert queued.group_id == intent.message_group_id == "binance-main:DOGE/USDT"


def test_unknown_malformed_and_disabled_tokens_look_the_same() -> None:
    h = Harness(doge_config(), make_config(OTHER_TOKEN, name="off", enabled=False))
    body = fixture_text(DOGE)
    results = [
        h.post(body, token="tvwh_never_issued_token_cccccccccccccccc03"),
        h.post(body, token="short"),
        h.post(body, token=None),
        h.post(body, token=OTHER_TOKEN),
    ]
    for r in results:
        assert_problem(r, 404, "unknown-webhook")
    assert len({json.dumps(r.body) for r in results}) == 1  # nothing tells them apart
    assert h.messages() == []


def test_unknown_token_wins_over_a_bad_body() -> None:
    h = Harness(doge_config())
    assert_problem(h.post("garbage", token=OTHER_TOKEN), 404, "unknown-webhook")


@pytest.mark.parametrize("ip", ["203.0.113.7", None, "", "::1"])
def test_source_not_in_allow_list_is_403(ip: str | None) -> None:
    h = Harness(doge_config())
    result = h.post(fixture_text(DOGE), ip=ip)
    assert_problem(result, 403, "forbidden-source")
    assert h.messages() == []


def test_allow_list_from_config_or_policy() -> None:
    body = fixture_text(DOGE)
    h = Harness(doge_config(allowed_ips=("10.0.0.0/8",)))
    assert h.post(body, ip="10.20.30.40").status == 200
    assert h.post(body, ip="52.89.214.238").status == 403  # the config replaces the default
    h = Harness(doge_config(), policy=WebhookPolicy(allowed_ips=("0.0.0.0/0",)))
    assert h.post(body, ip="198.51.100.1").status == 200


def test_wrong_passphrase_is_401_with_a_challenge() -> None:
    h = Harness(doge_config())
    body = json.dumps({**fixture_json(DOGE), "passphrase": "not-the-passphrase"})
    result = h.post(body)
    assert_problem(result, 401, "bad-passphrase")
    assert result.body["field"] == "passphrase"
    assert "WWW-Authenticate" in result.headers
    assert "not-the-passphrase" not in json.dumps(result.body)
    assert h.messages() == []


def test_missing_passphrase_is_401() -> None:
    h = Harness(doge_config())
    raw = fixture_json(DOGE)
    del raw["passphrase"]
    assert_problem(h.post(json.dumps(raw)), 401, "bad-passphrase")


def test_passphrase_is_checked_before_the_mapping() -> None:
    """A caller without the passphrase learns nothing about the symbol mapping."""
    h = Harness(doge_config())
    raw = {**fixture_json(DOGE), "passphrase": "guess-guess", "ticker": "ETHUSDT"}
    assert_problem(h.post(json.dumps(raw)), 401, "bad-passphrase")


def test_webhook_without_passphrase_ignores_one_sent() -> None:
    h = Harness(doge_config(passphrase_hash=None))
    assert h.post(fixture_text(DOGE)).status == 200


@pytest.mark.parametrize(
    ("delta", "status"),
    [
        (timedelta(seconds=3), 200),
        (timedelta(seconds=120), 200),
        (timedelta(seconds=121), 422),
        (timedelta(hours=6), 422),
        (timedelta(seconds=-30), 200),  # our clock 30 s behind TradingView's
        (timedelta(seconds=-31), 422),
    ],
)
def test_replay_window_on_timenow(delta: timedelta, status: int) -> None:
    fired = fixture_json(DOGE)["time"]  # this template's {{timenow}}
    now = datetime.fromisoformat(fired) + delta
    h = Harness(doge_config())
    result = h.post(fixture_text(DOGE), now=now)
    assert result.status == status, result.body
    if status == 422:
        assert_problem(result, 422, "stale-alert")
        assert result.body["field"] == "time"
        assert h.messages() == []


def test_policy_sets_the_window() -> None:
    h = Harness(doge_config(), policy=WebhookPolicy(replay_window_seconds=1))
    assert h.post(fixture_text(DOGE), now=FIXTURE_01_NOW).status == 422  # 3 s old


def test_without_timenow_field_there_is_no_window_unless_required() -> None:
    body = fixture_text(DOGE)
    late = FIXTURE_01_NOW + timedelta(days=3650)
    assert Harness(doge_config(timenow_field=None)).post(body, now=late).status == 200
    h = Harness(doge_config(timenow_field=None, require_timenow=True))
    result = h.post(body, now=late)
    assert_problem(result, 422, "invalid-alert")
    assert "{{timenow}}" in result.body["detail"]


def test_timenow_alias_is_checked_without_config() -> None:
    h = Harness(make_config(quantity_mode="auto", quantity=1))
    body = json.dumps({"ticker": "DOGEUSDT", "action": "buy", "timenow": "2020-09-06T01:00:00Z"})
    assert_problem(h.post(body), 422, "stale-alert")


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ("", 400, "unreadable-alert"),
        ("{oops", 400, "unreadable-alert"),
        (fixture_text("01_passphrase_bar_strategy.template.txt"), 422, "invalid-alert"),
        ("x" * 70_000, 413, "payload-too-large"),
    ],
)
def test_unreadable_bodies(body: str, status: int, kind: str) -> None:
    h = Harness(doge_config())
    assert_problem(h.post(body), status, kind)
    assert h.messages() == []


def test_unmappable_alert_is_422_naming_the_field() -> None:
    h = Harness(doge_config())
    raw = {**fixture_json(DOGE), "ticker": "ETHUSDT"}
    result = h.post(json.dumps(raw))
    assert_problem(result, 422, "invalid-alert")
    assert result.body["field"] == "ticker"
    assert h.messages() == []


# ------------------------------------------------------------------------------ duplicates


def test_redelivery_gets_the_same_reply_and_no_second_message() -> None:
    h = Harness(doge_config())
    first = h.post(fixture_text(DOGE))
    again = h.post(json.dumps(fixture_json(DOGE), indent=1))  # same alert, other whitespace
    assert first.status == again.status == 200
    assert again.body == first.body
    assert len(h.messages()) == 1
    assert h.idempotency.executions == 1


def test_twenty_concurrent_deliveries_one_message() -> None:
    h = Harness(doge_config())
    body = fixture_text(DOGE)
    start = threading.Barrier(20)

    def deliver(_: int) -> Any:
        start.wait()
        return h.post(body)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(deliver, range(20)))
    assert [r.status for r in results] == [200] * 20
    assert len({r.body["intent_id"] for r in results}) == 1
    assert len(h.messages()) == 1
    assert h.idempotency.executions == 1


def test_a_different_alert_is_a_second_message() -> None:
    h = Harness(doge_config())
    raw = fixture_json(DOGE)
    later = {**raw, "time": "2020-09-06T01:44:19Z"}  # fired again two seconds later
    a, b = h.post(json.dumps(raw)), h.post(json.dumps(later))
    assert a.status == b.status == 200
    assert a.body["intent_id"] != b.body["intent_id"]
    assert len(h.messages()) == 2


class FlakyQueue(InMemoryQueue):
    def __init__(self, failures: int) -> None:
        super().__init__("orders.fifo")
        self.failures = failures

    def send(
        self,
        body: str,
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("sqs endpoint unreachable")
        return super().send(body, group_id=group_id, dedup_id=dedup_id, attributes=attributes)


def test_queue_failure_is_503_and_the_resend_goes_through() -> None:
    h = Harness(doge_config())
    h.queue = FlakyQueue(failures=1)
    h.service.queue = h.queue
    failed = h.post(fixture_text(DOGE))
    assert_problem(failed, 503, "unavailable")
    assert failed.headers["Retry-After"] == "5"
    assert "unreachable" not in failed.body["detail"]  # internals stay in the logs
    assert failed.problem is not None
    assert "ConnectionError" in (failed.problem.internal or "")
    resent = h.post(fixture_text(DOGE))
    assert resent.status == 200
    assert len(h.messages()) == 1


def test_duplicate_still_in_flight_after_the_wait_is_503() -> None:
    h = Harness(doge_config())
    h.idempotency = InMemoryIdempotency(wait_seconds=0.05)
    h.service.idempotency = h.idempotency
    release = threading.Event()
    entered = threading.Event()
    real_send = h.queue.send

    def slow_send(*args: Any, **kwargs: Any) -> str:
        entered.set()
        release.wait(5)
        return real_send(*args, **kwargs)

    h.queue.send = slow_send  # type: ignore[method-assign]
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(h.post, fixture_text(DOGE))
        assert entered.wait(5)
        second = h.post(fixture_text(DOGE))
        release.set()
        assert first.result().status == 200
    assert_problem(second, 503, "duplicate-in-flight")
    assert len(h.messages()) == 1


class BrokenStore:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get(self, token_sha256: str) -> WebhookConfig | None:
        raise self.error


def test_config_store_failures() -> None:
    queue = InMemoryQueue("orders.fifo")
    body = fixture_text(DOGE)
    down = WebhookService(
        BrokenStore(WebhookStoreUnavailableError("ssm timeout")), queue, InMemoryIdempotency()
    )
    result = down.handle_alert(TOKEN, body, "52.89.214.238", FIXTURE_01_NOW)
    assert_problem(result, 503, "unavailable")
    bad = WebhookService(
        BrokenStore(ConfigurationError("ssm:/secret/name: webhooks.0.name: bad")),
        queue,
        InMemoryIdempotency(),
    )
    result = bad.handle_alert(TOKEN, body, "52.89.214.238", FIXTURE_01_NOW)
    assert_problem(result, 500, "misconfigured")
    assert "/secret/name" not in json.dumps(result.body)
    assert len(queue) == 0
