"""Strategy configs for live evaluation, and where they are kept.

A `StrategyConfig` is one strategy from the registry, with validated parameters, run on
some symbols of one exchange at one timeframe for one account. The same `Strategy.params`
that the CLI, the sweeps and the API use validates `params`, so a config that would not
backtest cannot be saved either.

`StrategyConfigStore` is the port. Adapters here: in memory (tests, local shape), a JSON
document on disk and the same document in one SSM parameter (Lambda, until the API's
relational `strategies` table implements the port with the same three methods). The
document is ``{"version": 1, "strategies": [<StrategyConfig>, ...]}``; a bad document
fails as a whole with a `ConfigurationError` naming the config and the field, because
trading half of an operator's configs silently is worse than trading none and saying why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, Protocol, Self, runtime_checkable

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from algotrendy.documents import CachedDocument, file_reader, parse_document, ssm_reader
from algotrendy.errors import AlgoTrendyError

# Config ids end up inside intent ids (`sig:<id>:<digest>`, pattern [A-Za-z0-9_.:-], at most
# 128 chars), so they are restricted to the same alphabet minus ':' and kept short.
CONFIG_ID_PATTERN = r"^[A-Za-z0-9_.\-]+$"
CONFIG_ID_MAX = 64


class StrategyConfigUnavailableError(AlgoTrendyError):
    """The config source could not be read now (network, throttling): retry later."""


class StrategyConfig(BaseModel):
    """One live strategy: what runs, on which series, for which account, how big.

    Sizing: `quantity` units of the instrument per unit of target direction. A target of
    +1 holds `+quantity`, -1 holds `-quantity` (only strategies whose params allow shorts
    emit -1), 0 holds nothing; the evaluator orders the difference between two targets
    (`algotrendy.signals.evaluator`).

    `history_bars`: bars loaded before the warm-up so the evaluator can tell the target in
    force before the new bars (a crossover strategy signals rarely; its last signal must
    lie inside the window, see the evaluator's docstring). `max_signal_age_bars`: a
    message about a bar that closed longer ago than this many bars produces no order
    (a redriven DLQ message days later must not trade on old news); None = no limit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=CONFIG_ID_MAX, pattern=CONFIG_ID_PATTERN)
    name: str = Field(min_length=1, max_length=128)
    strategy: str = Field(min_length=1, max_length=64, description="registered strategy name")
    params: dict[str, Any] = Field(default_factory=dict)
    exchange: str = Field(min_length=1, max_length=64, description="candle series exchange")
    symbols: tuple[str, ...] = Field(min_length=1)
    timeframe: str = Field(min_length=1, max_length=8)
    account: str = Field("default", min_length=1, max_length=64)
    quantity: float = Field(gt=0, description="units per unit of target direction")
    enabled: bool = True
    history_bars: int = Field(500, ge=0, le=100_000)
    max_signal_age_bars: float | None = Field(2.0, gt=0)

    @field_validator("strategy")
    @classmethod
    def _registered(cls, value: str) -> str:
        from algotrendy.errors import UnknownStrategyError
        from algotrendy.strategies import get_strategy

        try:
            get_strategy(value)
        except UnknownStrategyError as exc:  # a KeyError, which pydantic would not catch
            raise ValueError(str(exc)) from None
        return value

    @field_validator("params")
    @classmethod
    def _valid_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Validated by the strategy itself and stored with defaults filled in, so the
        stored config says exactly what runs."""
        name = info.data.get("strategy")
        if name is None:  # the strategy field already failed; that error is reported
            return value
        from algotrendy.strategies import get_strategy

        validated = get_strategy(name).params(value)  # ParameterError (a ValueError)
        dumped: dict[str, Any] = validated.model_dump()
        return dumped

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        empty = [s for s in value if not s.strip()]
        if empty:
            raise ValueError("symbols must be non-empty strings")
        dups = sorted({s for s in value if value.count(s) > 1})
        if dups:
            raise ValueError(f"symbols listed twice: {', '.join(dups)}")
        too_long = [s for s in value if len(s) > 32]  # OrderIntent.symbol max_length
        if too_long:
            raise ValueError(f"symbols longer than 32 characters: {', '.join(too_long)}")
        return value

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        from algotrendy.data.normalise import timeframe_seconds

        timeframe_seconds(value)  # ParameterError names the bad spelling
        return value

    def strategy_params(self) -> Any:
        """The params as the strategy's own model (what `signals` takes)."""
        from algotrendy.strategies import get_strategy

        return get_strategy(self.strategy).params(self.params)

    def warmup(self) -> int:
        from algotrendy.strategies import get_strategy

        strategy = get_strategy(self.strategy)
        return int(strategy.warmup(strategy.params(self.params)))

    def window_bars(self) -> int:
        """Bars this config evaluates on: warm-up plus history."""
        return self.warmup() + self.history_bars

    def trades(self, exchange: str, symbol: str, timeframe: str) -> bool:
        return (
            self.enabled
            and self.exchange == exchange
            and self.timeframe == timeframe
            and symbol in self.symbols
        )


