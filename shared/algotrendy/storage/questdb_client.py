"""What the QuestDB stores (candles, news) share: the two transports and their errors.

Writes go over ILP/HTTP through one long-lived `questdb` Sender per store (the client's
advice: each new one negotiates the protocol again with `GET /settings`); reads and DDL
go over PGWire with psycopg 3, one connection per statement. Errors of both map onto
`StoreUnavailableError` (the server cannot be reached) and `StoreError` (it refused).

QuestDB sends TIMESTAMP over PGWire without a zone; values are UTC, so bind parameters
are naive UTC datetimes (`naive_bounds`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Protocol, Self
from urllib.parse import urlsplit

from algotrendy.storage.base import StoreError, StoreUnavailableError, utc

# Open bounds of a read: QuestDB TIMESTAMP is microseconds since 1970, so these are safe.
MIN_TS: Final = datetime(1970, 1, 1)
MAX_TS: Final = datetime(9999, 12, 31)


class _Cursor(Protocol):
    def fetchall(self) -> list[tuple[Any, ...]]: ...


class PgConnection(Protocol):
    """What the stores need of a psycopg 3 connection (tests pass a recording fake)."""

    def execute(self, query: Any, params: Sequence[Any] | None = None) -> _Cursor: ...

    def close(self) -> None: ...


PgConnect = Callable[[str], PgConnection]


def psycopg_connect(conninfo: str) -> PgConnection:
    import psycopg

    connection: PgConnection = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    return connection


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def conf_addr(conf: str) -> str:
    """The `addr` of a questdb client configuration string (for messages)."""
    for part in conf.split("::", 1)[-1].split(";"):
        key, _, value = part.partition("=")
        if key.strip() == "addr":
            return value.strip()
    return "localhost:9000"


def naive_bounds(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end) as the naive UTC datetimes PGWire binds, open ends made explicit."""
    lo = MIN_TS if start is None else utc(start).replace(tzinfo=None)
    hi = MAX_TS if end is None else utc(end).replace(tzinfo=None)
    return lo, hi


# ProtocolVersionError: the client's `GET /settings` (protocol negotiation) failed, which is
# what an unreachable server looks like before any row is sent.
_UNAVAILABLE_CODES: Final = frozenset(
    {
        "CouldNotResolveAddr",
        "SocketError",
        "ConnectTimeout",
        "TlsError",
        "HandshakeError",
        "ProtocolVersionError",
    }
)


def translate(exc: Any, address: str, where: str) -> StoreError:
    """The store error for a `questdb.QuestDBError` raised while writing."""
    code = getattr(getattr(exc, "code", None), "name", "")
    if code in _UNAVAILABLE_CODES:
        return StoreUnavailableError(f"questdb at {address}: unreachable ({first_line(exc)})")
    return StoreError(f"{where}: QuestDB rejected the write ({first_line(exc)})")


class QuestDBClient:
    """Base of the QuestDB stores: configuration, PGWire statements, the ILP sender.

    `ilp_conf` is a questdb client configuration string (`http::addr=host:9000;` plus
    auth/TLS keys as needed); `pg_conninfo` a libpq connection string for the PGWire port
    (`host=... port=8812 user=admin password=quest dbname=qdb`).
    """

    name = "questdb"
    # How errors about the configuration name the store.
    label: ClassVar[str] = "questdb store"
    # The store's tables, with their dedup keys (a table ILP auto-creates has none).
    schema_ddl: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        ilp_conf: str,
        pg_conninfo: str,
        *,
        connect: PgConnect = psycopg_connect,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not ilp_conf.startswith(("http::", "https::")):
            raise StoreError(
                f"{self.label}: ILP config must use http:: or https:: (got {ilp_conf[:12]!r}); "
                "ILP over TCP cannot report rejected rows"
            )
        self.ilp_conf = ilp_conf
        self.pg_conninfo = pg_conninfo
        self._connect = connect
        self._now = now
        self._schema_ready = False
        self.address = conf_addr(ilp_conf)
        self._sender: Any = None
        self._sender_lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pg_port: int = 8812,
        user: str = "admin",
        password: str = "quest",
        **kwargs: Any,
    ) -> Self:
        """Store for a QuestDB at `url` (`http://host:9000`): ILP to that address, PGWire
        to the same host on `pg_port` with QuestDB's default credentials unless given."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"questdb store: URL must look like http://host:9000, got {url!r}")
        conf = f"{parts.scheme}::addr={parts.hostname}:{parts.port or 9000};"
        pg = (
            f"host={parts.hostname} port={pg_port} user={parts.username or user} "
            f"password={parts.password or password} dbname=qdb"
        )
        return cls(conf, pg, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    def ensure_schema(self) -> None:
        """Create the store's tables (`schema_ddl`) if missing; once per store."""
        if self._schema_ready:
            return
        for ddl in self.schema_ddl:
            self._execute(ddl)
        self._schema_ready = True

    # -- PGWire ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        """One PGWire connection, closed after use, with psycopg errors mapped."""
        import psycopg

        try:
            conn = self._connect(self.pg_conninfo)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"questdb at {self.address}: PGWire connection failed: {first_line(exc)}"
            ) from exc
        try:
            yield conn
        except psycopg.Error as exc:
            raise StoreError(f"questdb at {self.address}: {first_line(exc)}") from exc
        finally:
            conn.close()

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _execute(self, sql: str) -> None:
        """A statement without rows (DDL): psycopg's fetchall would refuse it."""
        with self._connection() as conn:
            conn.execute(sql)

    # -- ILP -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _ilp_sender(self, where: str) -> Iterator[Any]:
        """The store's sender, opened on first use, held under the sender lock; a
        `QuestDBError` drops it (the next write opens a new one) and becomes a store
        error naming `where`."""
        from questdb import QuestDBError, Sender

        with self._sender_lock:
            try:
                if self._sender is None:
                    sender: Any = Sender.from_conf(self.ilp_conf)
                    sender.establish()
                    self._sender = sender
                yield self._sender
            except QuestDBError as exc:
                self._drop_sender()
                raise translate(exc, self.address, where) from exc

    def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                sender.close(flush=False)

    def close(self) -> None:
        """Close the ILP connection (a later write opens a new one)."""
        with self._sender_lock:
            self._drop_sender()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
