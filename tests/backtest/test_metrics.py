"""Metrics checked against values worked out by hand (fractions / the statistics module),
the annualisation rule on every real fixture kind, the degenerate cases, and properties
(scale invariance, drawdown bounds, a brute-force drawdown reference)."""

from __future__ import annotations

import math
import statistics
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.backtest.metrics import (
    METRICS,
    compute_metrics,
    drawdown,
    infer_periods_per_year,
)
from algotrendy.data import load_ohlcv
from algotrendy.domain.bars import Bars
from algotrendy.errors import DataError, ParameterError

DAY = np.timedelta64(1, "D")
MONDAY = np.datetime64("2021-01-04T00:00", "ns")  # 2021-01-04 was a Monday
EMPTY = np.array([], dtype=np.float64)

Times = npt.NDArray[np.datetime64]


def daily(n: int, start: np.datetime64 = MONDAY) -> Times:
    return start + np.arange(n) * DAY


def metrics(
    equity: list[float],
    *,
    times: Times | None = None,
    position: list[float] | None = None,
    pnl: list[float] | None = None,
    returns: list[float] | None = None,
    cash: float = 100.0,
    risk_free: float = 0.0,
    ppy: float | None = 252.0,
) -> dict[str, float]:
    n = len(equity)
    return compute_metrics(
        equity=np.array(equity, dtype=np.float64),
        times=daily(n) if times is None else times,
        position=np.zeros(n) if position is None else np.array(position, dtype=np.float64),
        trade_pnl=EMPTY if pnl is None else np.array(pnl, dtype=np.float64),
        trade_returns=EMPTY if returns is None else np.array(returns, dtype=np.float64),
        cash=cash,
        risk_free=risk_free,
        periods_per_year=ppy,
    )


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# --------------------------------------------------------------------------- by hand


