"""Strategy configurations (which registered strategy, validated parameters, symbols,
enabled) and their TradingView webhook tokens.

Parameters are validated by the strategy's own `Params` model, the one the CLI, sweeps
and live evaluation use, so a config the API accepts is one the engine can run; stored
normalised (defaults filled in). A webhook token is 32 random bytes (url-safe base64)
returned once; only its SHA-256 is kept (`algotrendy.webhooks.auth`), and issuing a new
one replaces (revokes) the old.

Every change to a strategy's webhook is also published to the document the webhook
function reads (`algotrendy.api.webhook_configs`), before the table is updated for issue,
rotate, revoke and delete (a failed publish changes nothing: 503, retry) and after it for
other edits (a failed publish is a 503 naming what to retry; the table is already right).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status
from pydantic import ValidationError

from algotrendy.api.deps import Ctx, Trader, Viewer
from algotrendy.api.observability import logger
from algotrendy.api.problems import Problem, field_error
from algotrendy.api.schemas import (
    StrategyCreate,
    StrategyOut,
    StrategyUpdate,
    WebhookIssue,
    WebhookIssued,
)
from algotrendy.api.webhook_configs import (
    config_errors,
    issue_change,
    owned_by,
    refresh_change,
    remove_change,
)
from algotrendy.config import ConfigurationError
from algotrendy.errors import UnknownStrategyError
from algotrendy.storage.relational.api_models import StrategyConfigRow
from algotrendy.storage.relational.api_repositories import ConflictError
from algotrendy.webhooks.auth import generate_webhook_token, hash_webhook_token
from algotrendy.webhooks.store import Change, WebhookPublishConflictError, WebhookPublishError

if TYPE_CHECKING:
    from algotrendy.strategies import Strategy

router = APIRouter(prefix="/strategies", tags=["strategies"])


def strategy_or_422(name: str, field: str = "strategy_type") -> Strategy[Any]:
    # The registry imports every built-in strategy (numpy, pandas): loaded by the routes
    # that validate against a strategy, not by the API's cold start.
    from algotrendy.strategies import get_strategy

    try:
        return get_strategy(name)
    except UnknownStrategyError as exc:
        raise Problem(422, "validation", str(exc), errors=[field_error(field, str(exc))]) from None


def validated_params(
    strategy: Strategy[Any], raw: dict[str, Any], field: str = "params"
) -> dict[str, Any]:
    """The strategy's Params model applied to `raw`: each problem names its parameter."""
    try:
        return strategy.Params.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
            errors.append(field_error(f"{field}.{loc}" if loc else field, msg))
        detail = f"{strategy.name}: " + "; ".join(f"{e['field']}: {e['detail']}" for e in errors)
        raise Problem(422, "validation", detail, errors=errors) from None


def _symbols(symbols: list[str]) -> list[str]:
    out: list[str] = []
    for i, s in enumerate(symbols):
        s = s.strip()
        if not s or len(s) > 32:
            raise Problem(
                422,
                "validation",
                f"symbols[{i}]: must be 1-32 characters",
                errors=[field_error(f"symbols.{i}", "must be 1-32 characters")],
            )
        if s in out:
            raise Problem(
                422,
                "validation",
                f"symbols[{i}]: {s!r} is listed twice",
                errors=[field_error(f"symbols.{i}", "duplicate")],
            )
        out.append(s)
    return out


def _out(row: StrategyConfigRow) -> StrategyOut:
    return StrategyOut(
        id=row.id,
        name=row.name,
        strategy_type=row.strategy_type,
        params=row.params,
        symbols=row.symbols,
        enabled=row.enabled,
        webhook=row.webhook_token_sha256 is not None,
        webhook_issued_at=row.webhook_issued_at,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _publish(ctx: Ctx, row: StrategyConfigRow, change: Change, *, retry: str) -> bool:
    """Apply `change` to the strategy's entry in the webhook config document; False when
    the API publishes nowhere. `retry` says what the caller should repeat on a 503."""
    publisher = ctx.webhooks
    if publisher is None:
        return False
    try:
        publisher.update(owned_by(row), change)
    except ValidationError as exc:
        errors = [field_error(f, m) for f, m in config_errors(exc)]
        detail = "; ".join(f"{e['field']}: {e['detail']}" for e in errors)
        raise Problem(422, "validation", f"webhook config: {detail}", errors=errors) from None
    except WebhookPublishConflictError as exc:
        raise Problem(409, "conflict", str(exc)) from None
    except (WebhookPublishError, ConfigurationError) as exc:
        logger.exception("webhook config publish failed", extra={"source": publisher.source})
        raise Problem(
            503,
            "unavailable",
            f"the webhook config store could not be updated; {retry}",
            headers={"Retry-After": "5"},
        ) from exc
    return True


def _get(ctx: Ctx, strategy_id: int) -> StrategyConfigRow:
    row = ctx.strategies.get(strategy_id)
    if row is None:
        raise Problem(404, "not-found", f"no strategy config {strategy_id}")
    return row


@router.get("/types")
def strategy_types(user: Viewer) -> list[dict[str, Any]]:
    """Registered strategies and their declared parameters (type, default, bounds)."""
    from algotrendy.strategies import get_strategy, strategy_names

    out = []
    for name in strategy_names():
        strat = get_strategy(name)
        out.append({"name": name, "description": strat.description, "params": strat.param_ranges()})
    return out


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StrategyOut)
def create_strategy(
    body: StrategyCreate, request: Request, response: Response, user: Trader, ctx: Ctx
) -> StrategyOut:
    strat = strategy_or_422(body.strategy_type)
    params = validated_params(strat, body.params)
    try:
        row = ctx.strategies.create(
            name=body.name,
            strategy_type=strat.name,
            params=params,
            symbols=_symbols(body.symbols),
            enabled=body.enabled,
            created_by=user.username,
        )
    except ConflictError as exc:
        raise Problem(409, "conflict", str(exc)) from None
    request.state.audit_action = "strategy.create"
    request.state.audit_target = f"strategy:{row.id}"
    response.headers["Location"] = f"/strategies/{row.id}"
    return _out(row)


