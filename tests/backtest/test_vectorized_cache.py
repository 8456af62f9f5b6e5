"""The compiled kernel's disk cache must follow fills.py, whose code it embeds."""

from __future__ import annotations

import hashlib
from pathlib import Path

from algotrendy.backtest import fills
from algotrendy.backtest.vectorized import signal_kernel


def test_kernel_cache_name_carries_the_hash_of_fills_py() -> None:
    # numba keys a cached function on its own file only; the kernel's cache file name
    # (from __qualname__) carries fills.py's hash so that editing fills.py recompiles.
    digest = hashlib.sha1(Path(fills.__file__).read_bytes()).hexdigest()[:12]
    assert signal_kernel.py_func.__qualname__.endswith(f"_fills_{digest}")
    assert signal_kernel._cache._cache_file._index_name.startswith(
        f"vectorized._signal_kernel_fills_{digest}-"
    )