class TestHandComputed:
    """Curve 100 -> 110 -> 99 -> 105 -> 120, cash 100, 252 periods a year, rf 3%.

    Returns r = 1/10, -1/10, 105/99 - 1 = 2/33, 120/105 - 1 = 1/7 (exact fractions).
    The last bar is 730.5 days after the first, so years = 2 exactly.
    """

    EQUITY = (100.0, 110.0, 99.0, 105.0, 120.0)
    R = (Fraction(1, 10), Fraction(-1, 10), Fraction(2, 33), Fraction(1, 7))
    RF = 0.03
    PPY = 252.0

    def times(self) -> Times:
        offsets = [np.timedelta64(h, "h") for h in (0, 24, 48, 72, 730 * 24 + 12)]
        return np.array([MONDAY + o for o in offsets], dtype="datetime64[ns]")

    def result(self) -> dict[str, float]:
        return metrics(
            list(self.EQUITY),
            times=self.times(),
            position=[0, 1, 1, -2, 0],
            pnl=[50, -20, 30, -10, 0],
            returns=[0.05, -0.02, 0.03, -0.01, 0.0],
            risk_free=self.RF,
            ppy=self.PPY,
        )

    def test_returns_are_what_the_docstring_says(self) -> None:
        eq = [Fraction(int(e)) for e in self.EQUITY]
        assert tuple(b / a - 1 for a, b in pairwise(eq)) == self.R

    def test_total_return_cagr_final(self) -> None:
        m = self.result()
        assert m["final_equity"] == 120.0
        assert m["total_return"] == pytest.approx(0.2)
        assert m["cagr"] == pytest.approx(math.sqrt(1.2) - 1)  # 2 years: 1.2^(1/2) - 1

    def test_volatility_and_sharpe(self) -> None:
        m = self.result()
        mean = sum(self.R) / 4  # = (2/33 + 1/7) / 4 = 47/924
        assert mean == Fraction(47, 924)
        var = sum((r - mean) ** 2 for r in self.R) / 3  # sample variance, ddof=1
        sd = math.sqrt(var)
        assert sd == pytest.approx(statistics.stdev([float(r) for r in self.R]))
        rf_pp = (1 + self.RF) ** (1 / self.PPY) - 1
        assert m["volatility_ann"] == pytest.approx(sd * math.sqrt(252))
        assert m["sharpe"] == pytest.approx((float(mean) - rf_pp) / sd * math.sqrt(252))

    def test_sortino(self) -> None:
        m = self.result()
        rf_pp = (1 + self.RF) ** (1 / self.PPY) - 1
        excess = [float(r) - rf_pp for r in self.R]
        # Only -1/10 is below the target; the other three periods count as 0 in the mean.
        downside = math.sqrt((min(0.0, excess[1]) ** 2) / 4)
        assert downside == pytest.approx((0.1 + rf_pp) / 2)
        assert m["sortino"] == pytest.approx(statistics.fmean(excess) / downside * math.sqrt(252))

    def test_drawdown_and_calmar(self) -> None:
        m = self.result()
        # Peaks 100, 110, 110, 110, 120 -> drawdowns 0, 0, 99/110 - 1, 105/110 - 1, 0.
        expected = [0.0, 0.0, 99 / 110 - 1, 105 / 110 - 1, 0.0]
        assert drawdown(np.array(self.EQUITY)) == pytest.approx(expected)
        assert m["max_drawdown"] == pytest.approx(-0.1)
        # Under water from the peak at bar 1 until bar 4 regains it: 3 bars; bar 1 is
        # day 1 and bar 4 is day 730.5, so 729.5 days.
        assert m["max_drawdown_duration_bars"] == 3
        assert m["max_drawdown_duration_days"] == pytest.approx(729.5)
        assert m["calmar"] == pytest.approx((math.sqrt(1.2) - 1) / 0.1)

    def test_trade_metrics_and_exposure(self) -> None:
        m = self.result()
        assert m["num_trades"] == 5
        assert m["profit_factor"] == pytest.approx(80 / 30)  # (50 + 30) / |-20 - 10|
        assert m["win_rate"] == pytest.approx(2 / 5)  # the 0-pnl trade is not a win
        assert m["expectancy"] == pytest.approx(10.0)  # 50 / 5
        assert m["avg_trade"] == pytest.approx(0.01)  # 0.05 / 5
        assert m["best_trade"] == 0.05
        assert m["worst_trade"] == -0.02
        assert m["exposure_time"] == pytest.approx(3 / 5)  # position 0, 1, 1, -2, 0
        assert m["periods_per_year"] == 252.0

    def test_keys_follow_metrics_order(self) -> None:
        assert list(self.result()) == list(METRICS)
        assert list(METRICS) == [
            "final_equity",
            "total_return",
            "cagr",
            "volatility_ann",
            "sharpe",
            "sortino",
            "calmar",
            "max_drawdown",
            "max_drawdown_duration_bars",
            "max_drawdown_duration_days",
            "profit_factor",
            "win_rate",
            "expectancy",
            "exposure_time",
            "num_trades",
            "avg_trade",
            "best_trade",
            "worst_trade",
            "periods_per_year",
        ]
        assert all(isinstance(v, float) for v in self.result().values())


def test_total_return_starts_from_cash_not_first_bar() -> None:
    # An entry fee already marked on bar 0 (99 instead of 100) is part of the return.
    m = metrics([99.0, 99.0, 110.0], cash=100.0)
    assert m["total_return"] == pytest.approx(0.10)


def test_unrecovered_drawdown_runs_to_the_last_bar() -> None:
    # Peak 120 at bar 1, never regained: bars 1..4 -> 3 bars, 3 days.
    m = metrics([100.0, 120.0, 90.0, 100.0, 110.0])
    assert m["max_drawdown"] == pytest.approx(90 / 120 - 1)  # -0.25
    assert m["max_drawdown_duration_bars"] == 3
    assert m["max_drawdown_duration_days"] == 3.0


