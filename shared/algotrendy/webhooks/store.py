"""Where webhook configs live: the `WebhookConfigStore` port (read) with three adapters,
and the `WebhookConfigPublisher` port (write) with two.

Configs are found by the SHA-256 of the URL token, never by the token itself. The
in-memory store serves tests; the JSON-document stores serve the webhook (a file locally,
one SSM SecureString parameter in aws). The document is
`{"version": 1, "webhooks": [<WebhookConfig>, ...]}`; a bad document fails on load with a
`ConfigurationError` naming the webhook and the field.

The API writes the document through a publisher when it issues, rotates or revokes a
strategy's webhook (`algotrendy.api.webhook_configs`): `JsonFileWebhookConfigPublisher`
(locked, atomic rename) or `SsmParameterWebhookConfigPublisher` (read-modify-write with
version checks). Entries written by hand are kept as they are.

Revocation = removing the entry or setting `enabled: false`; the document stores re-read
their source after `cache_seconds`, so a revoked token stops working within that time.

Creating a webhook by hand (without the API)::

    token = generate_webhook_token()          # give the URL .../tradingview/<token> to the user
    entry = WebhookConfig(name="btc-breakout", token_sha256=hash_webhook_token(token),
                          symbols={"BINANCE:BTCUSDT": "BTC/USDT"}, quantity_mode="contracts",
                          passphrase_hash=hash_passphrase("a long passphrase"))
    publisher = SsmParameterWebhookConfigPublisher(boto3.client("ssm"), "/algotrendy/dev/webhooks")
    publisher.put(entry)                      # or JsonFileWebhookConfigPublisher(path).put(entry)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from algotrendy.documents import CachedDocument, file_reader, parse_document, ssm_reader
from algotrendy.webhooks.auth import hash_webhook_token
from algotrendy.webhooks.config import WebhookConfig


class WebhookStoreUnavailableError(Exception):
    """The config source could not be read (transient: the caller should retry)."""


@runtime_checkable
class WebhookConfigStore(Protocol):
    def get(self, token_sha256: str) -> WebhookConfig | None:
        """The config whose token hashes to `token_sha256`, enabled or not; None if none."""
        ...


class WebhookConfigDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    webhooks: list[WebhookConfig]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [w.name for w in self.webhooks]
        tokens = [w.token_sha256 for w in self.webhooks]
        dup_names = sorted({n for n in names if names.count(n) > 1})
        if dup_names:
            raise ValueError(f"webhook names must be unique: {', '.join(dup_names)}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("two webhooks share a token_sha256")
        return self


def load_webhook_configs(text: str, *, source: str) -> dict[str, WebhookConfig]:
    """Parse a config document; the error names the source, webhook index/name and field."""
    doc = parse_document(
        text, WebhookConfigDocument, source=source, what="webhook configs",
        items="webhooks", label="name",
    )  # fmt: skip
    return {w.token_sha256: w for w in doc.webhooks}


class InMemoryWebhookConfigStore:
    """Thread-safe dict of configs by token hash (tests, local shape)."""

    def __init__(self, configs: Iterable[WebhookConfig] = ()) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, WebhookConfig] = {}
        for config in configs:
            self.put(config)

    def get(self, token_sha256: str) -> WebhookConfig | None:
        with self._lock:
            return self._by_hash.get(token_sha256)

    def put(self, config: WebhookConfig) -> None:
        with self._lock:
            for existing in self._by_hash.values():
                if existing.name == config.name and existing.token_sha256 != config.token_sha256:
                    raise ValueError(f"webhook name {config.name!r} is already used")
            self._by_hash[config.token_sha256] = config

    def revoke(self, token: str) -> bool:
        """Forget a token (given in clear, as the owner holds it); True if it existed."""
        with self._lock:
            return self._by_hash.pop(hash_webhook_token(token), None) is not None


class _CachedDocumentStore:
    """Re-reads its document at most every `cache_seconds`; keeps nothing else."""

    def __init__(
        self,
        source: str,
        read: Callable[[], str],
        *,
        cache_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._document = CachedDocument(
            source,
            read,
            lambda text: load_webhook_configs(text, source=source),
            cache_seconds=cache_seconds,
            clock=clock,
        )

    def get(self, token_sha256: str) -> WebhookConfig | None:
        return self._document.value().get(token_sha256)


class JsonFileWebhookConfigStore(_CachedDocumentStore):
    """Configs from a JSON document on disk (local shape, tests, a file baked into an image)."""

    def __init__(
        self,
        path: str | Path,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        read = file_reader(self.path, "webhook config")
        super().__init__(str(self.path), read, cache_seconds=cache_seconds, clock=clock)


class SsmParameterWebhookConfigStore(_CachedDocumentStore):
    """Configs from one SSM parameter (SecureString, decrypted on read), for Lambda.

    The client is injected (built once per container). A failed read raises
    `WebhookStoreUnavailableError` (503: TradingView resends); a missing parameter is an
    operator error (`ConfigurationError`)."""

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        read = ssm_reader(client, name, "webhook configs", WebhookStoreUnavailableError)
        super().__init__(f"ssm:{name}", read, cache_seconds=cache_seconds, clock=clock)


# ------------------------------------------------------------------------------ writers
#
# The API publishes the configs of the webhooks it issues into the same document the
# readers above serve, so a token issued by `POST /strategies/{id}/webhook` works in the
# webhook Lambda (SSM) and in the local server (file) without a second source of truth.

MAX_PUBLISH_ATTEMPTS = 5
# SSM's value limit: 4 KB for a standard parameter, 8 KB for an advanced one. Writes ask
# for the "Intelligent-Tiering" tier, which becomes advanced only when the value needs it
# (AWS Systems Manager user guide, "Managing parameter tiers"). One API-issued webhook
# with a passphrase takes ~450 bytes of compact JSON, so ~17 fit.
SSM_MAX_VALUE_BYTES = 8192

Match = Callable[[WebhookConfig], bool]
Change = Callable[[WebhookConfig | None], WebhookConfig | None]


class WebhookPublishError(Exception):
    """The document could not be read or written, or concurrent edits did not settle
    within `MAX_PUBLISH_ATTEMPTS` (transient: the caller may retry)."""


class WebhookPublishConflictError(WebhookPublishError):
    """The change cannot be applied to the current document (a name or token already
    used by another webhook, or the document would exceed its store's size limit)."""


@runtime_checkable
class WebhookConfigPublisher(Protocol):
    """Writes webhook configs into the document a `WebhookConfigStore` reads."""

    source: str

    def update(self, match: Match, change: Change) -> WebhookConfig | None:
        """Replace the entries `match` selects by `change(first selected entry or None)`
        (None removes them) in one read-modify-write; returns what `change` returned.
        `change` may run more than once (on retries): it must depend on its argument only."""
        ...

    def put(self, config: WebhookConfig) -> None:
        """Add `config`, or replace the entry with its name (issue, rotate)."""
        ...

    def revoke(self, name: str) -> bool:
        """Remove the entry named `name`; True if there was one."""
        ...


def _apply(
    configs: list[WebhookConfig], match: Match, change: Change
) -> tuple[list[WebhookConfig], WebhookConfig | None]:
    selected = [i for i, w in enumerate(configs) if match(w)]
    result = change(configs[selected[0]] if selected else None)
    out = [w for w in configs if not match(w)]
    if result is not None:
        out.insert(selected[0] if selected else len(out), result)
    return out, result


def _parse_list(text: str | None, source: str) -> list[WebhookConfig]:
    if text is None or not text.strip():
        return []
    load_webhook_configs(text, source=source)  # the readers' errors, naming the field
    return list(WebhookConfigDocument.model_validate_json(text).webhooks)


def _validated(configs: list[WebhookConfig], source: str) -> None:
    try:
        WebhookConfigDocument(webhooks=configs)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise WebhookPublishConflictError(f"{source}: {msg}") from None


def render_webhook_configs(configs: Iterable[WebhookConfig], *, indent: int | None = None) -> str:
    """The document text: defaults left out, so hand-written entries stay short."""
    doc = {
        "version": 1,
        "webhooks": [w.model_dump(mode="json", exclude_defaults=True) for w in configs],
    }
    if indent is None:
        return json.dumps(doc, separators=(",", ":"))
    return json.dumps(doc, indent=indent) + "\n"


class _Publisher:
    source: str

    def update(self, match: Match, change: Change) -> WebhookConfig | None:
        raise NotImplementedError

    def put(self, config: WebhookConfig) -> None:
        self.update(lambda w: w.name == config.name, lambda _: config)

    def revoke(self, name: str) -> bool:
        found: list[bool] = []

        def remove(current: WebhookConfig | None) -> None:
            found.append(current is not None)

        self.update(lambda w: w.name == name, remove)
        return found[-1]


class JsonFileWebhookConfigPublisher(_Publisher):
    """Edits the JSON document a `JsonFileWebhookConfigStore` reads.

    Writers in one process take a lock, writers in several take `flock` on a sidecar
    `<name>.lock` file (POSIX advisory locking: every writer must use this class; a hand
    edit during a write may be lost). The new document goes to a temporary file in the
    same directory, is fsynced, then renamed over the old one (rename is atomic on POSIX,
    so a reader sees the old document or the new one, never half of one). Mode 0600: the
    document holds passphrase hashes. A missing file is created."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        self._lock = threading.Lock()

    def update(self, match: Match, change: Change) -> WebhookConfig | None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    text: str | None = self.path.read_text(encoding="utf-8")
                except FileNotFoundError:
                    text = None
                configs = _parse_list(text, self.source)
                new, result = _apply(configs, match, change)
                if new != configs:
                    _validated(new, self.source)
                    self._write(render_webhook_configs(new, indent=2))
                return result
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, text: str) -> None:
        import os
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)


def _error_code(exc: Exception) -> str:
    code: str = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code


class SsmParameterWebhookConfigPublisher(_Publisher):
    """Edits the SecureString parameter a `SsmParameterWebhookConfigStore` reads.

    SSM has no compare-and-set, but every `PutParameter` gets the next version number.
    So: read (value, version v); apply the change; put with `Overwrite=True`. If the put
    returns v+1, nobody wrote in between and we are done. If it returns w > v+1, versions
    v+1..w-1 were written by others after our read and our put replaced them: their
    entry-level changes are read back from those versions (`GetParameter` on
    ``name:version``), re-applied (unless an entry has been changed again since) and
    written as a further version, and so on until a put lands on read+1. A missing
    parameter is created with `Overwrite=False`, which does fail when someone else
    created it first (then retry).

    What remains racy: between our put at w and the restoring put the other writers'
    entries are absent, so a reader loading the parameter then caches a document without
    them (for up to its `cache_seconds`), and if this process dies in between their
    changes are lost although their calls succeeded. SSM keeps the last 100 versions, so
    more than ~100 writes inside one read-modify-write cannot be restored (reported as an
    error). Two edits of the same entry are last-writer-wins, as in any store.

    The parameter's KMS key is kept: its `KeyId` is read once (`DescribeParameters`) and
    passed on every put, since a put without one re-encrypts with the account's default
    key."""

    def __init__(self, client: Any, name: str, *, max_attempts: int = MAX_PUBLISH_ATTEMPTS) -> None:
        self.client = client
        self.name = name
        self.source = f"ssm:{name}"
        self.max_attempts = max_attempts
        self._key_id: str | None = None
        self._lock = threading.Lock()

    # -- SSM calls ---------------------------------------------------------------------
    def _get(self, selector: str | None = None) -> tuple[str | None, int]:
        name = self.name if selector is None else f"{self.name}:{selector}"
        try:
            reply = self.client.get_parameter(Name=name, WithDecryption=True)
        except Exception as exc:  # botocore's ClientError
            code = _error_code(exc)
            if code == "ParameterNotFound" and selector is None:
                return None, 0
            raise WebhookPublishError(
                f"cannot read SSM parameter {name}: {code or type(exc).__name__}"
            ) from exc
        param = reply["Parameter"]
        return str(param["Value"]), int(param["Version"])

    def _key(self) -> str | None:
        if self._key_id is None:
            try:
                found = self.client.describe_parameters(
                    ParameterFilters=[{"Key": "Name", "Values": [self.name]}]
                )["Parameters"]
            except Exception as exc:
                raise WebhookPublishError(
                    f"cannot describe SSM parameter {self.name}: "
                    f"{_error_code(exc) or type(exc).__name__}"
                ) from exc
            self._key_id = str(found[0].get("KeyId") or "") if found else ""
        return self._key_id or None

    def _put(self, text: str, version: int) -> int | None:
        """The version written; None when creating lost to a concurrent create."""
        size = len(text.encode("utf-8"))
        if size > SSM_MAX_VALUE_BYTES:
            raise WebhookPublishConflictError(
                f"{self.source}: the webhook document would be {size} bytes; an SSM "
                f"parameter holds at most {SSM_MAX_VALUE_BYTES} (revoke unused webhooks)"
            )
        args: dict[str, Any] = {
            "Name": self.name,
            "Value": text,
            "Type": "SecureString",
            "Tier": "Intelligent-Tiering",
            "Overwrite": version > 0,
        }
        key = self._key() if version > 0 else None
        if key:
            args["KeyId"] = key
        try:
            reply = self.client.put_parameter(**args)
        except Exception as exc:
            code = _error_code(exc)
            if code == "ParameterAlreadyExists" and version == 0:
                return None
            raise WebhookPublishError(
                f"cannot write SSM parameter {self.name}: {code or type(exc).__name__}"
            ) from exc
        return int(reply["Version"])

    # -- read-modify-write -------------------------------------------------------------
    def update(self, match: Match, change: Change) -> WebhookConfig | None:
        with self._lock:  # writers of this process queue here; others are detected below
            return self._update(match, change)

    def _update(self, match: Match, change: Change) -> WebhookConfig | None:
        restore: dict[str, WebhookConfig | None] = {}  # others' entries our put replaced
        expected: dict[str, WebhookConfig] = {}  # what we wrote, to see later edits
        for _ in range(self.max_attempts):
            text, version = self._get()
            configs = _parse_list(text, self.source)
            if restore:
                configs = _restored(configs, restore, expected)
            new, result = _apply(configs, match, change)
            if new == _parse_list(text, self.source):
                return result
            _validated(new, self.source)
            written = self._put(render_webhook_configs(new), version)
            if written is None:
                continue
            if written == version + 1:
                return result
            restore.update(self._overwritten(text, version, written))
            expected = {w.name: w for w in new}
        raise WebhookPublishError(
            f"{self.source}: concurrent edits did not settle after {self.max_attempts} "
            "attempts; retry"
        )

    def _overwritten(
        self, base_text: str | None, base: int, written: int
    ) -> dict[str, WebhookConfig | None]:
        """Entry-level changes of versions base+1..written-1, by webhook name, in order."""
        changes: dict[str, WebhookConfig | None] = {}
        before = {w.name: w for w in _parse_list(base_text, self.source)}
        for version in range(base + 1, written):
            try:
                text, _ = self._get(str(version))
            except WebhookPublishError as exc:
                raise WebhookPublishError(
                    f"{self.source}: version {version}, written concurrently, cannot be "
                    "read back; its changes may be lost"
                ) from exc
            after = {w.name: w for w in _parse_list(text, self.source)}
            for name in before.keys() | after.keys():
                if before.get(name) != after.get(name):
                    changes[name] = after.get(name)
            before = after
        return changes


def _restored(
    configs: list[WebhookConfig],
    restore: dict[str, WebhookConfig | None],
    expected: dict[str, WebhookConfig],
) -> list[WebhookConfig]:
    """`configs` with the overwritten changes put back, except on entries someone changed
    after our put (their value is newer than what we would restore)."""
    by_name = {w.name: w for w in configs}
    out = list(configs)
    for name, value in restore.items():
        if by_name.get(name) != expected.get(name):
            continue
        out = [w for w in out if w.name != name]
        if value is not None:
            out.append(value)
    return out
