"""experiments: online experiments, interleaving's team record, and the experiment and arm
an event may echo

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 11:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import matchwise.db.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("domain", sa.String(length=16), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("outcome_actions", sa.JSON(), nullable=False),
        sa.Column("mde", sa.Float(), nullable=False),
        sa.Column("starts_at", matchwise.db.tables.UTCDateTime(), nullable=False),
        sa.Column("stops_at", matchwise.db.tables.UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("promoted_arm", sa.String(length=64), nullable=True),
        sa.Column("created_at", matchwise.db.tables.UTCDateTime(), nullable=False),
        sa.Column("updated_at", matchwise.db.tables.UTCDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('ab', 'interleave')", name="ck_experiments_kind"),
        sa.CheckConstraint("domain IN ('items', 'people')", name="ck_experiments_domain"),
        sa.CheckConstraint(
            "status IN ('draft', 'running', 'stopped', 'promoted')", name="ck_experiments_status"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_experiments_status", "experiments", ["status"])
    op.create_table(
        "experiment_teams",
        sa.Column("experiment_id", BigIntPK, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("candidate_id", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("served_at", matchwise.db.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "user_id", "candidate_id"),
    )
    # nullable columns without a default: PostgreSQL adds them without rewriting the table
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("experiment", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("arm", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("arm")
        batch.drop_column("experiment")
    op.drop_table("experiment_teams")
    op.drop_index("ix_experiments_status", table_name="experiments")
    op.drop_table("experiments")
