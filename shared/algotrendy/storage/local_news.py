"""The embedded news store: JSON Lines files under a data directory, one per UTC month.

Layout::

    <data_dir>/news/2024-05.jsonl      one item per line, sorted by publication time

Guarantees (the `NewsStore` contract):
- one line per item id (`algotrendy.storage.news.news_item_id`, the canonical URL): a
  write skips items already stored anywhere (a feed may move a story's publication time,
  so the check spans every month), merging in symbols a later copy adds;
- atomic writes, as `LocalCandleStore`: each touched month is written to a temporary
  file in the same folder, fsynced, then renamed over the old one; if anything fails
  before the renames the temporary files are removed and the store is as it was. A
  crash between two renames leaves items unwritten, never half-written, and the next
  ingest stores them (they are still unknown);
- one writer at a time (an exclusive `flock` on `news/.lock`); readers need no lock
  because a month file is only ever replaced whole.

News is a few thousand items a month, so a write reads every month's ids: simple, and
far below the cost of the HTTP fetch that produced the items.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from algotrendy.domain.market import NewsItem
from algotrendy.storage.base import StoreError, utc
from algotrendy.storage.news import (
    check_items,
    check_read,
    merge_batch,
    published_utc,
    with_symbols,
)

_MONTH_GLOB: Final = "[0-9][0-9][0-9][0-9]-[0-9][0-9].jsonl"


@dataclass
class _Stored:
    month: str
    item: NewsItem


def _month(when: datetime) -> str:
    return utc(when).strftime("%Y-%m")


def _line(key: uuid.UUID, item: NewsItem, ingested_at: str) -> dict[str, Any]:
    return {
        "id": str(key),
        **item.model_dump(mode="json"),
        "published_at": published_utc(item).isoformat(),
        "ingested_at": ingested_at,
    }


def _sort_key(item: NewsItem) -> tuple[datetime, str]:
    return published_utc(item), str(item.url)


class LocalNewsStore:
    """News store on the local disk (the local shape's default)."""

    name = "local"

    def __init__(self, data_dir: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(data_dir).expanduser() / "news"
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalNewsStore({str(self.root.parent)!r})"

    def _months(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob(_MONTH_GLOB) if p.is_file())

    def _load(self, path: Path) -> list[tuple[uuid.UUID, NewsItem, str]]:
        """(id, item, ingested_at) of every line of a month file."""
        out: list[tuple[uuid.UUID, NewsItem, str]] = []
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.readlines()
        except OSError as exc:
            raise StoreError(f"local news store: cannot read {path}: {exc}") from exc
        for n, text in enumerate(lines, 1):
            try:
                raw = json.loads(text)
                key = uuid.UUID(raw.pop("id"))
                ingested_at = str(raw.pop("ingested_at"))
                out.append((key, NewsItem.model_validate(raw), ingested_at))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise StoreError(f"local news store: {path} line {n} unreadable: {exc}") from exc
        return out

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- write -----------------------------------------------------------------------
    def write(self, items: Sequence[NewsItem]) -> int:
        batch = merge_batch(check_items(items, f"{self.name} news store"))
        if not batch:
            return 0
        now = datetime.now(UTC).isoformat()
        with self._locked():
            for stale in self.root.glob(".tmp-*"):
                stale.unlink(missing_ok=True)  # left by a writer that was killed
            months: dict[str, dict[uuid.UUID, tuple[NewsItem, str]]] = {}
            stored: dict[uuid.UUID, _Stored] = {}
            for path in self._months():
                rows = self._load(path)
                months[path.stem] = {k: (item, at) for k, item, at in rows}
                stored.update((k, _Stored(path.stem, item)) for k, item, _ in rows)
            dirty: set[str] = set()
            new = 0
            for key, item in batch.items():
                known = stored.get(key)
                if known is None:
                    month = _month(item.published_at)
                    months.setdefault(month, {})[key] = (item, now)
                    dirty.add(month)
                    new += 1
                    continue
                merged = with_symbols(known.item, item.symbols)
                if merged is not known.item:
                    _, ingested_at = months[known.month][key]
                    months[known.month][key] = (merged, ingested_at)
                    dirty.add(known.month)
            self._replace({m: months[m] for m in sorted(dirty)})
        return new

    def _replace(self, months: dict[str, dict[uuid.UUID, tuple[NewsItem, str]]]) -> None:
        staged: list[tuple[Path, Path]] = []
        try:
            for month, rows in months.items():
                target = self.root / f"{month}.jsonl"
                tmp = self.root / f".tmp-{uuid.uuid4().hex}-{target.name}"
                staged.append((tmp, target))
                ordered = sorted(rows.items(), key=lambda kv: _sort_key(kv[1][0]))
                with open(tmp, "w", encoding="utf-8") as handle:
                    for key, (item, ingested_at) in ordered:
                        line = _line(key, item, ingested_at)
                        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
                    if self.fsync:
                        handle.flush()
                        os.fsync(handle.fileno())
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, target in staged:
            os.replace(tmp, target)
        if self.fsync:
            with contextlib.suppress(OSError):  # some filesystems refuse fsync on a folder
                fd = os.open(self.root, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    # -- read ------------------------------------------------------------------------
    def read(
        self,
        symbol: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[NewsItem]:
        check_read(symbol, since, until, limit, f"{self.name} news store")
        lo = None if since is None else utc(since)
        hi = None if until is None else utc(until)
        out: list[NewsItem] = []
        for path in reversed(self._months()):  # newest month first: stop once full
            if lo is not None and path.stem < _month(lo):
                break
            if hi is not None and path.stem > _month(hi):
                continue
            rows = [
                item
                for _, item, _ in self._load(path)
                if (lo is None or published_utc(item) >= lo)
                and (hi is None or published_utc(item) < hi)
                and (symbol is None or symbol in item.symbols)
            ]
            # Newest first, ties by URL ascending (the order QuestDB's read gives).
            rows.sort(key=lambda i: str(i.url))
            rows.sort(key=published_utc, reverse=True)
            out.extend(rows[: limit - len(out)])
            if len(out) >= limit:
                break
        return out
