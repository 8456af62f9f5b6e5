"""Market data: file loading and validation (research), channels and pipeline (ingestion).

The public names are imported lazily (PEP 562 module `__getattr__`): the loaders need
pandas, and the light submodules (`algotrendy.data.manager`, the channels' health that
the API's `/health` reads) must not pull it in at a Lambda's cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from algotrendy.lazy import lazy_exports

if TYPE_CHECKING:
    from algotrendy.data.loaders import load_ohlcv, validate_ohlcv

__all__ = ["load_ohlcv", "validate_ohlcv"]

_HOME = {
    "load_ohlcv": "algotrendy.data.loaders",
    "validate_ohlcv": "algotrendy.data.loaders",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())
