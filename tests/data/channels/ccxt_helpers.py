"""The CcxtChannel the replayed ccxt tests build (test_ccxt_channel, test_ccxt_gaps)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from algotrendy.data.channels.ccxt_channel import CcxtChannel
from algotrendy.data.channels.retry import RetryPolicy

# The channel's clock: far after every replayed candle, so all of them are closed.
FIXED_NOW = datetime(2030, 1, 1, tzinfo=UTC)


def channel(exchange: str, policy: RetryPolicy, **kw: Any) -> CcxtChannel:
    # rateLimit=1 ms keeps ccxt's throttle on but makes the replayed tests fast.
    return CcxtChannel(
        exchange, retry=policy, config={"rateLimit": 1}, clock=lambda: FIXED_NOW, **kw
    )
