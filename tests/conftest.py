"""Shared fixtures: the real market data copied into tests/fixtures (see its README), and
`db_engine`: a migrated database on both backends — SQLite in a temp file and the real
PostgreSQL at 127.0.0.1:5432 (database `test`), each test in its own schema. PostgreSQL
tests skip with the reason when the server is absent, except in CI (CI=true), where they
fail instead."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, text

# Property tests check results, not speed: hypothesis's per-example deadline (200 ms) and
# its "too slow" health check are timings, and on a shared 2-core machine running the suite
# under xdist they fail for load, not for bugs (speed is measured in bench/ instead).
settings.register_profile("algotrendy", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("algotrendy")

PG_URL = os.environ.get("ALGOTRENDY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

FIXTURES = Path(__file__).parent / "fixtures"
OHLCV = FIXTURES / "ohlcv"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def goog_path() -> Path:
    return OHLCV / "backtesting_GOOG_1d.csv"


@pytest.fixture(scope="session")
def goog(goog_path: Path) -> pd.DataFrame:
    from algotrendy.data import load_ohlcv

    return load_ohlcv(goog_path)


@pytest.fixture(scope="session")
def btc_1m() -> pd.DataFrame:
    from algotrendy.data import load_ohlcv

    return load_ohlcv(OHLCV / "nautilus_btc-perp_1m_20211231-20220201.csv")


def _pg_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=2):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available", reported
        return f"PostgreSQL not reachable at {PG_URL}: {exc}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    from algotrendy.storage.relational import create_db_engine, upgrade_database

    if request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path / 'algotrendy.db'}")
        upgrade_database(engine)
        yield engine
        engine.dispose()
        return
    reason = _pg_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_db_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    upgrade_database(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
