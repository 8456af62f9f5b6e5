"""`Bars`: OHLCV as contiguous float64 numpy arrays.

Strategies and engines take `Bars` rather than a DataFrame because every hot path is
array code (numpy / numba); converting once at the edge keeps pandas out of the loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Bars:
    """Aligned OHLCV arrays; `time` is UTC datetime64 in the source index's unit (ns,
    or us / ms / s, which pandas 3 often makes): converting 1M times to one unit would
    copy them, and every consumer reads any unit."""

    time: npt.NDArray[np.datetime64]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.close.shape[0])

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Bars:
        """Build from a frame with a DatetimeIndex and open/high/low/close[/volume] columns."""
        # pandas only here: code that receives `Bars` (strategies, a sweep's plan step)
        # then runs without it, and the caller of this method has pandas loaded already.
        import pandas as pd

        n = len(df)

        def col(name: str) -> FloatArray:
            if name in df.columns:
                return np.ascontiguousarray(df[name].to_numpy(dtype=np.float64))
            if name == "volume":
                return np.zeros(n, dtype=np.float64)
            raise KeyError(name)

        # asi8 is the epoch in the index's unit, UTC, for aware and naive indexes alike:
        # viewing it costs nothing, where np.asarray(index, dtype) copies (2.5 ms per 1M).
        idx = pd.DatetimeIndex(df.index)
        time = idx.asi8.view(f"datetime64[{idx.unit}]")
        return cls(
            time=time,
            open=col("open"),
            high=col("high"),
            low=col("low"),
            close=col("close"),
            volume=col("volume"),
        )

    def tail(self, n: int) -> Bars:
        """The last `n` bars (live evaluation runs strategies on a window like this)."""
        s = slice(max(len(self) - n, 0), None)
        return Bars(
            self.time[s], self.open[s], self.high[s], self.low[s], self.close[s], self.volume[s]
        )
