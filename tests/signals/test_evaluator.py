"""Signal evaluation on real GOOG daily bars.

Expected orders are derived independently of the strategy code: SMA crossings computed
with pandas rolling means, the position as the forward-filled target (flat before the
first cross), the order on bar i as position[i] - position[i-1] times the quantity.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signal_helpers import EXCHANGE, QTY, SYMBOL, TIMEFRAME, sma_config

from algotrendy.domain.bars import Bars
from algotrendy.domain.orders import OrderIntent, Side
from algotrendy.messaging import Envelope
from algotrendy.messaging.envelope import EnvelopeError
from algotrendy.signals import (
    CandlesClosed,
    CandlesNotReadyError,
    InMemoryStrategyConfigStore,
    MessageRefusedError,
    SignalError,
    evaluate,
    evaluate_candles_closed,
)
from algotrendy.storage.local import LocalCandleStore
from algotrendy.strategies import Strategy, StrategyParams, get_strategy, register

INTENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{8,128}$")


def pandas_positions(close: pd.Series, fast: int, slow: int, allow_short: bool) -> np.ndarray:
    """Target in force after each bar, from pandas rolling means (not the library's SMA)."""
    f, s = close.rolling(fast).mean(), close.rolling(slow).mean()
    up = (f.shift(1) < s.shift(1)) & (f > s)
    down = (f.shift(1) > s.shift(1)) & (f < s)
    target = pd.Series(np.nan, index=close.index)
    target[down] = -1.0 if allow_short else 0.0
    target[up] = 1.0
    return target.ffill().fillna(0.0).to_numpy()


def message_at(frame: pd.DataFrame, i: int, since: int | None = None) -> CandlesClosed:
    t = frame.index
    return CandlesClosed.for_bars(
        EXCHANGE,
        SYMBOL,
        TIMEFRAME,
        last_bar=t[i].to_pydatetime(),
        new_since=t[i if since is None else since].to_pydatetime(),
    )


def just_after(message: CandlesClosed) -> datetime:
    return message.close_time + timedelta(minutes=5)


def signed(intent: OrderIntent) -> float:
    return intent.quantity if intent.side is Side.BUY else -intent.quantity


@pytest.mark.parametrize("allow_short", [True, False])
def test_orders_follow_independently_derived_positions(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore, allow_short: bool
) -> None:
    config = sma_config(params={"fast": 10, "slow": 20, "allow_short": allow_short})
    expected_pos = pandas_positions(goog_frame["close"], 10, 20, allow_short) * QTY
    held = 0.0
    orders = 0
    for i in range(15, 300):
        msg = message_at(goog_frame, i)
        intents = evaluate_candles_closed(
            msg, candles=goog_store, configs=[config], now=just_after(msg)
        )
        change = expected_pos[i] - expected_pos[i - 1]
        if change == 0:
            assert intents == [], f"bar {i}: no target change, got {intents}"
            continue
        assert len(intents) == 1, f"bar {i}"
        intent = intents[0]
        assert signed(intent) == pytest.approx(change)
        assert intent.reduce_only == (expected_pos[i] == 0)
        assert intent.symbol == SYMBOL
        assert intent.account == "acct-1"
        assert intent.strategy == "goog-sma"
        assert intent.source == "signal"
        assert intent.created_at == msg.close_time
        assert INTENT_ID.match(intent.intent_id)
        held += signed(intent)
        orders += 1
        assert held == pytest.approx(expected_pos[i])
    assert orders >= 8  # the range holds real crossings, in both directions
    if allow_short:
        assert any(abs(expected_pos[i] - expected_pos[i - 1]) == 2 * QTY for i in range(15, 300))


def test_latest_signal_agrees_with_the_intent(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    """The evaluator runs the backtest's Strategy code: on a bar where the strategy's own
    `latest_signal` says +1/-1, the intent moves the position to that target."""
    config = sma_config()
    strategy = get_strategy("sma_cross")
    params = strategy.params(config.params)
    checked = 0
    for i in range(30, 400):
        head = Bars.from_frame(goog_frame.iloc[: i + 1])
        latest = strategy.latest_signal(head, params)
        if latest is None:
            continue
        msg = message_at(goog_frame, i)
        result = evaluate(msg, candles=goog_store, configs=[config], now=just_after(msg))
        assert result.outcomes[0].target == latest
        checked += 1
    assert checked >= 5


def test_redelivery_gives_identical_intents(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    config = sma_config()
    expected_pos = pandas_positions(goog_frame["close"], 10, 20, True)
    bar = int(np.flatnonzero(np.diff(expected_pos) != 0)[3]) + 1
    msg = message_at(goog_frame, bar)
    envelope = Envelope.parse(msg.to_envelope().to_json())
    first = evaluate_candles_closed(msg, candles=goog_store, configs=[config], now=just_after(msg))
    # Redelivered as a wire envelope, an hour later, with the store holding later bars.
    second = evaluate_candles_closed(
        envelope,
        candles=goog_store,
        configs=[config],
        now=just_after(msg) + timedelta(hours=1),
    )
    assert len(first) == 1
    assert first == second
    assert first[0].client_order_id == second[0].client_order_id


def test_intent_ids_differ_per_config_and_bar(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    a = sma_config(id="a")
    b = sma_config(id="b")
    expected_pos = pandas_positions(goog_frame["close"], 10, 20, True)
    bars = (np.flatnonzero(np.diff(expected_pos) != 0) + 1)[:3]
    ids = []
    for i in bars:
        msg = message_at(goog_frame, int(i))
        intents = evaluate_candles_closed(
            msg, candles=goog_store, configs=[a, b], now=just_after(msg)
        )
        assert [x.strategy for x in intents] == ["a", "b"]
        ids += [x.intent_id for x in intents]
    assert len(set(ids)) == len(ids) == 6


def test_disabled_and_other_series_configs_are_ignored(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    expected_pos = pandas_positions(goog_frame["close"], 10, 20, True)
    bar = int(np.flatnonzero(np.diff(expected_pos) != 0)[0]) + 1
    msg = message_at(goog_frame, bar)
    store = InMemoryStrategyConfigStore(
        [
            sma_config(id="on"),
            sma_config(id="off", enabled=False),
            sma_config(id="other-symbol", symbols=["AAPL"]),
            sma_config(id="other-tf", timeframe="1h"),
            sma_config(id="other-exchange", exchange="nyse"),
        ]
    )
    result = evaluate(msg, candles=goog_store, configs=store, now=just_after(msg))
    assert [o.config_id for o in result.outcomes] == ["on"]
    assert [i.strategy for i in result.intents] == ["on"]


def test_no_config_for_the_series_is_not_an_error(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    msg = message_at(goog_frame, 100)
    result = evaluate(msg, candles=goog_store, configs=[], now=just_after(msg))
    assert result.intents == []
    assert result.outcomes == []


def test_warm_up_is_respected(tmp_path: object, goog_frame: pd.DataFrame) -> None:
    config = sma_config()  # warm-up = slow + 1 = 21 bars
    assert config.warmup() == 21
    store = LocalCandleStore(str(tmp_path), fsync=False)
    store.write(goog_frame.iloc[:20], EXCHANGE, SYMBOL, TIMEFRAME)
    msg = message_at(goog_frame, 19)
    result = evaluate(msg, candles=store, configs=[config], now=just_after(msg))
    assert result.intents == []
    assert result.outcomes[0].status == "warming_up"
    assert "20 of 21" in result.outcomes[0].detail

    store.write(goog_frame.iloc[20:21], EXCHANGE, SYMBOL, TIMEFRAME)
    msg = message_at(goog_frame, 20)
    result = evaluate(msg, candles=store, configs=[config], now=just_after(msg))
    assert result.outcomes[0].status in ("unchanged", "intent")


def test_window_is_limited_to_the_announced_bar(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    """The store holds later bars; the evaluation must not see them (no look-ahead)."""
    config = sma_config()
    expected_pos = pandas_positions(goog_frame["close"], 10, 20, True)
    for i in range(200, 260):
        msg = message_at(goog_frame, i)
        result = evaluate(msg, candles=goog_store, configs=[config], now=just_after(msg))
        assert result.outcomes[0].target == expected_pos[i]


def test_a_signal_older_than_the_window_is_taken_as_flat(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    """The documented price of stateless evaluation: with history_bars too short to reach
    the last cross, the target in force is read as flat (as a backtest starting at the
    window would), so the next cross orders one quantity instead of two."""
    pos = pandas_positions(goog_frame["close"], 10, 20, True)
    changes = np.flatnonzero(np.diff(pos) != 0) + 1
    gaps = np.diff(changes)
    k = int(np.argmax(gaps))  # the longest stretch without a cross
    bar, gap = int(changes[k + 1]), int(gaps[k])
    assert abs(pos[bar] - pos[bar - 1]) == 2  # a reversal
    short = sma_config(history_bars=gap - 30)  # window = 21 + gap - 30 < gap
    long = sma_config(id="long", history_bars=gap + 10)
    msg = message_at(goog_frame, bar)
    result = evaluate(msg, candles=goog_store, configs=[short, long], now=just_after(msg))
    by_id = {i.strategy: i for i in result.intents}
    assert by_id["long"].quantity == 2 * QTY
    assert by_id["goog-sma"].quantity == QTY


def test_catch_up_message_nets_the_changes_of_all_new_bars(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    config = sma_config()
    pos = pandas_positions(goog_frame["close"], 10, 20, True) * QTY
    changes = np.flatnonzero(np.diff(pos) != 0) + 1
    c0, c1 = int(changes[2]), int(changes[3])
    # New bars: from two bars before the first change to one bar after it.
    msg = message_at(goog_frame, c0 + 1, since=c0 - 2)
    (intent,) = evaluate_candles_closed(
        msg, candles=goog_store, configs=[config], now=just_after(msg)
    )
    assert signed(intent) == pytest.approx(pos[c0 + 1] - pos[c0 - 3])
    # New bars covering two changes that cancel out: nothing to do.
    msg = message_at(goog_frame, c1 + 1, since=c0 - 2)
    if pos[c1 + 1] == pos[c0 - 3]:
        assert (
            evaluate_candles_closed(msg, candles=goog_store, configs=[config], now=just_after(msg))
            == []
        )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_net_order_equals_target_difference(
    data: st.DataObject, goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    config = sma_config(history_bars=400)
    pos = pandas_positions(goog_frame["close"], 10, 20, True) * QTY
    last = data.draw(st.integers(450, len(goog_frame) - 1), label="last")
    since = data.draw(st.integers(last - 30, last), label="since")
    msg = message_at(goog_frame, last, since=since)
    intents = evaluate_candles_closed(
        msg, candles=goog_store, configs=[config], now=just_after(msg)
    )
    assert sum(signed(i) for i in intents) == pytest.approx(pos[last] - pos[since - 1])


def test_missing_bar_is_not_ready(goog_frame: pd.DataFrame, goog_store: LocalCandleStore) -> None:
    last = goog_frame.index[-1].to_pydatetime() + timedelta(days=3)
    msg = CandlesClosed.for_bars(EXCHANGE, SYMBOL, TIMEFRAME, last_bar=last)
    with pytest.raises(CandlesNotReadyError, match="announces the bar opening"):
        evaluate(msg, candles=goog_store, configs=[sma_config()], now=just_after(msg))


def test_unknown_series_with_a_config_is_not_ready(goog_store: LocalCandleStore) -> None:
    msg = CandlesClosed.for_bars(
        EXCHANGE, "MSFT", TIMEFRAME, last_bar=datetime.fromisoformat("2010-01-04T00:00:00+00:00")
    )
    with pytest.raises(CandlesNotReadyError, match="has no bars"):
        evaluate(
            msg, candles=goog_store, configs=[sma_config(symbols=["MSFT"])], now=just_after(msg)
        )


def test_stale_and_future_messages(goog_frame: pd.DataFrame, goog_store: LocalCandleStore) -> None:
    pos = pandas_positions(goog_frame["close"], 10, 20, True)
    bar = int(np.flatnonzero(np.diff(pos) != 0)[0]) + 1
    msg = message_at(goog_frame, bar)
    config = sma_config(max_signal_age_bars=2.0)
    fresh = evaluate(
        msg, candles=goog_store, configs=[config], now=msg.close_time + timedelta(days=2)
    )
    assert fresh.outcomes[0].status == "intent"
    late = evaluate(
        msg, candles=goog_store, configs=[config], now=msg.close_time + timedelta(days=2, seconds=1)
    )
    assert late.intents == []
    assert late.outcomes[0].status == "stale"
    with pytest.raises(MessageRefusedError, match="not a closed bar"):
        evaluate(msg, candles=goog_store, configs=[config], now=msg.close_time - timedelta(hours=1))


class _BrokenParams(StrategyParams):
    pass


@register
class _Broken(Strategy[_BrokenParams]):
    """Raises on every evaluation: stands for a strategy bug."""

    name: ClassVar[str] = "test_signals_broken"
    Params = _BrokenParams

    def signals(self, bars: Bars, params: _BrokenParams) -> np.ndarray:
        raise RuntimeError("boom in strategy")


def test_a_failing_config_does_not_stop_the_others(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    pos = pandas_positions(goog_frame["close"], 10, 20, True)
    bar = int(np.flatnonzero(np.diff(pos) != 0)[0]) + 1
    msg = message_at(goog_frame, bar)
    broken = sma_config(id="broken", strategy="test_signals_broken", params={})
    good = sma_config(id="good")
    result = evaluate(msg, candles=goog_store, configs=[broken, good], now=just_after(msg))
    assert [i.strategy for i in result.intents] == ["good"]
    assert [(o.config_id, o.detail) for o in result.failures] == [("broken", "boom in strategy")]
    with pytest.raises(SignalError, match="broken: boom in strategy"):
        evaluate_candles_closed(
            msg, candles=goog_store, configs=[broken, good], now=just_after(msg)
        )


def test_longest_config_id_still_makes_a_valid_intent_id(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    pos = pandas_positions(goog_frame["close"], 10, 20, True)
    bar = int(np.flatnonzero(np.diff(pos) != 0)[0]) + 1
    msg = message_at(goog_frame, bar)
    config = sma_config(id="x" * 64)
    (intent,) = evaluate_candles_closed(
        msg, candles=goog_store, configs=[config], now=just_after(msg)
    )
    assert INTENT_ID.match(intent.intent_id)


def test_candles_closed_message_is_checked() -> None:
    good = CandlesClosed.for_bars(
        "binance", "BTC/USDT", "1h", last_bar=datetime.fromisoformat("2024-05-01T11:00:00+00:00")
    )
    assert good.close_time == datetime.fromisoformat("2024-05-01T12:00:00+00:00")
    assert good.new_since == good.last_bar
    raw = good.model_dump(mode="json")
    with pytest.raises(ValueError, match="close_time must be last_bar"):
        CandlesClosed.model_validate({**raw, "close_time": "2024-05-01T11:30:00Z"})
    with pytest.raises(ValueError, match="new_since"):
        CandlesClosed.model_validate({**raw, "new_since": "2024-05-01T12:00:00Z"})
    with pytest.raises(ValueError, match="timeframe"):
        CandlesClosed.model_validate({**raw, "timeframe": "7x"})
    env = Envelope(type="order.intent", id="x", payload=raw)
    with pytest.raises(EnvelopeError, match=r"expected a candles\.closed"):
        CandlesClosed.from_envelope(env)
    env = Envelope(type="candles.closed", id="x", payload={**raw, "symbol": ""})
    with pytest.raises(EnvelopeError, match="payload: symbol"):
        CandlesClosed.from_envelope(env)
    # The same news has the same id.
    again = CandlesClosed.model_validate(raw)
    assert again.to_envelope().id == good.to_envelope().id
