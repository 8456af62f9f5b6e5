"""The uncompiled path (no numba, as in zip Lambdas) computes the same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from algotrendy.compiled import HAVE_NUMBA

SCRIPT = r"""
import json, sys
import numpy as np
import pytest
from algotrendy.data import load_ohlcv
from algotrendy import indicators as ind
from algotrendy.backtest.metrics import compute_metrics
df = load_ohlcv(sys.argv[1]).iloc[:600]
c, h, l, v = (df[k].to_numpy() for k in ("close", "high", "low", "volume"))
out = {
    "ema": ind.ema(c, 20), "rsi": ind.rsi(c, 14), "macd": ind.macd(c)[2],
    "atr": ind.atr(h, l, c, 14), "adx": ind.adx(h, l, c, 14),
    "stoch": ind.stochastic(h, l, c)[0], "vwap": ind.vwap(h, l, c, v, 20),
}
from algotrendy.domain.bars import Bars
from algotrendy.strategies import get_strategy
for name in ("sma_cross", "macd_cross"):
    strat = get_strategy(name)
    out[name] = strat.signals(Bars.from_frame(df), strat.params({"allow_short": True}))
m = compute_metrics(equity=c * 10, times=Bars.from_frame(df).time, position=np.ones(len(c)),
                    trade_pnl=np.array([1.0, -2.0]), trade_returns=np.array([0.1, -0.2]),
                    cash=float(c[0] * 10))
print(json.dumps({"numba": "numba" in sys.modules,
                  "values": {k: np.nan_to_num(a, nan=-1.0).tolist() for k, a in out.items()},
                  "metrics": {k: (None if v != v else v) for k, v in m.items()}}))
"""


def _run(goog: Path, disable: bool) -> dict[str, object]:
    env = {**os.environ, "ALGOTRENDY_DISABLE_NUMBA": "1" if disable else "0"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(goog)], env=env, check=True,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    return dict(json.loads(out.stdout))


def test_uncompiled_path_matches_compiled(goog_path: Path) -> None:
    plain = _run(goog_path, disable=True)
    assert plain["numba"] is False  # numba never imported: fits a zip Lambda
    fast = _run(goog_path, disable=False)
    assert fast["numba"] is HAVE_NUMBA
    for name, values in fast["values"].items():  # type: ignore[attr-defined]
        np.testing.assert_array_equal(plain["values"][name], values, err_msg=name)  # type: ignore[index]
    assert plain["metrics"] == fast["metrics"]


def test_seed_cache_is_copied_only_into_an_absent_cache_dir(tmp_path: Path) -> None:
    from algotrendy.compiled import seed_numba_cache

    seed = tmp_path / "seed"
    (seed / "kernels_abc").mkdir(parents=True)
    (seed / "kernels_abc" / "f-1.py311.nbi").write_bytes(b"index")
    cache = tmp_path / "tmp" / "numba"
    assert seed_numba_cache(str(seed), str(cache)) is True
    assert (cache / "kernels_abc" / "f-1.py311.nbi").read_bytes() == b"index"
    # A warm environment keeps what it compiled since: never overwritten.
    (cache / "kernels_abc" / "f-1.py311.nbi").write_bytes(b"newer")
    assert seed_numba_cache(str(seed), str(cache)) is False
    assert (cache / "kernels_abc" / "f-1.py311.nbi").read_bytes() == b"newer"
    # Nothing asked for: nothing done.
    assert seed_numba_cache(None, str(tmp_path / "other")) is False
    assert seed_numba_cache(str(seed), None) is False
    assert not (tmp_path / "other").exists()


def test_a_missing_seed_is_logged_and_the_kernels_compile(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from algotrendy.compiled import seed_numba_cache

    with caplog.at_level("WARNING", logger="algotrendy.compiled"):
        assert seed_numba_cache(str(tmp_path / "absent"), str(tmp_path / "cache")) is False
    assert "is not a directory: kernels will be compiled" in caplog.text
    assert not (tmp_path / "cache").exists()
