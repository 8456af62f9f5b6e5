"""backtesting.py's documented quick-start example, reproduced trade for trade.

``Backtest(GOOG, SmaCross, cash=10_000, commission=.002, exclusive_orders=True)`` with
`SmaCross` = SMA(10) / SMA(20) crossover, long on the cross up, short on the cross down
(backtesting.py 0.6.6 README). Its all-in `buy()` / `sell()` sizes whole units on the
cash left after closing the previous trade, and charges 0.2% of notional per fill: our
``sizing="whole"``, ``fee=0.002``, next-bar-open fills.

Two checks: numbers pinned from a run of backtesting.py 0.6.6 (so a change on either side
is noticed even without the package), and a live run of backtesting.py on the same file
in the same test, compared trade by trade.

backtesting.py 0.6.6 leaves the last trade open (``finalize_trades=False``): its `Equity
Final [$]` is cash plus that trade's PnL at the last close, without an exit commission,
and its trade list and `Commissions [$]` hold the 93 closed trades only. We report the
open position as a 94th round trip exiting at the last close without exit costs, so the
first 93 rows equal backtesting.py's trades and the final equities are equal.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algotrendy.backtest import BacktestResult, run_backtest

# From backtesting.py 0.6.6 on tests/fixtures/ohlcv/backtesting_GOOG_1d.csv (= its GOOG).
BT_EQUITY_FINAL = 56263.51934000004
BT_COMMISSIONS = 10563.951540000002  # closed trades, both fills
BT_NUM_CLOSED = 93
# (Size, EntryBar, ExitBar, EntryPrice, ExitPrice, PnL, Commission)
BT_FIRST = (-59, 63, 75, 169.02, 179.13, -637.571699999999, 41.0817)
BT_LAST_CLOSED = (-69, 2059, 2087, 705.58, 702.24, 36.18084000000218, 194.27916000000002)
BT_OPEN = (69, 2087, 702.24, 7172.550000000003)  # size, entry bar, entry price, pl at close
BT_EQUITY_FINAL_TRADE_ON_CLOSE = 49985.91578000002


def ours(goog_path: Path, **settings: Any) -> BacktestResult:
    return run_backtest(goog_path, "sma_cross", {"fast": 10, "slow": 20}, fee=0.002, **settings)


def _row(tr: pd.DataFrame, k: int) -> tuple[float, ...]:
    r = tr.iloc[k]
    signed = r["size"] if r.side == "long" else -r["size"]
    return (signed, r.entry_bar, r.exit_bar, r.entry_price, r.exit_price, r.pnl, r.fees)


def test_pinned_backtesting_py_numbers(goog_path: Path) -> None:
    res = ours(goog_path)
    tr = res.trades
    assert len(tr) == BT_NUM_CLOSED + 1
    assert _row(tr, 0) == pytest.approx(BT_FIRST, rel=1e-12)
    assert _row(tr, BT_NUM_CLOSED - 1) == pytest.approx(BT_LAST_CLOSED, rel=1e-12)
    assert float(tr.fees.iloc[:BT_NUM_CLOSED].sum()) == pytest.approx(BT_COMMISSIONS, rel=1e-12)
    size, entry_bar, entry_price, open_pl = BT_OPEN
    last = tr.iloc[-1]
    assert (last.side, last["size"], last.entry_bar, last.entry_price) == (
        "long",
        size,
        entry_bar,
        entry_price,
    )
    # backtesting.py's open-trade PL has no commission yet; ours carries the entry fee.
    assert last.pnl == pytest.approx(open_pl - size * entry_price * 0.002, rel=1e-12)
    assert res.metrics["final_equity"] == pytest.approx(BT_EQUITY_FINAL, rel=1e-12)


def test_pinned_trade_on_close(goog_path: Path) -> None:
    res = ours(goog_path, trade_on_close=True)
    assert res.metrics["final_equity"] == pytest.approx(BT_EQUITY_FINAL_TRADE_ON_CLOSE, rel=1e-12)


def _run_backtesting_py(goog_path: Path, trade_on_close: bool) -> tuple[Any, Any]:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):  # type: ignore[misc]  # the README example, verbatim
        n1 = 10
        n2 = 20

        def init(self) -> None:
            close = self.data.Close
            self.sma1 = self.I(SMA, close, self.n1)
            self.sma2 = self.I(SMA, close, self.n2)

        def next(self) -> None:
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    df = pd.read_csv(goog_path, index_col=0, parse_dates=True)
    df.columns = [c.capitalize() for c in df.columns]
    bt = Backtest(
        df,
        SmaCross,
        cash=10_000,
        commission=0.002,
        exclusive_orders=True,
        trade_on_close=trade_on_close,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open": expected, see above
        stats = bt.run()
    return stats, stats._strategy._broker


@pytest.mark.parametrize("trade_on_close", [False, True])
def test_same_trades_and_equity_as_backtesting_py_live(
    goog_path: Path, trade_on_close: bool
) -> None:
    stats, broker = _run_backtesting_py(goog_path, trade_on_close)
    bt_trades = stats._trades
    res = ours(goog_path, trade_on_close=trade_on_close)
    tr = res.trades
    k = len(bt_trades)
    assert len(tr) == k + len(broker.trades)

    closed = tr.iloc[:k]
    signed = np.where(closed.side == "long", closed["size"], -closed["size"])
    np.testing.assert_array_equal(signed, bt_trades.Size.to_numpy(dtype=float))
    np.testing.assert_array_equal(closed.entry_bar, bt_trades.EntryBar)
    np.testing.assert_array_equal(closed.exit_bar, bt_trades.ExitBar)
    np.testing.assert_array_equal(closed.entry_price, bt_trades.EntryPrice)
    np.testing.assert_array_equal(closed.exit_price, bt_trades.ExitPrice)
    np.testing.assert_allclose(closed.pnl, bt_trades.PnL, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(closed.fees, bt_trades.Commission, rtol=1e-12)
    np.testing.assert_allclose(closed.return_pct, bt_trades.ReturnPct, rtol=1e-12, atol=1e-15)

    for (_, ours_open), bt_open in zip(tr.iloc[k:].iterrows(), broker.trades, strict=True):
        assert ours_open.entry_bar == bt_open.entry_bar
        assert ours_open.entry_price == bt_open.entry_price
        assert ours_open["size"] == abs(bt_open.size)
        assert res.data is not None
        assert ours_open.exit_price == res.data["close"].iloc[-1]
        entry_fee = abs(bt_open.size) * bt_open.entry_price * 0.002
        assert ours_open.pnl == pytest.approx(bt_open.pl - entry_fee, rel=1e-12)

    ours_eq = res.equity["equity"].to_numpy()
    bt_eq = stats._equity_curve["Equity"].to_numpy()
    if trade_on_close:
        # backtesting.py books a fill at bar i's close while processing bar i+1, after it
        # has recorded bar i's equity: on fill bars its curve still shows the old
        # position. Ours marks bar i after its fills. Everywhere else they agree.
        fill_bars = np.unique(np.concatenate([tr.entry_bar, closed.exit_bar]))
        other = np.setdiff1d(np.arange(len(ours_eq)), fill_bars)
        np.testing.assert_allclose(ours_eq[other], bt_eq[other], rtol=1e-12)
        assert not np.allclose(ours_eq[fill_bars], bt_eq[fill_bars], rtol=1e-12)
    else:
        np.testing.assert_allclose(ours_eq, bt_eq, rtol=1e-12)
    assert res.metrics["final_equity"] == pytest.approx(stats["Equity Final [$]"], rel=1e-12)
