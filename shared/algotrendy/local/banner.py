"""What `algotrendy serve` prints at start: where things are and commands to try.

Every command is a plain `curl` (plus `python3` to pull the token out of the login reply),
quoted with `shlex.quote`, so it can be pasted into a POSIX shell as printed; the slow
test in tests/local runs their equivalents against a real server.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from algotrendy.local.app import ENGINE_PREFIX, LocalPlatform
from algotrendy.local.seed import (
    DEMO_FILE,
    DEMO_QUANTITY,
    DEMO_STRATEGY,
    DEMO_SYMBOL,
    SAMPLE_EXCHANGE,
    SAMPLES,
)

BACKTEST_REQUEST: dict[str, Any] = {
    "strategy": "sma_cross",
    "params": {"fast": 10, "slow": 20},
    "symbols": ["GOOG"],
    "exchange": SAMPLE_EXCHANGE,
    "timeframe": "1d",
}


def _json_arg(payload: Any) -> str:
    return shlex.quote(json.dumps(payload, separators=(",", ":")))


def login_command(base: str, username: str, password: str | None) -> str:
    if password is None:  # from the environment: let the shell fill it in
        fields = f'\\"username\\":\\"{username}\\",\\"password\\":\\"$ALGOTRENDY_ADMIN_PASSWORD\\"'
        body = '"{' + fields + '}"'
    else:
        body = _json_arg({"username": username, "password": password})
    return (
        f"TOKEN=$(curl -s -X POST {base}/auth/login -H 'Content-Type: application/json' "
        f"-d {body} | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    )


def alert_command(base: str, token: str, alert: dict[str, Any]) -> str:
    return (
        f"curl -s -X POST {base}/webhooks/tradingview/{token} "
        f"-H 'Content-Type: application/json' -d {_json_arg(alert)}"
    )


def backtest_command(base: str) -> str:
    return (
        f'curl -s -X POST {base}/backtests -H "Authorization: Bearer $TOKEN" '
        f"-H 'Content-Type: application/json' -d {_json_arg(BACKTEST_REQUEST)}"
    )


def banner(platform: LocalPlatform, base: str) -> str:
    lines = [
        f"AlgoTrendy is running locally, in one process, with no network: {base}",
        f"  data dir  {platform.data_dir}  (SQLite, candles, cache, paper broker)",
    ]
    report = platform.seeded
    if report is None:
        lines += [
            "  not seeded (--no-seed): no sample candles, demo user, strategy or webhook",
            "",
            f"API docs: {base}/docs",
        ]
    else:
        demo = report.secrets
        if report.candles:
            rows = ", ".join(
                f"{s.exchange}/{s.symbol}/{s.timeframe}"
                + (f" ({report.candles[k]} bars loaded)" if report.candles.get(k) else "")
                for s in SAMPLES
                if (k := f"{s.exchange} {s.symbol} {s.timeframe}") in report.candles
            )
            lines.append(f"  candles   {rows}")
        else:
            lines.append("  candles   none: samples/ not found (run from the repository)")
        password = (
            demo.admin_password
            if demo.admin_password is not None
            else "(from ALGOTRENDY_ADMIN_PASSWORD)"
        )
        where = f"kept in {platform.data_dir / DEMO_FILE}" if demo.admin_password else "env"
        lines += [
            f"  admin     username {demo.admin_username}  password {password}  ({where})",
            f"  strategy  {DEMO_STRATEGY} (id {report.strategy_id}): sma_cross 10/20 on "
            f"{SAMPLE_EXCHANGE}/{DEMO_SYMBOL}/1m, paper account",
            f"  webhook   id {demo.webhook_token}  passphrase {demo.passphrase}",
            "",
            "Try:",
            f"  API docs:  {base}/docs",
            "  Log in (keeps the access token in $TOKEN):",
            f"    {login_command(base, demo.admin_username, demo.admin_password)}",
        ]
        if report.alert is not None:
            lines += [
                f"  Send a TradingView alert (buy {DEMO_QUANTITY:g} {DEMO_SYMBOL} on the paper "
                "broker; sent twice, still one order):",
                f"    {alert_command(base, demo.webhook_token, report.alert)}",
                "  See the order and the position:",
                f'    curl -s {base}/orders -H "Authorization: Bearer $TOKEN"',
                f'    curl -s {base}/positions -H "Authorization: Bearer $TOKEN"',
                "  Start a backtest (SMA cross on sample GOOG daily); the reply's id gives "
                "its results:",
                f"    {backtest_command(base)}",
                f'    curl -s {base}/backtests/<id>/results -H "Authorization: Bearer $TOKEN"',
            ]
    lines += [
        f"  Engine:    {base}{ENGINE_PREFIX}/health  {base}{ENGINE_PREFIX}/metrics  "
        f"{base}{ENGINE_PREFIX}/sse?token=$TOKEN",
        "Ctrl-C stops everything (the engine finishes the message in hand).",
    ]
    return "\n".join(lines)
