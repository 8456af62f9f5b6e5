"""Lazy package exports: names resolve on first access, unknown names fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest

import algotrendy.backtest as backtest
import algotrendy.data as data


def test_exports_resolve_and_are_listed() -> None:
    from algotrendy.backtest.runner import run_backtest
    from algotrendy.data.loaders import load_ohlcv

    assert backtest.run_backtest is run_backtest
    assert data.load_ohlcv is load_ohlcv
    assert {"run_backtest", "evaluate", "BacktestConfig"} <= set(dir(backtest))
    assert "run_backtest" in vars(backtest)  # kept after the first access


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    with pytest.raises(AttributeError, match=r"module 'algotrendy\.data' has no attribute 'nope'"):
        _ = data.nope


def test_importing_the_package_loads_none_of_its_heavy_modules() -> None:
    code = (
        "import sys, algotrendy.backtest, algotrendy.data;"
        "print(sorted(m for m in ('pandas', 'numba', 'algotrendy.backtest.runner',"
        " 'algotrendy.data.loaders') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
