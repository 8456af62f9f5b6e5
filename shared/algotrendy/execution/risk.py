"""Pre-trade risk: every intent passes `RiskManager.check` before any order exists.

Exposure is counted worst-case: the current account position plus every working order on
the same side plus the new intent, so a burst of concurrent intents can never breach a
limit between submit and fill (the engine checks and reserves under one lock). Orders that
only reduce exposure pass the size limits even when over them, so a trader can always get
flat — except when the kill switch is on, which blocks everything new. "Only reduce" counts
the working orders on the same side too: an order reduces when the position, after every
working order on its side and then it, is still on the same side of zero (or flat). Any
order that could go through zero — alone, or stacked on working orders — is checked in full
like an opening order, and a reduce-only one is refused.

Notional limits are priced where the order can fill at worst, not at its limit or stop: a
marketable sell limit or a stop far from the market fills at the market (see `_fill_price`).

Limits apply at the account level, with per-strategy and per-symbol overrides (the
tightest applicable value wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from algotrendy.domain.orders import OrderIntent, Side

# Float slack for quantities that add up to exactly the position (0.1 + 0.2 style sums).
_EPS = 1e-9


class RiskLimits(BaseModel):
    """Absent (None) means "no limit of this kind"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position: float | None = Field(None, gt=0, description="max |position| in units")
    max_notional: float | None = Field(None, gt=0, description="max |position| x price")
    max_order_quantity: float | None = Field(None, gt=0)
    max_order_notional: float | None = Field(None, gt=0)
    max_open_orders: int | None = Field(None, ge=0)
    daily_loss_limit: float | None = Field(None, gt=0, description="stop at this loss today")
    allowed_symbols: frozenset[str] | None = None


class RiskConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    account: RiskLimits = RiskLimits()
    per_strategy: Mapping[str, RiskLimits] = Field(default_factory=dict)
    per_symbol: Mapping[str, RiskLimits] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """What the engine knows at check time (account-wide, for the intent's symbol)."""

    position: float  # signed account position in the symbol
    open_buy_quantity: float  # unfilled quantity of working buy orders in the symbol
    open_sell_quantity: float
    open_orders: int  # working orders in the account, all symbols
    price: float | None  # reference price for notional limits (last trade / mark)
    daily_pnl: float  # today's realised + unrealised, account-wide
    kill_switch: bool = False


@dataclass(frozen=True, slots=True)
class RiskDecision:
    approved: bool
    reason: str | None = None


APPROVED = RiskDecision(True)


def _tightest(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _reducible(intent: OrderIntent, snap: RiskSnapshot) -> float:
    """How much an order on the intent's side can still take off the position once every
    working order on that side has filled (0 when the position is flat or on this side)."""
    if intent.side is Side.SELL:
        return max(snap.position - snap.open_sell_quantity, 0.0)
    return max(-snap.position - snap.open_buy_quantity, 0.0)


def _fill_price(intent: OrderIntent, market: float | None) -> float | None:
    """The highest price the order can fill at, as far as can be known, or None
    (`market`: the market price, None when there is no usable one).

    A buy never fills above its limit price, so that bounds it. Otherwise the order can
    fill at the market: a sell limit below the market or a stop the market is already past
    fills there at once, and a resting sell limit fills at its limit. So: the highest of
    the limit, the stop and the market price — and unknown without a market price."""
    if intent.side is Side.BUY and intent.limit_price is not None:
        return intent.limit_price
    if market is None:
        return None
    return max(p for p in (intent.limit_price, intent.stop_price, market) if p is not None)


class RiskManager:
    def __init__(self, config: RiskConfig) -> None:
        self.config = config

    def _limits(self, intent: OrderIntent) -> list[RiskLimits]:
        out = [self.config.account]
        if intent.strategy and intent.strategy in self.config.per_strategy:
            out.append(self.config.per_strategy[intent.strategy])
        if intent.symbol in self.config.per_symbol:
            out.append(self.config.per_symbol[intent.symbol])
        return out

    def check(self, intent: OrderIntent, snap: RiskSnapshot) -> RiskDecision:
        if snap.kill_switch:
            return RiskDecision(False, "kill switch is on: no new orders")
        limits = self._limits(intent)

        for lim in limits:
            if lim.allowed_symbols is not None and intent.symbol not in lim.allowed_symbols:
                return RiskDecision(False, f"symbol {intent.symbol} is not allowed")

        signed = intent.quantity if intent.side is Side.BUY else -intent.quantity
        reducible = _reducible(intent, snap)
        reduces = reducible > 0 and intent.quantity <= reducible + _EPS
        if intent.reduce_only and not reduces:
            if reducible <= 0 and snap.position * signed < 0:
                return RiskDecision(
                    False,
                    f"reduce-only order would not reduce the position: working "
                    f"{intent.side.value} orders already close all of {snap.position:g}",
                )
            if reducible > 0:
                return RiskDecision(
                    False,
                    f"reduce-only order of {intent.quantity:g} would take the position past "
                    f"zero: only {reducible:g} of {snap.position:g} is left to close after "
                    f"working {intent.side.value} orders",
                )
            return RiskDecision(False, "reduce-only order would not reduce the position")

        loss_limit = _tightest([lim.daily_loss_limit for lim in limits])
        if loss_limit is not None and snap.daily_pnl <= -loss_limit and not reduces:
            return RiskDecision(
                False, f"daily loss limit reached ({snap.daily_pnl:.2f} <= -{loss_limit:g})"
            )
        if reduces:
            return APPROVED

        max_open = _tightest([lim.max_open_orders for lim in limits])
        if max_open is not None and snap.open_orders + 1 > max_open:
            return RiskDecision(False, f"max open orders reached ({snap.open_orders}/{max_open:g})")

        max_qty = _tightest([lim.max_order_quantity for lim in limits])
        if max_qty is not None and intent.quantity > max_qty:
            return RiskDecision(
                False, f"order quantity {intent.quantity:g} exceeds max order size {max_qty:g}"
            )

        # Worst case: every working order on this side fills, then this one.
        if signed > 0:
            worst = snap.position + snap.open_buy_quantity + signed
        else:
            worst = snap.position - snap.open_sell_quantity + signed
        max_pos = _tightest([lim.max_position for lim in limits])
        if max_pos is not None and abs(worst) > max_pos + 1e-12:
            return RiskDecision(
                False,
                f"position limit: {intent.symbol} would reach {worst:g} "
                f"(limit {max_pos:g}, incl. working orders)",
            )

        market = snap.price if snap.price is not None and snap.price > 0 else None
        fill = _fill_price(intent, market)
        max_order_notional = _tightest([lim.max_order_notional for lim in limits])
        if max_order_notional is not None:
            if fill is None:
                return RiskDecision(
                    False, f"no reference price for {intent.symbol}: cannot size risk"
                )
            notional = intent.quantity * fill
            if notional > max_order_notional:
                return RiskDecision(
                    False,
                    f"order notional {notional:.2f} exceeds limit {max_order_notional:g}",
                )
        max_notional = _tightest([lim.max_notional for lim in limits])
        if max_notional is not None:
            # The whole position is valued at the market, or at the fill if that is higher
            # (a resting sell limit above the market fills only once the market is there).
            if market is None or fill is None:
                return RiskDecision(
                    False, f"no reference price for {intent.symbol}: cannot size risk"
                )
            mark = max(market, fill)
            if abs(worst) * mark > max_notional + 1e-9:
                return RiskDecision(
                    False,
                    f"notional limit: {intent.symbol} would reach {abs(worst) * mark:.2f} "
                    f"(limit {max_notional:g})",
                )
        return APPROVED
