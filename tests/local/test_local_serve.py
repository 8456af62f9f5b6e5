"""`algotrendy serve` composed in-process: seeding, login, webhook -> engine fill (once),
backtest through the API, signal evaluator -> engine, health, restart and --no-seed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from local_helpers import LOCAL_CLIENT, SAMPLES, TRADINGVIEW, wait_for

from algotrendy.config import Settings
from algotrendy.data.loaders import load_ohlcv
from algotrendy.local import LocalPlatform, build_platform, local_settings
from algotrendy.local.seed import DEMO_STRATEGY, live_config
from algotrendy.signals.evaluator import intent_id_for
from algotrendy.signals.messages import CandlesClosed


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_ohlcv(SAMPLES / "GOOG_1d.csv")


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return load_ohlcv(SAMPLES / "BTC-PERP_1m_2022-01.csv")


def fixture_alert(passphrase: str, contracts: float, order_id: str) -> dict[str, Any]:
    """TradingView fixture 01 (hackingthemarkets' strategy template) re-targeted at the
    demo webhook: its passphrase, SAMPLE:BTC-PERP, `contracts` bought flat -> long."""
    alert: dict[str, Any] = json.loads(
        (TRADINGVIEW / "01_passphrase_bar_strategy.filled.json").read_text()
    )
    alert = copy.deepcopy(alert)
    alert.update(passphrase=passphrase, exchange="SAMPLE", ticker="BTC-PERP")
    alert["strategy"].update(
        order_action="buy",
        order_contracts=contracts,
        position_size=contracts,
        market_position_size=contracts,
        order_id=order_id,
    )
    return alert


def orders_for(client: TestClient, auth: dict[str, str], intent_id: str) -> list[dict[str, Any]]:
    reply = client.get("/orders", headers=auth, params={"limit": 1000})
    assert reply.status_code == 200, reply.text
    return [o for o in reply.json() if o["intent_id"] == intent_id]


def filled(client: TestClient, auth: dict[str, str], intent_id: str) -> dict[str, Any] | None:
    found = orders_for(client, auth, intent_id)
    return found[0] if found and found[0]["status"] == "filled" else None


# -- seeding, login, health --------------------------------------------------------------
def test_seeded_candles_are_readable_through_the_api(
    client: TestClient, auth: dict[str, str], goog: pd.DataFrame
) -> None:
    reply = client.get(
        "/market/candles",
        headers=auth,
        params={"symbol": "GOOG", "exchange": "sample", "timeframe": "1d", "limit": 100_000},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["count"] == len(goog)
    assert pd.Timestamp(body["candles"][0]["time"]) == goog.index[0]
    assert body["candles"][-1]["close"] == goog["close"].iloc[-1]


def test_latest_price_is_seeded_for_the_paper_broker(
    client: TestClient, auth: dict[str, str], btc: pd.DataFrame
) -> None:
    reply = client.get(
        "/market/price", headers=auth, params={"symbol": "BTC-PERP", "exchange": "sample"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["source"] == "cache"
    assert reply.json()["price"] == btc["close"].iloc[-1]
    assert pd.Timestamp(reply.json()["time"]) == btc.index[-1] + pd.Timedelta(minutes=1)


def test_demo_admin_logs_in_and_a_wrong_password_does_not(
    platform: LocalPlatform, client: TestClient, auth: dict[str, str]
) -> None:
    me = client.get("/auth/me", headers=auth)
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    assert platform.seeded is not None
    wrong = client.post(
        "/auth/login",
        json={"username": platform.seeded.secrets.admin_username, "password": "not the password"},
    )
    assert wrong.status_code == 401


def test_health_reports_engine_consumer_and_signal_evaluator(client: TestClient) -> None:
    reply = client.get("/health")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "ok"
    assert body["engine"]["consumer"] == "running"
    assert body["signals"]["consumer"] == "running"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["orders_queue"] == "orders.fifo"
    engine = client.get("/engine/health")
    assert engine.status_code == 200
    assert engine.json()["consumer"] == "running"


def test_docs_describe_api_and_webhook(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/webhooks/tradingview/{webhook_id}" in paths
    assert "/backtests" in paths
    assert "/auth/login" in paths
    assert client.get("/docs").status_code == 200


def test_demo_strategy_is_listed_with_its_webhook(client: TestClient, auth: dict[str, str]) -> None:
    rows = client.get("/strategies", headers=auth).json()
    demo = [r for r in rows if r["name"] == DEMO_STRATEGY]
    assert len(demo) == 1
    assert demo[0]["webhook"] is True
    assert demo[0]["symbols"] == ["BTC-PERP"]


# -- webhook -> orders.fifo -> engine -> paper fill ---------------------------------------
def test_tradingview_alert_is_filled_by_the_paper_engine_once(
    platform: LocalPlatform, client: TestClient, auth: dict[str, str], btc: pd.DataFrame
) -> None:
    assert platform.seeded is not None
    demo = platform.seeded.secrets
    alert = fixture_alert(demo.passphrase, 0.02, "webhook test")
    url = f"/webhooks/tradingview/{demo.webhook_token}"

    first = client.post(url, json=alert)
    assert first.status_code == 200, first.text
    intent_id = first.json()["intent_id"]
    order = wait_for(lambda: filled(client, auth, intent_id), what="the paper fill")

    last = float(btc["close"].iloc[-1])  # the seeded latest price; market buy, no slippage
    assert order["side"] == "buy"
    assert order["quantity"] == pytest.approx(0.02)
    assert order["filled_quantity"] == pytest.approx(0.02)
    assert order["avg_fill_price"] == pytest.approx(last)
    assert order["fees"] == pytest.approx(0.02 * last * platform.settings.paper_fee)
    assert order["source"] == "webhook"

    processed = platform.runtime.engine.stats.processed
    again = client.post(url, json=alert)
    assert again.status_code == 200
    assert again.json() == first.json()  # the first delivery's reply, byte for byte
    assert len(platform.orders_queue) == 0  # nothing was enqueued a second time
    assert platform.runtime.engine.stats.processed == processed
    assert len(orders_for(client, auth, intent_id)) == 1

    one = client.get(f"/orders/{order['client_order_id']}", headers=auth).json()
    assert [f["quantity"] for f in one["fills"]] == pytest.approx([0.02])


def test_position_matches_the_filled_orders(
    platform: LocalPlatform, client: TestClient, auth: dict[str, str]
) -> None:
    # Its own order, so the test does not depend on which tests ran before it (pytest-xdist
    # spreads this module's tests over workers, each with its own platform).
    assert platform.seeded is not None
    demo = platform.seeded.secrets
    alert = fixture_alert(demo.passphrase, 0.01, "position test")
    sent = client.post(f"/webhooks/tradingview/{demo.webhook_token}", json=alert)
    assert sent.status_code == 200, sent.text
    wait_for(lambda: filled(client, auth, sent.json()["intent_id"]), what="the paper fill")
    wait_for(lambda: len(platform.orders_queue) == 0, what="orders.fifo to drain")
    orders = [
        o
        for o in client.get("/orders", headers=auth, params={"symbol": "BTC-PERP"}).json()
        if o["strategy"] == DEMO_STRATEGY
    ]
    assert orders, "the webhook test placed at least one order"
    signed = sum(o["filled_quantity"] * (1 if o["side"] == "buy" else -1) for o in orders)
    rows = client.get(
        "/positions", headers=auth, params={"symbol": "BTC-PERP", "include_flat": True}
    ).json()
    mine = [r for r in rows if r["strategy"] == DEMO_STRATEGY and r["account"] == "paper"]
    assert len(mine) == 1
    assert mine[0]["quantity"] == pytest.approx(signed)


def test_webhook_refusals_enqueue_nothing(platform: LocalPlatform, client: TestClient) -> None:
    assert platform.seeded is not None
    demo = platform.seeded.secrets
    alert = fixture_alert("wrong passphrase", 0.01, "refused")
    bad = client.post(f"/webhooks/tradingview/{demo.webhook_token}", json=alert)
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith("application/problem+json")
    unknown = client.post("/webhooks/tradingview/" + "x" * 43, json=alert)
    assert unknown.status_code == 404
    outsider = TestClient(platform.app, client=("203.0.113.9", 4000))  # no second lifespan
    alert = fixture_alert(demo.passphrase, 0.01, "outsider")
    assert (
        outsider.post(f"/webhooks/tradingview/{demo.webhook_token}", json=alert).status_code == 403
    )
    assert len(platform.orders_queue) == 0


# -- backtests through the API's launcher -------------------------------------------------
def test_backtest_started_through_the_api_completes_with_the_library_numbers(
    client: TestClient, auth: dict[str, str], goog: pd.DataFrame
) -> None:
    from algotrendy.backtest.runner import run_backtest

    request = {
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 20},
        "symbols": ["GOOG"],
        "exchange": "sample",
        "timeframe": "1d",
    }
    started = client.post("/backtests", headers=auth, json=request)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def done() -> dict[str, Any] | None:
        row = client.get(f"/backtests/{run_id}", headers=auth).json()
        return row if row["status"] not in ("queued", "running") else None

    row = wait_for(done, timeout=60, what="the backtest")
    assert row["status"] == "succeeded", row["error"]
    results = client.get(f"/backtests/{run_id}/results", headers=auth)
    assert results.status_code == 200
    [best] = results.json()
    expected = run_backtest(goog, "sma_cross", {"fast": 10, "slow": 20}, symbol="GOOG")
    assert best["metrics"]["num_trades"] == expected.metrics["num_trades"]
    assert best["metrics"]["final_equity"] == pytest.approx(expected.metrics["final_equity"])
    trades = client.get(f"/backtests/{run_id}/trades", headers=auth).json()["trades"]
    assert len(trades) == len(expected.trades)


# -- signals queue -> evaluator -> orders.fifo -> engine ---------------------------------
def _last_target_change(btc: pd.DataFrame) -> tuple[int, float, float]:
    """(bar index, target before, target after) of the last change of sma_cross's forward-
    filled target whose previous change lies within 300 bars (so the evaluator's window,
    warm-up + 500 bars, sees both)."""
    from algotrendy.domain.bars import Bars
    from algotrendy.strategies import get_strategy

    config = live_config()
    strategy = get_strategy(config.strategy)
    signals = np.asarray(strategy.signals(Bars.from_frame(btc), strategy.params(config.params)))
    target = pd.Series(signals).ffill().fillna(0.0).to_numpy()
    changes = np.flatnonzero(np.diff(target) != 0) + 1
    for later, earlier in zip(changes[::-1], changes[-2::-1], strict=False):
        if later - earlier < 300:
            return int(later), float(target[later - 1]), float(target[later])
    pytest.fail("no pair of close target changes in the sample")


def test_candles_closed_message_becomes_a_filled_signal_order(
    platform: LocalPlatform, client: TestClient, auth: dict[str, str], btc: pd.DataFrame
) -> None:
    i, before, after = _last_target_change(btc)
    last_bar = btc.index[i].to_pydatetime()
    platform.announce("sample", "BTC-PERP", "1m", last_bar=last_bar)
    message = CandlesClosed.for_bars("sample", "BTC-PERP", "1m", last_bar=last_bar)
    intent_id = intent_id_for(live_config(), message)

    order = wait_for(lambda: filled(client, auth, intent_id), what="the signal order's fill")
    assert order["source"] == "signal"
    assert order["side"] == ("buy" if after > before else "sell")
    assert order["quantity"] == pytest.approx(abs(after - before) * live_config().quantity)
    assert platform.signals.stats.intents >= 1

    platform.announce("sample", "BTC-PERP", "1m", last_bar=last_bar)  # redelivered news
    wait_for(lambda: len(platform.signals_queue) == 0, what="the signals queue to drain")
    wait_for(lambda: len(platform.orders_queue) == 0, what="orders.fifo to drain")
    assert len(orders_for(client, auth, intent_id)) == 1


# -- restart and --no-seed ----------------------------------------------------------------
def test_second_start_keeps_data_and_secrets(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, Settings(admin_username=None, admin_password=None))
    first = build_platform(settings, samples_dir=SAMPLES)
    second = build_platform(settings, samples_dir=SAMPLES)
    assert first.seeded is not None
    assert second.seeded is not None
    assert second.seeded.secrets == first.seeded.secrets
    assert set(second.seeded.candles.values()) == {0}  # nothing rewritten
    assert second.seeded.strategy_id == first.seeded.strategy_id
    assert (tmp_path / "local-demo.json").stat().st_mode & 0o777 == 0o600
    with TestClient(second.app, client=LOCAL_CLIENT) as c:
        demo = second.seeded.secrets
        login = c.post(
            "/auth/login", json={"username": demo.admin_username, "password": demo.admin_password}
        )
        assert login.status_code == 200


def test_no_seed_starts_empty_and_healthy(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, Settings(admin_username=None, admin_password=None))
    platform = build_platform(settings, seed_demo=False)
    assert platform.seeded is None
    with TestClient(platform.app, client=LOCAL_CLIENT) as c:
        assert c.get("/health").status_code == 200
        assert (
            c.post("/auth/login", json={"username": "admin", "password": "x" * 12}).status_code
            == 401
        )
        assert c.post("/webhooks/tradingview/" + "y" * 43, content="buy").status_code == 404
    assert not platform.signals.running
    assert platform.runtime.engine.stats.processed == 0
