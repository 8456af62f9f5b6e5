"""First-start seeding of the local shape: sample candles, latest prices, a demo admin, a
demo strategy with a TradingView webhook, and the live (signal) config for it.

Everything is idempotent: a series already in the store is not rewritten, an existing user
keeps its password (`UserService.ensure_admin`), an existing demo strategy keeps its row.

Secrets: the config stores keep only hashes (argon2id for the password, SHA-256 for the
webhook token, scrypt for the passphrase), so the clear values the start banner prints
are kept in `<data dir>/local-demo.json`, readable by the owner only (mode 0600), so a
second start prints curls that still work. It is a local demo file; nothing outside the
local shape reads it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from algotrendy.api.context import ApiContext
from algotrendy.data.loaders import load_ohlcv
from algotrendy.errors import DataError
from algotrendy.signals.config import StrategyConfig
from algotrendy.storage.base import LatestPrice, put_latest_price
from algotrendy.webhooks.auth import generate_webhook_token, hash_passphrase, hash_webhook_token
from algotrendy.webhooks.config import WebhookConfig

log = logging.getLogger(__name__)

SAMPLE_EXCHANGE = "sample"
DEMO_ACCOUNT = "paper"
DEMO_STRATEGY = "demo-btc-sma"
DEMO_WEBHOOK = "demo-btc"
DEMO_SYMBOL = "BTC-PERP"
DEMO_QUANTITY = 0.01
DEMO_ADMIN = "admin"
DEMO_FILE = "local-demo.json"
WEBHOOKS_FILE = "webhooks.json"
LIVE_STRATEGIES_FILE = "live_strategies.json"


@dataclass(frozen=True)
class SampleSeries:
    """A bundled sample file and the series it is stored as."""

    file: str
    symbol: str
    timeframe: str
    exchange: str = SAMPLE_EXCHANGE


SAMPLES: tuple[SampleSeries, ...] = (
    SampleSeries("GOOG_1d.csv", "GOOG", "1d"),
    SampleSeries("BTC-PERP_1m_2022-01.csv", DEMO_SYMBOL, "1m"),
)


@dataclass(frozen=True)
class DemoSecrets:
    """Clear values behind the stored hashes (see the module docstring)."""

    admin_username: str
    admin_password: str | None  # None: the password came from ALGOTRENDY_ADMIN_PASSWORD
    webhook_token: str
    passphrase: str


@dataclass(frozen=True)
class SeedReport:
    secrets: DemoSecrets
    candles: dict[str, int]  # "exchange symbol timeframe" -> rows written this start (0 = kept)
    strategy_id: int | None
    alert: dict[str, Any] | None  # a sample alert for the demo webhook (format 01)


def find_samples_dir(explicit: Path | None = None) -> Path | None:
    """`explicit`, else `./samples`, else the repository's `samples/` next to `shared/`
    (the sample files are demo data, not packaged with the library)."""
    if explicit is not None:
        missing = [s.file for s in SAMPLES if not (explicit / s.file).is_file()]
        if missing:
            raise DataError(f"{explicit}: sample file(s) missing: {', '.join(missing)}")
        return explicit
    for folder in (Path.cwd() / "samples", Path(__file__).resolve().parents[3] / "samples"):
        if all((folder / s.file).is_file() for s in SAMPLES):
            return folder
    return None


def _bar(timeframe: str) -> timedelta:
    from algotrendy.data.normalise import timeframe_seconds

    return timedelta(seconds=timeframe_seconds(timeframe))


def seed_candles(ctx: ApiContext, samples_dir: Path) -> dict[str, int]:
    """Load each sample with `load_ohlcv` into the candle store unless its series exists;
    put each series' last close into the cache as its latest price (time = the bar's
    close, as `LatestPrice` defines it) so the paper broker can fill."""
    assert ctx.candles is not None
    assert ctx.cache is not None
    written: dict[str, int] = {}
    for sample in SAMPLES:
        key = f"{sample.exchange} {sample.symbol} {sample.timeframe}"
        path = samples_dir / sample.file
        if ctx.candles.last_timestamp(sample.exchange, sample.symbol, sample.timeframe) is None:
            frame = load_ohlcv(path)
            written[key] = ctx.candles.write(
                frame, sample.exchange, sample.symbol, sample.timeframe
            )
        else:
            written[key] = 0
        last = ctx.candles.last_timestamp(sample.exchange, sample.symbol, sample.timeframe)
        if last is None:
            raise DataError(f"{path}: no candles stored after seeding {key}")
        frame = ctx.candles.read(sample.exchange, sample.symbol, sample.timeframe, last, None)
        put_latest_price(
            ctx.cache,
            LatestPrice(
                exchange=sample.exchange,
                symbol=sample.symbol,
                timeframe=sample.timeframe,
                price=float(frame["close"].iloc[-1]),
                time=last + _bar(sample.timeframe),
                updated_at=datetime.now(UTC),
            ),
        )
    return written


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def load_or_create_secrets(
    data_dir: Path, *, admin_username: str | None, admin_password: str | None
) -> DemoSecrets:
    """The demo secrets from `local-demo.json`, created on first start. A username and
    password given by the environment win over the file (and the password is not stored)."""
    path = data_dir / DEMO_FILE
    stored: dict[str, Any] = {}
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataError(f"{path}: not JSON ({exc}); delete it to start afresh") from None
    created = DemoSecrets(
        admin_username=str(stored.get("admin_username") or DEMO_ADMIN),
        admin_password=str(stored.get("admin_password") or secrets.token_urlsafe(12)),
        webhook_token=str(stored.get("webhook_token") or generate_webhook_token()),
        passphrase=str(stored.get("passphrase") or secrets.token_urlsafe(12)),
    )
    if stored != asdict(created):
        _write_private(path, json.dumps(asdict(created), indent=2))
    if admin_username and admin_password:
        return DemoSecrets(admin_username, None, created.webhook_token, created.passphrase)
    return created


def webhook_config(demo: DemoSecrets, passphrase_hash: str) -> WebhookConfig:
    """The demo webhook: TradingView's `{{exchange}}:{{ticker}}` SAMPLE:BTC-PERP (or the
    ticker alone) trades BTC-PERP on the paper account, sized by the alert's contracts."""
    return WebhookConfig(
        name=DEMO_WEBHOOK,
        token_sha256=hash_webhook_token(demo.webhook_token),
        account=DEMO_ACCOUNT,
        strategy=DEMO_STRATEGY,
        symbols={f"{SAMPLE_EXCHANGE.upper()}:{DEMO_SYMBOL}": DEMO_SYMBOL},
        default_symbol=DEMO_SYMBOL,
        quantity_mode="contracts",
        max_quantity=1.0,
        passphrase_hash=passphrase_hash,
    )


