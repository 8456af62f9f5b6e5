"""The summary metrics' names and one-line definitions, apart from the code computing them.

Checking or ranking by a metric name (the sweep plan and aggregate steps, the API's
request validation) needs only this catalogue; `algotrendy.backtest.metrics`, which
re-exports it as `METRICS`, brings numpy and the numba kernels, a cold-start cost those
callers would pay for nothing. The full definitions are in that module's docstring.
"""

from __future__ import annotations

METRICS: dict[str, str] = {
    "final_equity": "equity at the last bar's close, cash",
    "total_return": "E_last / cash - 1",
    "cagr": "(E_last / cash)^(1 / years) - 1, years = (t_last - t_first) / 365.25 days",
    "volatility_ann": "stdev(r, ddof=1) * sqrt(ppy), r_t = E_t / E_{t-1} - 1",
    "sharpe": "mean(r - rf_pp) / stdev(r, ddof=1) * sqrt(ppy), rf_pp = (1+rf)^(1/ppy) - 1",
    "sortino": "mean(r - rf_pp) / sqrt(mean(min(0, r - rf_pp)^2)) * sqrt(ppy)",
    "calmar": "cagr / |max_drawdown|",
    "max_drawdown": "min_t (E_t / max(E_0..E_t) - 1), a fraction <= 0",
    "max_drawdown_duration_bars": "longest peak-to-recovery (or to last bar) span, bars",
    "max_drawdown_duration_days": "longest peak-to-recovery (or to last bar) span, days",
    "profit_factor": "gross profit / |gross loss| of closed trades (net pnl)",
    "win_rate": "#trades with pnl > 0 / #trades",
    "expectancy": "mean net pnl per trade, cash",
    "exposure_time": "#bars with a non-zero position / #bars",
    "num_trades": "number of trades (one still open at the end counts, marked at the last close)",
    "avg_trade": "mean trade return (pnl / entry notional)",
    "best_trade": "max trade return",
    "worst_trade": "min trade return",
    "periods_per_year": "bars per year used to annualise (given or inferred from times)",
}
"""Metric name -> definition, in the order `compute_metrics` returns them."""
