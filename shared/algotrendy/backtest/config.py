"""Backtest settings: one validated object shared by the vectorised and event engines,
the CLI, sweeps and the API, so both engines are always run with the same semantics.

Conventions (chosen to match backtesting.py so results can be reproduced there):
* a signal decided on bar i's close fills at bar i+1's open (`trade_on_close=False`);
* `fee` is a fraction of traded notional charged on every fill (entry and exit), and
  `fixed_fee` is a cash amount per fill;
* `slippage` is a fraction of price, always against the trader (buys pay more);
* sizing: `"whole"` buys as many whole units as cash covers after fees (backtesting.py's
  default all-in sizing), `"fraction"` invests `size` x equity in fractional units,
  `"units"` trades exactly `size` units.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Sizing(StrEnum):
    WHOLE = "whole"
    FRACTION = "fraction"
    UNITS = "units"


class BacktestConfig(BaseModel):
    # Finite numbers only: an infinite cash, fee or size has no meaning, and JSON (the
    # stored request, the Step Functions input) would carry it as null.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    cash: float = Field(10_000.0, gt=0, description="starting cash")
    fee: float = Field(0.0, ge=0, lt=0.2, description="fee per fill as a fraction of notional")
    fixed_fee: float = Field(0.0, ge=0, description="fee per fill in cash")
    slippage: float = Field(0.0, ge=0, lt=0.2, description="adverse price move per fill, fraction")
    sizing: Sizing = Field(Sizing.WHOLE, description="whole | fraction | units")
    size: float = Field(1.0, gt=0, description="fraction of equity (fraction) or units (units)")
    trade_on_close: bool = Field(False, description="fill at the signal bar's close instead")
    risk_free: float = Field(0.0, ge=-1, le=1, description="annual risk-free rate for Sharpe")
    periods_per_year: float | None = Field(
        None, gt=0, description="override the annualisation inferred from the bar interval"
    )

    @model_validator(mode="after")
    def _size_fits_sizing(self) -> Self:
        if self.sizing is Sizing.FRACTION and self.size > 1.0:
            raise ValueError(f"size is a fraction of equity with sizing=fraction (got {self.size})")
        return self
