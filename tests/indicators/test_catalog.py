"""The INDICATORS catalogue tells the truth: its defaults are the functions', its TA-Lib
equivalents give the same numbers, its lookbacks are the NaN warm-ups, its output names
are the Series names."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pandas as pd
import pytest
from talib_reference import assert_matches, call_ours, call_talib

import algotrendy.indicators as ind
from algotrendy.errors import ParameterError
from algotrendy.indicators import INDICATORS

NAMES = list(INDICATORS)
WITH_TALIB = [n for n in NAMES if INDICATORS[n].talib_function is not None]


def test_every_public_function_is_catalogued() -> None:
    functions = {n for n in ind.__all__ if callable(getattr(ind, n)) and n[0].islower()}
    assert functions == set(NAMES)
    assert all(INDICATORS[n].function is getattr(ind, n) for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_and_defaults_follow_the_signature(name: str) -> None:
    info = INDICATORS[name]
    sig = inspect.signature(info.function)
    assert tuple(sig.parameters) == info.inputs + tuple(p.name for p in info.params)
    for p in info.params:
        assert p.default == sig.parameters[p.name].default
        assert p.description


@pytest.mark.parametrize("name", WITH_TALIB)
def test_talib_equivalent_holds_with_defaults(
    name: str, goog_arrays: dict[str, np.ndarray]
) -> None:
    assert_matches(call_ours(name, goog_arrays, {}), call_talib(name, goog_arrays, {}))


@pytest.mark.parametrize("name", NAMES)
def test_lookback_is_the_warm_up(name: str, goog_arrays: dict[str, np.ndarray]) -> None:
    info = INDICATORS[name]
    variants = [info.defaults] + [
        {**info.defaults, p.name: p.minimum + 3} for p in info.params if p.minimum is not None
    ]
    for params in variants:
        outputs = call_ours(name, goog_arrays, params)
        for out in outputs if isinstance(outputs, tuple) else (outputs,):
            leading_nan = int(np.argmax(~np.isnan(out)))
            assert leading_nan == info.lookback(**params), params


@pytest.mark.parametrize("name", NAMES)
def test_output_names_are_the_series_names(name: str, goog_arrays: dict[str, np.ndarray]) -> None:
    info = INDICATORS[name]
    series = {k: pd.Series(v) for k, v in goog_arrays.items()}
    outputs = call_ours(name, series, {})
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert tuple(o.name for o in outputs) == info.outputs


def test_minimum_is_enforced_and_accepted() -> None:
    x = np.linspace(1.0, 2.0, 50)
    data = {"x": x, "high": x + 1, "low": x - 1, "close": x, "volume": np.ones(50)}
    for info in INDICATORS.values():
        for p in info.params:
            if p.minimum is None:
                continue
            call_ours(info.name, data, {p.name: p.minimum})
            with pytest.raises(ParameterError, match=p.name):
                call_ours(info.name, data, {p.name: p.minimum - 1})


def test_catalogue_is_json_ready_and_names_talib() -> None:
    dumped = json.loads(json.dumps([info.to_dict() for info in INDICATORS.values()]))
    by_name = {d["name"]: d for d in dumped}
    assert by_name["sma"]["talib"] == "talib.SMA(x, timeperiod=period)"
    assert by_name["bollinger_bands"]["talib"] == (
        "talib.BBANDS(x, timeperiod=period, nbdevup=nbdev_up, nbdevdn=nbdev_dn, matype=0)"
    )
    assert by_name["vwap"]["talib"].startswith("none")
    assert by_name["macd"]["params"] == [
        {"name": "fast", "default": 12, "minimum": 2, "description": "fast EMA period"},
        {
            "name": "slow",
            "default": 26,
            "minimum": 2,
            "description": "slow EMA period (swapped with fast if smaller)",
        },
        {"name": "signal", "default": 9, "minimum": 1, "description": "signal-line EMA period"},
    ]
    assert by_name["stochastic"]["outputs"] == ["slowk", "slowd"]


def test_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        INDICATORS["sma"] = INDICATORS["ema"]  # type: ignore[index]
