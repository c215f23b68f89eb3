"""call ids unique per tenant (the node of the principal that authorized the call), not across tenants

A call id used to be unique over the whole installation: a switch learned that another tenant had used
an id (``call_id_taken``) and could claim ids before another tenant's switch did. Existing calls take
the node of the switch that authorized them, or the provider's when no switch did (the command line).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE calls SET tenant_id = (SELECT api_keys.node_id FROM switches"
        " JOIN api_keys ON api_keys.id = switches.api_key_id WHERE switches.id = calls.switch_id)"
        " WHERE switch_id IS NOT NULL"
    )
    op.execute(
        "UPDATE calls SET tenant_id = (SELECT min(nodes.id) FROM nodes WHERE nodes.parent_id IS NULL)"
        " WHERE tenant_id IS NULL"
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column("tenant_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint("uq_calls_call_id", type_="unique")
        batch_op.create_unique_constraint(op.f("uq_calls_call_id_tenant_id"), ["call_id", "tenant_id"])
        batch_op.create_foreign_key(op.f("fk_calls_tenant_id_nodes"), "nodes", ["tenant_id"], ["id"])


def downgrade() -> None:
    # Fails when two tenants hold the same call id: the old schema cannot hold both.
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint("fk_calls_tenant_id_nodes", type_="foreignkey")
        batch_op.drop_constraint("uq_calls_call_id_tenant_id", type_="unique")
        batch_op.create_unique_constraint(op.f("uq_calls_call_id"), ["call_id"])
        batch_op.drop_column("tenant_id")
