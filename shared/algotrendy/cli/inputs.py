"""Turning what a user typed into validated library inputs, or one `AlgoTrendyError`.

Every value is checked here (or by the library's own validators) rather than by typer's
option types, because a typer/click type error prints a usage box, while a refusal here
becomes the single line `error: ...` that the CLI's error boundary prints for every
`AlgoTrendyError` (see `algotrendy.cli.main`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from algotrendy.backtest.config import BacktestConfig
from algotrendy.errors import ParameterError
from algotrendy.strategies import Strategy, get_strategy

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")

SIZINGS = ("whole", "fraction", "units")
ENGINES = ("auto", "vectorized", "event")
MODES = ("rolling", "anchored")


def parse_value(text: str) -> int | float | str:
    """A typed scalar from the command line: ints and floats as numbers, anything else as
    the string itself (booleans, names) for the parameter's pydantic field to read.

    Numbers are converted here so an out-of-range message shows `(got 1)` rather than
    `(got '1')`; pydantic's lax mode would accept the string too.
    """
    t = text.strip()
    if _INT.match(t):
        return int(t)
    try:
        return float(t)
    except ValueError:
        return t


def parse_params(specs: Sequence[str]) -> dict[str, Any]:
    """`["fast=10", "slow=20"]` -> `{"fast": 10, "slow": 20}`; malformed or repeated
    names are refused with the offending spec quoted."""
    out: dict[str, Any] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name) or not value.strip():
            raise ParameterError(
                f"--param {spec!r}: expected NAME=VALUE (e.g. --param fast=10 --param slow=20)"
            )
        if name in out:
            raise ParameterError(f"--param {spec!r}: parameter {name!r} is given twice")
        out[name] = parse_value(value)
    return out


def choice(option: str, value: str, allowed: Sequence[str]) -> str:
    """`value` lower-cased if it is one of `allowed`, else a ParameterError listing them."""
    v = value.strip().lower()
    if v not in allowed:
        raise ParameterError(f"{option}: must be one of {', '.join(allowed)} (got {value!r})")
    return v


def resolve_strategy(name: str, params: Sequence[str]) -> tuple[Strategy[Any], dict[str, Any]]:
    """The registered strategy and its validated parameters (defaults filled in).

    Checked before any data is read, so a typo fails at once even on a large file.
    """
    strategy = get_strategy(name)
    validated = strategy.params(parse_params(params))
    return strategy, validated.model_dump()


def build_config(**values: Any) -> BacktestConfig:
    """`BacktestConfig` from CLI options; a refusal names the option as typed (`--fee`)."""
    try:
        return BacktestConfig(**values)
    except ValidationError as exc:
        raise ParameterError(_config_error(exc)) from None


def _config_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if loc:
            option = "--" + loc[0].replace("_", "-")
            got = err.get("input")
            parts.append(f"{option}: {msg}" + (f" (got {got!r})" if got is not None else ""))
        else:
            parts.append(msg)
    return "; ".join(parts)


def symbol_for(path: Path, symbol: str | None) -> str:
    """The symbol to label results with: given, or the data file's name without suffix."""
    return symbol if symbol else path.stem


def positive_int(option: str, value: int) -> int:
    if value <= 0:
        raise ParameterError(f"{option}: must be a positive number of bars (got {value})")
    return value
