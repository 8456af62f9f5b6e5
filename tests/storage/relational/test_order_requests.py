"""The idempotency record of POST /orders (`order_requests`), on SQLite and PostgreSQL:
the primary key decides which of concurrent claims owns an intent id."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine

from algotrendy.storage.relational.api_repositories import OrderRequestRepository

WAIT = 10.0  # seconds; bounds a hung barrier


def test_concurrent_claims_of_one_intent_id_have_one_winner(db_engine: Engine) -> None:
    repo = OrderRequestRepository(db_engine)
    hashes = [f"{n:064x}" for n in range(8)]
    start = threading.Barrier(len(hashes))

    def claim(sha256: str) -> tuple[str, bool]:
        start.wait(WAIT)
        row, claimed = repo.claim("intent-race-01", "at-0001", sha256, "trader")
        return row.request_sha256, claimed

    with ThreadPoolExecutor(max_workers=len(hashes)) as pool:
        results = list(pool.map(claim, hashes))
    winners = [sha for sha, claimed in results if claimed]
    assert len(winners) == 1
    # every loser was shown the winner's row, not its own request
    assert {sha for sha, _ in results} == {winners[0]}
    stored = repo.get("intent-race-01")
    assert stored is not None
    assert (stored.request_sha256, stored.actor, stored.message_id) == (winners[0], "trader", None)
    assert stored.created_at.tzinfo is not None


def test_the_first_recorded_message_id_wins(db_engine: Engine) -> None:
    repo = OrderRequestRepository(db_engine)
    repo.claim("intent-msg-001", "at-0002", "a" * 64, "trader")
    assert repo.record_message("intent-msg-001", "m-1") == "m-1"
    assert repo.record_message("intent-msg-001", "m-2") == "m-1"
    row, claimed = repo.claim("intent-msg-001", "at-0002", "a" * 64, "trader")
    assert (row.message_id, claimed) == ("m-1", False)
