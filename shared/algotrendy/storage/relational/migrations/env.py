"""Alembic environment: uses the connection handed over by `upgrade_database`, or the
`ALGOTRENDY_DATABASE_URL` / `sqlalchemy.url` for the `alembic` command line."""

from __future__ import annotations

import os

from alembic import context

from algotrendy.storage.relational.database import create_db_engine
from algotrendy.storage.relational.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("ALGOTRENDY_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set ALGOTRENDY_DATABASE_URL (or sqlalchemy.url in alembic.ini)")
    engine = create_db_engine(url)
    with engine.begin() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=conn.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
