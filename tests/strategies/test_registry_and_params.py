from __future__ import annotations

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
