"""Grid specs past what decimal arithmetic or a float can hold: a ParameterError naming
the spec (a 422 at the API), never decimal.InvalidOperation/Overflow (a 500)."""

from __future__ import annotations

import math

import pytest

from algotrendy.backtest.grid import MAX_COMBINATIONS, parse_grid, parse_spec
from algotrendy.errors import ParameterError


@pytest.mark.parametrize(
    "spec",
    [
        "fast=0:1e100:1e-100",  # quotient needs more than 28 digits
        "fast=0:1:1e-999999999",  # exponent below the decimal context's limit
        "fast=1:1000000000000000000000000:1",  # an int range past the cap
    ],
)
def test_ranges_with_too_many_values_name_the_cap(spec: str) -> None:
    with pytest.raises(ParameterError, match=f"more than {MAX_COMBINATIONS} values"):
        parse_spec(spec)


@pytest.mark.parametrize(
    "spec", ["fast=1:1e999999999:1", "fast=1:1e400:1e399", "fast=1:" + "9" * 5000 + ":1"]
)
def test_range_bounds_past_a_float_are_refused(spec: str) -> None:
    with pytest.raises(ParameterError, match="is out of range") as info:
        parse_spec(spec)
    assert len(str(info.value)) < 200  # 5000 digits are not echoed back


def test_list_values_past_a_float_stay_text_for_the_field_to_refuse() -> None:
    values = parse_grid({"fast": "1e400,2", "slow": "9" * 5000})
    assert values["fast"] == ["1e400", 2]
    assert values["slow"] == ["9" * 5000]
    assert all(not isinstance(v, float) or math.isfinite(v) for v in values["fast"])


def test_ordinary_float_range_is_unchanged() -> None:
    assert parse_spec("x=0.1:0.3:0.1")[1] == [0.1, 0.2, 0.3]
