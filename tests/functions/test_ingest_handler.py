"""functions/ingest under moto: events/ingest_scheduled.json (an EventBridge scheduled
event whose detail is the channel group) and events/ingest_rule_input.json (the rule's
constant Input), a fake channel serving real BTC 1m bars (no network), a local candle
store and cache in a temp dir, the standard `signals` queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pandas as pd
import pytest
import sam_template as sam
from moto import mock_aws

from algotrendy.config import get_settings
from algotrendy.data import load_ohlcv
from algotrendy.data.channels.base import ChannelInfo
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import ParameterError, SourceUnavailableError
from algotrendy.messaging import Envelope
from algotrendy.signals import CandlesClosed
from algotrendy.signals.ingest_group import IngestGroupFailedError
from algotrendy.storage.base import get_latest_price
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "functions" / "ingest" / "app.py"
EVENTS = ROOT / "events"
BTC = ROOT / "tests" / "fixtures" / "ohlcv" / "nautilus_btc-perp_1m_20211231-20220201.csv"
REGION = "us-east-1"
NOW = datetime(2022, 1, 10, 12, 0, 20, tzinfo=UTC)  # the scheduled event's time


def load_app() -> ModuleType:
    return sam.load_module_file(APP, "ingest")


class FakeContext:
    function_name = "algotrendy-ingest-dev"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:algotrendy-ingest-dev"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    function_version = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def load_event(name: str) -> dict[str, Any]:
    data = json.loads((EVENTS / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


class FrameChannel:
    """Candles from a real frame, [since, until); symbols in `down` fail like a dead
    connection."""

    def __init__(self, name: str, frame: pd.DataFrame, down: frozenset[str] = frozenset()):
        self.info = ChannelInfo(
            name=name,
            asset_classes=(AssetClass.CRYPTO,),
            kinds=(DataKind.OHLCV,),
            timeframes=("1m", "5m", "1h"),
        )
        self.frame = frame
        self.down = down

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: datetime,
        until: datetime | None = None,
        *,
        progress: Any = None,
    ) -> pd.DataFrame:
        if symbol in self.down:
            raise SourceUnavailableError(f"{self.info.name}: {symbol}: connection reset by peer")
        index = self.frame.index
        mask = index >= pd.Timestamp(since)
        if until is not None:
            mask &= index < pd.Timestamp(until)
        return self.frame[mask]


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return load_ohlcv(BTC)


@pytest.fixture
def signals(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("ALGOTRENDY_STAGE", "local")  # local candle store and cache
    monkeypatch.setenv("ALGOTRENDY_DATA_DIR", str(tmp_path))
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dlq = sqs.create_queue(QueueName="algotrendy-signals-dlq-dev")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        url = sqs.create_queue(
            QueueName="algotrendy-signals-dev",
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})
            },
        )["QueueUrl"]
        monkeypatch.setenv("ALGOTRENDY_SIGNALS_QUEUE_URL", url)
        get_settings.cache_clear()
        yield sqs, url
    get_settings.cache_clear()


@pytest.fixture
def app(signals: tuple[Any, str], btc: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_app()
    channels = {
        "binance": FrameChannel("binance", btc, down=frozenset({"ETH/USDT"})),
        "bybit": FrameChannel("bybit", btc),
    }
    monkeypatch.setattr(module, "channel_factory", lambda name, settings: channels[name])
    monkeypatch.setattr(module, "now", lambda: NOW)
    return module


def announced(sqs: Any, url: str) -> list[CandlesClosed]:
    out: list[CandlesClosed] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return sorted(out, key=lambda m: (m.exchange, m.symbol))
        for m in got:
            out.append(CandlesClosed.from_envelope(Envelope.parse(m["Body"])))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def run_failing_eth(app: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    """The handler's result for a run where only ETH/USDT fails: every other series ran,
    then the invocation failed (so the Errors metric counts it) naming that series."""
    with pytest.raises(
        IngestGroupFailedError,
        match=r"^ingest crypto-1m: 1 of 3 series failed: binance ETH/USDT 1m: .*connection reset",
    ) as info:
        app.handler(event, FakeContext())
    return info.value.result.as_dict()


def test_scheduled_event_ingests_the_group_and_announces_new_bars(
    app: ModuleType, signals: tuple[Any, str], btc: pd.DataFrame, tmp_path: Path
) -> None:
    sqs, url = signals
    result = run_failing_eth(app, load_event("ingest_scheduled"))
    outcomes = {(o["exchange"], o["symbol"]): o for o in result["outcomes"]}
    assert result["group"] == "crypto-1m"
    assert {k: o["status"] for k, o in outcomes.items()} == {
        ("binance", "BTC/USDT"): "new_bars",
        ("binance", "ETH/USDT"): "failed",
        ("bybit", "BTC/USDT"): "new_bars",
    }
    assert "connection reset by peer" in outcomes[("binance", "ETH/USDT")]["error"]

    # The bar opening 12:00 is still forming at 12:00:20: the newest closed one opens 11:59.
    newest = datetime(2022, 1, 10, 11, 59, tzinfo=UTC)
    store = LocalCandleStore(tmp_path)
    for exchange in ("binance", "bybit"):
        stored = store.read(exchange, "BTC/USDT", "1m")
        expected = btc[(btc.index >= pd.Timestamp(newest) - timedelta(minutes=119))]
        expected = expected[expected.index <= pd.Timestamp(newest)]
        assert len(stored) == len(expected) == 120  # backfill_bars
        pd.testing.assert_frame_equal(stored, expected, check_freq=False)
        assert outcomes[(exchange, "BTC/USDT")]["written"] == 120
    price = get_latest_price(MemoryCache(tmp_path / "cache.json"), "binance", "BTC/USDT")
    assert price is not None
    assert price.price == btc.loc[pd.Timestamp(newest), "close"]
    assert price.time == newest + timedelta(minutes=1)

    messages = announced(sqs, url)
    assert [(m.exchange, m.symbol, m.timeframe) for m in messages] == [
        ("binance", "BTC/USDT", "1m"),
        ("bybit", "BTC/USDT", "1m"),
    ]
    for m in messages:
        assert m.last_bar == newest
        assert m.new_since == newest  # first run: history is not news
        assert outcomes[(m.exchange, m.symbol)]["message_id"] == m.message_id()


def test_rule_input_resumes_and_announces_only_what_is_new(
    app: ModuleType, signals: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, url = signals
    run_failing_eth(app, load_event("ingest_scheduled"))
    announced(sqs, url)

    again = run_failing_eth(app, load_event("ingest_rule_input"))
    assert [o["status"] for o in again["outcomes"]] == ["up_to_date", "failed", "up_to_date"]
    assert announced(sqs, url) == []

    monkeypatch.setattr(app, "now", lambda: NOW + timedelta(minutes=3))
    later = run_failing_eth(app, load_event("ingest_rule_input"))
    assert [o["written"] for o in later["outcomes"]] == [3, 0, 3]  # 12:00, 12:01, 12:02
    messages = announced(sqs, url)
    assert len(messages) == 2
    for m in messages:
        assert m.new_since == datetime(2022, 1, 10, 12, 0, tzinfo=UTC)
        assert m.last_bar == datetime(2022, 1, 10, 12, 2, tzinfo=UTC)


def test_bad_group_fails_naming_the_field(app: ModuleType) -> None:
    bad = load_event("ingest_rule_input")
    bad["channels"][0]["timeframes"] = ["1 minute"]
    with pytest.raises(ParameterError, match=r"crypto-1m.*channels\.0\.timeframes"):
        app.handler(bad, FakeContext())
    with pytest.raises(ParameterError, match="carries no channel group"):
        app.handler({"detail-type": "Scheduled Event", "detail": {}}, FakeContext())


def test_a_run_without_failures_returns_its_result(
    app: ModuleType, signals: tuple[Any, str]
) -> None:
    event = load_event("ingest_rule_input")
    event["channels"][0]["symbols"] = ["BTC/USDT"]  # leave out the dead ETH/USDT
    result = app.handler(event, FakeContext())
    assert (result["series"], result["failed"], result["new_bars"]) == (2, 0, 2)


def test_news_event_stores_items_and_announces_nothing(
    signals: tuple[Any, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """events/ingest_news.json: the `news` aggregator (Yahoo RSS by default) replays the
    recorded AAPL feed; BTC-USD's feed is empty. Items land in the local news store, the
    signals queue stays empty, and neither the candle store nor the queue is built."""
    import re

    import responses

    from algotrendy.data.channels import get_channel
    from algotrendy.data.channels.retry import RetryPolicy
    from algotrendy.storage.local_news import LocalNewsStore

    sqs, url = signals
    rss = (ROOT / "tests" / "fixtures" / "news" / "ours_yahoo_rss_AAPL.xml").read_text()
    empty = '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
    app = load_app()
    monkeypatch.setattr(
        app,
        "channel_factory",
        lambda name, settings: get_channel(name, retry=RetryPolicy(attempts=1), **settings),
    )
    with responses.RequestsMock() as http:
        http.add_callback(
            responses.GET,
            re.compile(r"https://feeds\.finance\.yahoo\.com/rss/2\.0/headline\?"),
            callback=lambda req: (200, {}, rss if "s=AAPL" in req.url else empty),
        )
        result = app.handler(load_event("ingest_news"), FakeContext())
        again = app.handler(load_event("ingest_news"), FakeContext())
    assert [(o["symbol"], o["status"], o["written"]) for o in result["outcomes"]] == [
        ("AAPL", "new_items", 2),
        ("BTC-USD", "up_to_date", 0),
    ]
    assert (result["new_items"], result["failed"]) == (1, 0)
    assert [o["status"] for o in again["outcomes"]] == ["up_to_date", "up_to_date"]
    stored = LocalNewsStore(tmp_path).read(symbol="AAPL")
    assert [i.source for i in stored] == ["yahoo", "yahoo"]
    assert announced(sqs, url) == []
    built = vars(app.wiring())
    assert "news" in built
    assert "signals" not in built
    assert "candles" not in built