def seed_webhook_file(data_dir: Path, demo: DemoSecrets) -> Path:
    """`webhooks.json` holding the demo webhook, rewritten when its token changed (the
    scrypt hash is slow on purpose, so an unchanged file is kept)."""
    path = data_dir / WEBHOOKS_FILE
    digest = hash_webhook_token(demo.webhook_token)
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if any(w.get("token_sha256") == digest for w in doc.get("webhooks", [])):
                return path
        except (ValueError, AttributeError):
            log.warning("%s is not a webhook config document; rewriting it", path)
    config = webhook_config(demo, hash_passphrase(demo.passphrase))
    _write_private(
        path,
        json.dumps({"version": 1, "webhooks": [config.model_dump(mode="json")]}, indent=2),
    )
    return path


def live_config() -> StrategyConfig:
    """The demo live config: SMA cross (10/20) on the sample BTC-PERP minutes, 0.01 BTC.
    `max_signal_age_bars=None`: the sample bars are from 2022, and a replay of them must
    still trade (a live config keeps the default age limit)."""
    return StrategyConfig(
        id=DEMO_STRATEGY,
        name="Demo SMA cross on sample BTC-PERP 1m",
        strategy="sma_cross",
        params={"fast": 10, "slow": 20},
        exchange=SAMPLE_EXCHANGE,
        symbols=(DEMO_SYMBOL,),
        timeframe="1m",
        account=DEMO_ACCOUNT,
        quantity=DEMO_QUANTITY,
        max_signal_age_bars=None,
    )


