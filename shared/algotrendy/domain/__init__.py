"""Domain types shared by every package: bars, orders, results."""

from algotrendy.domain.bars import Bars
from algotrendy.domain.orders import OrderType, Side

__all__ = ["Bars", "OrderType", "Side"]
