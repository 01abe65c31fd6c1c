"""recommendations without a foreign key to users: the cache is derived data, and checking
each of a refresh's rows against users cost PostgreSQL two thirds of writing them (a
million people's top 50: 50 million row triggers; issue 21 item 2). Erasing a person
deletes their cached lists explicitly (ops.privacy), as it did besides the cascade.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Names for SQLite's unnamed constraints, so batch mode can find the one to drop.
_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    found = sa.inspect(op.get_bind()).get_foreign_keys("recommendations")
    if not found:
        return
    if op.get_bind().dialect.name == "postgresql":
        for name in [fk["name"] for fk in found if fk["name"]]:
            op.drop_constraint(name, "recommendations", type_="foreignkey")
        return
    with op.batch_alter_table("recommendations", naming_convention=_NAMES) as batch_op:
        for fk in found:  # unnamed as 0001 made it, or named as downgrade() makes it
            name = fk["name"] or "fk_recommendations_user_id_users"
            batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("recommendations") as batch_op:
        batch_op.create_foreign_key(
            "recommendations_user_id_fkey", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