def seed_live_strategies(data_dir: Path) -> Path:
    path = data_dir / LIVE_STRATEGIES_FILE
    if not path.is_file():
        doc = {"version": 1, "strategies": [live_config().model_dump(mode="json")]}
        _write_private(path, json.dumps(doc, indent=2))
    return path


def seed_strategy_row(ctx: ApiContext, demo: DemoSecrets) -> int:
    """The demo strategy in the API's `strategies` table, carrying the webhook's token hash
    (so GET /strategies shows it with a webhook)."""
    digest = hash_webhook_token(demo.webhook_token)
    config = live_config()
    for row in ctx.strategies.all():
        if row.name == DEMO_STRATEGY:
            if row.webhook_token_sha256 != digest:
                ctx.strategies.update(
                    row.id, webhook_token_sha256=digest, webhook_issued_at=datetime.now(UTC)
                )
            return row.id
    row = ctx.strategies.create(
        name=DEMO_STRATEGY,
        strategy_type=config.strategy,
        params=config.params,
        symbols=list(config.symbols),
        enabled=True,
        created_by=demo.admin_username,
        webhook_token_sha256=digest,
        webhook_issued_at=datetime.now(UTC),
    )
    return row.id


def sample_alert(ctx: ApiContext, passphrase: str) -> dict[str, Any] | None:
    """A TradingView alert in the layout of fixture 01 (hackingthemarkets' strategy
    template: passphrase, time, exchange, ticker, bar{}, strategy{}), filled from the last
    sample BTC-PERP bar: buy 0.01 contracts, flat -> long."""
    assert ctx.candles is not None
    last = ctx.candles.last_timestamp(SAMPLE_EXCHANGE, DEMO_SYMBOL, "1m")
    if last is None:
        return None
    bar = ctx.candles.read(SAMPLE_EXCHANGE, DEMO_SYMBOL, "1m", last, None).iloc[-1]

    def iso(t: datetime) -> str:
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        "passphrase": passphrase,
        "time": iso(last + timedelta(minutes=1)),
        "exchange": SAMPLE_EXCHANGE.upper(),
        "ticker": DEMO_SYMBOL,
        "bar": {
            "time": iso(last),
            "open": float(bar["open"]),
            "high": float(bar["high"]),
            "low": float(bar["low"]),
            "close": float(bar["close"]),
            "volume": float(bar["volume"]),
        },
        "strategy": {
            "position_size": DEMO_QUANTITY,
            "order_action": "buy",
            "order_contracts": DEMO_QUANTITY,
            "order_price": float(bar["close"]),
            "order_id": "demo long",
            "market_position": "long",
            "market_position_size": DEMO_QUANTITY,
            "prev_market_position": "flat",
            "prev_market_position_size": 0,
        },
    }


def seed(
    ctx: ApiContext,
    data_dir: Path,
    *,
    samples_dir: Path | None,
    with_samples: bool = True,
) -> SeedReport:
    """Everything the start banner refers to (see the module docstring)."""
    settings = ctx.settings
    env_password = settings.admin_password.get_secret_value() if settings.admin_password else None
    demo = load_or_create_secrets(
        data_dir, admin_username=settings.admin_username, admin_password=env_password
    )
    if demo.admin_password is not None:
        ctx.users.ensure_admin(demo.admin_username, demo.admin_password)
    # (with ALGOTRENDY_ADMIN_USERNAME/PASSWORD, build_context has already ensured the admin)
    seed_webhook_file(data_dir, demo)
    seed_live_strategies(data_dir)
    strategy_id = seed_strategy_row(ctx, demo)
    candles: dict[str, int] = {}
    if with_samples and samples_dir is not None:
        candles = seed_candles(ctx, samples_dir)
    return SeedReport(demo, candles, strategy_id, sample_alert(ctx, demo.passphrase))
