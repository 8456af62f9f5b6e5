from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from algotrendy.auth import Role, issue_token
from algotrendy.config import Settings
from algotrendy.domain.orders import OrderIntent, OrderStatus
from algotrendy.execution.ports import StaticPrices
from algotrendy.execution.service import build_runtime, create_app
from algotrendy.messaging import send_intent

SECRET = "engine-test-secret-0123456789abcdef"


def settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=str(tmp_path),
        jwt_secret=SECRET,
        **kw,  # type: ignore[arg-type]
    )


def test_container_app_consumes_and_streams(tmp_path: Path) -> None:
    runtime = build_runtime(settings(tmp_path), prices=StaticPrices({"BTC/USDT": 100.0}))
    app = create_app(runtime)
    token = issue_token("alice", Role.TRADER, secret=SECRET)
    with TestClient(app) as client, client.websocket_connect(
        f"/stream?topics=orders&token={token}"
    ) as ws:  # fmt: skip
        send_intent(runtime.queue, OrderIntent(intent_id="svc-00001", symbol="BTC/USDT",
                                               side="buy", quantity=1))  # fmt: skip
        statuses = []
        while "filled" not in statuses:
            statuses.append(json.loads(ws.receive_text())["data"]["status"])
        health = client.get("/health").json()
        assert health["status"] == "ok"
        assert health["consumer"] == "running"
        assert health["processed"] == 1
        resp = client.post("/kill-switch", json={"on": True},
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert resp.json() == {"kill_switch": True, "cancelled": [], "not_cancelled": {},
                               "unanswered_submits": 0}  # fmt: skip
        viewer = issue_token("bob", Role.VIEWER, secret=SECRET)
        denied = client.post("/kill-switch", json={"on": False},
                             headers={"Authorization": f"Bearer {viewer}"})  # fmt: skip
        assert denied.status_code == 403
    assert statuses[-1] == "filled"
    assert not runtime.engine.repo.open_orders()
    order = runtime.engine.repo.get_order(
        OrderIntent(
            intent_id="svc-00001", symbol="BTC/USDT", side="buy", quantity=1
        ).client_order_id
    )
    assert order is not None
    assert order.status is OrderStatus.FILLED


def test_bad_risk_limits_named(tmp_path: Path) -> None:
    from algotrendy.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="ALGOTRENDY_RISK_LIMITS is not valid"):
        build_runtime(settings(tmp_path, risk_limits='{"max_position": -1}'))


def test_placeholder_secret_refused_outside_local() -> None:
    from algotrendy.config import ConfigurationError

    settings = Settings(stage="prod")  # loads: functions without tokens never ask
    with pytest.raises(ConfigurationError, match="ALGOTRENDY_JWT_SECRET must be set"):
        settings.require_jwt_secret()
    assert Settings(stage="prod", jwt_secret="x" * 40).require_jwt_secret() == "x" * 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_engine_process_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "ALGOTRENDY_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "ALGOTRENDY_DATA_DIR": str(tmp_path), "ALGOTRENDY_JWT_SECRET": SECRET}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "algotrendy.cli", "engine", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "engine did not become healthy"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # uvicorn >= 0.30 re-raises the signal after its graceful shutdown, hence -SIGTERM.
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out
    assert "engine stopped" in out
