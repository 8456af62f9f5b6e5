"""API tests: the real app (`create_app`) over a real database, the in-process queue, the
local backtest launcher and a Parquet candle store holding real market data (the GOOG
daily fixture). SQLite by default; `db_engine` (both backends) for the repository tests,
PostgreSQL at 127.0.0.1:5432 skipped with the reason when absent, failing in CI. AWS (the
Step Functions launcher) is moto's: `aws` and `sfn`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from api_helpers import EXCHANGE, GOOG_CSV, PASSWORDS, SECRET, Session, make_context
from fastapi.testclient import TestClient
from moto import mock_aws
from sqlalchemy import Engine

from algotrendy.api.app import create_app
from algotrendy.api.context import ApiContext
from algotrendy.api.launcher import LocalBacktestLauncher
from algotrendy.config import Settings
from algotrendy.data.loaders import load_ohlcv
from algotrendy.storage.local import LocalCandleStore
from algotrendy.storage.relational import create_db_engine, upgrade_database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        stage="local",
        jwt_secret=SECRET,
        data_dir=str(tmp_path / "data"),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
    )


@pytest.fixture
def goog() -> Any:
    frame = load_ohlcv(GOOG_CSV)
    return frame.astype("float64")


@pytest.fixture
def candle_store(tmp_path: Path, goog: Any) -> LocalCandleStore:
    store = LocalCandleStore(tmp_path / "data", fsync=False)
    store.write(goog, EXCHANGE, "GOOG", "1d")
    return store


def _sqlite(tmp_path: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'api.db'}")
    upgrade_database(engine)
    return engine


@pytest.fixture
def ctx(settings: Settings, tmp_path: Path, candle_store: LocalCandleStore) -> Iterator[ApiContext]:
    db = _sqlite(tmp_path)
    context = make_context(settings, db, candle_store)
    yield context
    if isinstance(context.launcher, LocalBacktestLauncher):
        context.launcher.shutdown()
    db.dispose()


@pytest.fixture
def client(ctx: ApiContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def login(client: TestClient) -> Callable[[str], Session]:
    def do(username: str, password: str | None = None) -> Session:
        reply = client.post(
            "/auth/login", json={"username": username, "password": password or PASSWORDS[username]}
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        return Session(body["access_token"], body["refresh_token"])

    return do


@pytest.fixture
def admin(login: Callable[[str], Session]) -> Session:
    return login("admin")


@pytest.fixture
def trader(login: Callable[[str], Session]) -> Session:
    return login("trader")


@pytest.fixture
def viewer(login: Callable[[str], Session]) -> Session:
    return login("viewer")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's AWS, with fake credentials (never a profile or session of the machine's)."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


# Never executed: moto only records executions unless told to run them.
DEFINITION = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}


@pytest.fixture
def sfn(aws: None) -> tuple[Any, str]:
    """moto's Step Functions client and the ARN of the backtest state machine on it."""
    client = boto3.client("stepfunctions", region_name="us-east-1")
    arn = client.create_state_machine(
        name="algotrendy-backtest-dev",
        definition=json.dumps(DEFINITION),
        roleArn="arn:aws:iam::123456789012:role/algotrendy-backtest",
    )["stateMachineArn"]
    return client, arn
