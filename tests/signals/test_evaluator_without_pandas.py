"""The evaluator reads `Bars` (`CandleStore.read_bars`), never a DataFrame: against a
QuestDB store it runs without pandas (the signal evaluator function's cold start), and
gives what it gives on the Parquet store. Also pinned here: how `load_window` widens its
read when gaps leave too few bars, and the CandlesNotReadyError texts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from signal_helpers import EXCHANGE, INFRA, SYMBOL, TIMEFRAME, sma_config

from algotrendy.domain.bars import Bars
from algotrendy.signals import CandlesClosed, CandlesNotReadyError, StrategyConfig, evaluate
from algotrendy.signals.evaluator import load_window
from algotrendy.storage.local import LocalCandleStore


def message(frame: pd.DataFrame, last: int, since: int) -> CandlesClosed:
    return CandlesClosed.for_bars(
        EXCHANGE,
        SYMBOL,
        TIMEFRAME,
        last_bar=frame.index[last].to_pydatetime(),
        new_since=frame.index[since].to_pydatetime(),
    )


class RecordingStore:
    """A candle store that records the range of every `read_bars`."""

    def __init__(self, inner: LocalCandleStore) -> None:
        self.inner = inner
        self.name = inner.name
        self.ranges: list[tuple[datetime | None, datetime | None]] = []

    def write(self, frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> int:
        return self.inner.write(frame, exchange, symbol, timeframe)

    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        raise AssertionError("the evaluator reads bars, not frames")

    def read_bars(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Bars:
        self.ranges.append((start, end))
        return self.inner.read_bars(exchange, symbol, timeframe, start, end)

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> datetime | None:
        return self.inner.last_timestamp(exchange, symbol, timeframe)


def test_window_read_widens_fourfold_until_enough_bars(
    tmp_path: Path, goog_frame: pd.DataFrame
) -> None:
    # A hole of 400 bars before bar 1000: the first read (2 days per bar wanted) falls
    # short, the second (4x wider) reaches past the hole.
    holed = pd.concat([goog_frame.iloc[:500], goog_frame.iloc[900:]])
    store = RecordingStore(LocalCandleStore(tmp_path, fsync=False))
    store.write(holed, EXCHANGE, SYMBOL, TIMEFRAME)
    msg = message(goog_frame, 1000, 995)
    bars, first_new = load_window(store, msg, 200)
    end = msg.last_bar + timedelta(microseconds=1)
    span = timedelta(days=400)  # 200 bars x slack 2 x one day
    assert store.ranges == [(msg.new_since - span, end), (msg.new_since - 4 * span, end)]
    t = holed.index
    expected = holed[(t >= pd.Timestamp(msg.new_since - 4 * span)) & (t <= msg.last_bar)]
    np.testing.assert_array_equal(bars.time, pd.DatetimeIndex(expected.index).tz_localize(None))
    np.testing.assert_array_equal(bars.close, expected["close"].to_numpy())
    assert bars.time[first_new] == np.datetime64(msg.new_since.replace(tzinfo=None), "ns")
    assert first_new == len(bars) - 6  # bars 995..1000 are new
    assert first_new >= 200


def test_window_read_gives_up_widening_after_three_times(
    tmp_path: Path, goog_frame: pd.DataFrame
) -> None:
    store = RecordingStore(LocalCandleStore(tmp_path, fsync=False))
    store.write(goog_frame, EXCHANGE, SYMBOL, TIMEFRAME)
    msg = message(goog_frame, 30, 25)
    bars, first_new = load_window(store, msg, 100)
    span = timedelta(days=200)
    assert [msg.new_since - start for start, _ in store.ranges if start is not None] == [
        span,
        4 * span,
        16 * span,
        64 * span,
    ]
    assert (len(bars), first_new) == (31, 25)  # all the store has: bars 0..30


def test_not_ready_names_the_newest_bar_in_iso_form(
    goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    last = goog_frame.index[-1].to_pydatetime()
    msg = CandlesClosed.for_bars(EXCHANGE, SYMBOL, TIMEFRAME, last_bar=last + timedelta(days=3))
    with pytest.raises(CandlesNotReadyError) as caught:
        evaluate(msg, candles=goog_store, configs=[sma_config()], now=msg.close_time)
    assert str(caught.value) == (
        f"{EXCHANGE} {SYMBOL} {TIMEFRAME}: store local has the newest bar opens "
        f"{last.isoformat()}; the message announces the bar opening "
        f"{msg.last_bar.isoformat()}"
    )


# Runs in a fresh interpreter with pandas and pyarrow blocked (importing either fails):
# the evaluator on a QuestDBCandleStore whose PGWire connection serves the GOOG rows.
_QUESTDB_RUN = """
import json, sys
from datetime import datetime
sys.modules["pandas"] = None
sys.modules["pyarrow"] = None
from algotrendy.signals import CandlesClosed, CandlesNotReadyError, StrategyConfig, evaluate

