"""Live signal evaluation: a `candles.closed` message in, order intents out.

For each enabled config that trades the message's series, the evaluator loads the
config's window of closed bars from the candle store, runs the *same* `Strategy.signals`
that the backtests run (`Strategy.latest_signal` is its last element), and orders the
change of target.

Target and quantities (the backtest's convention, `algotrendy.strategies.base`): a signal
is a target direction decided on a bar's close, NaN meaning "no change", so the target in
force after bar i is the forward-filled signal, flat before the first one. With
`q = config.quantity`:

* `previous` = target in force before the message's new bars (the bar before
  `new_since`), `target` = target in force after `last_bar`;
* nothing is ordered when they are equal (a state-style strategy repeating +1 every bar
  trades once);
* otherwise one market order of `|target - previous| * q`, buy when the target rose, sell
  when it fell: 0 -> +1 buys q, +1 -> 0 sells q (reduce-only), +1 -> -1 sells 2q,
  -1 -> +1 buys 2q, -1 -> 0 buys q (reduce-only).

The state is derived, never stored: both targets come from the signal history over the
config's window (`warmup + history_bars` bars before `new_since`, plus the new bars), so
evaluating the same message twice gives the same intents, whatever happened in between.
The price of that choice: the window must reach back to the strategy's last signal. A
crossover strategy whose last cross is older than the window is taken as flat (as a
backtest starting at the window's first bar would be), which can misstate `previous`;
choose `history_bars` above the longest expected gap between signals. An exit (target 0)
is sent reduce-only so that such a misstatement can only fail to close, never open a
position the other way.

Ids: `intent_id = "sig:<config id>:" + sha256(config id | exchange | symbol | timeframe |
last_bar)[:32]`: one decision per config and bar. A redelivered message, or a retry after
a partial failure, yields the same ids; orders.fifo drops a duplicate within its 5-minute
window and the engine refuses a second order for an intent id after that. `created_at`
is the bar's close time, so the whole intent, not only its id, is reproducible.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np

from algotrendy.domain.bars import Bars
from algotrendy.domain.orders import OrderIntent, OrderType, Side
from algotrendy.errors import AlgoTrendyError
from algotrendy.messaging.envelope import Envelope
from algotrendy.signals.config import StrategyConfig, StrategyConfigStore
from algotrendy.signals.messages import CandlesClosed

if TYPE_CHECKING:
    from algotrendy.storage.base import CandleStore

log = logging.getLogger(__name__)

# How far ahead of the evaluator's clock a bar may claim to have closed (clock skew
# between the ingest and the evaluator), before the message is refused.
CLOCK_SKEW = timedelta(seconds=5)
# Calendar time read per bar wanted: weekends and holidays leave equity and FX series
# with fewer bars than calendar time / bar length (5/7 of days for daily equities).
_SLACK = 2.0
_MAX_WIDENINGS = 3


class SignalError(AlgoTrendyError):
    """Evaluation could not finish now; retrying the message may succeed."""


class CandlesNotReadyError(SignalError):
    """The store does not (yet) hold the bar the message announces."""


class MessageRefusedError(AlgoTrendyError):
    """The message itself is wrong (it can never succeed): a poison message."""


OutcomeStatus = Literal["intent", "unchanged", "warming_up", "stale", "failed"]


@dataclass(frozen=True)
class ConfigOutcome:
    """What became of one config for one message."""

    config_id: str
    status: OutcomeStatus
    detail: str = ""
    previous: float | None = None
    target: float | None = None
    intent_id: str | None = None


@dataclass(frozen=True)
class Evaluation:
    message: CandlesClosed
    intents: list[OrderIntent] = field(default_factory=list)
    outcomes: list[ConfigOutcome] = field(default_factory=list)

    @property
    def failures(self) -> list[ConfigOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def bar_length(timeframe: str) -> timedelta:
    """One bar; calendar units (1M, 1y) count by their nominal length for windowing."""
    from algotrendy.data.normalise import timeframe_seconds

    return timedelta(seconds=timeframe_seconds(timeframe))


def intent_id_for(config: StrategyConfig, message: CandlesClosed) -> str:
    digest = hashlib.sha256(
        "|".join(
            (
                config.id,
                message.exchange,
                message.symbol,
                message.timeframe,
                message.last_bar.isoformat(),
            )
        ).encode()
    ).hexdigest()
    return f"sig:{config.id}:{digest[:32]}"


def _as_message(message: CandlesClosed | Envelope) -> CandlesClosed:
    return message if isinstance(message, CandlesClosed) else CandlesClosed.from_envelope(message)


def _configs_for(
    configs: StrategyConfigStore | Iterable[StrategyConfig], message: CandlesClosed
) -> list[StrategyConfig]:
    if isinstance(configs, StrategyConfigStore):
        return configs.for_series(message.exchange, message.symbol, message.timeframe)
    return sorted(
        (c for c in configs if c.trades(message.exchange, message.symbol, message.timeframe)),
        key=lambda c: c.id,
    )


def _utc64(moment: datetime) -> np.datetime64:
    """`moment` (aware) as naive-UTC datetime64[us], comparable with `Bars.time` of any
    unit (numpy compares across units exactly)."""
    return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "us")


def _iso(opened: np.datetime64) -> str:
    """A bar's open time as ISO 8601 UTC, spelt as the message's own times are."""
    moment: datetime = opened.astype("datetime64[us]").item()
    return moment.replace(tzinfo=UTC).isoformat()


def load_window(candles: CandleStore, message: CandlesClosed, bars_before: int) -> tuple[Bars, int]:
    """Closed bars up to and including `last_bar`, with at least `bars_before` bars before
    `new_since` when the store has them; returns the bars and the index of the first new
    bar. Reads by time (the store's port), widening the range when gaps (weekends,
    holidays, outages) leave too few bars. Bars, not a frame: the evaluator's whole path
    runs without pandas (cold start of the evaluator function)."""
    bar = bar_length(message.timeframe)
    end = message.last_bar + timedelta(microseconds=1)  # read_bars() is [start, end)
    span = bar * max(int(bars_before * _SLACK), 1)
    new_since, last_bar = _utc64(message.new_since), _utc64(message.last_bar)
    for attempt in range(_MAX_WIDENINGS + 1):
        start = message.new_since - span
        bars = candles.read_bars(message.exchange, message.symbol, message.timeframe, start, end)
        before = int(np.count_nonzero(bars.time < new_since))
        if before >= bars_before or attempt == _MAX_WIDENINGS:
            break
        span *= 4
    if not len(bars) or bars.time[-1] != last_bar:
        have = "no bars" if not len(bars) else f"the newest bar opens {_iso(bars.time[-1])}"
        raise CandlesNotReadyError(
            f"{message.series}: store {getattr(candles, 'name', '?')} has {have}; "
            f"the message announces the bar opening {message.last_bar.isoformat()}"
        )
    first_new = int(np.searchsorted(bars.time, new_since, side="left"))
    return bars, first_new


def _target_before(signals: np.ndarray, stop: int) -> float:
    """Forward-filled target after bar `stop - 1` (flat before any signal)."""
    known = np.flatnonzero(~np.isnan(signals[:stop]))
    return float(signals[known[-1]]) if known.size else 0.0


def _evaluate_config(
    config: StrategyConfig, message: CandlesClosed, bars: Bars, first_new: int
) -> tuple[ConfigOutcome, OrderIntent | None]:
    from algotrendy.strategies import get_strategy

    strategy = get_strategy(config.strategy)
    params = strategy.params(config.params)
    warmup = int(strategy.warmup(params))
    start = max(0, first_new - (warmup + config.history_bars))
    window = bars.tail(len(bars) - start)
    if len(window) < max(warmup, 1):
        return (
            ConfigOutcome(
                config.id, "warming_up", f"{len(window)} of {warmup} warm-up bars in the store"
            ),
            None,
        )
    signals = np.asarray(strategy.signals(window, params), dtype=np.float64)
    if signals.shape != (len(window),):
        raise SignalError(
            f"strategy {config.strategy} returned {signals.shape[0]} signals for {len(window)} bars"
        )
    bad = signals[~np.isnan(signals) & ((np.abs(signals) > 1.0) | ~np.isfinite(signals))]
    if bad.size:
        raise SignalError(
            f"strategy {config.strategy} returned target {bad[0]!r}; targets are -1..+1"
        )
    previous = _target_before(signals, first_new - start)
    target = _target_before(signals, len(window))
    if target == previous:
        return ConfigOutcome(config.id, "unchanged", previous=previous, target=target), None
    change = target - previous
    intent = OrderIntent(
        intent_id=intent_id_for(config, message),
        account=config.account,
        strategy=config.id,
        symbol=message.symbol,
        side=Side.BUY if change > 0 else Side.SELL,
        quantity=abs(change) * config.quantity,
        order_type=OrderType.MARKET,
        reduce_only=target == 0.0,
        source="signal",
        created_at=message.close_time,
    )
    outcome = ConfigOutcome(
        config.id,
        "intent",
        f"{intent.side.value} {intent.quantity:g} {message.symbol}",
        previous=previous,
        target=target,
        intent_id=intent.intent_id,
    )
    return outcome, intent


def evaluate(
    message: CandlesClosed | Envelope,
    *,
    candles: CandleStore,
    configs: StrategyConfigStore | Iterable[StrategyConfig],
    now: datetime,
) -> Evaluation:
    """Every enabled config of the message's series, each on its own window.

    A config that fails (its strategy raised) is reported in `outcomes` and does not stop
    the others; the caller sends the intents it got and then retries the message (the
    retry gives the same ids, so what was sent is not sent twice). Raises
    `MessageRefusedError` for a message that can never succeed and `CandlesNotReadyError`
    when the store does not hold the announced bar (retry later).
    """
    msg = _as_message(message)
    if msg.close_time > now + CLOCK_SKEW:
        raise MessageRefusedError(
            f"{msg.series}: bar opening {msg.last_bar.isoformat()} closes at "
            f"{msg.close_time.isoformat()}, after now ({now.isoformat()}): not a closed bar"
        )
    selected = _configs_for(configs, msg)
    if not selected:
        return Evaluation(msg)
    bar = bar_length(msg.timeframe)
    outcomes: list[ConfigOutcome] = []
    live: list[StrategyConfig] = []
    for config in selected:
        age = now - msg.close_time
        limit = config.max_signal_age_bars
        if limit is not None and age > bar * limit:
            outcomes.append(
                ConfigOutcome(config.id, "stale", f"bar closed {age} ago (limit {limit:g} bars)")
            )
        else:
            live.append(config)
    if not live:
        return Evaluation(msg, outcomes=outcomes)
    windows = {c.id: c.window_bars() for c in live}
    bars, first_new = load_window(candles, msg, max(windows.values()))
    intents: list[OrderIntent] = []
    for config in live:
        try:
            outcome, intent = _evaluate_config(config, msg, bars, first_new)
        except Exception as exc:  # one config's failure must not stop the others
            log.exception("signal: %s on %s failed", config.id, msg.series)
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            outcome, intent = ConfigOutcome(config.id, "failed", text), None
        outcomes.append(outcome)
        if intent is not None:
            intents.append(intent)
    return Evaluation(msg, intents=intents, outcomes=outcomes)


def evaluate_candles_closed(
    message: CandlesClosed | Envelope,
    *,
    candles: CandleStore,
    configs: StrategyConfigStore | Iterable[StrategyConfig],
    now: datetime,
) -> list[OrderIntent]:
    """The intents for a message; raises `SignalError` if any config failed (use
    `evaluate` to keep the other configs' intents)."""
    result = evaluate(message, candles=candles, configs=configs, now=now)
    if result.failures:
        detail = "; ".join(f"{o.config_id}: {o.detail}" for o in result.failures)
        raise SignalError(f"{result.message.series}: {detail}")
    return result.intents
