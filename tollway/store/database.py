"""The database: one engine per process, SQLite (WAL) by default, PostgreSQL in production.

Only services open transactions, through ``Database.transaction``: it commits when the block ends
normally and rolls back otherwise, so a use case happens whole or not at all.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

SQLITE_BUSY_TIMEOUT_MILLISECONDS = 30_000
TRANSACTION_ATTEMPTS_MAX = 5
TRANSACTION_RETRY_PAUSE_SECONDS = 0.02
# A pooled connection is pinged (one round trip) only after sitting idle this long: under load it is
# reused within milliseconds and goes straight to work; one that broke meanwhile is caught by ``run``.
POOL_PING_IDLE_SECONDS = 5.0
POOL_RECYCLE_SECONDS = 30 * 60
_IDLE_SINCE = "tollway_idle_since"
# PostgreSQL SQLSTATEs that mean "run the whole transaction again".
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected

READ_ONLY_OPTION = "tollway_read_only"
T = TypeVar("T")


_IDENTITIES: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def identity(connection: Connection) -> str:
    """A token unique to the database object this connection comes from, for process caches.

    Not the URL: two databases made one after the other at the same URL (tests, a restored backup)
    must never share cached rows keyed by ids that mean something else in each.
    """
    engine = connection.engine
    found = _IDENTITIES.get(engine)
    if found is None:
        found = _IDENTITIES.setdefault(engine, uuid.uuid4().hex)
    return found


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(self.url)
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=POOL_RECYCLE_SECONDS
            )
            _ping_when_idle(self.engine)
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads only: it never commits."""
        with self.engine.connect() as connection:
            connection.execution_options(**{READ_ONLY_OPTION: True})
            yield connection
            connection.rollback()

    def run(self, use_case: Callable[[Connection], T]) -> T:
        """Run ``use_case`` in one transaction, again from the start if the database asks for it."""
        for attempt in range(1, TRANSACTION_ATTEMPTS_MAX + 1):
            committing = False
            try:
                with self.transaction() as connection:
                    outcome = use_case(connection)
                    committing = True
                return outcome
            except (OperationalError, DBAPIError) as error:
                if attempt == TRANSACTION_ATTEMPTS_MAX or not _retryable(error, committing=committing):
                    raise
                time.sleep(TRANSACTION_RETRY_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")

    def ping(self) -> None:
        with self.reading() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _retryable(error: DBAPIError, *, committing: bool) -> bool:
    if error.connection_invalidated:
        # Lost before COMMIT was sent, the transaction left nothing behind: run it again on a new
        # connection. Lost during COMMIT, its outcome is unknown: say so rather than guess.
        return not committing
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(error.orig)


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections that sat idle: the hot path skips the round trip."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < POOL_PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # whatever the driver raises, the pool must reconnect
            raise DisconnectionError("idle connection failed its ping") from error


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MILLISECONDS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so BEGIN IMMEDIATE takes the write lock
        # up front: two writers queue instead of failing half-way (the documented pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MILLISECONDS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Readers take no lock up front (WAL lets them read while a writer writes).
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
