"""What every PostgreSQL benchmark needs: a throwaway database, a quiet start, the server's settings."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from tollway.store.database import Database, normalize_url


@contextmanager
def bench_database(admin_url: str, label: str = "", *, say: Callable[[str], object] = print) -> Iterator[str]:
    """A fresh database next to the one ``admin_url`` names, dropped at the end whatever happens."""
    admin_url = normalize_url(admin_url)
    name = f"tollway_bench_{uuid.uuid4().hex[:10]}{label}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        say(f"dropped database {name}")


def settle(url: str) -> None:
    """Start timed runs from a quiet state: statistics fresh, dirty pages written."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))
        connection.execute(text("CHECKPOINT"))
    engine.dispose()


def server_facts(database: Database) -> dict[str, str]:
    """The server's version and the settings that decide how fast a commit is."""
    with database.reading() as connection:
        facts = {"version": str(connection.execute(text("SHOW server_version")).scalar_one())}
        for setting in ("synchronous_commit", "fsync", "shared_buffers", "max_connections"):
            facts[setting] = str(connection.execute(text(f"SHOW {setting}")).scalar_one())
    return facts
