"""Channel tests never reach the internet: any socket connect or DNS lookup fails loudly
(so a test that forgot to mock HTTP errors instead of passing on live data), and vendor
HTTP is replayed from recorded payloads in tests/fixtures (see its README)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from algotrendy.data.channels.retry import RetryPolicy

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
EXCHANGE = FIXTURES / "exchange"


class NetworkBlockedError(RuntimeError):
    pass


def _blocked(*args: object, **kwargs: object) -> Any:
    raise NetworkBlockedError(f"network access attempted in a unit test: {args[:2]!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    try:
        import curl_cffi.requests

        monkeypatch.setattr(curl_cffi.requests.Session, "request", _blocked)
    except ImportError:  # pragma: no cover - curl_cffi ships with yfinance
        pass


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Replayed HTTP: unmatched requests fail, and every registered reply must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def policy(sleeps: SleepRecorder) -> RetryPolicy:
    """Four attempts, deterministic jitter (random() = 1.0 -> the full cap), no real sleep."""
    return RetryPolicy(attempts=4, base_delay=0.5, max_delay=30.0, sleep=sleeps, random=lambda: 1.0)


@pytest.fixture(scope="session")
def fixture_json() -> Any:
    """Reader for a JSON payload under tests/fixtures (path relative to it)."""

    def load(relative: str) -> Any:
        return json.loads((FIXTURES / relative).read_text())

    return load


@pytest.fixture
def binance_markets(http: responses.RequestsMock, fixture_json: Any) -> None:
    """Binance spot markets, as ccxt loads them before its first request."""
    http.add(
        responses.GET,
        "https://api.binance.com/api/v3/exchangeInfo",
        json=fixture_json("exchange/binance/http_spot_market_exchange_info.json"),
    )


@pytest.fixture
def okx_markets(http: responses.RequestsMock, fixture_json: Any) -> None:
    """OKX spot instruments, as ccxt loads them before its first request."""
    http.add(
        responses.GET,
        "https://www.okx.com/api/v5/public/instruments?instType=SPOT",
        json=fixture_json("exchange/okx/http_get_instruments_spot.json"),
    )
