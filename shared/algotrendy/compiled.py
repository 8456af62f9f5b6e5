"""numba when it is there, plain Python when it is not.

The hot loops (indicators, backtest kernels, metrics) are written as simple numeric Python
so numba can compile them. numba with llvmlite is ~195 MB, which cannot ship in a zip
Lambda beside numpy and pandas (250 MB limit), so functions that only evaluate the last
few hundred bars (signal evaluation, API queries, sweep planning) run the very same
functions uncompiled: identical semantics, slower. `ALGOTRENDY_DISABLE_NUMBA=1` forces the
uncompiled path (tests use it to prove both paths agree).

Compiled kernels cache their machine code on disk; where no cache directory is writable
(a read-only deployment without NUMBA_CACHE_DIR) numba refuses `cache=True` with a
RuntimeError at decoration time, and we compile in memory instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

import numpy as np

_F = TypeVar("_F", bound=Callable[..., Any])

HAVE_NUMBA = False
if os.environ.get("ALGOTRENDY_DISABLE_NUMBA", "") not in ("1", "true", "yes"):
    try:
        import numba

        HAVE_NUMBA = True
    except ImportError:  # a Lambda package without numba: run uncompiled
        HAVE_NUMBA = False


@overload
def njit(fn: _F, **options: Any) -> _F: ...


@overload
def njit(fn: None = None, **options: Any) -> Callable[[_F], _F]: ...


def njit(fn: _F | None = None, **options: Any) -> Any:
    """`numba.njit(cache=True, **options)` or the function itself without numba.

    Usable bare (`@njit`) or with options (`@njit(nogil=True)`)."""

    def wrap(f: _F) -> _F:
        if not HAVE_NUMBA:
            if options.get("error_model") != "numpy":
                return f

            @functools.wraps(f)
            def quiet(*args: Any, **kwargs: Any) -> Any:
                # numba's error_model="numpy": x/0 -> inf/nan without a word.
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    return f(*args, **kwargs)

            return cast(_F, quiet)
        try:
            return cast(_F, numba.njit(cache=True, **options)(f))
        except RuntimeError:
            return cast(_F, numba.njit(cache=False, **options)(f))

    if fn is not None:
        return wrap(fn)
    return wrap
