"""`python -m algotrendy.cli serve` as a real process: wait for health, run the equivalents
of the curls it printed (parsed from its stdout), then SIGTERM and a clean exit."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_helpers import REPO, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body_of(command: str) -> Any:
    """The JSON after `-d` in one printed curl (shell-unquoted as the shell would)."""
    words = shlex.split(command.split("|")[0].removeprefix("TOKEN=$("))
    return json.loads(words[words.index("-d") + 1])


def _url_of(command: str) -> str:
    words = shlex.split(command.split("|")[0].removeprefix("TOKEN=$("))
    return next(w for w in words if w.startswith("http://"))


@pytest.mark.slow
def test_serve_process_answers_the_printed_commands_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALGOTRENDY_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "algotrendy.cli", "serve", "--port", str(port),
         "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(proc.stdout or []), daemon=True),
        threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True),
    ]
    for r in readers:
        r.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: any("Ctrl-C stops" in line for line in out), timeout=120, what="banner")
        printed = [line.strip() for line in out]
        login = next(line for line in printed if line.startswith("TOKEN=$(curl"))
        alert = next(line for line in printed if "/webhooks/tradingview/" in line)
        backtest = next(
            line for line in printed if line.startswith("curl -s -X POST") and "/backtests" in line
        )

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=60, what="/health")
        with httpx.Client(timeout=10) as http:
            reply = http.post(_url_of(login), json=_body_of(login))
            assert reply.status_code == 200, reply.text
            auth = {"Authorization": f"Bearer {reply.json()['access_token']}"}

            sent = http.post(_url_of(alert), json=_body_of(alert))
            assert sent.status_code == 200, sent.text
            intent_id = sent.json()["intent_id"]

            def order() -> dict[str, Any] | None:
                rows = http.get(f"{base}/orders", headers=auth).json()
                mine = [o for o in rows if o["intent_id"] == intent_id]
                return mine[0] if mine and mine[0]["status"] == "filled" else None

            wait_for(order, what="the paper fill")
            assert http.post(_url_of(alert), json=_body_of(alert)).json() == sent.json()
            time.sleep(1.0)  # a second order, if any, would be taken within the engine's poll
            rows = http.get(f"{base}/orders", headers=auth).json()
            assert [o["intent_id"] for o in rows].count(intent_id) == 1

            started = http.post(_url_of(backtest), json=_body_of(backtest), headers=auth)
            assert started.status_code == 202, started.text
            run = started.json()["id"]

            def finished() -> dict[str, Any] | None:
                row = http.get(f"{base}/backtests/{run}", headers=auth).json()
                return row if row["status"] not in ("queued", "running") else None

            assert wait_for(finished, timeout=60, what="the backtest")["status"] == "succeeded"
            results = http.get(f"{base}/backtests/{run}/results", headers=auth)
            assert results.status_code == 200
            assert results.json()[0]["symbol"] == "GOOG"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        for r in readers:
            r.join(timeout=5)
    log = "".join(err)
    assert code == 0, log[-3000:]
    assert "engine stopped" in log
    assert "local platform stopped" in log
    assert re.search(r"admin\s+username admin\s+password \S+", "".join(out))
