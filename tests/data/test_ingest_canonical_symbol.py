"""IngestService and `algotrendy ingest` key a series by the channel's canonical symbol:
the stores, the latest-price cache and the resume all see one series per market, however
the user spelt it; a channel without symbol resolution keeps the symbol as typed."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import typer
from ingest_helpers import NOW, T0, FakeChannel
from typer.testing import CliRunner, Result

from algotrendy.cli import ingest as cli_ingest
from algotrendy.data.ingest import IngestRequest, IngestService
from algotrendy.data.manager import all_health
from algotrendy.data.pipeline import CandlePipeline
from algotrendy.errors import ParameterError
from algotrendy.storage.base import get_latest_price
from algotrendy.storage.cache import MemoryCache
from algotrendy.storage.local import LocalCandleStore

# The exchange's own ids for its markets, as ccxt's markets_by_id maps them.
MARKETS = {"BTCUSDT": "BTC/USDT", "BTC/USDT": "BTC/USDT"}


class ResolvingChannel(FakeChannel):
    """FakeChannel serving only the markets in MARKETS, under either spelling (and, as
    FakeChannel checks, asked for candles by the canonical one)."""

    def canonical_symbol(self, symbol: str) -> str:
        if symbol not in MARKETS:
            raise ParameterError(f"{self.info.name}: unknown symbol {symbol!r}")
        return MARKETS[symbol]


def test_two_spellings_of_one_market_are_one_series_and_one_cached_price(
    tmp_path: Path,
) -> None:
    store = LocalCandleStore(tmp_path, fsync=False)
    cache = MemoryCache()
    channel = ResolvingChannel()
    service = IngestService(
        channel, CandlePipeline([store], cache=cache, now=lambda: NOW), now=lambda: NOW
    )
    until = datetime(2024, 1, 3, tzinfo=T0.tzinfo)

    first = service.run(IngestRequest("fakex", "BTCUSDT", "1h", since=T0, until=until))
    assert first.request.symbol == "BTC/USDT"
    assert first.written == 48
    assert len(store.read("fakex", "BTC/USDT", "1h")) == 48
    assert store.last_timestamp("fakex", "BTCUSDT", "1h") is None  # no second series
    price = get_latest_price(cache, "fakex", "BTC/USDT")
    assert price is not None
    assert price.price == store.read("fakex", "BTC/USDT", "1h")["close"].iloc[-1]
    assert get_latest_price(cache, "fakex", "BTCUSDT") is None

    calls = len(channel.calls)
    second = service.plan(IngestRequest("fakex", "BTC/USDT", "1h", since=T0, until=until))
    assert second.up_to_date
    assert second.resumed_from == datetime(2024, 1, 2, 23, tzinfo=T0.tzinfo)
    assert len(channel.calls) == calls


def test_an_unknown_symbol_fails_with_the_channel_error_and_stores_nothing(
    tmp_path: Path,
) -> None:
    store = LocalCandleStore(tmp_path, fsync=False)
    service = IngestService(
        ResolvingChannel(), CandlePipeline([store], now=lambda: NOW), now=lambda: NOW
    )
    with pytest.raises(ParameterError, match=r"fakex: unknown symbol 'ETHUSDT'"):
        service.run(IngestRequest("fakex", "ETHUSDT", "1h", since=T0))
    assert not list(tmp_path.rglob("*.parquet"))


def test_a_channel_without_resolution_keeps_the_symbol_as_typed(tmp_path: Path) -> None:
    store = LocalCandleStore(tmp_path, fsync=False)
    pipeline = CandlePipeline([store], now=lambda: NOW)
    service = IngestService(FakeChannel(), pipeline, now=lambda: NOW)
    until = datetime(2024, 1, 2, tzinfo=T0.tzinfo)
    result = service.run(IngestRequest("fakex", "btc-usdt", "1h", since=T0, until=until))
    assert result.request.symbol == "btc-usdt"
    assert len(store.read("fakex", "btc-usdt", "1h")) == 24


def run_cli(tmp_path: Path, symbol: str) -> Result:
    app = typer.Typer()
    cli_ingest.register(app)
    args = ["--source", "fakex", "--symbol", symbol, "--timeframe", "1h"]
    args += ["--since", "2024-01-01", "--until", "2024-01-03", "--data-dir", str(tmp_path)]
    return CliRunner().invoke(app, ["ingest", *args])


def test_cli_stores_under_the_canonical_symbol_and_the_other_spelling_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_ingest, "resolve_channel", lambda name: ResolvingChannel(name))
    first = run_cli(tmp_path, "BTCUSDT")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("fakex BTC/USDT 1h: fetched 48 candle(s)")
    assert len(LocalCandleStore(tmp_path).read("fakex", "BTC/USDT", "1h")) == 48
    again = run_cli(tmp_path, "BTC/USDT")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == (
        "fakex BTC/USDT 1h: up to date (last bar 2024-01-02 23:00 UTC); nothing to fetch"
    )


def test_cli_unknown_symbol_is_bad_input_and_counts_in_channel_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_ingest, "resolve_channel", lambda name: ResolvingChannel(name))
    result = run_cli(tmp_path, "ETHUSDT")
    assert result.exit_code == cli_ingest.EXIT_BAD_INPUT
    assert result.stderr.splitlines() == ["error: fakex: unknown symbol 'ETHUSDT'"]
    health = all_health(MemoryCache(tmp_path / "cache.json"))
    assert health["fakex"].runs == 1
    assert health["fakex"].last_error is not None
    assert "unknown symbol 'ETHUSDT'" in health["fakex"].last_error
