"""the static version: one counter every change to the tree, tariffs, dial plans, plans, API keys or
switches bumps in its own transaction, so each process knows when its cached copies are stale

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# (table, the events that change what credit control caches). A subscription's seconds left change on
# every call with a plan: only a change of its status or plan, or a new or removed one, counts.
WATCHED = (
    ("nodes", "INSERT OR UPDATE OR DELETE"),
    ("tariffs", "INSERT OR UPDATE OR DELETE"),
    ("rates", "INSERT OR UPDATE OR DELETE"),
    ("tariff_assignments", "INSERT OR UPDATE OR DELETE"),
    ("dial_plans", "INSERT OR UPDATE OR DELETE"),
    ("plans", "INSERT OR UPDATE OR DELETE"),
    ("subscriptions", "INSERT OR UPDATE OF status, plan_id, node_id OR DELETE"),
    ("api_keys", "INSERT OR UPDATE OR DELETE"),
    ("switches", "INSERT OR UPDATE OR DELETE"),
)
BUMP = "UPDATE static_versions SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "static_versions",
        sa.Column("id", tollway.store.types.Id, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_static_versions")),
    )
    op.execute("INSERT INTO static_versions (id, version) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        # Once per statement, not per row: a COPY of 100,000 card accounts bumps it once.
        op.execute(
            "CREATE FUNCTION tollway_bump_static_version() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table, events in WATCHED:
            op.execute(
                f"CREATE TRIGGER {table}_static_version AFTER {events} ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION tollway_bump_static_version()"
            )
        return
    for table, events in WATCHED:  # SQLite: one trigger per event, row by row
        for event in events.split(" OR "):
            name = f"{table}_static_version_{event.split()[0].lower()}"
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, _ in WATCHED:
            op.execute(f"DROP TRIGGER {table}_static_version ON {table}")
        op.execute("DROP FUNCTION tollway_bump_static_version()")
    else:
        for table, events in WATCHED:
            for event in events.split(" OR "):
                op.execute(f"DROP TRIGGER {table}_static_version_{event.split()[0].lower()}")
    op.drop_table("static_versions")
