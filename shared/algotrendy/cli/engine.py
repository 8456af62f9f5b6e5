"""`algotrendy engine`: the execution-engine container's entry point (also runs locally)."""

from __future__ import annotations

from typing import Annotated

import typer


def engine_command(
    host: Annotated[str, typer.Option(help="bind address (0.0.0.0 in the container)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="HTTP port: /health, /metrics, /stream, /sse")] = 8080,
) -> None:
    """Run the execution engine: consume orders, risk-check, trade, stream events."""
    from algotrendy.config import get_settings
    from algotrendy.execution.service import serve

    serve(get_settings(), host=host, port=port)


def kill_switch_command(
    on: Annotated[bool, typer.Option("--on/--off", help="block and cancel, or resume")] = True,
    url: Annotated[str, typer.Option(help="engine base URL")] = "http://127.0.0.1:8080",
) -> None:
    """Flip the engine's kill switch (cancels every working order when turned on)."""
    import httpx

    from algotrendy.auth import Role, issue_token
    from algotrendy.config import get_settings

    token = issue_token("cli", Role.ADMIN, secret=get_settings().require_jwt_secret())
    resp = httpx.post(f"{url}/kill-switch", json={"on": on},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
    if resp.status_code >= 400:
        raise typer.BadParameter(f"engine answered {resp.status_code}: {resp.text}")
    typer.echo(resp.text)
