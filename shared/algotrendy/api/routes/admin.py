"""Runtime configuration (read: any role; change: admin) and the audit log (admin)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import SecretStr, TypeAdapter, ValidationError

from algotrendy.api.context import RUNTIME_KEYS
from algotrendy.api.deps import Admin, Ctx, Viewer
from algotrendy.api.problems import Problem, field_error
from algotrendy.api.schemas import ConfigUpdate
from algotrendy.config import Settings

router = APIRouter(tags=["admin"])


def _public(settings: Settings) -> dict[str, Any]:
    """Settings without secrets (SecretStr fields are never shown)."""
    out = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) or name in ("admin_password",):
            continue
        out[name] = value
    return json.loads(json.dumps(out, default=str))  # type: ignore[no-any-return]


@router.get("/config")
def read_config(user: Viewer, ctx: Ctx) -> dict[str, Any]:
    """Effective settings (environment + admin overrides) and which keys may change."""
    effective = _public(ctx.settings)
    overrides = ctx.overrides()
    effective.update(overrides)
    return {"settings": effective, "overrides": overrides, "updatable": list(RUNTIME_KEYS)}


# Lowest rate limits an admin may set at runtime. The limits apply to admins too, and a
# value of 1 (e.g. a JSON `true` read as 1) would leave an admin unable to log in, refresh
# and send the PATCH that undoes it within a minute; a floor keeps that possible without
# exempting admins (a stolen admin token stays rate limited).
RATE_LIMIT_FLOORS = {"api_rate_limit_per_minute": 10, "api_login_rate_limit_per_minute": 5}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; give a finite number or leave the limit out")


Errors = list[tuple[str, str]]  # (field, what is wrong)


def _pydantic_errors(prefix: str, exc: ValidationError) -> Errors:
    """Field names under `prefix` (a model-level error, loc (), names the prefix itself)."""
    return [(".".join([prefix, *(str(p) for p in e["loc"])]), e["msg"]) for e in exc.errors()]


def _invalid(errors: Errors) -> Problem:
    return Problem(
        422,
        "validation",
        "; ".join(f"{name}: {detail}" for name, detail in errors),
        errors=[field_error(name, detail) for name, detail in errors],
    )


def _risk_limits(value: Any, errors: Errors) -> str | None:
    """The risk limits as the JSON text stored in settings, checked strictly (no `true`
    for a count, no "3" for an amount) so what is stored is exactly what was validated."""
    from algotrendy.execution.risk import RiskLimits

    try:
        obj = (
            json.loads(value, parse_constant=_reject_constant) if isinstance(value, str) else value
        )
    except ValueError as exc:  # json.JSONDecodeError, or NaN/Infinity in the text
        errors.append(("values.risk_limits", f"not valid JSON: {exc}"))
        return None
    try:
        text = json.dumps(obj, allow_nan=False)
    except ValueError:  # NaN/Infinity in the body (Python's JSON reader accepts them)
        errors.append(
            ("values.risk_limits", "NaN and Infinity are not limits; give finite numbers")
        )
        return None
    try:
        RiskLimits.model_validate_json(text, strict=True)
    except ValidationError as exc:
        errors.extend(_pydantic_errors("values.risk_limits", exc))
        return None
    return text


def _validated(key: str, value: Any, errors: Errors) -> Any:
    """`value` checked with the Settings field's own rules, strictly: JSON `true`, 5.0 or
    "5" are not an integer setting (lax mode would store `true` and read it as 1). What
    is wrong goes to `errors`."""
    if key == "risk_limits":
        return _risk_limits(value, errors)
    field = Settings.model_fields[key]
    # Every runtime key but risk_limits is an integer setting (its bounds come from `field`).
    assert field.annotation is int, f"runtime setting {key} is not an integer"
    try:
        checked = TypeAdapter(Annotated[int, field]).validate_python(value, strict=True)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(f"values.{key}", exc))
        return None
    floor = RATE_LIMIT_FLOORS.get(key)
    if floor is not None and checked < floor:
        errors.append(
            (
                f"values.{key}",
                f"must be at least {floor} at runtime (admins must stay able to undo it)",
            )
        )
    return checked


@router.patch("/config")
def update_config(body: ConfigUpdate, request: Request, admin: Admin, ctx: Ctx) -> dict[str, Any]:
    """Change runtime settings; each value is checked with the setting's own rules and
    stored as validated. All or nothing: one bad value changes nothing."""
    # Unknown keys first, alone: their values mean nothing.
    errors: Errors = [
        (f"values.{k}", f"not a runtime setting; updatable: {', '.join(RUNTIME_KEYS)}")
        for k in body.values
        if k not in RUNTIME_KEYS
    ]
    if errors:
        raise _invalid(errors)
    values = {key: _validated(key, value, errors) for key, value in body.values.items()}
    if errors:
        raise _invalid(errors)
    for key, value in values.items():
        ctx.configs.set(key, value, admin.username)
    ctx.forget_overrides()
    request.state.audit_action = "config.update"
    request.state.audit_detail = {"values": values}
    return read_config(admin, ctx)


@router.get("/audit")
def audit_log(
    admin: Admin,
    ctx: Ctx,
    actor: str | None = None,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Newest first."""
    return [
        {
            "id": r.id,
            "time": r.time.isoformat(),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": r.detail,
            "ip": r.ip,
        }
        for r in ctx.audit.recent(actor=actor, action=action, limit=limit)
    ]
