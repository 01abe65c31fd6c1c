"""deployment secrets: the hashing key generated at first run, stored per deployment

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 08:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import matchwise.db.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployment_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", matchwise.db.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("deployment_secrets")
