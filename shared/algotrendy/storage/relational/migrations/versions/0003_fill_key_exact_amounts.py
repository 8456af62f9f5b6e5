"""fills unique per order; amounts as unconstrained NUMERIC

* A fill is now unique by (order_id, broker_fill_id), not (broker, broker_fill_id): Binance
  numbers trades per symbol (an ETH trade can carry the id of an earlier BTC trade), and
  both sides of one trade can carry the same id, so a broker-wide key refused real fills.
* Quantities, prices, fees and PnL lose the fixed NUMERIC(30, 12) on PostgreSQL, which
  rounded low prices (1.2345678e-9 -> 1.235e-9) and so changed PnL on restart. SQLite
  ignores a declared precision (NUMERIC affinity keeps the float as REAL), and re-creating
  its `orders` table is not possible while `fills` references it with foreign keys on, so
  the types are changed on PostgreSQL only.

Downgrade restores the old key and scale; it fails if two fills of one broker now share an
id (their key was only legal after this revision) and rounds amounts to 12 decimals.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# table -> (column, nullable) of every amount column
AMOUNTS: dict[str, list[tuple[str, bool]]] = {
    "orders": [
        ("quantity", False), ("limit_price", True), ("stop_price", True),
        ("trail_percent", True), ("filled_quantity", False), ("avg_fill_price", True),
        ("fees", False),
    ],
    "fills": [("quantity", False), ("price", False), ("fee", False)],
    "positions": [("quantity", False), ("avg_price", False), ("realized_pnl", False),
                  ("fees", False)],
    "pnl_daily": [("realized_pnl", False), ("unrealized_pnl", False), ("fees", False)],
}  # fmt: skip

OLD = sa.Numeric(precision=30, scale=12, asdecimal=False)
NEW = sa.Numeric(asdecimal=False)


def _retype(old: sa.Numeric[float], new: sa.Numeric[float]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in AMOUNTS.items():
        for column, nullable in columns:
            op.alter_column(table, column, type_=new, existing_type=old, existing_nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.drop_constraint("uq_fills_broker_fill", type_="unique")
        batch_op.create_unique_constraint("uq_fills_order_fill", ["order_id", "broker_fill_id"])
    _retype(OLD, NEW)


def downgrade() -> None:
    _retype(NEW, OLD)
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.drop_constraint("uq_fills_order_fill", type_="unique")
        batch_op.create_unique_constraint("uq_fills_broker_fill", ["broker", "broker_fill_id"])
