"""Grid specs: parsing, expansion, validation against each strategy's Params."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algotrendy.backtest.grid import MAX_COMBINATIONS, expand_grid, parse_grid, parse_spec
from algotrendy.errors import ParameterError
from algotrendy.strategies import get_strategy


def test_int_range_is_inclusive_and_stays_int() -> None:
    name, values = parse_spec("fast=5:50:5")
    assert name == "fast"
    assert values == list(range(5, 51, 5))
    assert all(type(v) is int for v in values)


def test_range_end_not_on_step_stops_below() -> None:
    assert parse_spec("n=1:10:4")[1] == [1, 5, 9]


def test_single_point_range() -> None:
    assert parse_spec("n=7:7:3")[1] == [7]


def test_float_range_in_decimal_steps() -> None:
    # 0.1 + 0.1 + 0.1 == 0.30000000000000004 in binary floats: the end point must still
    # be there and equal the literal 0.3.
    _, values = parse_spec("x=0.1:0.3:0.1")
    assert values == [0.1, 0.2, 0.3]
    _, values = parse_spec("x=1:2:0.25")
    assert values == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert all(type(v) is float for v in values)


def test_lists_and_booleans() -> None:
    assert parse_spec("fast=5,10,20") == ("fast", [5, 10, 20])
    assert parse_spec(" nbdev = 1.5, 2 ") == ("nbdev", [1.5, 2])
    assert parse_spec("allow_short=true,false") == ("allow_short", ["true", "false"])


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("fast", "expected name=start:stop:step"),
        ("fast=5=6", "expected name=start:stop:step"),
        ("fast=", "no values"),
        ("=5", "is not a parameter name"),
        ("fast=5:50", "start:stop:step"),
        ("fast=5::5", "start:stop:step"),
        ("fast=5:50:0", "step must be > 0"),
        ("fast=5:50:-5", "step must be > 0"),
        ("fast=50:5:5", "below start"),
        ("fast=a:5:1", "'a' is not a number"),
        ("fast=5,,10", "empty value"),
    ],
)
def test_malformed_specs_name_the_spec(spec: str, fragment: str) -> None:
    with pytest.raises(ParameterError, match="grid spec") as exc:
        parse_spec(spec)
    assert fragment in str(exc.value)
    assert repr(spec) in str(exc.value)


def test_parse_grid_refuses_duplicates_and_bare_string() -> None:
    with pytest.raises(ParameterError, match="'fast' is given twice"):
        parse_grid(["fast=5", "fast=10"])
    with pytest.raises(ParameterError, match="single string"):
        parse_grid("fast=5:10:1")


def test_parse_grid_from_mapping() -> None:
    grid = parse_grid({"fast": "5:15:5", "slow": [20, 30], "allow_short": False})
    assert grid == {"fast": [5, 10, 15], "slow": [20, 30], "allow_short": [False]}


def test_expand_skips_and_counts_invalid_combinations() -> None:
    s = get_strategy("sma_cross")
    pg = expand_grid(s, ["fast=10:30:10", "slow=20:40:10"])
    # Independent count: pairs with fast < slow.
    expected = [
        {"fast": f, "slow": sl} for f, sl in itertools.product([10, 20, 30], [20, 30, 40]) if f < sl
    ]
    assert pg.combos == expected
    assert pg.n_total == 9
    assert pg.n_skipped == 9 - len(expected) == 3
    assert "fast (20) must be below slow (20)" in pg.skipped_examples[0]


def test_expand_uses_defaults_for_unswept_parameters() -> None:
    s = get_strategy("sma_cross")  # default slow = 20
    pg = expand_grid(s, ["fast=10,19,20,25"])
    assert [c["fast"] for c in pg.combos] == [10, 19]
    assert pg.n_skipped == 2


def test_values_are_coerced_by_field_type() -> None:
    s = get_strategy("sma_cross")
    pg = expand_grid(s, ["fast=5", "slow=30", "allow_short=true,false,yes"])
    # "yes" is True as well: duplicates after coercion collapse.
    assert pg.values["allow_short"] == [True, False]
    assert [c["allow_short"] for c in pg.combos] == [True, False]
    b = get_strategy("bollinger_breakout")
    pg = expand_grid(b, ["nbdev=1:3:1"])
    assert pg.values["nbdev"] == [1.0, 2.0, 3.0]
    assert all(type(v) is float for v in pg.values["nbdev"])


def test_unknown_parameter_is_an_error_naming_it() -> None:
    s = get_strategy("sma_cross")
    with pytest.raises(ParameterError, match=r"no parameter 'fsat'; known: fast, slow"):
        expand_grid(s, ["fsat=5:10:1"])


def test_value_refused_by_its_field_is_an_error() -> None:
    s = get_strategy("sma_cross")
    with pytest.raises(ParameterError, match=r"'fast': value 1 refused .*greater than or equal"):
        expand_grid(s, ["fast=1:5:1", "slow=30"])
    with pytest.raises(ParameterError, match=r"'fast': value 'abc' refused"):
        expand_grid(s, ["fast=abc"])
    with pytest.raises(ParameterError, match=r"'fast': value 5.5 refused"):
        expand_grid(s, ["fast=5.5"])


def test_grid_without_any_valid_combination_is_an_error() -> None:
    s = get_strategy("sma_cross")
    with pytest.raises(ParameterError, match=r"none of the 4 combinations is valid.*must be below"):
        expand_grid(s, ["fast=30,40", "slow=10,20"])


def test_too_many_combinations_is_refused() -> None:
    s = get_strategy("bollinger_breakout")
    with pytest.raises(ParameterError, match=str(MAX_COMBINATIONS)):
        expand_grid(s, ["period=2:1000:1", "nbdev=0.005:10:0.005"])


def test_empty_grid_is_the_defaults() -> None:
    pg = expand_grid(get_strategy("sma_cross"), [])
    assert pg.combos == [{}]
    assert pg.n_skipped == 0


@given(
    start=st.integers(-1000, 1000),
    length=st.integers(0, 200),
    step=st.integers(1, 50),
)
def test_int_range_matches_python_range(start: int, length: int, step: int) -> None:
    stop = start + length
    assert parse_spec(f"n={start}:{stop}:{step}")[1] == list(range(start, stop + 1, step))


@given(
    start=st.integers(-500, 500),
    count=st.integers(1, 60),
    step=st.integers(1, 99),
)
def test_float_range_hits_every_decimal_point(start: int, count: int, step: int) -> None:
    # Work in hundredths so expected values are exact decimal literals.
    stop = start + step * (count - 1)
    spec = f"x={start / 100}:{stop / 100}:{step / 100}"
    values = parse_spec(spec)[1]
    assert values == [float(f"{(start + k * step) / 100}") for k in range(count)]
