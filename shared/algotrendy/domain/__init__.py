"""Domain types shared by every package: bars, orders, results.

`Bars` is loaded on first use (PEP 562 module `__getattr__`): it needs numpy (and pandas
to build it from a frame), and the light consumers of `algotrendy.domain.orders` (the
webhook Lambda, the order queue producers) must not pay for importing them at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from algotrendy.domain.orders import OrderType, Side
from algotrendy.lazy import lazy_exports

if TYPE_CHECKING:
    from algotrendy.domain.bars import Bars

__all__ = ["Bars", "OrderType", "Side"]


__getattr__, __dir__ = lazy_exports(__name__, {"Bars": "algotrendy.domain.bars"}, globals())
