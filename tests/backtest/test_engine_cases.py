"""Small backtests checked against numbers worked out by hand (the arithmetic is in the
comments), for both engines where the case is a signal strategy: fees, fixed fees,
slippage, shorts, reversals, every sizing mode, `trade_on_close`, the end-of-data mark.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from engine_helpers import FixedSignals, frame, trades_as_tuples

from algotrendy.backtest import run_backtest

NAN = math.nan
ENGINES = ["vectorized", "event"]

#       open   high  low   close
ROWS = [
    (10.0, 11.0, 9.0, 10.0),  # 0
    (10.0, 12.0, 9.5, 11.0),  # 1
    (11.0, 13.0, 10.0, 12.0),  # 2
    (12.0, 12.5, 11.0, 11.5),  # 3
    (11.0, 12.0, 10.0, 11.0),  # 4
]


@pytest.mark.parametrize("engine", ENGINES)
def test_long_whole_units_with_fee_and_fixed_fee(engine: str) -> None:
    # Signal +1 on bar 0 -> buy at bar 1's open 10. Units: floor((1000 - 1) / (10 + 10 *
    # 0.01)) = floor(98.9...) = 98. Entry fee 98 * 10 * 0.01 + 1 = 10.80; cash 1000 - 980
    # - 10.80 = 9.20. Signal 0 on bar 2 -> sell at bar 3's open 12: fee 98 * 12 * 0.01 + 1
    # = 12.76; cash 9.20 + 1176 - 12.76 = 1172.44. PnL 98 * 2 - 23.56 = 172.44.
    res = run_backtest(
        frame(ROWS),
        FixedSignals([1, NAN, 0, NAN, NAN]),
        cash=1000,
        fee=0.01,
        fixed_fee=1.0,
        engine=engine,
    )
    assert trades_as_tuples(res.trades) == [("long", 98.0, 10.0, 12.0, 1, 3)]
    t = res.trades.iloc[0]
    assert t.fees == pytest.approx(23.56, abs=1e-9)
    assert t.pnl == pytest.approx(172.44, abs=1e-9)
    assert t.return_pct == pytest.approx(172.44 / 980.0, rel=1e-12)
    # Marked at each close: bar 1 9.20 + 98 * 11, bar 2 9.20 + 98 * 12.
    np.testing.assert_allclose(
        res.equity["equity"], [1000.0, 1087.2, 1185.2, 1172.44, 1172.44], rtol=0, atol=1e-9
    )
    np.testing.assert_array_equal(res.equity["position"], [0, 98, 98, 0, 0])
    assert res.metrics["final_equity"] == pytest.approx(1172.44, abs=1e-9)
    assert res.metrics["num_trades"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_short_then_reversal_with_slippage_and_fraction_sizing(engine: str) -> None:
    # Signal -1 on bar 0: sell at bar 1's open 10 less 1% slippage = 9.90, half the
    # equity: u1 = 0.5 * 1000 / 9.90 units, cash 1000 + 500 = 1500.
    # Signal +1 on bar 2 -> reversal at bar 3's open 12: buy u1 back at 12 * 1.01 = 12.12
    # (cash 1500 - u1 * 12.12), then buy u2 = 0.5 * cash / 12.12 at 12.12.
    # The long is still open at the end: valued at the last close 11, no exit costs.
    res = run_backtest(
        frame(ROWS),
        FixedSignals([-1, NAN, 1, NAN, NAN]),
        cash=1000,
        slippage=0.01,
        sizing="fraction",
        size=0.5,
        engine=engine,
    )
    u1 = 500 / 9.9
    cash_after_cover = 1500 - u1 * 12.12
    u2 = 0.5 * cash_after_cover / 12.12
    cash_end = cash_after_cover - u2 * 12.12
    tr = res.trades
    assert list(tr.side) == ["short", "long"]
    assert list(tr.entry_bar) == [1, 3]
    assert list(tr.exit_bar) == [3, 4]
    np.testing.assert_allclose(tr["size"], [u1, u2], rtol=1e-12)
    np.testing.assert_allclose(tr.entry_price, [9.9, 12.12], rtol=1e-12)
    np.testing.assert_allclose(tr.exit_price, [12.12, 11.0], rtol=1e-12)
    np.testing.assert_allclose(tr.pnl, [-u1 * (12.12 - 9.9), u2 * (11.0 - 12.12)], rtol=1e-12)
    np.testing.assert_allclose(tr.fees, [0.0, 0.0], atol=0)
    np.testing.assert_allclose(
        res.equity["equity"],
        [1000, 1500 - u1 * 11, 1500 - u1 * 12, cash_end + u2 * 11.5, cash_end + u2 * 11],
        rtol=1e-12,
    )
    np.testing.assert_allclose(res.equity["position"], [0, -u1, -u1, u2, u2], rtol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_reversal_pays_fixed_fee_on_both_fills(engine: str) -> None:
    # units sizing, 2 units, fixed fee 5 per fill. Long 2 @ 10 (bar 1 open) -> fee 5.
    # Signal -1 on bar 1 -> at bar 2's open 11: sell 2 (close, fee 5) then sell 2 (open
    # short, fee 5). Long pnl = 2 * (11 - 10) - 10 = -8. The short is marked at the last
    # close 11: pnl = -2 * (11 - 11) - 5 = -5. Cash: 1000 - 20 - 5 + 22 - 5 + 22 - 5 = 1009,
    # equity at the end 1009 - 2 * 11 = 987 = 1000 - 8 - 5.
    res = run_backtest(
        frame(ROWS),
        FixedSignals([1, -1, NAN, NAN, NAN]),
        cash=1000,
        fixed_fee=5.0,
        sizing="units",
        size=2.0,
        engine=engine,
    )
    assert trades_as_tuples(res.trades) == [
        ("long", 2.0, 10.0, 11.0, 1, 2),
        ("short", 2.0, 11.0, 11.0, 2, 4),
    ]
    assert list(res.trades.pnl) == [-8.0, -5.0]
    assert list(res.trades.fees) == [10.0, 5.0]
    assert res.metrics["final_equity"] == 987.0
    # bar 2: cash 1009 - 2 * 12 (short marked at close 12) = 985.
    assert list(res.equity["equity"]) == [1000.0, 997.0, 985.0, 986.0, 987.0]


@pytest.mark.parametrize("engine", ENGINES)
def test_trade_on_close_fills_at_the_signal_bars_close(engine: str) -> None:
    # Signal +1 on bar 1 fills at bar 1's close 11 (3 units); signal 0 on bar 3 fills at
    # its close 11.5. PnL 3 * 0.5 = 1.5.
    res = run_backtest(
        frame(ROWS),
        FixedSignals([NAN, 1, NAN, 0, NAN]),
        sizing="units",
        size=3.0,
        trade_on_close=True,
        engine=engine,
    )
    assert trades_as_tuples(res.trades) == [("long", 3.0, 11.0, 11.5, 1, 3)]
    assert list(res.trades.pnl) == [1.5]
    np.testing.assert_array_equal(res.equity["position"], [0, 3, 3, 0, 0])


@pytest.mark.parametrize("engine", ENGINES)
def test_repeated_direction_and_nan_change_nothing(engine: str) -> None:
    # +1, +1, NaN, +1: one entry, never resized; the last bar's signal has no next bar.
    res = run_backtest(
        frame(ROWS),
        FixedSignals([1, 1, NAN, 1, -1]),
        sizing="units",
        size=1.0,
        engine=engine,
    )
    assert trades_as_tuples(res.trades) == [("long", 1.0, 10.0, 11.0, 1, 4)]
    np.testing.assert_array_equal(res.equity["position"], [0, 1, 1, 1, 1])


@pytest.mark.parametrize("engine", ENGINES)
def test_whole_units_not_affordable_skips_the_entry(engine: str) -> None:
    # 9 of cash cannot buy one unit at 10: no trade, flat throughout; the next +1 signal
    # retries (position is still flat) and fails again.
    res = run_backtest(frame(ROWS), FixedSignals([1, NAN, 1, NAN, NAN]), cash=9.0, engine=engine)
    assert res.trades.empty
    assert list(res.equity["equity"]) == [9.0] * 5
    assert res.metrics["num_trades"] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_whole_units_use_all_cash_when_it_divides_exactly(engine: str) -> None:
    # 1000 / 10 = 100 units exactly with no fees: all cash spent, none left, so equity
    # is 100 x close from the entry bar on.
    res = run_backtest(frame(ROWS), FixedSignals([1, NAN, NAN, NAN, NAN]), cash=1000, engine=engine)
    assert res.trades["size"].tolist() == [100.0]
    assert res.equity["equity"].tolist() == [1000.0, 1100.0, 1200.0, 1150.0, 1100.0]
