"""Alembic environment: migrations run on the connection Tollway hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tollway.store.database import Database
from tollway.store.schema import metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    database = Database(context.config.get_main_option("sqlalchemy.url") or "")
    with database.engine.connect() as fresh:
        run_on(fresh)
        fresh.commit()
