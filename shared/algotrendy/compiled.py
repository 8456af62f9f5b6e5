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

`ALGOTRENDY_NUMBA_CACHE_SEED` names a prebuilt cache (the backtest worker's image makes one
at build time, `algotrendy.backtest.precompile`). numba needs its cache directory
writable, and Lambda's only writable place, /tmp, starts empty in every new execution
environment; so the seed is copied to NUMBA_CACHE_DIR before any kernel is decorated, and
a cold worker loads its kernels instead of compiling them (~2 s).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

import numpy as np

_F = TypeVar("_F", bound=Callable[..., Any])


def seed_numba_cache(seed: str | None, cache_dir: str | None) -> bool:
    """Copy the prebuilt cache `seed` to `cache_dir` unless `cache_dir` already exists
    (a warm environment keeps what it compiled since). Returns whether it copied."""
    if not seed or not cache_dir or os.path.exists(cache_dir):
        return False
    if not os.path.isdir(seed):
        # A deployment error, but not one to fail the function for: it compiles instead.
        logging.getLogger(__name__).warning(
            "ALGOTRENDY_NUMBA_CACHE_SEED=%s is not a directory: kernels will be compiled", seed
        )
        return False
    shutil.copytree(seed, cache_dir, dirs_exist_ok=True)
    return True


HAVE_NUMBA = False
if os.environ.get("ALGOTRENDY_DISABLE_NUMBA", "") not in ("1", "true", "yes"):
    try:
        import numba
    except ImportError:  # a Lambda package without numba: run uncompiled
        HAVE_NUMBA = False
    else:
        HAVE_NUMBA = True
        # Before any kernel is decorated: that is when numba looks at its cache.
        seed_numba_cache(
            os.environ.get("ALGOTRENDY_NUMBA_CACHE_SEED"), os.environ.get("NUMBA_CACHE_DIR")
        )


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
