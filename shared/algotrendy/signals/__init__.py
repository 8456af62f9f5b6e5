"""Live signals: strategy configs, the `candles.closed` message, the evaluator that turns
new closed bars into order intents, and the scheduled ingest that announces them."""

from algotrendy.signals.config import (
    InMemoryStrategyConfigStore,
    JsonFileStrategyConfigStore,
    SsmParameterStrategyConfigStore,
    StrategyConfig,
    StrategyConfigStore,
    StrategyConfigUnavailableError,
    load_strategy_configs,
)
from algotrendy.signals.evaluator import (
    CandlesNotReadyError,
    ConfigOutcome,
    Evaluation,
    MessageRefusedError,
    SignalError,
    evaluate,
    evaluate_candles_closed,
    intent_id_for,
)
from algotrendy.signals.ingest_group import (
    ChannelSeries,
    IngestGroup,
    IngestGroupResult,
    SeriesOutcome,
    run_ingest_group,
)
from algotrendy.signals.messages import CandlesClosed, send_candles_closed

__all__ = [
    "CandlesClosed",
    "CandlesNotReadyError",
    "ChannelSeries",
    "ConfigOutcome",
    "Evaluation",
    "InMemoryStrategyConfigStore",
    "IngestGroup",
    "IngestGroupResult",
    "JsonFileStrategyConfigStore",
    "MessageRefusedError",
    "SeriesOutcome",
    "SignalError",
    "SsmParameterStrategyConfigStore",
    "StrategyConfig",
    "StrategyConfigStore",
    "StrategyConfigUnavailableError",
    "evaluate",
    "evaluate_candles_closed",
    "intent_id_for",
    "load_strategy_configs",
    "run_ingest_group",
    "send_candles_closed",
]
