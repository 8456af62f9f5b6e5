"""Relational storage (SQLAlchemy 2): SQLite locally, PostgreSQL (psycopg 3) in production.

Schema changes go through Alembic migrations (`migrations/` at the repository root, run by
`upgrade_database`); the ORM models here are the schema's single source of truth.
"""

from algotrendy.storage.relational.api_models import (
    BacktestResultRow,
    BacktestRow,
    ConfigurationRow,
    RefreshTokenRow,
    StrategyConfigRow,
    UserRow,
)
from algotrendy.storage.relational.database import (
    create_db_engine,
    session_factory,
    upgrade_database,
)
from algotrendy.storage.relational.models import (
    AuditLogRow,
    Base,
    FillRow,
    OrderRow,
    PnlDailyRow,
    PositionRow,
)

__all__ = [
    "AuditLogRow",
    "BacktestResultRow",
    "BacktestRow",
    "Base",
    "ConfigurationRow",
    "FillRow",
    "OrderRow",
    "PnlDailyRow",
    "PositionRow",
    "RefreshTokenRow",
    "StrategyConfigRow",
    "UserRow",
    "create_db_engine",
    "session_factory",
    "upgrade_database",
]
