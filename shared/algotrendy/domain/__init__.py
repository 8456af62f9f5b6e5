"""Domain types shared by every package: bars, orders, results.

`Bars` is loaded on first use (PEP 562 module `__getattr__`): it needs numpy and pandas,
and the light consumers of `algotrendy.domain.orders` (the webhook Lambda, the order queue
producers) must not pay for importing them at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from algotrendy.domain.orders import OrderType, Side

if TYPE_CHECKING:
    from algotrendy.domain.bars import Bars

__all__ = ["Bars", "OrderType", "Side"]


def __getattr__(name: str) -> Any:
    if name == "Bars":
        from algotrendy.domain.bars import Bars

        return Bars
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
