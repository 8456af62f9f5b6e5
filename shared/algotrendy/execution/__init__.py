"""Execution: order lifecycle, risk, positions and PnL, brokers, the engine loop."""
