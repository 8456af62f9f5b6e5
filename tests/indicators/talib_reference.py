"""Helpers shared by the indicator tests: call TA-Lib the way the catalogue says is
equivalent, compare outputs the way the team's rule states it (identical NaN bars, equal
within 1e-9 relative after the warm-up), and draw random OHLCV for hypothesis."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import talib
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from algotrendy.indicators import INDICATORS

OHLCV = Path(__file__).parent.parent / "fixtures" / "ohlcv"

# Real data the comparisons run on (tests/fixtures/README.md says where each comes from).
# UNITTEST BTC is quoted around 0.0016 with long flat stretches: the case where fixed
# epsilons and zero ranges bite.
FIXTURES = {
    "goog_1d": "backtesting_GOOG_1d.csv",
    "btc_perp_1m": "nautilus_btc-perp_1m_20211231-20220201.csv",
    "unittest_btc_1m": "freqtrade_UNITTEST_BTC_1m.csv",
    "eurusd_1h": "backtesting_EURUSD_1h.csv",
    "xrp_eth_5m": "freqtrade_XRP_ETH_5m.csv",
}

RTOL = 1e-9


def as_tuple(result: Any) -> tuple[np.ndarray, ...]:
    """One output or a tuple of outputs as a tuple of float arrays."""
    outputs = result if isinstance(result, tuple) else (result,)
    return tuple(np.asarray(o, dtype=np.float64) for o in outputs)


def assert_matches(ours: Any, ref: Any, *, atol: float = 0.0) -> None:
    """Same NaN bars in every output, values within RTOL (relative) where TA-Lib has one."""
    a_all, b_all = as_tuple(ours), as_tuple(ref)
    assert len(a_all) == len(b_all)
    for k, (a, b) in enumerate(zip(a_all, b_all, strict=True)):
        assert a.shape == b.shape, f"output {k}: shape {a.shape} != {b.shape}"
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if not np.array_equal(nan_a, nan_b):
            first = int(np.flatnonzero(nan_a != nan_b)[0])
            raise AssertionError(
                f"output {k}: NaN differs first at bar {first}: ours {a[first]}, talib {b[first]}"
            )
        np.testing.assert_allclose(
            a[~nan_b], b[~nan_b], rtol=RTOL, atol=atol, err_msg=f"output {k}"
        )


def call_ours(name: str, data: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Any:
    info = INDICATORS[name]
    return info.function(*(data[i] for i in info.inputs), **params)


def call_talib(name: str, data: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Any:
    """talib.<function>(inputs, mapped params, fixed params) as the catalogue states it."""
    info = INDICATORS[name]
    assert info.talib_function is not None
    full = {**info.defaults, **params}
    kwargs = {ta: full[ours] for ta, ours in info.talib_params.items()}
    fn = getattr(talib, info.talib_function)
    return fn(*(data[i] for i in info.inputs), **kwargs, **info.talib_fixed)


def ohlcv_arrays(frame: Any) -> dict[str, np.ndarray]:
    """Inputs by catalogue name ('x' is the close) as float arrays."""
    cols = {k: frame[k].to_numpy(dtype=np.float64) for k in ("high", "low", "close", "volume")}
    return {"x": cols["close"], **cols}


def _walk(steps: np.ndarray, start: float) -> np.ndarray:
    return start + np.cumsum(steps)


@st.composite
def random_ohlcv(draw: st.DrawFn, min_size: int = 0, max_size: int = 200) -> dict[str, np.ndarray]:
    """Random bars: a random walk (steps drawn from a mix of round and arbitrary values,
    so ties, flat runs and zero ranges occur) with random wicks and volumes."""
    n = draw(st.integers(min_size, max_size))
    step = st.one_of(
        st.sampled_from([0.0, 0.0, 1.0, -1.0, 0.5]),
        st.floats(-50.0, 50.0, allow_nan=False, allow_subnormal=False),
    )
    steps = draw(hnp.arrays(np.float64, n, elements=step))
    start = draw(st.sampled_from([0.001, 1.0, 100.0, 30_000.0]))
    close = _walk(steps * start / 100.0, start)
    wick = st.one_of(st.just(0.0), st.floats(0.0, 2.0, allow_subnormal=False))
    up = draw(hnp.arrays(np.float64, n, elements=wick)) * start / 100.0
    down = draw(hnp.arrays(np.float64, n, elements=wick)) * start / 100.0
    # Volumes: none, or between a thousandth and a million of a unit (a contrast of
    # 1e9, beyond any real bar-to-bar ratio yet inside double precision's comfort).
    vol = st.one_of(st.just(0.0), st.floats(1e-3, 1e6))
    volume = draw(hnp.arrays(np.float64, n, elements=vol))
    return {"x": close, "high": close + up, "low": close - down, "close": close, "volume": volume}
