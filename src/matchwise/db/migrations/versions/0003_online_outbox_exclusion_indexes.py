"""online cache outbox; indexes for read-time exclusion of decided and refusing people

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import matchwise.db.tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "online_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", matchwise.db.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_interactions_target_user")
        batch_op.create_index("ix_interactions_target_actor", ["target_user_id", "user_id"])
        batch_op.create_index("ix_interactions_user_target", ["user_id", "target_user_id"])
        batch_op.create_index("ix_interactions_user_item", ["user_id", "item_id"])


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_index("ix_interactions_user_item")
        batch_op.drop_index("ix_interactions_user_target")
        batch_op.drop_index("ix_interactions_target_actor")
        batch_op.create_index("ix_interactions_target_user", ["target_user_id"])
    op.drop_table("online_outbox")