def test_longest_in_bars_and_in_days_are_taken_separately() -> None:
    # Period A: peak bar 0 (day 0) -> recovered bar 2 (day 20): 2 bars, 20 days.
    # Period B: peak bar 3 (day 21) -> recovered bar 6 (day 24): 3 bars, 3 days.
    times = np.array([MONDAY + d * DAY for d in (0, 10, 20, 21, 22, 23, 24)])
    m = metrics([100.0, 90.0, 100.0, 120.0, 110.0, 105.0, 120.0], times=times)
    assert m["max_drawdown_duration_bars"] == 3
    assert m["max_drawdown_duration_days"] == 20.0
    assert m["max_drawdown"] == pytest.approx(-0.125)  # 105 / 120 - 1 beats 90 / 100 - 1


def test_equal_high_counts_as_recovery() -> None:
    # 110 is regained at bar 2 (ends a 0-bar period: none), dip at bar 3, back at bar 4.
    m = metrics([100.0, 110.0, 110.0, 100.0, 110.0])
    assert m["max_drawdown_duration_bars"] == 2  # bar 2 -> bar 4


# --------------------------------------------------------------------------- edge cases


def test_no_trades_gives_nan_trade_metrics() -> None:
    m = metrics([100.0, 101.0, 102.0], position=[0, 0, 0])
    assert m["num_trades"] == 0
    for key in ("profit_factor", "win_rate", "expectancy", "avg_trade", "best_trade"):
        assert math.isnan(m[key]), key
    assert math.isnan(m["worst_trade"])
    assert m["exposure_time"] == 0.0


def test_constant_equity() -> None:
    m = metrics([100.0] * 10)
    assert math.isnan(m["sharpe"])  # 0 / 0
    assert math.isnan(m["sortino"])  # 0 / 0
    assert math.isnan(m["calmar"])  # cagr 0 / drawdown 0
    assert m["volatility_ann"] == 0.0
    assert m["cagr"] == 0.0
    assert m["max_drawdown"] == 0.0
    assert m["max_drawdown_duration_bars"] == 0
    assert m["max_drawdown_duration_days"] == 0.0


def test_constant_equity_with_risk_free() -> None:
    m = metrics([100.0] * 10, risk_free=0.05)
    assert math.isnan(m["sharpe"])
    # Every excess return is -rf_pp: mean -rf_pp, downside deviation sqrt(rf_pp^2) = rf_pp.
    assert m["sortino"] == pytest.approx(-math.sqrt(252))


def test_deterministic_growth_has_no_sharpe() -> None:
    eq = [100.0 * 1.01**k for k in range(20)]  # r = 1% every bar, up to round-off
    m = metrics(eq)
    assert math.isnan(m["sharpe"])
    assert m["sortino"] == math.inf  # gains, no downside
    assert m["calmar"] == math.inf  # positive cagr, no drawdown
    assert m["volatility_ann"] == pytest.approx(0.0, abs=1e-12)


def test_one_bar() -> None:
    m = metrics([105.0], position=[1.0], ppy=None)
    assert m["final_equity"] == 105.0
    assert m["total_return"] == pytest.approx(0.05)
    for key in ("cagr", "volatility_ann", "sharpe", "sortino", "calmar", "periods_per_year"):
        assert math.isnan(m[key]), key
    assert m["max_drawdown"] == 0.0
    assert m["exposure_time"] == 1.0
    assert metrics([105.0], ppy=12.0)["periods_per_year"] == 12.0


def test_two_bars_have_no_volatility() -> None:
    up = metrics([100.0, 110.0])
    assert math.isnan(up["volatility_ann"])  # one return: no sample standard deviation
    assert math.isnan(up["sharpe"])
    assert up["sortino"] == math.inf
    down = metrics([100.0, 90.0])
    # r = -0.1: mean -0.1, downside deviation 0.1.
    assert down["sortino"] == pytest.approx(-math.sqrt(252))


def test_total_loss() -> None:
    m = metrics([100.0, 50.0, 0.0, 0.0])
    assert m["cagr"] == -1.0
    assert m["total_return"] == -1.0
    assert m["max_drawdown"] == -1.0
    assert math.isnan(m["sharpe"])  # 0 / 0 return after the wipe-out