@runtime_checkable
class StrategyConfigStore(Protocol):
    """Where live strategy configs are kept. A relational adapter implements the same
    three reads over the `strategies` table."""

    def get(self, config_id: str) -> StrategyConfig | None:
        """The config with this id, enabled or not; None if there is none."""
        ...

    def list_configs(self) -> list[StrategyConfig]:
        """Every config, enabled or not, ordered by id."""
        ...

    def for_series(self, exchange: str, symbol: str, timeframe: str) -> list[StrategyConfig]:
        """The enabled configs that trade this series, ordered by id."""
        ...


class StrategyConfigDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    strategies: list[StrategyConfig]

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [c.id for c in self.strategies]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise ValueError(f"strategy config ids must be unique: {', '.join(dups)}")
        return self


def load_strategy_configs(text: str, *, source: str) -> list[StrategyConfig]:
    """Parse a config document; the error names the source, the config (index and id)
    and the field."""
    doc = parse_document(
        text, StrategyConfigDocument, source=source, what="strategy configs",
        items="strategies", label="id",
    )  # fmt: skip
    return sorted(doc.strategies, key=lambda c: c.id)


class _ConfigIndex:
    """Shared lookups over a list of configs."""

    @staticmethod
    def _get(configs: Iterable[StrategyConfig], config_id: str) -> StrategyConfig | None:
        return next((c for c in configs if c.id == config_id), None)

    @staticmethod
    def _for_series(
        configs: Iterable[StrategyConfig], exchange: str, symbol: str, timeframe: str
    ) -> list[StrategyConfig]:
        return sorted(
            (c for c in configs if c.trades(exchange, symbol, timeframe)), key=lambda c: c.id
        )


class InMemoryStrategyConfigStore(_ConfigIndex):
    """Thread-safe dict of configs by id (tests, the local shape)."""

    def __init__(self, configs: Iterable[StrategyConfig] = ()) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, StrategyConfig] = {}
        for config in configs:
            self.put(config)

    def put(self, config: StrategyConfig) -> None:
        with self._lock:
            self._by_id[config.id] = config

    def remove(self, config_id: str) -> bool:
        with self._lock:
            return self._by_id.pop(config_id, None) is not None

    def get(self, config_id: str) -> StrategyConfig | None:
        with self._lock:
            return self._by_id.get(config_id)

    def list_configs(self) -> list[StrategyConfig]:
        with self._lock:
            return sorted(self._by_id.values(), key=lambda c: c.id)

    def for_series(self, exchange: str, symbol: str, timeframe: str) -> list[StrategyConfig]:
        return self._for_series(self.list_configs(), exchange, symbol, timeframe)


class _DocumentStore(_ConfigIndex):
    """Re-reads its document at most every `cache_seconds` (a warm Lambda sees an edit
    within that time without a redeploy)."""

    def __init__(
        self,
        source: str,
        read: Callable[[], str],
        *,
        cache_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.source = source
        self._document = CachedDocument(
            source,
            read,
            lambda text: load_strategy_configs(text, source=source),
            cache_seconds=cache_seconds,
            clock=clock,
        )

    def _current(self) -> list[StrategyConfig]:
        return self._document.value()

    def get(self, config_id: str) -> StrategyConfig | None:
        return self._get(self._current(), config_id)

    def list_configs(self) -> list[StrategyConfig]:
        return list(self._current())

    def for_series(self, exchange: str, symbol: str, timeframe: str) -> list[StrategyConfig]:
        return self._for_series(self._current(), exchange, symbol, timeframe)


class JsonFileStrategyConfigStore(_DocumentStore):
    """Configs from a JSON document on disk (local shape, tests, a file in an image)."""

    def __init__(
        self,
        path: str | Path,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        read = file_reader(self.path, "strategy config")
        super().__init__(str(self.path), read, cache_seconds=cache_seconds, clock=clock)


class SsmParameterStrategyConfigStore(_DocumentStore):
    """Configs from one SSM parameter (String or SecureString), for Lambda. The client is
    injected (built once per container). A missing parameter is an operator error
    (`ConfigurationError`); any other failed read is transient
    (`StrategyConfigUnavailableError`)."""

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        read = ssm_reader(client, name, "strategy configs", StrategyConfigUnavailableError)
        super().__init__(f"ssm:{name}", read, cache_seconds=cache_seconds, clock=clock)
