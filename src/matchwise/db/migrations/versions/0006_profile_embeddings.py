"""profile_embeddings: each profile's bio vector, computed by the worker when the profile
is written and kept with the bio's content hash (issue 21: no embedding inside a request)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import matchwise.db.tables

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "profile_embeddings",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", matchwise.db.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("profile_embeddings")
