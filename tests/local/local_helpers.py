"""Constants and helpers of the local-shape tests (imported by module name, like the
other suites' *_helpers modules, so it never collides with another folder's conftest)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
TRADINGVIEW = REPO / "tests" / "fixtures" / "tradingview"
LOCAL_CLIENT = ("127.0.0.1", 50000)  # the webhook allows loopback callers locally


def wait_for(probe: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
