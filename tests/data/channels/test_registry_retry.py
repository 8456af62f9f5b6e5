"""Registry by name, retry policy arithmetic, normalisation helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algotrendy.data.channels import (
    CandleChannel,
    MarketChannel,
    NewsChannel,
    channel_names,
    get_channel,
)
from algotrendy.data.channels.retry import RetryPolicy, Verdict, call_with_retry
from algotrendy.data.normalise import candles_from_rows, default_until, timeframe_seconds
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import ParameterError, SourceUnavailableError


def test_registry_names_and_protocols() -> None:
    names = channel_names()
    for exchange in ("binance", "bybit", "okx", "coinbase", "kraken"):
        assert exchange in names
        ch = get_channel(exchange)
        assert isinstance(ch, MarketChannel)
        assert ch.info.name == exchange
        assert DataKind.ORDER_BOOK in ch.info.kinds
    assert isinstance(get_channel("yfinance"), CandleChannel)
    assert isinstance(get_channel("alphavantage", api_key="k"), CandleChannel)
    assert get_channel("fred", api_key="k").info.asset_classes == (AssetClass.ECONOMIC,)
    assert isinstance(get_channel("news"), NewsChannel)
    assert isinstance(get_channel("news-polygon", api_key="k"), NewsChannel)
    assert get_channel("binance", market_type="swap").info.asset_classes == (
        AssetClass.CRYPTO,
        AssetClass.FUTURES,
    )


def test_registry_errors_name_the_problem() -> None:
    with pytest.raises(ParameterError, match="unknown market-data channel 'bitmex'"):
        get_channel("bitmex")
    with pytest.raises(ParameterError, match=r"channel 'binance': .*colour"):
        get_channel("binance", colour="red")


@given(st.integers(min_value=1, max_value=20), st.floats(min_value=0, max_value=1))
def test_full_jitter_delay_is_bounded_by_the_capped_exponential(retry: int, r: float) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, random=lambda: r)
    cap = min(30.0, 0.5 * 2 ** (retry - 1))
    assert policy.delay(retry) == pytest.approx(r * cap)
    assert 0 <= policy.delay(retry) <= 30.0


def test_call_with_retry_passes_foreign_errors_through() -> None:
    def boom() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        call_with_retry("x", "do", boom, classify=lambda e: None, policy=RetryPolicy())
    slept: list[float] = []
    attempts: list[int] = []

    def always_transient() -> None:
        attempts.append(1)
        raise TimeoutError("slow")

    with pytest.raises(SourceUnavailableError, match=r"^x: do failed after 3 attempts"):
        call_with_retry(
            "x",
            "do",
            always_transient,
            classify=lambda e: Verdict.TRANSIENT,
            policy=RetryPolicy(attempts=3, sleep=slept.append, random=lambda: 0.5),
        )
    assert len(attempts) == 3
    assert slept == [0.25, 0.5]


def test_normalise_helpers() -> None:
    assert timeframe_seconds("15m") == 900
    assert timeframe_seconds("1d") == 86_400
    with pytest.raises(ParameterError, match="timeframe '0m'"):
        timeframe_seconds("0m")
    now = datetime(2024, 5, 1, 10, 7, 30, tzinfo=UTC)
    assert default_until("5m", now) == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    assert default_until("1d", now) == datetime(2024, 5, 1, tzinfo=UTC)
    frame = candles_from_rows(
        [["1700000060000", "2", "3", "1", "2.5", "10"], [1700000000000, 1, 2, 0.5, 1.5, 0]]
    )
    assert frame.index[0] < frame.index[1]
    assert frame["close"].tolist() == [1.5, 2.5]
