"""PATCH /config stores exactly what it validated, strictly, names the field at fault
(inside risk_limits too), and cannot set a rate limit that locks admins out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_helpers import Session, assert_problem
from fastapi.testclient import TestClient

from algotrendy.api.context import ApiContext
from algotrendy.api.runtime_config import RATE_LIMIT_FLOORS


def _patch(client: TestClient, admin: Session, values: Any) -> Any:
    return client.patch("/config", json={"values": values}, headers=admin.headers)


@pytest.mark.parametrize("value", [True, 5.0, "50"])
def test_an_integer_setting_takes_only_an_integer(
    client: TestClient, ctx: ApiContext, admin: Session, value: Any
) -> None:
    """`true` used to pass as 1 and be stored as `true`: every next request, the admin's
    own included, got 429."""
    reply = _patch(client, admin, {"api_rate_limit_per_minute": value})
    errors = assert_problem(reply, 422, "validation")["errors"]
    assert [e["field"] for e in errors] == ["values.api_rate_limit_per_minute"]
    assert ctx.configs.all() == {}
    assert client.get("/auth/me", headers=admin.headers).status_code == 200


def test_values_are_stored_as_validated(
    client: TestClient, ctx: ApiContext, admin: Session
) -> None:
    reply = _patch(
        client,
        admin,
        {"backtest_top_n": 7, "risk_limits": '{ "max_open_orders" : 2, "max_position": 1.5 }'},
    )
    assert reply.status_code == 200, reply.text
    stored = {k: r.value for k, r in ctx.configs.all().items()}
    assert stored == {
        "backtest_top_n": 7,
        "risk_limits": '{"max_open_orders": 2, "max_position": 1.5}',
    }
    assert type(stored["backtest_top_n"]) is int


@pytest.mark.parametrize("key", sorted(RATE_LIMIT_FLOORS))
def test_rate_limits_have_a_floor_so_admins_can_undo_them(
    client: TestClient, ctx: ApiContext, admin: Session, key: str
) -> None:
    floor = RATE_LIMIT_FLOORS[key]
    low = _patch(client, admin, {key: floor - 1})
    errors = assert_problem(low, 422, "validation")["errors"]
    assert errors[0]["field"] == f"values.{key}"
    assert f"at least {floor}" in errors[0]["detail"]
    assert _patch(client, admin, {key: floor}).status_code == 200
    assert ctx.configs.all()[key].value == floor


@pytest.mark.parametrize(
    ("limits", "field", "pointer"),
    [
        ({"zzz": 1}, "values.risk_limits.zzz", "#/values/risk_limits/zzz"),
        ({"max_open_orders": True}, "values.risk_limits.max_open_orders", None),
        ({"max_position": "3"}, "values.risk_limits.max_position", None),
        ([1, 2], "values.risk_limits", "#/values/risk_limits"),
        ("not json", "values.risk_limits", "#/values/risk_limits"),
    ],
)
def test_risk_limit_errors_name_the_field_inside_risk_limits(
    client: TestClient,
    ctx: ApiContext,
    admin: Session,
    limits: Any,
    field: str,
    pointer: str | None,
) -> None:
    reply = _patch(client, admin, {"risk_limits": limits})
    errors = assert_problem(reply, 422, "validation")["errors"]
    assert [e["field"] for e in errors] == [field]
    if pointer is not None:
        assert errors[0]["pointer"] == pointer
    assert ctx.configs.all() == {}


@pytest.mark.parametrize(
    "raw",
    [
        '{"values": {"risk_limits": {"max_order_notional": Infinity}}}',
        '{"values": {"risk_limits": "{\\"max_position\\": NaN}"}}',
    ],
)
def test_non_finite_risk_limits_are_refused(
    client: TestClient, ctx: ApiContext, admin: Session, raw: str
) -> None:
    reply = client.patch(
        "/config", content=raw, headers={**admin.headers, "Content-Type": "application/json"}
    )
    errors = assert_problem(reply, 422, "validation")["errors"]
    assert [e["field"] for e in errors] == ["values.risk_limits"]
    assert ctx.configs.all() == {}


def test_every_bad_value_is_reported_and_none_stored(
    client: TestClient, ctx: ApiContext, admin: Session
) -> None:
    reply = _patch(
        client,
        admin,
        {"backtest_top_n": 5, "backtest_chunk_size": 0, "api_rate_limit_per_minute": True},
    )
    errors = assert_problem(reply, 422, "validation")["errors"]
    assert sorted(e["field"] for e in errors) == [
        "values.api_rate_limit_per_minute",
        "values.backtest_chunk_size",
    ]
    assert ctx.configs.all() == {}
    assert json.loads(client.get("/config", headers=admin.headers).text)["overrides"] == {}


def test_a_value_stored_under_older_looser_rules_is_ignored_when_read(
    client: TestClient, ctx: ApiContext, admin: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """A `true` an earlier release stored as the rate limit would read as 1 (every next
    request a 429); read with the same rule that guards the write, it is ignored with a
    warning and the environment's limit holds."""
    ctx.configs.set("api_rate_limit_per_minute", True, "an-older-release")
    ctx.configs.set("backtest_top_n", 7, "an-older-release")
    ctx.forget_overrides()
    with caplog.at_level("WARNING", logger="algotrendy.api.context"):
        overrides = ctx.overrides()
    assert overrides == {"backtest_top_n": 7}
    assert ctx.setting("api_rate_limit_per_minute") == ctx.settings.api_rate_limit_per_minute
    assert "api_rate_limit_per_minute ignored" in caplog.text
    for _ in range(3):
        assert client.get("/auth/me", headers=admin.headers).status_code == 200