def test_profit_factor_edges() -> None:
    assert metrics([100.0, 100.0], pnl=[5, 3], returns=[0.1, 0.1])["profit_factor"] == math.inf
    assert metrics([100.0, 100.0], pnl=[-5, -3], returns=[-0.1, -0.1])["profit_factor"] == 0.0
    flat = metrics([100.0, 100.0], pnl=[0, 0], returns=[0, 0])
    assert math.isnan(flat["profit_factor"])
    assert flat["win_rate"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"equity": []}, "equity: need at least one bar"),
        ({"equity": [100.0, math.nan]}, r"equity: value at position 1 is not finite"),
        ({"position": [0.0]}, "position: length 1 differs from equity's 2"),
        ({"times": daily(3)}, "times: length 3 differs"),
        ({"times": np.array([1, 2])}, "times: expected a 1-D numpy datetime64"),
        ({"returns": [0.1]}, "trade_returns: length 1 differs from trade_pnl's 0"),
        ({"cash": 0.0}, "cash: must be a positive number"),
        ({"risk_free": -1.0}, "risk_free"),
        ({"ppy": 0.0}, "periods_per_year: must be positive"),
        ({"ppy": math.inf}, "periods_per_year"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "equity": [100.0, 101.0],
        "times": None,
        "position": None,
        "pnl": None,
        "returns": None,
        "cash": 100.0,
        "risk_free": 0.0,
        "ppy": 252.0,
    }
    args.update(kwargs)
    equity = np.array(args.pop("equity"), dtype=np.float64)
    n = len(equity)
    times = args.pop("times")
    position = args.pop("position")
    pnl = args.pop("pnl")
    returns = args.pop("returns")
    with pytest.raises(ParameterError, match=match):
        compute_metrics(
            equity=equity,
            times=daily(n) if times is None else times,  # type: ignore[arg-type]
            position=np.zeros(n) if position is None else np.array(position),
            trade_pnl=EMPTY if pnl is None else np.array(pnl),
            trade_returns=EMPTY if returns is None else np.array(returns),
            cash=args["cash"],  # type: ignore[arg-type]
            risk_free=args["risk_free"],  # type: ignore[arg-type]
            periods_per_year=args["ppy"],  # type: ignore[arg-type]
        )


# --------------------------------------------------------------------------- annualisation


def fixture_times(fixtures_dir: Path, name: str) -> Times:
    return Bars.from_frame(load_ohlcv(fixtures_dir / "ohlcv" / name)).time


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # NASDAQ daily bars, no weekend bars: 252 trading days.
        ("backtesting_GOOG_1d.csv", 252.0),
        # 24/7 crypto 1m bars: 365.25 days x 1440 minutes.
        ("nautilus_btc-perp_1m_20211231-20220201.csv", 365.25 * 1440),
        ("freqtrade_UNITTEST_BTC_1m.csv", 365.25 * 1440),  # has gaps; median is still 1m
        # 24/7 crypto 5m over Fri..Sun: 365.25 x 288.
        ("freqtrade_XRP_ETH_5m.csv", 365.25 * 288),
        # FX hourly: Sunday-evening open, no Saturday bars, 24 bars per weekday: 252 x 24.
        ("backtesting_EURUSD_1h.csv", 252.0 * 24),
    ],
)
def test_inferred_on_fixtures(fixtures_dir: Path, name: str, expected: float) -> None:
    assert infer_periods_per_year(fixture_times(fixtures_dir, name)) == pytest.approx(expected)


