"""The result of one backtest, the single shape every caller reads (CLI, report, API,
sweeps), whichever engine produced it.

* `metrics`: ordered name -> float (see `algotrendy.backtest.metrics.METRICS`), always
  including `final_equity` and `num_trades`;
* `trades`: one row per closed round trip, columns `TRADE_COLUMNS`;
* `equity`: indexed by bar time, columns `equity` (cash + marked position), `position`
  (signed units held at the bar's close) and `drawdown` (fraction below the running peak,
  <= 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from algotrendy.backtest.config import BacktestConfig

TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "side",  # "long" | "short"
    "size",  # units, positive
    "entry_price",  # fill price incl. slippage
    "exit_price",
    "pnl",  # cash, net of both fills' fees
    "return_pct",  # pnl / (entry notional), as a fraction
    "fees",  # cash paid on entry + exit
    "entry_bar",  # integer bar positions
    "exit_bar",
)


@dataclass(frozen=True)
class BacktestResult:
    strategy: str
    params: dict[str, Any]
    config: BacktestConfig
    metrics: dict[str, float]
    trades: pd.DataFrame
    equity: pd.DataFrame
    data: pd.DataFrame | None = field(default=None, repr=False)
    symbol: str | None = None

    @property
    def final_equity(self) -> float:
        return float(self.metrics["final_equity"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the shape the CLI's --json prints and the API returns."""
        trades = self.trades.copy()
        for col in ("entry_time", "exit_time"):
            if col in trades:
                trades[col] = trades[col].map(lambda t: t.isoformat() if pd.notna(t) else None)
        return {
            "strategy": self.strategy,
            "symbol": self.symbol,
            "params": dict(self.params),
            "config": self.config.model_dump(mode="json"),
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "trades": [
                {k: _json_float(v) if isinstance(v, float) else v for k, v in row.items()}
                for row in trades.to_dict(orient="records")
            ],
        }


def _json_float(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
