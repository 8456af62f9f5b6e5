"""Errors named for what the caller must do, translated once at the edges (CLI, API).

Every error here carries a message meant to be shown as is: it names the file, row,
column, parameter or strategy that is wrong, so the CLI prints one line and the API
returns a problem+json body without a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class AlgoTrendyError(Exception):
    """Base of every error the library raises on purpose."""


class DataError(AlgoTrendyError, ValueError):
    """Input market data is unreadable or inconsistent (bad file, missing column, bad row)."""


class ParameterError(AlgoTrendyError, ValueError):
    """A strategy or backtest parameter is missing, of the wrong type or out of range."""


class UnknownStrategyError(AlgoTrendyError, KeyError):
    """No strategy is registered under the requested name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else "unknown strategy"


class SourceUnavailableError(AlgoTrendyError):
    """A market-data source could not be reached or refused the request (network down,
    rate limit, quota spent). The message names the source and the cause in one line."""


def input_refused(what: str, exc: ValidationError) -> ParameterError:
    """`what` refused, every problem named by its field path ('event' for the whole):
    how the Lambda tasks report an input that does not match their schema."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()
    )
    return ParameterError(f"{what} refused: {problems}")
