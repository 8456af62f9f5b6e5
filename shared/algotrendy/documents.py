"""Configuration documents read from a file or an SSM parameter and reused for a while.

Webhook configs and live strategy configs are both one JSON document per stage, kept in an
SSM parameter in aws (a warm Lambda sees an edit within `cache_seconds`, no redeploy) and
in a file locally. This module holds what they share; each store parses its own schema.
Light on purpose: the webhook Lambda imports it at cold start.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from algotrendy.config import ConfigurationError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def parse_document(
    text: str, model: type[M], *, source: str, what: str, items: str, label: str
) -> M:
    """Validate a JSON config document into `model`. Every refusal is one
    `ConfigurationError` naming the source, the field path and, for an entry of the list
    `items`, that entry's `label` (its id or name), so an operator finds the bad entry."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{source}: {what} are not JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc) or "document"
        if len(loc) >= 2 and loc[0] == items and isinstance(loc[1], int):
            entry = _entry_label(raw, items, loc[1], label)
            if entry:
                where = f"{where} ({entry})"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"{source}: {where}: {msg}") from None


def _entry_label(raw: Any, items: str, index: int, label: str) -> str | None:
    try:
        value = raw[items][index][label]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) else None


class CachedDocument(Generic[T]):
    """`parse(read())`, re-read at most every `cache_seconds`; thread-safe."""

    def __init__(
        self,
        source: str,
        read: Callable[[], str],
        parse: Callable[[str], T],
        *,
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._read = read
        self._parse = parse
        self._ttl = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._loaded_at = 0.0

    def value(self) -> T:
        with self._lock:
            now = self._clock()
            if self._value is None or now - self._loaded_at >= self._ttl:
                self._value = self._parse(self._read())
                self._loaded_at = now
            return self._value


def file_reader(path: Path, what: str) -> Callable[[], str]:
    """Read a document from disk; a missing file is an operator error naming it."""

    def read() -> str:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigurationError(f"{path}: {what} file does not exist") from None

    return read


def ssm_reader(
    client: Any, name: str, what: str, unavailable: Callable[[str], Exception]
) -> Callable[[], str]:
    """Read a (SecureString) SSM parameter. Missing → `ConfigurationError` (an operator must
    create it); any other failure → `unavailable(message)` (transient: retry later)."""

    def read() -> str:
        try:
            reply = client.get_parameter(Name=name, WithDecryption=True)
        except Exception as exc:  # botocore's ClientError; botocore is not imported here
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "ParameterNotFound":
                raise ConfigurationError(f"SSM parameter {name} ({what}) does not exist") from None
            raise unavailable(
                f"cannot read SSM parameter {name}: {code or type(exc).__name__}"
            ) from exc
        return str(reply["Parameter"]["Value"])

    return read
