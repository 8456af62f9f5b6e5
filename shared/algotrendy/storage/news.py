"""What both news stores agree on: an item's identity, how copies of one story merge, and
the checks of a read's arguments. Kept apart from the adapters so the local and the
QuestDB store cannot drift on what "the same item" means.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from algotrendy.domain.market import NewsItem
from algotrendy.errors import DataError, ParameterError
from algotrendy.storage.base import utc

# A read returns a page of headlines, not a dump: a caller wanting more narrows the range.
MAX_READ_LIMIT: Final = 10_000


def news_item_id(item: NewsItem) -> uuid.UUID:
    """The item's id: a UUID (v5, URL namespace) of its canonical URL, the key the feeds
    de-duplicate by (`algotrendy.data.channels.news.canonical_url`), so a story with a
    `utm_` parameter or a trailing slash is the same story. Fixed-size, so QuestDB can
    use it as a dedup key (variable-size columns cannot be)."""
    # Imported here: the feeds' module pulls in feedparser and requests, which a store
    # that only reads never needs.
    from algotrendy.data.channels.news import canonical_url

    return uuid.uuid5(uuid.NAMESPACE_URL, canonical_url(str(item.url)))


def check_items(items: Iterable[object], where: str) -> list[NewsItem]:
    """`items` as a list of `NewsItem`, refusing anything else by position."""
    out: list[NewsItem] = []
    for i, item in enumerate(items):
        if not isinstance(item, NewsItem):
            raise DataError(f"{where}: item {i} is a {type(item).__name__}, not a NewsItem")
        out.append(item)
    return out


def merge_batch(items: Iterable[NewsItem]) -> dict[uuid.UUID, NewsItem]:
    """One item per id, first occurrence kept (as `dedupe` does), with the symbols of
    later copies merged in; insertion order is the order given."""
    out: dict[uuid.UUID, NewsItem] = {}
    for item in items:
        key = news_item_id(item)
        first = out.get(key)
        out[key] = item if first is None else with_symbols(first, item.symbols)
    return out


def with_symbols(item: NewsItem, more: Iterable[str]) -> NewsItem:
    """`item` tagged with its symbols plus those of `more` it lacks (order kept)."""
    merged = tuple(dict.fromkeys((*item.symbols, *more)))
    return item if merged == item.symbols else item.model_copy(update={"symbols": merged})


def published_utc(item: NewsItem) -> datetime:
    """Publication time as aware UTC (the feeds give UTC; a naive value is taken as UTC)."""
    return utc(item.published_at)


def check_read(
    symbol: str | None, since: datetime | None, until: datetime | None, limit: int, where: str
) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_READ_LIMIT:
        raise ParameterError(f"{where}: limit must be an integer in [1, {MAX_READ_LIMIT}]")
    if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):
        raise ParameterError(f"{where}: symbol must be a non-empty string or None")
    if since is not None and until is not None and utc(since) >= utc(until):
        raise ParameterError(f"{where}: since ({since}) must be before until ({until})")


def symbol_pattern(symbol: str) -> str:
    """Regex matching `symbol` as one whole entry of a comma-joined symbol list (`AAPL`
    matches `MSFT,AAPL`, never `AAPL.X`). `re.escape` only escapes punctuation, which Java's
    regex (QuestDB's `~`) reads as the literal character too."""
    return f"(^|,){re.escape(symbol)}(,|$)"
