"""Shared fixtures for the live-adapter tests: recorded venue payloads and a network guard.

Every HTTP exchange goes through `responses` (it replaces requests' transport, which ccxt
and the TradeStation adapter use), so ccxt's own request building, signing, error
handling and parsing run unchanged against recorded replies. An unregistered URL raises
`ConnectionError` inside `responses`; the socket guard below makes sure nothing else can
reach the network either.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "brokers"


def load(name: str) -> Any:
    """A recorded payload from tests/fixtures/brokers (see its README for provenance)."""
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"test tried to open a network connection: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return
