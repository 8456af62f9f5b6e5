"""A NaN inside the series (after the warm-up) against TA-Lib: period-1 smoothing is the
input itself in TA-Lib (a NaN stays on its bar), longer periods carry it forever."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import talib
from talib_reference import assert_matches

from algotrendy.indicators import _kernels as _k
from algotrendy.indicators import ema, stochastic

NAN = np.nan


def _series(n: int = 60, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 + np.cumsum(rng.normal(0.0, 1.0, n))


# Where the gaps go: one mid-series NaN, two of them, and a leading run plus one later
# (the leading run moves the warm-up, the later one must not).
GAPS = {"one": [20], "two": [15, 40], "leading_and_mid": [0, 1, 2, 30]}


@pytest.mark.parametrize("gaps", list(GAPS.values()), ids=list(GAPS))
@pytest.mark.parametrize("period", [1, 2, 3, 5, 10])
def test_ema_with_nan_inside_matches_talib(period: int, gaps: list[int]) -> None:
    x = _series()
    x[gaps] = NAN
    assert_matches(ema(x, period), talib.EMA(x, period))


def test_ema_period_one_is_the_input_exactly() -> None:
    # The recursion (x - prev) * 1 + prev is not always x (1e-20 after 1 gives 0);
    # TA-Lib returns the input itself, so do we.
    x = np.array([1.0, 2.0, 3.0, NAN, 5.0, 1e-20, 7.0])
    np.testing.assert_array_equal(ema(x, 1), x)
    np.testing.assert_array_equal(talib.EMA(x, 1), x)


STOCH = [(1, 1, 1), (2, 1, 1), (3, 1, 3), (5, 1, 3), (5, 3, 1), (1, 2, 1), (5, 3, 3), (9, 1, 5)]


@pytest.mark.parametrize("where", ["close", "high_low", "all"])
@pytest.mark.parametrize("gaps", list(GAPS.values()), ids=list(GAPS))
@pytest.mark.parametrize("periods", STOCH, ids=[f"{a}-{b}-{c}" for a, b, c in STOCH])
def test_stochastic_with_nan_inside_matches_talib(
    periods: tuple[int, int, int], gaps: list[int], where: str
) -> None:
    c = _series()
    rng = np.random.default_rng(5)
    h = c + rng.uniform(0.0, 2.0, c.shape[0])
    lo = c - rng.uniform(0.0, 2.0, c.shape[0])
    for name, arr in (("close", c), ("high_low", h), ("high_low", lo)):
        if where in (name, "all"):
            arr[gaps] = NAN
    fk, sk, sd = periods
    ours = stochastic(h, lo, c, fk, sk, sd)
    ref = talib.STOCH(h, lo, c, fk, sk, 0, sd, 0)
    assert_matches(ours, ref, atol=1e-9)


def test_stochastic_period_one_recovers_after_a_nan() -> None:
    # The audit's case: slow %K of period 1 is fast %K itself, 50 again after the gap.
    x = np.array([1.0, 2.0, 3.0, NAN, 5.0, 6.0, 7.0, 8.0])
    k, d = stochastic(x + 1.0, x - 1.0, x, 1, 1, 1)
    expected = np.array([50.0, 50.0, 50.0, NAN, 50.0, 50.0, 50.0, 50.0])
    np.testing.assert_array_equal(k, expected)
    np.testing.assert_array_equal(d, expected)


def _plain(kernel: Any) -> Any:
    """The kernel's Python source function (itself when numba is not in use)."""
    return getattr(kernel, "py_func", kernel)


def test_period_one_paths_are_identical_compiled_and_plain() -> None:
    x = _series()
    x[[0, 20, 21, 45]] = NAN
    h, lo = x + 1.5, x - 0.5
    for period in (1, 4):
        a, b = np.empty_like(x), np.empty_like(x)
        _k.ema(x, period, a)
        _plain(_k.ema)(x, period, b)
        np.testing.assert_array_equal(a, b)
    for fk, sk, sd in STOCH:
        out = [np.empty_like(x) for _ in range(4)]
        _k.stochastic(h, lo, x, fk, sk, sd, out[0], out[1])
        _plain(_k.stochastic)(h, lo, x, fk, sk, sd, out[2], out[3])
        np.testing.assert_array_equal(out[0], out[2])
        np.testing.assert_array_equal(out[1], out[3])