def _weekdays(days: int, start: np.datetime64 = MONDAY) -> Times:
    t = daily(days, start)
    weekday = (t.astype("datetime64[D]").view(np.int64) + 3) % 7  # 1970-01-01: Thursday
    return t[weekday < 5]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (daily(400), 365.25),  # daily, every day (crypto)
        (MONDAY + np.arange(24 * 30) * np.timedelta64(1, "h"), 365.25 * 24),
        (_weekdays(400), 252.0),
        (MONDAY + np.arange(60) * 7 * DAY, 52.0),  # weekly (Mondays)
        (MONDAY + np.arange(60) * 7 * DAY - 3 * DAY, 52.0),  # weekly (Fridays)
        (
            pd.date_range("2010-01-31", periods=40, freq="ME").to_numpy(),  # month ends
            12.0,
        ),
        (pd.date_range("2010-03-31", periods=20, freq="QE").to_numpy(), 4.0),
        (pd.date_range("2010-12-31", periods=20, freq="YE").to_numpy(), 1.0),
        # Only Monday..Friday over 5 days: no Saturday inside the span to tell.
        (daily(5), 365.25),
    ],
    ids=["daily-24/7", "hourly-24/7", "daily-weekdays", "weekly-mon", "weekly-fri", "monthly",
         "quarterly", "yearly", "short-span"],
)  # fmt: skip
def test_inferred_on_synthetic_calendars(times: Times, expected: float) -> None:
    assert infer_periods_per_year(times) == pytest.approx(expected)


def test_equity_session_minute_bars() -> None:
    # NYSE 14:30-21:00 UTC, 390 one-minute bars a day, three weeks of weekdays, with a
    # holiday (day dropped) and a half day (210 bars): the median day still has 390.
    days = _weekdays(21)
    sessions = []
    for i, day in enumerate(days):
        if i == 3:
            continue
        bars = 210 if i == 7 else 390
        sessions.append(day + np.timedelta64(14 * 60 + 30, "m") + np.arange(bars) * 60_000_000_000)
    assert infer_periods_per_year(np.concatenate(sessions)) == 252.0 * 390


def test_a_stray_saturday_bar_is_tolerated() -> None:
    t = _weekdays(700)  # 500 weekdays
    saturday = MONDAY + 5 * DAY
    t = np.sort(np.append(t, saturday))  # 1 of 501 bars: below 1%
    assert infer_periods_per_year(t) == 252.0


def test_irregular_spacing_uses_the_true_median() -> None:
    # Gaps 60 s once, then 120 s: the smallest gap is not the majority; median = 120 s.
    t = MONDAY + np.concatenate(([0], 60 + np.arange(100) * 120)) * 1_000_000_000
    assert infer_periods_per_year(t.astype("datetime64[ns]")) == pytest.approx(365.25 * 720)


def test_inference_used_by_compute_metrics(fixtures_dir: Path) -> None:
    t = fixture_times(fixtures_dir, "backtesting_GOOG_1d.csv")
    n = len(t)
    m = compute_metrics(
        equity=np.linspace(100.0, 200.0, n),
        times=t,
        position=np.zeros(n),
        trade_pnl=EMPTY,
        trade_returns=EMPTY,
        cash=100.0,
    )
    assert m["periods_per_year"] == 252.0


def test_inference_errors() -> None:
    with pytest.raises(DataError, match="need at least 2 bars"):
        infer_periods_per_year(daily(1))
    t = daily(4)
    t[2] = t[1]
    with pytest.raises(DataError, match="bar 2 is not after bar 1"):
        infer_periods_per_year(t)
    with pytest.raises(ParameterError, match="times: expected a 1-D numpy datetime64"):
        infer_periods_per_year(np.arange(5))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties


equity_lists = st.one_of(
    # small integers: many ties, dips and recoveries
    st.lists(st.integers(1, 12).map(float), min_size=1, max_size=40),
    st.lists(st.floats(1.0, 1e6, allow_nan=False), min_size=1, max_size=40),
)


def _reference_durations(eq: list[float], days: list[float]) -> tuple[int, float, float]:
    """Brute force: for every bar under its running peak, the peak is the last bar at or
    above that running max, the end is the first later bar regaining it, else the last."""
    n = len(eq)
    bars, span, worst = 0, 0.0, 0.0
    for j in range(n):
        top = max(eq[: j + 1])
        worst = min(worst, eq[j] / top - 1)
        if eq[j] >= top:
            continue
        p = max(i for i in range(j + 1) if eq[i] >= top)
        e = next((i for i in range(j + 1, n) if eq[i] >= top), n - 1)
        bars = max(bars, e - p)
        span = max(span, days[e] - days[p])
    return bars, span, worst


