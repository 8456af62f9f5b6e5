"""In-process queue with SQS semantics, for the local shape and for tests.

It keeps what makes the engine's guarantees testable on a laptop: visibility timeouts
and redelivery, FIFO message groups with one in-flight message per group, the 5-minute
FIFO de-duplication window, and a dead-letter queue after `max_receive_count` receives.
One receive may return several messages of a group (in order), as SQS does; while any of
them is in flight, the group yields nothing more. Thread-safe; `receive` long-polls on a
condition variable.

`_entries` is a dict filled in `seq` order and never re-inserted into, so iterating it is
FIFO order without sorting; in-flight entries are also indexed apart (`_inflight`), so a
receive costs O(in flight + messages scanned), not O(queue depth) — the engine polls it
hundreds of times a second.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from algotrendy.messaging.base import QueueError, QueueMessage

DEDUP_WINDOW_SECONDS = 300.0  # SQS FIFO de-duplication interval


@dataclass
class _Entry:
    message_id: str
    body: str
    group_id: str | None
    attributes: Mapping[str, str]
    seq: int
    visible_at: float = 0.0
    receive_count: int = 0
    receipt: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class InMemoryQueue:
    def __init__(
        self,
        name: str,
        *,
        visibility_timeout: float = 30.0,
        max_receive_count: int | None = 5,
        dead_letter: InMemoryQueue | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.fifo = name.endswith(".fifo")
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self.dead_letter = dead_letter
        self._clock = clock
        self._entries: dict[str, _Entry] = {}  # insertion order == seq order
        self._inflight: dict[str, _Entry] = {}  # received, not deleted (maybe timed out)
        self._dedup: dict[str, tuple[float, str]] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()

    # -- producer ----------------------------------------------------------------------
    def send(
        self,
        body: str,
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        if self.fifo and not group_id:
            raise QueueError(f"{self.name}: FIFO queue needs a message group id")
        if self.fifo and not dedup_id:
            raise QueueError(f"{self.name}: FIFO queue needs a deduplication id")
        with self._cond:
            now = self._clock()
            if self.fifo and dedup_id is not None:
                seen = self._dedup.get(dedup_id)
                if seen is not None and now - seen[0] < DEDUP_WINDOW_SECONDS:
                    return seen[1]  # SQS accepts the send and drops the duplicate
            message_id = str(uuid.uuid4())
            self._entries[message_id] = _Entry(
                message_id, body, group_id, dict(attributes or {}), next(self._seq)
            )
            if self.fifo and dedup_id is not None:
                self._dedup[dedup_id] = (now, message_id)
            self._cond.notify_all()
            return message_id

    # -- consumer ----------------------------------------------------------------------
    def receive(
        self,
        *,
        max_messages: int = 10,
        wait_seconds: float = 0.0,
        visibility_timeout: float | None = None,
    ) -> list[QueueMessage]:
        deadline = time.monotonic() + wait_seconds
        with self._cond:
            while True:
                got = self._take(max_messages, visibility_timeout)
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                self._cond.wait(timeout=min(remaining, 0.05))

    def _take(self, max_messages: int, visibility_timeout: float | None) -> list[QueueMessage]:
        now = self._clock()
        timeout = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        busy_groups: set[str | None] = set()
        for key, e in list(self._inflight.items()):
            if e.visible_at > now:
                busy_groups.add(e.group_id)
            else:
                del self._inflight[key]  # visibility timed out: an ordinary entry again
        if not self.fifo:
            busy_groups.clear()
        out: list[QueueMessage] = []
        dead: list[_Entry] = []
        for entry in self._entries.values():  # seq order (see the module docstring)
            if len(out) >= max_messages:
                break
            if entry.visible_at > now:
                continue
            if self.fifo and entry.group_id in busy_groups:
                continue
            if self.max_receive_count is not None and entry.receive_count >= self.max_receive_count:
                dead.append(entry)
                continue
            entry.receive_count += 1
            entry.visible_at = now + timeout
            entry.receipt = f"{entry.message_id}:{entry.receive_count}"
            self._inflight[entry.message_id] = entry
            out.append(
                QueueMessage(
                    body=entry.body,
                    receipt=entry.receipt,
                    message_id=entry.message_id,
                    receive_count=entry.receive_count,
                    group_id=entry.group_id,
                    attributes=entry.attributes,
                )
            )
        for entry in dead:  # after the loop: the dict cannot change while iterated
            self._to_dead_letter(entry)
        return out

    def _to_dead_letter(self, entry: _Entry) -> None:
        del self._entries[entry.message_id]
        self._inflight.pop(entry.message_id, None)
        if self.dead_letter is not None:
            self.dead_letter.send(
                entry.body,
                group_id=entry.group_id,
                dedup_id=entry.message_id if self.dead_letter.fifo else None,
                attributes=entry.attributes,
            )

    def _entry_for(self, message: QueueMessage) -> _Entry | None:
        entry = self._entries.get(message.message_id)
        if entry is None or entry.receipt != message.receipt:
            return None  # already deleted, or a stale receipt (SQS ignores these too)
        return entry

    def delete(self, message: QueueMessage) -> None:
        with self._cond:
            if self._entry_for(message) is not None:
                del self._entries[message.message_id]
                self._inflight.pop(message.message_id, None)
                self._cond.notify_all()

    def release(self, message: QueueMessage, *, delay_seconds: float = 0.0) -> None:
        with self._cond:
            entry = self._entry_for(message)
            if entry is not None:
                entry.visible_at = self._clock() + delay_seconds
                self._cond.notify_all()

    # -- inspection (tests, health) ------------------------------------------------------
    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)

    def bodies(self) -> list[str]:
        with self._cond:
            return [e.body for e in sorted(self._entries.values(), key=lambda e: e.seq)]
