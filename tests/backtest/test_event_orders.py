"""Event engine order types against hand-worked fills (intrabar rules in events.py).

Bars are chosen so each rule is exercised once: a touch inside the bar, a gap through
the price at the open, an order that waits several bars, a stop-limit that must wait.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from engine_helpers import Action, Scripted, frame, trades_as_tuples

from algotrendy.backtest import BacktestResult, run_backtest
from algotrendy.errors import ParameterError

#       open  high  low   close
ROWS = [
    (10.0, 10.5, 9.8, 10.0),  # 0
    (10.0, 10.4, 9.5, 10.2),  # 1  low 9.5
    (10.2, 11.0, 10.1, 10.8),  # 2  high 11.0
    (9.0, 9.4, 8.8, 9.2),  # 3  gaps down, opens 9.0
    (11.5, 12.0, 11.2, 11.8),  # 4  gaps up, opens 11.5
    (11.8, 12.2, 11.0, 12.0),  # 5
]


def run(script: dict[int, list[Action]], **settings: Any) -> BacktestResult:
    return run_backtest(frame(ROWS), Scripted(script), **settings)


def only_trade(res: BacktestResult) -> pd.Series:
    assert len(res.trades) == 1, res.trades
    return res.trades.iloc[0]


def test_buy_limit_touched_inside_the_bar_fills_at_the_limit_without_slippage() -> None:
    # Placed on bar 0; bar 1 opens 10 above 9.6 and trades down to 9.5: filled at 9.6.
    res = run({0: [lambda c: c.buy(size=10, limit=9.6)]}, slippage=0.01, fee=0.001)
    t = only_trade(res)
    assert (t.side, t["size"], t.entry_price, t.entry_bar) == ("long", 10.0, 9.6, 1)
    assert t.fees == pytest.approx(10 * 9.6 * 0.001, rel=1e-12)  # exit is a mark: no fee


def test_buy_limit_gapped_through_fills_at_the_better_open() -> None:
    # Placed on bar 2; bar 3 opens at 9.0, already below the 9.6 limit.
    t = only_trade(run({2: [lambda c: c.buy(size=1, limit=9.6)]}))
    assert (t.entry_price, t.entry_bar) == (9.0, 3)


def test_limit_waits_until_a_bar_reaches_it() -> None:
    # 8.9 is not reached on bars 1-2 (lows 9.5, 10.1); bar 3 opens 9.0 then trades 8.8.
    t = only_trade(run({0: [lambda c: c.buy(size=1, limit=8.9)]}))
    assert (t.entry_price, t.entry_bar) == (8.9, 3)


def test_cancel_all_removes_working_orders() -> None:
    res = run({0: [lambda c: c.buy(size=1, limit=8.9)], 1: [lambda c: c.cancel_all()]})
    assert res.trades.empty
    assert (res.equity["position"] == 0).all()


def test_orders_never_reached_are_dropped_at_the_end() -> None:
    res = run({0: [lambda c: c.buy(size=1, limit=1.0), lambda c: c.sell(size=1, stop=1.0)]})
    assert res.trades.empty


def test_buy_stop_touched_inside_the_bar_fills_at_the_stop_plus_slippage() -> None:
    # Placed on bar 1; bar 2 opens 10.2 and trades up to 11.0 >= 10.9.
    t = only_trade(run({1: [lambda c: c.buy(size=1, stop=10.9)]}, slippage=0.01))
    assert t.entry_bar == 2
    assert t.entry_price == pytest.approx(10.9 * 1.01, rel=1e-15)


def test_buy_stop_gapped_through_fills_at_the_worse_open_plus_slippage() -> None:
    # Placed on bar 3; bar 4 opens at 11.5, above the 11.0 stop.
    t = only_trade(run({3: [lambda c: c.buy(size=1, stop=11.0)]}, slippage=0.01))
    assert t.entry_bar == 4
    assert t.entry_price == pytest.approx(11.5 * 1.01, rel=1e-15)


def test_sell_stop_loss_on_a_long_gapped_through() -> None:
    # Long 5 at bar 1's open 10; the 9.2 stop is gapped through by bar 3's 9.0 open.
    res = run(
        {
            0: [lambda c: c.buy(size=5)],
            1: [lambda c: c.sell(size=5, stop=9.2)],
        }
    )
    assert trades_as_tuples(res.trades) == [("long", 5.0, 10.0, 9.0, 1, 3)]
    assert res.trades.pnl.tolist() == [5 * (9.0 - 10.0)]
    assert res.equity["position"].tolist() == [0, 5, 5, 0, 0, 0]


def test_sell_limit_take_profit_touched() -> None:
    # Long 5 at 10 (bar 1); bar 2 trades up to 11.0 >= 10.9 from a 10.2 open: exit 10.9.
    res = run({0: [lambda c: c.buy(size=5)], 1: [lambda c: c.sell(size=5, limit=10.9)]})
    assert trades_as_tuples(res.trades) == [("long", 5.0, 10.0, 10.9, 1, 2)]
    assert res.trades.pnl.iloc[0] == pytest.approx(5 * 0.9, rel=1e-12)


def test_stop_limit_triggered_inside_the_bar_fills_at_the_stop_when_within_the_limit() -> None:
    # Stop 10.9 is touched on bar 2 (high 11.0); 10.9 <= limit 11.0: limit fill, no slippage.
    t = only_trade(run({1: [lambda c: c.buy(size=1, stop=10.9, limit=11.0)]}, slippage=0.01))
    assert (t.entry_price, t.entry_bar) == (10.9, 2)


def test_stop_limit_triggered_above_its_limit_waits_for_a_later_bar() -> None:
    # Triggered inside bar 2 at 10.9 > limit 10.5: bar 2's low 10.1 may have come before
    # the high, so no fill there (pessimistic). Bar 3 opens 9.0 <= 10.5: fills at the open.
    t = only_trade(run({1: [lambda c: c.buy(size=1, stop=10.9, limit=10.5)]}))
    assert (t.entry_price, t.entry_bar) == (9.0, 3)


def test_stop_limit_triggered_at_the_open_can_fill_its_limit_in_the_same_bar() -> None:
    # Bar 4 opens 11.5 >= stop 11.0 (triggered at the open) above limit 11.3; the rest of
    # the bar comes after the trigger and its low 11.2 reaches the limit: 11.3 on bar 4.
    t = only_trade(run({3: [lambda c: c.buy(size=1, stop=11.0, limit=11.3)]}))
    assert (t.entry_price, t.entry_bar) == (11.3, 4)


def test_sell_stop_limit_mirror_opens_a_short() -> None:
    # Bar 3 opens 9.0 <= stop 9.5 (triggered at the open) below the 9.1 sell limit; its
    # high 9.4 then reaches 9.1: short 1 at 9.1 on bar 3, marked at the last close 12.
    t = only_trade(run({2: [lambda c: c.sell(size=1, stop=9.5, limit=9.1)]}))
    assert (t.side, t.entry_price, t.entry_bar, t.exit_price) == ("short", 9.1, 3, 12.0)
    assert t.pnl == pytest.approx(-(12.0 - 9.1), rel=1e-12)


def test_market_order_and_close() -> None:
    # Buy 3 at bar 1's open 10; close() on bar 2 fills at bar 3's open 9.0.
    res = run({0: [lambda c: c.buy(size=3)], 2: [lambda c: c.close()]})
    assert trades_as_tuples(res.trades) == [("long", 3.0, 10.0, 9.0, 1, 3)]
    assert res.trades.pnl.tolist() == [-3.0]


def test_market_fills_before_a_stop_touched_later_in_the_same_bar() -> None:
    # Placed on bar 0 in this order: a sell stop at 9.6, then a market buy. On bar 1 the
    # buy fills at the open (10) first, then the low 9.5 touches the stop: out at 9.6.
    res = run({0: [lambda c: c.sell(size=2, stop=9.6), lambda c: c.buy(size=2)]})
    assert trades_as_tuples(res.trades) == [("long", 2.0, 10.0, 9.6, 1, 1)]
    assert res.equity["position"].tolist() == [0.0] * 6


def test_fifo_lots_partial_close_splits_fees_pro_rata() -> None:
    # fee 1%: buy 10 @ 10 (bar 1, fee 1.00), buy 5 @ 10.2 (bar 2, fee 0.51),
    # sell 12 @ 9.0 (bar 3, fee 1.08).
    # Lot 1 closes fully: fees 1.00 + 1.08 * 10/12 = 1.90, pnl 10 * -1 - 1.90 = -11.90.
    # Lot 2 closes 2 of 5: fees 0.51 * 2/5 + 1.08 * 2/12 = 0.384, pnl 2 * -1.2 - 0.384.
    # Its 3 remaining units are marked at the last close 12: 3 * 1.8 - 0.51 * 3/5.
    res = run(
        {
            0: [lambda c: c.buy(size=10)],
            1: [lambda c: c.buy(size=5)],
            2: [lambda c: c.sell(size=12)],
        },
        fee=0.01,
    )
    assert trades_as_tuples(res.trades) == [
        ("long", 10.0, 10.0, 9.0, 1, 3),
        ("long", 2.0, 10.2, 9.0, 2, 3),
        ("long", 3.0, 10.2, 12.0, 2, 5),
    ]
    np.testing.assert_allclose(res.trades.fees, [1.9, 0.384, 0.306], rtol=1e-12)
    np.testing.assert_allclose(res.trades.pnl, [-11.9, -2.784, 5.094], rtol=1e-12)
    # Cash 10000 - 101 - 51.51 + 106.92 = 9954.41, plus 3 units at 12.
    assert res.metrics["final_equity"] == pytest.approx(9990.41, abs=1e-9)


def test_one_fill_through_zero_closes_the_long_and_opens_a_short() -> None:
    # Long 2 @ 10 (bar 1), sell 5 @ 10.2 (bar 2): closes 2, opens short 3 at 10.2.
    res = run({0: [lambda c: c.buy(size=2)], 1: [lambda c: c.sell(size=5)]})
    assert trades_as_tuples(res.trades) == [
        ("long", 2.0, 10.0, 10.2, 1, 2),
        ("short", 3.0, 10.2, 12.0, 2, 5),
    ]


def test_unsized_order_uses_the_sizing_rule() -> None:
    # whole units, cash 1000, bar 1 open 10: 100 units.
    t = only_trade(run({0: [lambda c: c.buy()]}, cash=1000))
    assert (t["size"], t.entry_price) == (100.0, 10.0)


def test_target_cancels_working_orders() -> None:
    # The 8.9 limit would fill on bar 3; target(+1) on bar 1 cancels it (exclusive
    # orders) and buys 1 unit at bar 2's open 10.2.
    res = run(
        {0: [lambda c: c.buy(size=1, limit=8.9)], 1: [lambda c: c.target(1)]},
        sizing="units",
        size=1.0,
    )
    assert trades_as_tuples(res.trades) == [("long", 1.0, 10.2, 12.0, 2, 5)]


def test_trade_on_close_market_order_fills_at_the_close_of_its_bar() -> None:
    # Buy 2 on bar 1 fills at bar 1's close 10.2; the position is visible on bar 2.
    strat = Scripted({1: [lambda c: c.buy(size=2)]})
    res = run_backtest(frame(ROWS), strat, trade_on_close=True)
    assert trades_as_tuples(res.trades) == [("long", 2.0, 10.2, 12.0, 1, 5)]
    assert strat.seen[:3] == [(0, 0.0), (1, 0.0), (2, 2.0)]


def test_context_reports_the_position_after_the_bars_fills() -> None:
    strat = Scripted({0: [lambda c: c.buy(size=4)], 2: [lambda c: c.sell(size=4)]})
    run_backtest(frame(ROWS), strat)
    assert strat.seen == [(0, 0.0), (1, 4.0), (2, 4.0), (3, 0.0), (4, 0.0), (5, 0.0)]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda c: c.buy(size=-1), "buy: size must be a positive number"),
        (lambda c: c.sell(limit=float("nan")), "sell: limit must be a positive number"),
        (lambda c: c.buy(stop=0.0), "buy: stop must be a positive number"),
        (lambda c: c.target(2), "target: direction must be -1, 0 or +1"),
    ],
)
def test_bad_order_arguments_are_refused_naming_the_argument(action: Action, message: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        run({1: [action]})


def test_scaling_in_fractional_lots_then_close_leaves_no_phantom_lot() -> None:
    # Three fractional entries (0.3 of equity each, units not representable exactly),
    # then close(): three round trips, position exactly zero afterwards.
    res = run(
        {
            0: [lambda c: c.buy()],
            1: [lambda c: c.buy()],
            2: [lambda c: c.buy(), lambda c: c.close()],
        },
        sizing="fraction",
        size=0.3,
        fee=0.001,
    )
    assert len(res.trades) == 3
    assert (res.trades.exit_bar == 3).all()
    assert res.equity["position"].tolist()[3:] == [0.0, 0.0, 0.0]
