"""order_requests: the idempotency record of POST /orders, written before the send

One row per intent id accepted by the API (its request hash, client order id and, once
sent, the queue message id). The primary key decides which of two racing requests owns an
intent id; the audit log, written after the reply, could not.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_requests",
        sa.Column("intent_id", sa.String(length=128), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("intent_id", name=op.f("pk_order_requests")),
    )


def downgrade() -> None:
    op.drop_table("order_requests")
