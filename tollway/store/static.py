"""What credit control reads on every call and rarely changes, cached per process, never stale.

The ownership tree, tariffs and their rates, tariff assignments, dial plans, plans, subscriptions' status,
API keys and switches change seldom, and every change to them bumps one counter, ``static_versions``,
in the database, in the change's own transaction (triggers: no writer can forget it). A process caches
what it loads from those tables with the version it read first in the same transaction. Later
transactions read the version again (one small statement, once per transaction) and use a cached value
only if it is still the current one: a tariff changed or a node suspended is seen by the very next call,
in this process and in every other, on SQLite and PostgreSQL alike.

A value loaded at version V may already hold a change committed after V was read (READ COMMITTED): it is
then newer than its label, never older, and the next transaction that reads V+1 reloads it anyway.

Migrations that rebuild one of the watched tables on SQLite (``batch_alter_table``) drop its triggers with
it: such a migration must create them again (see migration 0020).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import Connection, select

from tollway.errors import present
from tollway.store.database import identity
from tollway.store.schema import static_versions

CACHED_VALUES_MAX = 200_000  # per cache; past it the cache starts again empty (bounded memory)
_VERSION_KEY = "tollway_static_version"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def static_version(connection: Connection) -> int:
    """The version of the static tables, read once per transaction (and remembered for its duration)."""
    transaction = connection.get_transaction()
    remembered = connection.info.get(_VERSION_KEY)  # the pooled connection's: it outlives the transaction
    if transaction is not None and remembered is not None and remembered[0] is transaction:
        return int(remembered[1])
    found = connection.execute(select(static_versions.c.version).where(static_versions.c.id == 1)).scalar()
    version = int(present(found, "the row of static_versions (is the database migrated?)"))
    connection.info[_VERSION_KEY] = (connection.get_transaction(), version)  # begun by now, if it was not
    return version


class StaticCache(Generic[K, V]):
    """Values by key, each valid while the static version it was loaded at is current.

    Keyed by database too (``tollway.store.database.identity``): ids mean something else in another one.
    When the version moves, every value goes at once: changes are rare, and reloading is a few queries.
    """

    def __init__(self, name: str, size_max: int = CACHED_VALUES_MAX) -> None:
        self.name = name
        self._size_max = size_max
        self._values: dict[tuple[str, K], tuple[int, V]] = {}
        self._lock = threading.Lock()

    def get(self, connection: Connection, key: K, load: Callable[[Connection, K], V]) -> V:
        """The cached value of ``key``, or ``load(connection, key)`` now (and cached) if stale or absent."""
        version = static_version(connection)
        slot = (identity(connection), key)
        with self._lock:
            cached = self._values.get(slot)
        if cached is not None and cached[0] == version:
            return cached[1]
        value = load(connection, key)
        with self._lock:
            if len(self._values) >= self._size_max:
                self._values.clear()
            self._values[slot] = (version, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
