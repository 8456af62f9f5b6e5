"""The Strategy interface: one piece of code for three callers.

* the vectorised backtest calls `signals(bars, params)` once for the whole history;
* the event-driven backtest calls `on_bar(ctx, i, signals)` bar by bar (by default it
  turns the precomputed signal into an order, as backtesting.py's `Strategy.I` precomputes
  indicators); strategies that need limit/stop orders override `on_bar`;
* live evaluation calls `latest_signal(bars, params)` on the last N bars (N >= `warmup`).

A signal is a *target direction* decided on the close of bar i and acted on at the
next bar's open: +1 long, -1 short, 0 flat, NaN "no change". Using NaN for "no change"
lets event-style rules (a crossover) and state-style rules (RSI above a level) share one
representation; the position is the forward-filled signal.

Parameters are a pydantic model per strategy, so the CLI, sweeps and the API validate
them with the same declared types and ranges.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from algotrendy.errors import ParameterError
from algotrendy.lazy import lazy_exports

if TYPE_CHECKING:
    from algotrendy.domain.bars import Bars
    from algotrendy.strategies.kernels import FloatArray as FloatArray
    from algotrendy.strategies.kernels import crossover as crossover

# The interface itself needs no numpy: grid validation (the sweep's plan step) uses only
# the parameter models. The array type and `crossover`, which strategies import from
# here, come from `kernels` on first use.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"FloatArray": "algotrendy.strategies.kernels", "crossover": "algotrendy.strategies.kernels"},
    globals(),
)


class StrategyParams(BaseModel):
    """Base for strategy parameters: immutable, unknown names refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


P = TypeVar("P", bound=StrategyParams)


class BarContext(Protocol):
    """What the event-driven engine offers a strategy on each bar.

    Orders placed on bar i are acted on from bar i+1 (market orders at its open;
    limit/stop orders when a later bar touches their price).
    """

    @property
    def position(self) -> float:
        """Signed position in units (negative = short)."""
        ...

    def target(self, direction: float) -> None:
        """Move to +1 long / -1 short / 0 flat with the backtest's sizing rule."""
        ...

    def buy(
        self,
        *,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        tag: str | None = None,
    ) -> None:
        """Place a buy order: market, limit, stop or stop-limit by which prices are given."""
        ...

    def sell(
        self,
        *,
        size: float | None = None,
        limit: float | None = None,
        stop: float | None = None,
        tag: str | None = None,
    ) -> None:
        """Place a sell order: market, limit, stop or stop-limit by which prices are given."""
        ...

    def close(self) -> None:
        """Flatten the position at the next bar's open."""
        ...

    def cancel_all(self) -> None:
        """Cancel every working order."""
        ...


class Strategy(ABC, Generic[P]):
    """Subclass, set `name`, `Params` and `description`, implement `signals`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]]

    def params(self, values: Mapping[str, Any] | StrategyParams | None = None) -> P:
        """Validate raw values (strings from a CLI are coerced) into this strategy's Params."""
        if isinstance(values, self.Params):
            return values  # type: ignore[return-value]
        raw = dict(values.model_dump() if isinstance(values, BaseModel) else (values or {}))
        try:
            return self.Params(**raw)  # type: ignore[return-value]
        except ValidationError as exc:
            raise ParameterError(format_validation_error(self.name, exc)) from exc

    @abstractmethod
    def signals(self, bars: Bars, params: P) -> FloatArray:
        """Target direction per bar (+1/-1/0, NaN = no change), decided on each bar's close."""

    def warmup(self, params: P) -> int:
        """Bars needed before the first meaningful signal (live evaluation loads at least this)."""
        return 0

    def on_bar(self, ctx: BarContext, i: int, signals: FloatArray) -> None:
        """Event-driven hook; the default follows the precomputed signal."""
        s = signals[i]
        if s == s:  # not NaN
            ctx.target(float(s))

    def latest_signal(self, bars: Bars, params: P) -> float | None:
        """The signal of the last closed bar, or None if it says "no change"."""
        sig = self.signals(bars, params)
        if len(sig) == 0 or math.isnan(sig[-1]):
            return None
        return float(sig[-1])

    @classmethod
    def param_ranges(cls) -> dict[str, dict[str, Any]]:
        """Declared parameters: type, default, bounds and description (for CLI, API, sweeps)."""
        out: dict[str, dict[str, Any]] = {}
        for fname, field in cls.Params.model_fields.items():
            info: dict[str, Any] = {
                "type": getattr(field.annotation, "__name__", str(field.annotation)),
                "default": field.default,
                "description": field.description or "",
            }
            for meta in field.metadata:
                for bound in ("ge", "gt", "le", "lt"):
                    if getattr(meta, bound, None) is not None:
                        info[bound] = getattr(meta, bound)
            out[fname] = info
        return out


def format_validation_error(strategy: str, exc: ValidationError) -> str:
    """One line per problem, naming the parameter: 'sma_cross: fast: must be >= 2 (got 1)'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "params"
        got = err.get("input")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter"
        parts.append(f"{loc}: {msg}" + (f" (got {got!r})" if got is not None and loc else ""))
    return f"{strategy}: " + "; ".join(parts)
