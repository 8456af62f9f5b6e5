"""Retention of the idempotency record of POST /orders (`order_requests`), on SQLite and
PostgreSQL: requests older than `ORDER_REQUEST_RETENTION` are deleted in small batches, at
most once per `ORDER_REQUEST_PRUNE_EVERY` per process; a replay after that is new."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from algotrendy.storage.relational.api_models import OrderRequestRow
from algotrendy.storage.relational.api_repositories import (
    ORDER_REQUEST_PRUNE_EVERY,
    ORDER_REQUEST_RETENTION,
    OrderRequestRepository,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _claim_at(repo: OrderRequestRepository, intent_id: str, at: datetime) -> None:
    repo.claim(intent_id, f"coid-{intent_id}", "a" * 64, "trader")
    with Session(repo.engine) as s, s.begin():
        s.execute(
            update(OrderRequestRow)
            .where(OrderRequestRow.intent_id == intent_id)
            .values(created_at=at)
        )


def _kept(repo: OrderRequestRepository) -> set[str]:
    with Session(repo.engine) as s:
        return set(s.scalars(select(OrderRequestRow.intent_id)))


def test_prune_deletes_only_rows_before_the_cutoff_a_batch_at_a_time(db_engine: Engine) -> None:
    repo = OrderRequestRepository(db_engine)
    cutoff = NOW - ORDER_REQUEST_RETENTION
    for n in range(5):
        _claim_at(repo, f"old-{n}", cutoff - timedelta(days=1, seconds=n))
    _claim_at(repo, "at-cutoff", cutoff)  # not older than the retention: kept
    _claim_at(repo, "young", NOW - timedelta(days=1))
    assert repo.prune(cutoff, limit=3) == 3
    assert repo.prune(cutoff, limit=3) == 2
    assert repo.prune(cutoff, limit=3) == 0
    assert _kept(repo) == {"at-cutoff", "young"}


def test_prune_reads_the_cutoff_in_utc_and_refuses_a_naive_one(db_engine: Engine) -> None:
    repo = OrderRequestRepository(db_engine)
    _claim_at(repo, "noon-utc", NOW)
    # 13:30 at UTC+2 is 11:30 UTC: before noon UTC, so the row is not older than it
    assert repo.prune(NOW.astimezone(timezone(timedelta(hours=2))).replace(hour=13, minute=30)) == 0
    assert repo.prune(NOW + timedelta(seconds=1)) == 1
    with pytest.raises(ValueError, match="timezone-aware"):
        repo.prune(NOW.replace(tzinfo=None))


def test_prune_if_due_runs_once_per_period_per_process(db_engine: Engine) -> None:
    repo = OrderRequestRepository(db_engine)
    expired = NOW - ORDER_REQUEST_RETENTION - timedelta(minutes=1)
    _claim_at(repo, "expired-1", expired)
    assert repo.prune_if_due(NOW) == 1
    _claim_at(repo, "expired-2", expired)
    # not due again within the period, whatever has expired meanwhile
    assert repo.prune_if_due(NOW + ORDER_REQUEST_PRUNE_EVERY - timedelta(seconds=1)) is None
    assert _kept(repo) == {"expired-2"}
    assert repo.prune_if_due(NOW + ORDER_REQUEST_PRUNE_EVERY) == 1
    assert _kept(repo) == set()


def test_a_replay_after_the_retention_is_a_new_request(db_engine: Engine) -> None:
    repo = OrderRequestRepository(db_engine)
    _claim_at(repo, "intent-replayed", NOW - ORDER_REQUEST_RETENTION - timedelta(days=1))
    assert repo.record_message("intent-replayed", "m-1") == "m-1"
    row, claimed = repo.claim("intent-replayed", "coid-x", "b" * 64, "trader")
    assert (claimed, row.request_sha256) == (False, "a" * 64)  # still held: refused
    assert repo.prune_if_due(NOW) == 1
    row, claimed = repo.claim("intent-replayed", "coid-x", "b" * 64, "trader")
    assert (claimed, row.request_sha256, row.message_id) == (True, "b" * 64, None)