@router.get("", response_model=list[StrategyOut])
def list_strategies(user: Viewer, ctx: Ctx, enabled: bool | None = None) -> list[StrategyOut]:
    return [_out(r) for r in ctx.strategies.all(enabled=enabled)]


@router.get("/{strategy_id}", response_model=StrategyOut)
def get_strategy_config(strategy_id: int, user: Viewer, ctx: Ctx) -> StrategyOut:
    return _out(_get(ctx, strategy_id))


@router.patch("/{strategy_id}", response_model=StrategyOut)
def update_strategy(
    strategy_id: int, body: StrategyUpdate, request: Request, user: Trader, ctx: Ctx
) -> StrategyOut:
    row = _get(ctx, strategy_id)
    values: dict[str, Any] = {}
    if body.params is not None:
        values["params"] = validated_params(strategy_or_422(row.strategy_type), body.params)
    if body.symbols is not None:
        values["symbols"] = _symbols(body.symbols)
    if body.name is not None:
        values["name"] = body.name
    if body.enabled is not None:
        values["enabled"] = body.enabled
    try:
        updated = ctx.strategies.update(strategy_id, **values)
    except ConflictError as exc:
        raise Problem(409, "conflict", str(exc)) from None
    if updated is None:
        raise Problem(404, "not-found", f"no strategy config {strategy_id}")
    request.state.audit_action = "strategy.update"
    request.state.audit_target = f"strategy:{strategy_id}"
    request.state.audit_detail = {"fields": sorted(values)}
    if updated.webhook_token_sha256 is not None and {"name", "symbols", "enabled"} & set(values):
        # The entry follows the strategy (a disabled strategy's webhook answers 404).
        _publish(ctx, updated, refresh_change(updated), retry="the strategy was saved: repeat it")
    return _out(updated)


@router.delete("/{strategy_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_strategy(strategy_id: int, request: Request, user: Trader, ctx: Ctx) -> Response:
    request.state.audit_action = "strategy.delete"
    request.state.audit_target = f"strategy:{strategy_id}"
    row = _get(ctx, strategy_id)
    _publish(ctx, row, remove_change, retry="nothing was deleted: retry")
    if not ctx.strategies.delete(strategy_id):
        raise Problem(404, "not-found", f"no strategy config {strategy_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{strategy_id}/webhook", status_code=status.HTTP_201_CREATED, response_model=WebhookIssued
)
def issue_webhook(
    strategy_id: int,
    request: Request,
    user: Trader,
    ctx: Ctx,
    body: Annotated[WebhookIssue | None, Body()] = None,
) -> WebhookIssued:
    """Issue (or rotate) the strategy's webhook token. The token is in this reply only;
    any previous token stops working (at once in the table, within the webhook's config
    cache time in the published document). The optional body sets the passphrase, account
    and sizing; fields left out keep the rotated webhook's values."""
    row = _get(ctx, strategy_id)
    token = generate_webhook_token()
    digest = hash_webhook_token(token)
    now = datetime.now(UTC)
    published = _publish(
        ctx, row, issue_change(row, digest, body), retry="no token was issued: retry"
    )
    ctx.strategies.update(row.id, webhook_token_sha256=digest, webhook_issued_at=now)
    request.state.audit_action = (
        "strategy.webhook_rotate" if row.webhook_token_sha256 else ("strategy.webhook_issue")
    )
    request.state.audit_target = f"strategy:{strategy_id}"
    return WebhookIssued(
        webhook_id=token,
        path=f"/webhooks/tradingview/{token}",
        issued_at=now,
        published=published,
    )


@router.delete("/{strategy_id}/webhook", status_code=status.HTTP_204_NO_CONTENT)
def revoke_webhook(strategy_id: int, request: Request, user: Trader, ctx: Ctx) -> Response:
    row = _get(ctx, strategy_id)
    if row.webhook_token_sha256 is None:
        raise Problem(404, "not-found", f"strategy config {strategy_id} has no webhook token")
    _publish(ctx, row, remove_change, retry="the token was not revoked: retry")
    ctx.strategies.update(row.id, webhook_token_sha256=None, webhook_issued_at=None)
    request.state.audit_action = "strategy.webhook_revoke"
    request.state.audit_target = f"strategy:{strategy_id}"
    return Response(status_code=status.HTTP_204_NO_CONTENT)
