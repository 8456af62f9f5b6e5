"""Input checks and pandas in/out shared by the public indicator functions.

The kernels only ever see contiguous 1-D float64 numpy arrays; everything a caller may
hand in (a pandas Series, a list, an int array) is converted here once, and every bad
input becomes a `ParameterError` naming the argument and the offending value, so the CLI
and the API can show it as one line.

pandas is never imported here: a Series can only exist if pandas was already imported by
the caller, so `sys.modules` tells us whether to look for one. That keeps the indicators
importable (and fast to import) in a Lambda that does not ship pandas.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from algotrendy.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]

# What every indicator takes and gives back: a numpy float array in, a numpy float array
# out; a pandas Series in, a Series on the same index out.
Values = TypeVar("Values", FloatArray, "pd.Series[float]")


def _series_type() -> Any:
    """pandas.Series if pandas is loaded, else None (then no input can be a Series)."""
    pd = sys.modules.get("pandas")
    return None if pd is None else pd.Series


def as_float_array(name: str, values: object) -> FloatArray:
    """`values` as a contiguous 1-D float64 array (no copy when it already is one)."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        arr = values
    else:
        series = _series_type()
        try:
            if series is not None and isinstance(values, series):
                if values.dtype == np.float64:
                    arr = values.to_numpy()  # a view, no copy
                else:  # ints, nullable Float64/Int64 with pd.NA, objects
                    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            kind = type(values).__name__
            raise ParameterError(f"{name} must be numeric, got {kind} ({exc})") from None
    if arr.ndim != 1:
        raise ParameterError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    return np.ascontiguousarray(arr)


def as_float_arrays(**named: object) -> list[FloatArray]:
    """Convert several aligned inputs; they must all have the same length."""
    arrays = [as_float_array(name, values) for name, values in named.items()]
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        shown = ", ".join(f"{name}={len(a)}" for name, a in zip(named, arrays, strict=True))
        raise ParameterError(f"{', '.join(named)} must have the same length, got {shown}")
    return arrays


def check_int(name: str, value: object, minimum: int) -> int:
    """An integer parameter (numpy integers accepted, bool and float refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: object) -> float:
    """A finite real parameter."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    return result


def series_index(**named: object) -> Any | None:
    """The index to give the outputs: that of the first Series among the inputs, or None
    when none is a Series. Several Series must share one index (else the bars would be
    silently misaligned)."""
    series = _series_type()
    if series is None:
        return None
    index = None
    first = ""
    for name, values in named.items():
        if isinstance(values, series):
            if index is None:
                index, first = values.index, name
            elif not values.index.equals(index):
                raise ParameterError(f"{name} and {first} must share the same index")
    return index


def wrap(index: Any | None, out: FloatArray, name: str) -> Any:
    """`out` as a Series on `index` named `name`, or the array itself without an index."""
    if index is None:
        return out
    series = _series_type()
    assert series is not None  # an index exists only if a Series came in
    return series(out, index=index, name=name, copy=False)
