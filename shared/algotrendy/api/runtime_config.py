"""Runtime settings an admin may change (PATCH /config), and the one rule that checks them:
the same check accepts a value when it is stored and again when it is read, so a value
stored by an older release under looser rules (a JSON `true` kept as a rate limit) is
ignored, with a warning, instead of applied."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from algotrendy.config import Settings

# Stored in `configurations`, overriding the environment.
RUNTIME_KEYS = (
    "api_rate_limit_per_minute",
    "api_login_rate_limit_per_minute",
    "backtest_chunk_size",
    "backtest_top_n",
    "risk_limits",
)

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


def risk_limits_text(value: Any, errors: Errors) -> str | None:
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


def validated(key: str, value: Any, errors: Errors, *, floors: bool = True) -> Any:
    """`value` checked with the Settings field's own rules, strictly: JSON `true`, 5.0 or
    "5" are not an integer setting (lax mode would store `true` and read it as 1). What
    is wrong goes to `errors`. `floors`: also refuse rate limits under RATE_LIMIT_FLOORS
    (what PATCH /config may set; reading a stored value checks types and bounds only)."""
    if key == "risk_limits":
        return risk_limits_text(value, errors)
    field = Settings.model_fields[key]
    # Every runtime key but risk_limits is an integer setting (its bounds come from `field`).
    assert field.annotation is int, f"runtime setting {key} is not an integer"
    try:
        checked = TypeAdapter(Annotated[int, field]).validate_python(value, strict=True)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(f"values.{key}", exc))
        return None
    floor = RATE_LIMIT_FLOORS.get(key) if floors else None
    if floor is not None and checked < floor:
        errors.append(
            (
                f"values.{key}",
                f"must be at least {floor} at runtime (admins must stay able to undo it)",
            )
        )
    return checked
