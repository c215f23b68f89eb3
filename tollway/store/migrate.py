"""Create or migrate the schema with Alembic, programmatically (no alembic.ini to carry around)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from tollway.errors import present, require
from tollway.store.database import Database

MIGRATIONS_DIRECTORY = Path(__file__).parent / "migrations"


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    config = alembic_config(database)
    with database.engine.connect() as connection, _foreign_keys_off_on_sqlite(connection), connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        _check_foreign_keys(connection)


def downgrade(database: Database, revision: str) -> None:
    config = alembic_config(database)
    with database.engine.connect() as connection, _foreign_keys_off_on_sqlite(connection), connection.begin():
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
        _check_foreign_keys(connection)


@contextmanager
def _foreign_keys_off_on_sqlite(connection: Connection) -> Iterator[None]:
    """SQLite changes a table's constraints by rebuilding it (copy, drop, rename), and dropping a table that
    others reference fails while foreign keys are on; they can be switched only outside a transaction. So the
    migration runs with them off, is checked before it commits, and they are on again after (SQLite's recipe)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    present(driver, "the SQLite connection").execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        present(driver, "the SQLite connection").execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        require(not broken, f"the migration left rows referencing nothing: {broken[:5]}")


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def current_revision(database: Database) -> str | None:
    with database.reading() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_up_to_date(database: Database) -> bool:
    return current_revision(database) == head_revision(database)
