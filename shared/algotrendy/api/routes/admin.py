"""Runtime configuration (read: any role; change: admin) and the audit log (admin)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import SecretStr

from algotrendy.api.deps import Admin, Ctx, Viewer
from algotrendy.api.problems import Problem, field_error
from algotrendy.api.runtime_config import RUNTIME_KEYS, Errors, validated
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


def _invalid(errors: Errors) -> Problem:
    return Problem(
        422,
        "validation",
        "; ".join(f"{name}: {detail}" for name, detail in errors),
        errors=[field_error(name, detail) for name, detail in errors],
    )


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
    values = {key: validated(key, value, errors) for key, value in body.values.items()}
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