case = json.load(open(sys.argv[1]))
sys.path.insert(0, sys.argv[2])  # tests/infra
from fake_questdb import questdb_store

rows = [(datetime.fromisoformat(r[0]), *r[1:]) for r in case["rows"]]
store = questdb_store(rows, tuple(case["series"]))
store.name = "local"  # so the error texts compare with the Parquet store's
configs = [StrategyConfig.model_validate(c) for c in case["configs"]]
out = []
for raw in case["messages"]:
    msg = CandlesClosed.model_validate(raw)
    now = datetime.fromisoformat(case["now"])
    try:
        result = evaluate(msg, candles=store, configs=configs, now=now)
    except CandlesNotReadyError as exc:
        out.append({"error": str(exc)})
        continue
    out.append({
        "intents": [i.model_dump(mode="json") for i in result.intents],
        "outcomes": [o.__dict__ for o in result.outcomes],
    })
loaded = sorted({m.split(".")[0] for m in sys.modules if sys.modules[m] is not None})
print(json.dumps({"results": out, "modules": loaded}))
"""


def _evaluate_all(
    store: Any, messages: list[CandlesClosed], configs: list[StrategyConfig], now: datetime
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        try:
            result = evaluate(msg, candles=store, configs=configs, now=now)
        except CandlesNotReadyError as exc:
            out.append({"error": str(exc)})
            continue
        out.append(
            {
                "intents": [i.model_dump(mode="json") for i in result.intents],
                "outcomes": [asdict(o) for o in result.outcomes],
            }
        )
    return out


def test_questdb_evaluation_loads_no_pandas_and_matches_the_parquet_store(
    tmp_path: Path, goog_frame: pd.DataFrame, goog_store: LocalCandleStore
) -> None:
    n = len(goog_frame)
    messages = [message(goog_frame, last, last - 4) for last in range(40, n, 23)]
    messages.append(message(goog_frame, 60, 20))  # a window reaching the series' start
    gone = goog_frame.index[-1].to_pydatetime() + timedelta(days=3)
    messages.append(CandlesClosed.for_bars(EXCHANGE, SYMBOL, TIMEFRAME, last_bar=gone))
    configs = [
        sma_config(),
        sma_config(id="slow", params={"fast": 20, "slow": 50}, history_bars=300),
    ]
    now = messages[-1].close_time + timedelta(days=1)
    expected = _evaluate_all(goog_store, messages, configs, now)
    intents = sum(len(r.get("intents", [])) for r in expected)
    assert intents >= 10  # the comparison covers orders, not only "unchanged"
    assert expected[-1]["error"].startswith(f"{EXCHANGE} {SYMBOL} {TIMEFRAME}: store local")

    case = {
        "series": [EXCHANGE, SYMBOL, TIMEFRAME],
        "rows": [
            [t.tz_localize(None).isoformat(), *map(float, row)]
            for t, row in zip(
                goog_frame.index,
                goog_frame[["open", "high", "low", "close", "volume"]].to_numpy(),
                strict=True,
            )
        ],
        "configs": [c.model_dump(mode="json") for c in configs],
        "messages": [m.model_dump(mode="json") for m in messages],
        "now": now.isoformat(),
    }
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    code = textwrap.dedent(_QUESTDB_RUN)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), str(INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    assert "pandas" not in got["modules"]
    assert "pyarrow" not in got["modules"]
    assert "numpy" in got["modules"]  # the strategies' arrays
    assert got["results"] == expected
