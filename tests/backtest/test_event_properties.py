"""Properties of the event engine under random order flow (every order type, cancels,
closes, targets, partial closes), checked from its outputs alone:

* every fill price is one the bar could trade at: within [low, high] of its bar, moved
  by at most the slippage (a round trip still open at the end exits at the last close);
* the position at each close is the sum of the round trips open at that close;
* starting cash plus all round-trip PnL is the last equity point;
* equity at each close is cash + position x close, cash changing only on fill bars.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from engine_helpers import Action, Scripted, frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algotrendy.backtest import run_backtest
from algotrendy.strategies.base import BarContext


@st.composite
def bars_rows(draw: st.DrawFn) -> list[tuple[float, float, float, float]]:
    n = draw(st.integers(min_value=2, max_value=30))
    price = 100.0
    rows = []
    for _ in range(n):
        o = price * draw(st.floats(0.9, 1.1))
        c = price * draw(st.floats(0.9, 1.1))
        rows.append(
            (o, max(o, c) * draw(st.floats(1.0, 1.05)), min(o, c) * draw(st.floats(0.95, 1.0)), c)
        )
        price = c
    return rows


@st.composite
def action(draw: st.DrawFn) -> Action:
    kind = draw(
        st.sampled_from(["market", "limit", "stop", "stop_limit", "close", "cancel", "target"])
    )
    if kind == "close":
        return lambda c: c.close()
    if kind == "cancel":
        return lambda c: c.cancel_all()
    if kind == "target":
        d = draw(st.sampled_from([-1.0, 0.0, 1.0]))
        return lambda c: c.target(d)
    side = draw(st.sampled_from(["buy", "sell"]))
    size = draw(st.none() | st.floats(0.5, 20.0))
    a = 100.0 * draw(st.floats(0.85, 1.15))
    b = 100.0 * draw(st.floats(0.85, 1.15))
    kwargs: dict[str, float | None] = {"size": size}
    if kind == "limit":
        kwargs["limit"] = a
    elif kind == "stop":
        kwargs["stop"] = a
    elif kind == "stop_limit":
        kwargs["stop"], kwargs["limit"] = a, b

    def place(c: BarContext) -> None:
        getattr(c, side)(**kwargs)

    return place


PROPERTY = given(
    rows=bars_rows(),
    data=st.data(),
    slippage=st.sampled_from([0.0, 0.01]),
    fee=st.sampled_from([0.0, 0.002]),
    fixed_fee=st.sampled_from([0.0, 1.0]),
    sizing=st.sampled_from(["whole", "fraction", "units"]),
    trade_on_close=st.booleans(),
)
HEALTH = [HealthCheck.too_slow]


@settings(max_examples=60, deadline=None, suppress_health_check=HEALTH)
@PROPERTY
def test_event_engine_invariants(**kwargs: object) -> None:
    _check_invariants(**kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=HEALTH)
@PROPERTY
def test_event_engine_invariants_many(**kwargs: object) -> None:
    _check_invariants(**kwargs)  # type: ignore[arg-type]


def _check_invariants(
    rows: list[tuple[float, float, float, float]],
    data: st.DataObject,
    slippage: float,
    fee: float,
    fixed_fee: float,
    sizing: str,
    trade_on_close: bool,
) -> None:
    n = len(rows)
    script = data.draw(
        st.dictionaries(st.integers(0, n - 1), st.lists(action(), min_size=1, max_size=3))
    )
    size = 0.5 if sizing == "fraction" else 3.0
    res = run_backtest(
        frame(rows),
        Scripted(script),
        cash=10_000,
        fee=fee,
        fixed_fee=fixed_fee,
        slippage=slippage,
        sizing=sizing,
        size=size,
        trade_on_close=trade_on_close,
    )
    arr = np.asarray(rows)
    low, high, close = arr[:, 2], arr[:, 1], arr[:, 3]
    tr = res.trades
    pos = res.equity["position"].to_numpy()
    eq = res.equity["equity"].to_numpy()
    tol = 1e-9

    # Fill prices are reachable on their bar (up to slippage).
    fills = [
        *zip(tr.entry_bar, tr.entry_price, strict=True),
        *zip(tr.exit_bar, tr.exit_price, strict=True),
    ]
    for bar, price in fills:
        assert (
            low[bar] * (1 - slippage) * (1 - tol) <= price <= high[bar] * (1 + slippage) * (1 + tol)
        )

    # Position at each close (but the last, where open trades are marked) = open trades.
    signed = np.where(tr.side == "long", tr["size"], -tr["size"]).astype(float)
    for j in range(n - 1):
        open_ = (tr.entry_bar <= j) & (tr.exit_bar > j)
        assert math.isclose(float(signed[open_.to_numpy()].sum()), pos[j], abs_tol=1e-6)

    # Accounting identity.
    assert math.isclose(10_000 + float(tr.pnl.sum()), eq[-1], rel_tol=1e-9, abs_tol=1e-6)

    # Cash (equity - position x close) only changes on bars where some trade has a fill
    # (up to the last bar, where an exit may be a fill or the end-of-data mark).
    cash = eq - pos * close
    fill_bars = set(tr.entry_bar) | set(tr.exit_bar)
    for j in range(1, n - 1):
        if j not in fill_bars:
            assert math.isclose(cash[j], cash[j - 1], rel_tol=1e-9, abs_tol=1e-6)
