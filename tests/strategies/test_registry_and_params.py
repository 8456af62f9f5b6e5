from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from algotrendy.errors import ParameterError, UnknownStrategyError
from algotrendy.strategies import get_strategy, strategy_names
from algotrendy.strategies.builtin import SmaCross, SmaCrossParams

BUILTINS = ["bollinger_breakout", "macd_cross", "momentum", "rsi_reversion", "sma_cross"]


def test_builtins_registered() -> None:
    assert set(BUILTINS) <= set(strategy_names())
    for name in BUILTINS:
        assert get_strategy(name).name == name


def test_unknown_strategy_lists_known_names() -> None:
    with pytest.raises(UnknownStrategyError) as err:
        get_strategy("sma_crosss")
    assert "unknown strategy 'sma_crosss'" in str(err.value)
    assert "sma_cross" in str(err.value)


def test_instance_passes_through() -> None:
    s = SmaCross()
    assert get_strategy(s) is s


def test_cli_strings_are_coerced() -> None:
    p = get_strategy("sma_cross").params({"fast": "5", "slow": "30", "allow_short": "false"})
    assert p == SmaCrossParams(fast=5, slow=30, allow_short=False)


def test_defaults() -> None:
    p = get_strategy("sma_cross").params(None)
    assert (p.fast, p.slow) == (10, 20)


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("sma_cross", {"fast": 1}, "sma_cross: fast: Input should be greater than or equal to 2"),
        ("sma_cross", {"fast": 30, "slow": 20}, "fast (30) must be below slow (20)"),
        ("sma_cross", {"fsat": 3}, "fsat: unknown parameter"),
        ("sma_cross", {"fast": "ten"}, "fast: Input should be a valid integer"),
        ("rsi_reversion", {"lower": 60, "exit": 50}, "need lower < exit < upper"),
        ("macd_cross", {"fast": 26, "slow": 12}, "fast (26) must be below slow (12)"),
        ("bollinger_breakout", {"nbdev": 0}, "nbdev: Input should be greater than 0"),
        ("momentum", {"lookback": 0}, "lookback: Input should be greater than or equal to 1"),
    ],
)
def test_bad_params_name_the_parameter(name: str, values: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError) as err:
        get_strategy(name).params(values)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_param_ranges_declare_bounds() -> None:
    ranges = SmaCross.param_ranges()
    assert ranges["fast"]["ge"] == 2
    assert ranges["fast"]["default"] == 10
    assert ranges["slow"]["le"] == 2000
    assert ranges["allow_short"]["type"] == "bool"
    for name in BUILTINS:
        strategy = get_strategy(name)
        assert strategy.param_ranges(), name
        assert strategy.description, name


def test_array_helpers_are_still_exported_where_strategies_import_them() -> None:
    """`FloatArray` and `crossover` moved to `kernels` (numpy); the interface modules
    still export them, lazily."""
    import algotrendy.strategies as package
    from algotrendy.strategies import base, kernels

    assert base.crossover is kernels.crossover
    assert package.crossover is kernels.crossover
    assert base.FloatArray is kernels.FloatArray
    assert {"crossover", "FloatArray"} <= set(dir(base))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = base.nothing


def test_grid_validation_loads_no_numpy() -> None:
    """The sweep's plan step (a Lambda of its own) looks the strategies up, validates
    their parameters and expands grids: none of it may load numpy (or pandas, numba),
    while each strategy's signals still compute once called."""
    code = """
import json, sys
from algotrendy.backtest.sweep import plan_sweep
from algotrendy.strategies import get_strategy, strategy_names
grids = {
    "sma_cross": {"fast": [5, 10], "slow": [20, 30]},
    "momentum": {"lookback": [5, 20], "threshold": [0.0, 0.01]},
    "rsi_reversion": {"period": [7, 14], "lower": [20.0, 30.0]},
    "macd_cross": {"fast": [8, 12], "slow": [26]},
    "bollinger_breakout": {"period": [10, 20], "nbdev": [1.5, 2.0]},
}
assert sorted(grids) == strategy_names(), strategy_names()
for name, grid in grids.items():
    plan = plan_sweep(name, grid, ["A", "B"], chunk_size=3)
    strategy = get_strategy(name)
    strategy.warmup(strategy.params(plan.chunks[0].params[0]))
    strategy.param_ranges()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "pandas", "numba"))
import numpy as np
from algotrendy.domain.bars import Bars
n = 120
close = 100.0 + np.cumsum(np.sin(np.arange(n) / 4.0))
bars = Bars(np.arange(n).astype("datetime64[D]"), close, close + 1, close - 1, close, np.ones(n))
lengths = [len(get_strategy(s).signals(bars, get_strategy(s).params(None))) for s in grids]
print(json.dumps([heavy, lengths]))
"""
    env = {**os.environ, "ALGOTRENDY_DISABLE_NUMBA": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    heavy, lengths = json.loads(proc.stdout.splitlines()[-1])
    assert heavy == []
    assert lengths == [120] * 5