@settings(max_examples=200, deadline=None)
@given(eq=equity_lists, gaps=st.lists(st.integers(1, 5), min_size=40, max_size=40))
def test_drawdown_matches_brute_force(eq: list[float], gaps: list[int]) -> None:
    day_numbers = [0.0, *np.cumsum(gaps[: len(eq) - 1]).astype(float)]
    times = np.array([MONDAY + int(d) * DAY for d in day_numbers], dtype="datetime64[ns]")
    m = metrics(eq, times=times)
    bars, span, worst = _reference_durations(eq, day_numbers)
    assert m["max_drawdown_duration_bars"] == bars
    assert m["max_drawdown_duration_days"] == span
    assert m["max_drawdown"] == pytest.approx(worst)
    dd = drawdown(np.array(eq))
    assert -1.0 <= m["max_drawdown"] <= 0.0
    assert bool(np.all((dd <= 0) & (dd >= -1)))
    assert float(dd.min()) == m["max_drawdown"]


@settings(max_examples=200, deadline=None)
@given(
    eq=equity_lists,
    cash=st.floats(1.0, 1e6),
    k=st.integers(-20, 20),
    # magnitudes kept clear of subnormals, where halving a pnl is no longer exact
    pnl=st.lists(
        st.one_of(st.just(0.0), st.floats(1e-6, 1e4), st.floats(-1e4, -1e-6)), max_size=10
    ),
    rf=st.floats(0.0, 0.1),
)
def test_scaling_money_leaves_ratios_unchanged(
    eq: list[float], cash: float, k: int, pnl: list[float], rf: float
) -> None:
    # Scaling by a power of two is exact in binary floating point, so every ratio must
    # come out identical to the bit, and cash amounts exactly scaled.
    c = 2.0**k
    n = len(eq)
    position = [float(i % 3 == 0) for i in range(n)]
    returns = [p / 1e4 for p in pnl]
    base = metrics(eq, cash=cash, pnl=pnl, returns=returns, risk_free=rf, position=position)
    scaled = metrics(
        [e * c for e in eq],
        cash=cash * c,
        pnl=[p * c for p in pnl],
        returns=returns,
        risk_free=rf,
        position=position,
    )
    for key in METRICS:
        if key in ("final_equity", "expectancy"):
            assert same(scaled[key], base[key] * c), key
        else:
            assert same(scaled[key], base[key]), key


def test_kernels_compile_without_a_writable_cache() -> None:
    # numba refuses cache=True when it finds nowhere to write (a read-only Lambda
    # package); `_jit` must then still compile the kernel, uncached.
    from algotrendy.backtest.metrics import _jit

    namespace: dict[str, object] = {}
    source = "def plus_one(x):\n    return x + 1\n"
    exec(compile(source, "/nonexistent/kernel.py", "exec"), namespace)
    assert _jit(namespace["plus_one"])(41) == 42  # type: ignore[arg-type]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "m", "h"])
def test_any_time_unit_gives_the_nanosecond_figures(fixtures_dir: Path, unit: str) -> None:
    """Times are read in their own unit (pandas 3 makes microsecond indexes): every
    figure, the inferred interval and the durations in days included, is the same."""
    t_ns = fixture_times(fixtures_dir, "backtesting_GOOG_1d.csv")
    n = len(t_ns)
    rng = np.random.default_rng(11)
    eq = 1000.0 * np.cumprod(1.0 + rng.normal(0.0004, 0.01, n))
    pos = np.where(rng.random(n) < 0.5, 0.0, 1.0)

    def metrics(times: npt.NDArray[np.datetime64]) -> dict[str, float]:
        return compute_metrics(
            equity=eq, times=times, position=pos, trade_pnl=np.array([1.0, -0.5]),
            trade_returns=np.array([0.01, -0.005]), cash=1000.0,
        )  # fmt: skip

    coarse = t_ns.astype(f"datetime64[{unit}]")
    assert coarse.astype("datetime64[ns]").tolist() == t_ns.tolist()  # no rounding
    assert metrics(coarse) == metrics(t_ns)
    assert infer_periods_per_year(coarse) == infer_periods_per_year(t_ns) == 252.0
