"""AlgoTrendy: one core library for research, backtests, market data and execution.

The same code runs in Lambda, in the execution-engine container and on a laptop, so a
strategy backtested locally is the code that trades live.
"""

__version__ = "0.1.0"
